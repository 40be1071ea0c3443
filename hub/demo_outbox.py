"""Demo mode (SIMPUL_DEMO=true, set by `make run`): what a line without credentials would have
sent goes to the `demo_outbox` table, shown on the admin's "Kotak keluar demo" page, instead of
being tried, retried and parked as a dead letter.

Only lines that lack credentials are replaced, and only when demo mode is on: a configured
line still sends for real, and outside demo mode nothing here is wired (hub/wiring.py), so a
production hub never swallows a delivery.
"""
from __future__ import annotations

import asyncio
import os
from typing import Any, Mapping

from sqlalchemy import select
from sqlmodel import Session

from adapters.base import OutboundMessage, SendResult
from hub.db import get_engine, session_scope
from hub.logging import get_logger
from hub.models import DemoMessage, Opd, Outbox, Ticket
from hub.parts import Line, OutboxSender, ReplySender
from hub.settings import Settings

log = get_logger(__name__)


def missing_credentials(settings: Settings) -> list[str]:
    """The outbound lines this hub cannot really use: no credentials configured."""
    twilio = bool(settings.twilio_account_sid and settings.twilio_auth_token)
    out = []
    if settings.sms_provider == "twilio" and not (twilio and settings.twilio_from_number):
        out.append("sms")
    if settings.sms_provider == "gammu" and not settings.gammu_database_url:
        out.append("sms")
    if not (twilio and settings.twilio_whatsapp_from):
        out.append("whatsapp")
    if not settings.telegram_bot_token:
        out.append("telegram")
    if not (settings.lapor_base_url and settings.lapor_token):
        out.append("lapor")
    if not settings.smtp_username:  # the demo's SMTP default is a local catcher that may not run
        out.append("email")
    return out


def _store(message_id: str, kind: str, channel: str, to: str, text: str, subject: str | None = None,
           ticket_code: str | None = None) -> int:
    with session_scope() as s:
        old = s.scalars(select(DemoMessage.id).where(DemoMessage.message_id == message_id)).first()
        if old is not None:  # a retry of the same outbox row
            return old
        m = DemoMessage(message_id=message_id, kind=kind, channel=channel, to=str(to)[:300],
                        subject=subject[:300] if subject else None, text=text, ticket_code=ticket_code)
        s.add(m)
        s.flush()
        return m.id


def _reply_sender(channel: str) -> ReplySender:
    async def send(msg: OutboundMessage) -> SendResult:
        mid = (msg.extra or {}).get("message_id") or f"demo-{channel}-{os.urandom(6).hex()}"
        n = await asyncio.to_thread(_store, mid, "reply", channel, msg.to, msg.text, None, msg.ticket_code)
        return SendResult(provider_id=f"demo-{n}")
    return send


def _lapor_push() -> OutboxSender:
    async def send(row: Outbox) -> dict[str, Any]:
        p = row.payload
        n = await asyncio.to_thread(_store, row.message_id, row.kind, "lapor", p.get("tracking_id", ""),
                                    p.get("text") or p.get("status", ""), f"status {p.get('status')}",
                                    p.get("ticket_code"))
        return {"via": "demo", "provider_id": f"demo-{n}"}
    return OutboxSender(send)


def _delivery_to_demo(row: Outbox, demo_email: bool) -> tuple | None:
    """What a "deliver" row would have sent, when its OPD's delivery cannot really go out."""
    from hub.delivery.mail import email_for
    from hub.delivery.targets import recipients

    with Session(get_engine(), expire_on_commit=False) as s:
        t = s.get(Ticket, row.ticket_id) if row.ticket_id else None
        opd = s.get(Opd, row.target)
    if t is None or opd is None:
        return None
    delivery = opd.delivery or {}
    kind = delivery.get("type", "pull")
    event = row.payload.get("event", "ticket.created")
    if kind == "email" and demo_email:
        to = recipients(delivery.get("to"))
        mail = email_for(event, t, opd, to, row.message_id, row.payload.get("note"))
        return ("email", ", ".join(to), mail.text, mail.subject, t.code)
    env = delivery.get("secret_env") if kind == "webhook" else delivery.get("api_key_env") if kind == "open311" else None
    if kind in ("webhook", "open311") and not (env and os.environ.get(env)):
        return (kind, delivery.get("url") or delivery.get("endpoint") or "",
                f"{event}: {t.code} → {opd.code}\n{t.text_clean or t.text_original}", event, t.code)
    return None


def _deliver(real: OutboxSender, demo_email: bool) -> OutboxSender:
    async def send(row: Outbox) -> dict[str, Any] | None:
        what = await asyncio.to_thread(_delivery_to_demo, row, demo_email)
        if what is None:
            return await real.send(row)
        channel, to, text, subject, code = what
        n = await asyncio.to_thread(_store, row.message_id, row.kind, channel, to, text, subject, code)
        return {"via": f"demo ({channel})", "event": row.payload.get("event"), "provider_id": f"demo-{n}"}
    return OutboxSender(send, real.on_done, real.prepare)


def _notify() -> OutboxSender:
    async def send(row: Outbox) -> dict[str, Any]:
        from hub.delivery.targets import recipients

        p = row.payload
        n = await asyncio.to_thread(_store, row.message_id, row.kind, "email", ", ".join(recipients(p.get("to"))),
                                    p.get("text", ""), p.get("subject"), p.get("ticket_code"))
        return {"via": "demo (email)", "provider_id": f"demo-{n}"}
    return OutboxSender(send)


def part(settings: Settings, reply_senders: Mapping[str, ReplySender],
         outbox_senders: Mapping[str, OutboxSender]) -> Line:
    """Replaces the senders of lines without credentials; wired last, only in demo mode."""
    missing = missing_credentials(settings)
    replies = {ch: _reply_sender(ch) for ch in ("sms", "whatsapp", "telegram", "lapor")
               if ch in missing and ch in reply_senders}
    senders: dict[str, OutboxSender] = {}
    if "deliver" in outbox_senders:
        senders["deliver"] = _deliver(outbox_senders["deliver"], "email" in missing)
    if "notify" in outbox_senders and "email" in missing:
        real_notify = outbox_senders["notify"]
        senders["notify"] = OutboxSender(_notify().send, real_notify.on_done, real_notify.prepare)
    if "lapor_push" in outbox_senders and "lapor" in missing:
        senders["lapor_push"] = _lapor_push()
    log.warning("demo.mode", to_demo_outbox=sorted(set(replies) | ({"email"} & set(missing))),
                note="SIMPUL_DEMO=true: lines without credentials write to the demo outbox page, never for real")
    return Line("demo_outbox", reply_senders=replies, outbox_senders=senders)
