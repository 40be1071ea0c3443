"""What an OPD reports back about a ticket (the OPD API, the OPD's page): acknowledge, diproses,
selesai, not our authority. One rule set for both doors.

Acknowledging ("diterima") is accepted while the ticket is open, from menunggu and from
diproses: OPD systems often acknowledge after their staff already started, or send it twice,
and neither should be an error. It records one "acknowledged" event; a repeat is a no-op.
Closed tickets (selesai, ditolak, digabung) refuse it with 409.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select
from sqlmodel import Session

from hub import replies
from hub.config import RegencyConfig
from hub.models import OPEN_STATUSES, Ticket, TicketEvent
from hub.outbox import enqueue
from hub.tickets import add_attachments, add_event, change_status, reroute
from hub.tickets.errors import IllegalMove, TicketError

ACTIONS = ("diterima", "diproses", "selesai", "bukan_kewenangan")


def acknowledge(session: Session, ticket: Ticket, actor: str, note: str | None = None,
                data: dict | None = None) -> bool:
    """The OPD has received the ticket: an event, no status change, nothing to the reporter.
    Returns False when it was already acknowledged (nothing recorded)."""
    if ticket.status not in OPEN_STATUSES:
        raise IllegalMove(f"ticket {ticket.code} is {ticket.status}; only open tickets can be acknowledged",
                          [])
    seen = session.scalars(select(TicketEvent.id).where(TicketEvent.ticket_id == ticket.id,
                                                        TicketEvent.kind == "acknowledged").limit(1)).first()
    if seen is not None:
        return False
    add_event(session, ticket, actor, "acknowledged", note=note, data=data or {})
    ticket.updated_at = datetime.now(timezone.utc)  # pull feeds (cursor by updated_at) show it
    session.add(ticket)
    return True


def apply_opd_update(session: Session, ticket: Ticket, action: str, actor: str, cfg: RegencyConfig,
                     note: str | None = None, photo_url: str | None = None,
                     external_id: str | None = None) -> Ticket:
    """What an OPD system reports back. Raises hub.tickets errors (400/409) for illegal moves.

    - diterima: acknowledged (see the module docstring)
    - diproses / selesai: status change (the reporter is told on their own line; LAPOR! pushed)
    - bukan_kewenangan: handed back to the triage OPD, flagged needs_triage, the event says why
    """
    data = {k: v for k, v in (("photo_url", photo_url), ("external_id", external_id)) if v}
    note = note.strip() if note and note.strip() else None
    if action == "diterima":
        acknowledge(session, ticket, actor, note, data)
        return ticket
    if action in ("diproses", "selesai"):
        if photo_url and action == "selesai":
            ticket.attachments = [*(ticket.attachments or []), {"url": photo_url, "kind": "photo",
                                                                 "mime": None, "name": "bukti penyelesaian"}]
        return change_status(session, ticket, action, actor, cfg, note, data=data, role="opd")
    if action == "bukan_kewenangan":
        if not note:
            raise TicketError("a hand-back needs a note saying why it is not this OPD's authority")
        from_opd = ticket.opd_code
        if from_opd == cfg.triage_opd:
            raise IllegalMove(f"ticket {ticket.code} is already with the triage OPD {cfg.triage_opd}; "
                              "re-route it to the right OPD instead")
        reroute(session, ticket, cfg.triage_opd, actor, cfg,
                note=f"Dikembalikan oleh {from_opd} (bukan kewenangan): {note}", learn=False)
        ticket.needs_triage = True
        ticket.routing_confidence, ticket.routing_rule = 0.0, f"handed back by {from_opd}: {note}"[:500]
        session.add(ticket)
        add_event(session, ticket, actor, "handed_back", note=note, from_opd=from_opd,
                  to_opd=cfg.triage_opd, data={**data, "reason": "bukan_kewenangan"})
        _tell_reporter_handed_back(session, ticket, cfg)
        return ticket
    raise TicketError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")


def _tell_reporter_handed_back(session: Session, ticket: Ticket, cfg: RegencyConfig) -> None:
    route = replies.reply_route(ticket.channel, cfg, ticket.reporter_phone, ticket.reporter_chat_id,
                                ticket.reporter_lapor_id)
    if route is None:
        return
    text = cfg.template("status_dialihkan", code=ticket.code, opd_name=replies.opd_name(session, ticket.opd_code)) \
        if "status_dialihkan" in cfg.templates else \
        f"Laporan {ticket.code} sedang ditinjau ulang untuk diteruskan ke instansi yang berwenang."
    if route[0] == "lapor":
        enqueue(session, "lapor_push", "lapor",
                {"tracking_id": route[1], "status": ticket.status, "opd": ticket.opd_code, "text": text,
                 "note": None, "ticket_code": ticket.code}, ticket_id=ticket.id)
    else:
        enqueue(session, "reply", route[0], {"channel": route[0], "to": route[1], "text": text,
                                             "ticket_code": ticket.code}, ticket_id=ticket.id)


__all__ = ["ACTIONS", "acknowledge", "add_attachments", "apply_opd_update"]
