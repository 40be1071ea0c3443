"""Replies to reporters on the line they used: receipt, status changes, status answers.

Text comes from the regency's templates (Bahasa Indonesia). Replies are outbox rows of kind
"reply"; hub/wiring.py gives each line's reply sender to `reply_outbox_sender`.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping

from sqlmodel import Session

from adapters.base import OutboundMessage, PermanentError, SendResult
from hub.config import RegencyConfig
from hub.parts import OutboxSender
from hub.models import Opd, Outbox, RawMessage, Ticket
from hub.outbox import enqueue

STATUS_LABELS = {"menunggu": "menunggu", "diproses": "sedang diproses", "selesai": "selesai",
                 "ditolak": "ditolak / bukan kewenangan", "digabung": "digabung"}
ReplySender = Callable[[OutboundMessage], Awaitable[SendResult]]


def opd_name(session: Session, code: str) -> str:
    """An OPD's display name (its code when unknown). Here, not in hub.tickets: replies are
    below ticket rules (hub.tickets queues replies; replies never import hub.tickets)."""
    opd = session.get(Opd, code)
    return opd.name if opd else code


def reply_route(channel: str, cfg: RegencyConfig, phone: str | None, chat_id: str | None,
                lapor_id: str | None = None) -> tuple[str, str] | None:
    """Which line and address a reply to this reporter goes to, or None (no way back)."""
    line = ((cfg.channels.get("channels") or {}).get(channel) or {}).get("reply", channel)
    if line == "telegram" and chat_id:
        return "telegram", chat_id
    if line == "whatsapp" and phone:
        return "whatsapp", phone
    if line == "sms" and phone:
        return "sms", phone
    if line == "lapor" and lapor_id:
        return "lapor", lapor_id
    return None


def _ticket_route(ticket: Ticket, cfg: RegencyConfig) -> tuple[str, str] | None:
    if (ticket.fields or {}).get("imported"):  # old hotline logs: never text a caller about a 2021 call
        return None
    return reply_route(ticket.channel, cfg, ticket.reporter_phone, ticket.reporter_chat_id,
                       ticket.reporter_lapor_id)


def queue_text(session: Session, ticket: Ticket | None, channel: str, to: str | None, text: str,
               raw: RawMessage | None = None, cfg: RegencyConfig | None = None) -> Outbox | None:
    if not to:
        return None
    line = channel
    if cfg is not None:
        route = reply_route(channel, cfg, to if channel != "telegram" else None,
                            to if channel == "telegram" else None)
        if route is None:
            return None
        line, to = route
    return enqueue(session, "reply", line,
                   {"channel": line, "to": to, "text": text, "ticket_code": ticket.code if ticket else None},
                   ticket_id=ticket.id if ticket else None)


def queue_repeat(session: Session, code: str, draft, cfg: RegencyConfig) -> Outbox | None:
    """A reporter sent the same report again: tell them it is already recorded, under which code."""
    r = draft.reporter
    route = reply_route(draft.channel, cfg, r.phone, r.telegram_chat_id, r.lapor_id)
    if route is None or route[0] == "lapor" or "repeat_receipt" not in cfg.templates:
        return None
    return enqueue(session, "reply", route[0], {"channel": route[0], "to": route[1], "ticket_code": code,
                                                "text": cfg.template("repeat_receipt", code=code)})


def queue_receipt(session: Session, ticket: Ticket, cfg: RegencyConfig, opd_label: str | None = None) -> Outbox | None:
    route = _ticket_route(ticket, cfg)
    if route is None or route[0] == "lapor":
        return None
    if (ticket.fields or {}).get("receipt_sent"):  # the line already answered with the code (TwiML)
        return None
    name = "receipt_telegram" if route[0] == "telegram" else "receipt"
    label = opd_label or opd_name(session, ticket.opd_code)
    text = cfg.template(name, code=ticket.code, opd_name=label)
    return enqueue(session, "reply", route[0],
                   {"channel": route[0], "to": route[1], "text": text, "ticket_code": ticket.code,
                    "template": name, "values": {"opd_name": label}},
                   ticket_id=ticket.id)


def status_text(session: Session, ticket: Ticket, cfg: RegencyConfig, note: str | None) -> str:
    return cfg.template(f"status_{ticket.status}", code=ticket.code,
                        opd_name=opd_name(session, ticket.opd_code),
                        note_suffix=f" Keterangan: {note.strip()}" if note and note.strip() else "",
                        merged_into=ticket.merged_into or "")


def queue_status(session: Session, ticket: Ticket, cfg: RegencyConfig, note: str | None,
                 skip_line: str | None = None) -> Outbox | None:
    """A status change goes back to the reporter's line (LAPOR! tickets: pushed to LAPOR!),
    unless that line is `skip_line`, the system the change came from."""
    route = _ticket_route(ticket, cfg)
    if route is None or (skip_line is not None and route[0] == skip_line):
        return None
    text = status_text(session, ticket, cfg, note)
    if route[0] == "lapor":
        return enqueue(session, "lapor_push", "lapor",
                       {"tracking_id": route[1], "status": ticket.status, "opd": ticket.opd_code,
                        "text": text, "note": note, "ticket_code": ticket.code}, ticket_id=ticket.id)
    return enqueue(session, "reply", route[0],
                   {"channel": route[0], "to": route[1], "text": text, "ticket_code": ticket.code,
                    # the reply's kind and values: a WhatsApp template after 24 h (hub/whatsapp.py)
                    "template": f"status_{ticket.status}",
                    "values": {"opd_name": _opd(session, ticket), "note": (note or "").strip() or "-",
                               "merged_into": ticket.merged_into or "-"}},
                   ticket_id=ticket.id)


def _opd(session: Session, ticket: Ticket) -> str:
    return opd_name(session, ticket.opd_code)


def status_answer(session: Session, ticket: Ticket, cfg: RegencyConfig) -> str:
    return cfg.template("status_answer", code=ticket.code, status_label=STATUS_LABELS[ticket.status],
                        opd_name=opd_name(session, ticket.opd_code),
                        updated=ticket.updated_at.strftime("%d-%m-%Y %H:%M UTC"))


def reply_outbox_sender(senders: Mapping[str, ReplySender]) -> OutboxSender:
    """The outbox sender for kind 'reply': dispatch to the reply sender of the row's line."""
    async def send_reply(row: Outbox) -> dict[str, Any] | None:
        p = row.payload
        sender = senders.get(p["channel"])
        if sender is None:
            raise PermanentError(f"no reply sender configured for line {p['channel']!r}")
        res = await sender(OutboundMessage(channel=p["channel"], to=p["to"], text=p["text"],
                                           ticket_code=p.get("ticket_code"), extra={"message_id": row.message_id, "template": p.get("template"),
                                                  "values": p.get("values") or {}}))
        return {"provider_id": res.provider_id}
    return OutboxSender(send_reply)
