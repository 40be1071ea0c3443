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
from hub.commands import answer_status_query, parse_status_query
from hub.config import RegencyConfig
from hub.db import get_engine
from hub.lines import ratelimit
from hub.parts import Line
from hub.logging import get_logger
from hub.settings import Settings, get_settings
from normalizer.types import InboundMessage

log = get_logger(__name__)
PATH = "/webhooks/twilio/sms"
router = APIRouter(tags=["webhooks"])


@lru_cache(maxsize=4)
def _adapter(sid: str | None, token: str | None, sms_from: str | None, wa_from: str | None,
             base_url: str | None) -> TwilioAdapter:
    return TwilioAdapter(account_sid=sid, auth_token=token, from_number=sms_from,
                         whatsapp_from=wa_from, base_url=base_url)


def adapter_for(settings: Settings) -> TwilioAdapter:
    return _adapter(settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_from_number,
                    settings.twilio_whatsapp_from, settings.twilio_base_url)


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


def _status_answer(cfg: RegencyConfig, channel: str, sender: str, code: str) -> str:
    with Session(get_engine()) as s:
        return answer_status_query(s, cfg, channel, sender, code)


def _stored_state(raw_id: int) -> str | None:
    return ratelimit.state_of(get_engine(), raw_id)


async def answer(request: Request, msg: InboundMessage) -> str | None:
    """What to store and what to say back for one inbound SMS/WhatsApp message."""
    settings: Settings = request.app.state.settings
    cfg: RegencyConfig = request.app.state.regency
    code = parse_status_query(msg.text)
    if code and not msg.attachments:  # "CEK K7X2M9P": answered, not stored as a report
        return await asyncio.to_thread(_status_answer, cfg, msg.channel, msg.sender, code)
    if is_blank(msg.text) and not msg.attachments:  # empty or binary: a polite answer, no ticket
        log.info("twilio.empty_message", channel=msg.channel, sid=msg.provider_id)
        return cfg.template("empty_message")
    engine = get_engine()
    limit = settings.rate_limit_per_sender
    verdict = await asyncio.to_thread(ratelimit.count, engine, msg, limit)
    if verdict is not None and not verdict.allowed:
        [adm] = await asyncio.to_thread(ratelimit.admit, [msg], limit, engine, settings.dedup_window_s,
                                        None, True, [verdict])
        if adm.held:
            return cfg.template("rate_limited") if adm.notify else None
        return cfg.template("receipt_immediate", code=adm.accepted.ticket_code)
    # The TwiML answer below is the receipt: the hub must not send a second one.
    msg = dataclasses.replace(msg, fields={**msg.fields, "receipt_sent": True})
    accepted = await request.app.state.intake_writer.submit(msg)
    if accepted.duplicate:  # a provider retry is not a new message
        await asyncio.to_thread(ratelimit.uncount, engine, msg, limit)
        if await asyncio.to_thread(_stored_state, accepted.raw_id) == ratelimit.HELD:
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
    try:
        msg = adapter.parse(form, received_at=datetime.now(timezone.utc))
    except InvalidPayload as exc:
        log.warning("twilio.invalid_payload", reason=str(exc))
        return JSONResponse({"detail": f"invalid Twilio payload: {exc}"}, status_code=400)
    try:
        text = await answer(request, msg)
    except Exception:
        log.exception("twilio.not_stored", channel=msg.channel, sid=msg.provider_id)
        return JSONResponse({"detail": "message not stored, please retry"}, status_code=503)
    return Response(twiml(text), media_type="application/xml")


# -- replies ---------------------------------------------------------------------------------
async def send_reply(message: OutboundMessage) -> SendResult:
    """Outbox reply sender for whatsapp (and sms when sms_provider is twilio)."""
    return await adapter_for(get_settings()).send(message)


def line(settings: Settings) -> Line:
    """The webhooks; replies on WhatsApp, and on SMS when Twilio is the SMS provider."""
    senders = {"whatsapp": send_reply}
    if settings.sms_provider == "twilio":
        senders["sms"] = send_reply
    return Line("twilio", routers=[router], reply_senders=senders)
