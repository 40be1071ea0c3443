"""Twilio line (SMS and WhatsApp): `POST /webhooks/twilio/sms` and the reply senders.

The route is thin: check X-Twilio-Signature, parse, decide (status query, empty, rate limit,
store) and answer TwiML with the ticket code at once. It never answers 2xx for a message it
did not store, and never logs a phone number, message text or token.
"""
from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timezone
from functools import lru_cache

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session

from adapters.base import BadSignature, InvalidPayload, OutboundMessage, SendResult
from adapters.twilio_sms import TwilioAdapter, is_blank, twiml
from hub.guard import strip_nul
from hub.unavailable import is_unavailable, log_throttled
from hub.commands import answer_citizen_command, parse_citizen_command
from hub.config import RegencyConfig
from hub.db import get_engine, session_scope
from hub import pieces, whatsapp
from hub.lines import ratelimit
from hub.parts import Line, OutboxSender, Periodic
from hub.logging import get_logger
from hub.settings import Settings, get_settings
from hub.unreadable import mark_for_triage, store_unreadable
from normalizer.types import InboundMessage

log = get_logger(__name__)
PATH = "/webhooks/twilio/sms"
router = APIRouter(tags=["webhooks"])


@lru_cache(maxsize=4)
def _adapter(sid: str | None, token: str | None, sms_from: str | None, wa_from: str | None,
             base_url: str | None, status_callback: str | None = None,
             content_base_url: str | None = None) -> TwilioAdapter:
    return TwilioAdapter(account_sid=sid, auth_token=token, from_number=sms_from,
                         whatsapp_from=wa_from, base_url=base_url, status_callback=status_callback,
                         content_base_url=content_base_url)


def adapter_for(settings: Settings) -> TwilioAdapter:
    return _adapter(settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_from_number,
                    settings.twilio_whatsapp_from, settings.twilio_base_url,
                    settings.public_url.rstrip("/") + whatsapp.STATUS_PATH, settings.twilio_content_base_url)


def signed_url(request: Request, settings: Settings) -> str:
    """The URL Twilio signed: our public URL as configured. Behind our own reverse proxy
    (trust_proxy) the proxy's X-Forwarded-Proto/Host say what Twilio called instead."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if settings.trust_proxy:
        proto = (request.headers.get("x-forwarded-proto") or request.url.scheme).split(",")[0].strip()
        host = (request.headers.get("x-forwarded-host") or request.headers.get("host") or "").split(",")[0].strip()
        if host:
            return f"{proto}://{host}{path}"
    return settings.public_url.rstrip("/") + path


def _status_answer(cfg: RegencyConfig, channel: str, sender: str, cmd) -> str:
    if cmd[0] == "cek":
        with Session(get_engine()) as s:
            return answer_citizen_command(s, cfg, channel, sender, cmd)
    with session_scope() as s:  # BERES/BELUM change the ticket
        return answer_citizen_command(s, cfg, channel, sender, cmd)


def _stored_state(raw_id: int) -> str | None:
    return ratelimit.state_of(get_engine(), raw_id)


def _receipt_kept_back(raw_id: int) -> bool:
    """A stored message whose receipt was kept back (a likely follow-up, or held)."""
    from hub.models import RawMessage

    with Session(get_engine()) as s:
        raw = s.get(RawMessage, raw_id)
        return raw is None or raw.state == ratelimit.HELD or not (raw.message.get("fields") or {}).get("receipt_sent")


def _likely_follow_up(msg: InboundMessage) -> bool:
    """Would processing join this text to the sender's report (hub.pieces)? Then the TwiML
    answer carries no receipt: processing says "Tambahan diterima ..." (or, if it decides
    otherwise after all, sends the receipt itself)."""
    try:
        with Session(get_engine()) as s:
            verdict = pieces.would_join(s, msg, msg.received_at or datetime.now(timezone.utc))
        return bool(verdict and verdict.join)
    except Exception:  # never lose the receipt over this: answer as for any report
        log.exception("twilio.follow_up_check_failed", channel=msg.channel)
        return False


async def answer(request: Request, msg: InboundMessage) -> str | None:
    """What to store and what to say back for one inbound SMS/WhatsApp message."""
    settings: Settings = request.app.state.settings
    cfg: RegencyConfig = request.app.state.regency
    code = parse_citizen_command(msg.text)
    if code and not msg.attachments:  # "CEK K7X2M9P": answered, not stored as a report
        return await asyncio.to_thread(_status_answer, cfg, msg.channel, msg.sender, code)
    if is_blank(msg.text) and not msg.attachments and msg.latitude is None:  # empty or binary
        log.info("twilio.empty_message", channel=msg.channel, sid=msg.provider_id)
        return cfg.template("empty_message")
    wordless = is_blank(msg.text)  # a location pin or media alone: joins an open report, or we ask
    # (hub.pieces, during processing); the answer comes from there, not as TwiML
    engine = get_engine()
    limit = settings.rate_limit_per_sender
    verdict = await asyncio.to_thread(ratelimit.count, engine, msg, limit)
    if verdict is not None and not verdict.allowed:
        [adm] = await asyncio.to_thread(ratelimit.admit, [msg], limit, engine, settings.dedup_window_s,
                                        None, True, [verdict])
        if adm.held:
            return cfg.template("rate_limited") if adm.notify else None
        return cfg.template("receipt_immediate", code=adm.accepted.ticket_code)
    # a likely follow-up ("tambahan: ...") of the sender's report gets no receipt of its own
    follow_up = not wordless and await asyncio.to_thread(_likely_follow_up, msg)
    if not wordless and not follow_up:  # the TwiML answer below is the receipt: the hub must not send a second one
        msg = dataclasses.replace(msg, fields={**msg.fields, "receipt_sent": True})
    accepted = await request.app.state.intake_writer.submit(msg)
    if accepted.duplicate:  # a provider retry is not a new message: answered as the first time
        await asyncio.to_thread(ratelimit.uncount, engine, msg, limit)
        if await asyncio.to_thread(_receipt_kept_back, accepted.raw_id):
            return None
        return cfg.template("receipt_immediate", code=accepted.ticket_code)
    if wordless or follow_up:
        return None
    return cfg.template("receipt_immediate", code=accepted.ticket_code)


@router.post(PATH, summary="Twilio incoming SMS / WhatsApp webhook (TwiML answer)",
             responses={400: {"description": "malformed payload"}, 403: {"description": "bad signature"},
                        503: {"description": "not stored; Twilio may retry"}})
async def twilio_webhook(request: Request):
    settings: Settings = request.app.state.settings
    adapter = adapter_for(settings)
    form = {k: v for k, v in (await request.form()).multi_items() if isinstance(v, str)}
    url = signed_url(request, settings)
    try:
        adapter.validate(url, form, request.headers.get("x-twilio-signature"))
    except BadSignature as exc:
        log.warning("twilio.bad_signature", reason=str(exc), url=url,
                    client=request.client.host if request.client else None)
        return JSONResponse({"detail": f"forbidden: {exc}"}, status_code=403)
    form = strip_nul(form)  # after the signature check, which covers what Twilio sent
    now = datetime.now(timezone.utc)
    try:
        msg = adapter.parse(form, received_at=now)
    except Exception as exc:  # signed by Twilio, so kept: a triage ticket, or a dead intake row
        problem = str(exc) if isinstance(exc, InvalidPayload) else f"{type(exc).__name__}: {exc}"
        log.warning("twilio.invalid_payload", reason=problem[:200])
        partial = adapter.read_by_hand(form, received_at=now)
        if partial is None:
            try:
                await asyncio.to_thread(store_unreadable, "twilio", form, f"twilio: {problem}",
                                        key=(form.get("MessageSid") or None),
                                        dedup_window_s=settings.dedup_window_s)
            except Exception:
                log.exception("twilio.unreadable_not_stored")
                return JSONResponse({"detail": "not stored, please retry"}, status_code=503)
            return JSONResponse({"detail": f"invalid Twilio payload: {problem}"}, status_code=400)
        msg = mark_for_triage(partial, f"twilio: {problem}")
    try:
        text = await answer(request, msg)
    except Exception as exc:
        if is_unavailable(exc):
            log_throttled("twilio.not_stored", exc)
        else:
            log.exception("twilio.not_stored", channel=msg.channel, sid=msg.provider_id)
        return JSONResponse({"detail": "message not stored, please retry"}, status_code=503)
    return Response(twiml(text), media_type="application/xml")


@router.post(whatsapp.STATUS_PATH, summary="Twilio message status callback (delivery reports)",
             responses={403: {"description": "bad signature"}, 400: {"description": "no outbox message id"}})
async def twilio_status(request: Request):
    settings: Settings = request.app.state.settings
    form = {k: v for k, v in (await request.form()).multi_items() if isinstance(v, str)}
    url = signed_url(request, settings)
    try:
        adapter_for(settings).validate(url, form, request.headers.get("x-twilio-signature"))
    except BadSignature as exc:
        log.warning("twilio.bad_signature", reason=str(exc), url=url,
                    client=request.client.host if request.client else None)
        return JSONResponse({"detail": f"forbidden: {exc}"}, status_code=403)
    mid = request.query_params.get("m")
    if not mid:
        return JSONResponse({"detail": "no outbox message id (m) in the callback URL"}, status_code=400)
    try:
        done = await asyncio.to_thread(whatsapp.record_status, mid, form)
    except Exception:
        log.exception("twilio.status_not_stored")
        return JSONResponse({"detail": "not stored, please retry"}, status_code=503)
    return {"ok": True, "result": done}


# -- replies ---------------------------------------------------------------------------------
async def send_reply(message: OutboundMessage) -> SendResult:
    """Outbox reply sender for whatsapp (and sms when sms_provider is twilio). A WhatsApp reply
    outside the 24-hour window goes as the reply kind's approved template (hub.whatsapp)."""
    settings = get_settings()
    if message.channel == "whatsapp":
        message = await asyncio.to_thread(whatsapp.prepare, message, str(settings.config_dir))
    return await adapter_for(settings).send(message)


def line(settings: Settings) -> Line:
    """The webhooks; replies on WhatsApp, and on SMS when Twilio is the SMS provider."""
    senders = {"whatsapp": send_reply}
    if settings.sms_provider == "twilio":
        senders["sms"] = send_reply
    # the incoming webhook and the status callback (delivery reports) are on `router`; a
    # location pin or media nobody explains still becomes a ticket (hub.pieces); media are
    # copied into the hub's storage off the webhook (hub.lines.twilio.media); WhatsApp templates
    # missing or not approved show as degraded (hub.lines.twilio.templates)
    from hub.lines.twilio import media as twilio_media, templates

    periodic = [Periodic("pieces_waiting", 60, pieces.waiting_job), Periodic("twilio_media", 15, twilio_media.queue_job)]
    if templates.enabled(settings):
        periodic.append(Periodic("whatsapp_templates", 3600, templates.refresh_job))
    return Line("twilio", routers=[router], reply_senders=senders,
                outbox_senders={twilio_media.KIND: OutboxSender(twilio_media.fetch_sender)},
                periodic=periodic, startup=[templates.on_startup], shutdown=[templates.on_shutdown])
