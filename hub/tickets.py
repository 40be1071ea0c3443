"""Ticket rules: create from a normalizer draft, move through the lifecycle, re-route, merge.

Every change is a TicketEvent (who, when, why) and queues what must leave the hub (delivery to
the OPD, reply to the reporter) in the same transaction. HTTP routes call these; nothing else
changes a ticket.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from hub import metrics
from hub.config import RegencyConfig
from hub.logging import get_logger
from hub.models import (ALLOWED_MOVES, OPEN_STATUSES, Incident, Opd, RawMessage, Status, Ticket,
                        TicketEvent, utcnow)
from hub.outbox import enqueue
from hub.sla import compute_due
from normalizer import IncidentCandidate, category_family, is_repeat, match_incident
from normalizer.types import TicketDraft

log = get_logger(__name__)
REPEAT_WINDOW = timedelta(hours=24)
INCIDENT_WINDOW_H = 24.0


class TicketError(Exception):
    status_code = 400


class IllegalMove(TicketError):
    status_code = 409


class NotFound(TicketError):
    status_code = 404


def add_event(session: Session, ticket: Ticket, actor: str, kind: str, note: str | None = None,
              **fields: Any) -> TicketEvent:
    ev = TicketEvent(ticket_id=ticket.id, actor=actor, kind=kind, note=note, **fields)
    session.add(ev)
    return ev


def resolve_code(session: Session, code: str) -> Ticket | None:
    """The ticket behind a public code; a repeated message's code resolves to the original."""
    code = code.strip().upper()
    t = session.scalars(select(Ticket).where(Ticket.code == code)).first()
    if t is not None:
        return t
    raw = session.scalars(select(RawMessage).where(RawMessage.ticket_code == code,
                                                   RawMessage.state == "duplicate")).first()
    if raw is not None and raw.error:
        return session.scalars(select(Ticket).where(Ticket.code == raw.error)).first()
    return None


def _find_repeat(session: Session, draft: TicketDraft, now: datetime) -> Ticket | None:
    r = draft.reporter
    who = None
    if r.phone:
        who = Ticket.reporter_phone == r.phone
    elif r.telegram_chat_id:
        who = Ticket.reporter_chat_id == r.telegram_chat_id
    if who is None:
        return None
    recent = session.scalars(select(Ticket).where(who, Ticket.created_at >= now - REPEAT_WINDOW,
                                                  Ticket.status.in_(OPEN_STATUSES))
                             .order_by(Ticket.id.desc()).limit(20))
    for t in recent:
        if is_repeat(t.text_original, draft.text_original):
            return t
    return None


def _link_incident(session: Session, draft: TicketDraft, now: datetime) -> Incident:
    family = category_family(draft.category)
    since = now - timedelta(hours=INCIDENT_WINDOW_H)
    q = select(Incident).where(Incident.is_open.is_(True), Incident.last_at >= since)
    if family:
        q = q.where(Incident.category == family)
    else:
        q = q.where(Incident.category.is_(None))
    incidents = list(session.scalars(q.order_by(Incident.last_at.desc()).limit(50)))
    candidates = []
    for inc in incidents:
        sample = session.scalars(select(Ticket.text_clean).where(Ticket.incident_id == inc.id)
                                 .order_by(Ticket.id.desc()).limit(1)).first() or ""
        candidates.append(IncidentCandidate(id=inc.id, category=inc.category,
                                            kecamatan_code=inc.kecamatan_code, desa_code=inc.desa_code,
                                            latitude=inc.latitude, longitude=inc.longitude,
                                            last_at=inc.last_at, text=sample))
    found = match_incident(draft, now, candidates, window_hours=INCIDENT_WINDOW_H) if candidates else None
    if found is not None:
        inc = session.get(Incident, found)
        inc.last_at = now
        inc.ticket_count += 1
        if draft.urgency.value == "darurat":
            inc.urgency = "darurat"
        session.add(inc)
        return inc
    inc = Incident(key=draft.incident_key, category=family, kecamatan_code=draft.place.kecamatan_code,
                   desa_code=draft.place.desa_code, latitude=draft.place.latitude,
                   longitude=draft.place.longitude, urgency=draft.urgency.value, first_at=now,
                   last_at=now, ticket_count=1)
    session.add(inc)
    session.flush()
    return inc


def opd_name(session: Session, code: str) -> str:
    opd = session.get(Opd, code)
    return opd.name if opd else code


def create_from_draft(session: Session, raw: RawMessage, draft: TicketDraft, cfg: RegencyConfig,
                      now: datetime | None = None) -> Ticket | None:
    """Turn one stored raw message and its draft into a ticket (or link it as a repeat)."""
    from hub import replies

    now = now or utcnow()
    if draft.is_empty:
        raw.state, raw.error = "rejected", "empty message"
        replies.queue_text(session, None, draft.channel, raw.sender, cfg.template("empty_message"), raw=raw)
        return None
    historic = bool((draft.fields or {}).get("imported"))  # an old hotline log row (hub/importer.py)
    repeat = None if historic else _find_repeat(session, draft, now)
    if repeat is not None:
        raw.state, raw.error = "duplicate", repeat.code
        add_event(session, repeat, f"channel:{draft.channel}", "repeat",
                  note="Pesan yang sama dikirim ulang oleh pelapor", data={"raw_id": raw.id})
        return None
    created = min(raw.received_at, now) if raw.received_at else now
    # Historic calls are history, not part of a happening the dashboard follows now.
    incident = None if historic else _link_incident(session, draft, created)
    r, p, routing = draft.reporter, draft.place, draft.routing
    opd = routing.opd if routing.opd in cfg.opd_codes() else cfg.triage_opd
    ticket = Ticket(
        code=raw.ticket_code, raw_message_id=raw.id, channel=draft.channel,
        channel_message_id=raw.provider_id, reporter_name=r.name, reporter_phone=r.phone,
        reporter_chat_id=r.telegram_chat_id, reporter_lapor_id=r.lapor_id,
        reporter_nik_masked=r.nik_masked, anonymous=r.anonymous, confidential=r.confidential,
        text_original=draft.text_original, text_clean=draft.text_clean,
        attachments=[asdict(a) for a in draft.attachments], fields=_jsonable(draft.fields),
        kecamatan_code=p.kecamatan_code, desa_code=p.desa_code, address=p.address,
        latitude=p.latitude, longitude=p.longitude, category=draft.category,
        subcategory=draft.subcategory, urgency=draft.urgency.value, opd_code=opd,
        routing_confidence=routing.confidence, routing_rule=routing.rule,
        needs_triage=routing.needs_triage or opd != routing.opd, incident_id=incident.id if incident else None,
        due_at=compute_due(cfg.sla, draft.urgency.value, draft.category, created),
        created_at=created, updated_at=created,
    )
    if historic:  # handled back then: closed on arrival, never sent to the OPD or texted to the caller
        ticket.status, ticket.closed_at, ticket.due_at = Status.SELESAI.value, created, None
    session.add(ticket)
    session.flush()
    add_event(session, ticket, f"channel:{draft.channel}", "received", to_status=Status.MENUNGGU.value,
              data={"raw_id": raw.id})
    add_event(session, ticket, "system", "routed", to_opd=opd, note=routing.rule,
              data={"confidence": routing.confidence, "needs_triage": ticket.needs_triage,
                    "candidates": [list(c) for c in routing.candidates]})
    raw.state = "done"
    if historic:
        add_event(session, ticket, "system", "status", note="Riwayat panggilan diimpor dari log lama",
                  from_status=Status.MENUNGGU.value, to_status=Status.SELESAI.value)
    else:
        queue_delivery(session, ticket, "ticket.created")
        replies.queue_receipt(session, ticket, cfg)
    metrics.TICKETS_CREATED.labels(channel=ticket.channel, opd=ticket.opd_code).inc()
    return ticket


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(d, default=str))


def queue_delivery(session: Session, ticket: Ticket, event: str) -> None:
    """Queue delivery to the OPD's own system unless the OPD pulls over the API."""
    opd = session.get(Opd, ticket.opd_code)
    kind = (opd.delivery or {}).get("type", "pull") if opd else "pull"
    if kind == "pull":
        return
    enqueue(session, "deliver", ticket.opd_code, {"event": event, "code": ticket.code, "type": kind},
            ticket_id=ticket.id)


def change_status(session: Session, ticket: Ticket, to: str, actor: str, cfg: RegencyConfig,
                  note: str | None = None, data: dict[str, Any] | None = None) -> Ticket:
    from hub import replies

    try:
        target = Status(to)
    except ValueError:
        raise TicketError(f"unknown status {to!r}; use one of {[s.value for s in Status]}") from None
    current = Status(ticket.status)
    if target == current:
        raise IllegalMove(f"ticket {ticket.code} is already {current.value}")
    if target not in ALLOWED_MOVES[current]:
        allowed = sorted(s.value for s in ALLOWED_MOVES[current]) or ["(none)"]
        raise IllegalMove(f"cannot move ticket {ticket.code} from {current.value} to {target.value}; "
                          f"allowed: {', '.join(allowed)}")
    if target == Status.DIGABUNG:
        raise IllegalMove("use merge to mark a ticket digabung")
    now = utcnow()
    ticket.status, ticket.updated_at = target.value, now
    ticket.closed_at = now if target in (Status.SELESAI, Status.DITOLAK) else None
    session.add(ticket)
    add_event(session, ticket, actor, "status", note=note, from_status=current.value,
              to_status=target.value, data=data or {})
    replies.queue_status(session, ticket, cfg, note)
    _maybe_close_incident(session, ticket)
    return ticket


def reroute(session: Session, ticket: Ticket, opd_code: str, actor: str, cfg: RegencyConfig,
            note: str | None = None, learn: bool = True) -> Ticket:
    if opd_code not in cfg.opd_codes():
        raise TicketError(f"unknown OPD {opd_code!r}")
    if opd_code == ticket.opd_code:
        raise IllegalMove(f"ticket {ticket.code} is already routed to {opd_code}")
    if ticket.status not in OPEN_STATUSES:
        raise IllegalMove(f"ticket {ticket.code} is {ticket.status}; only open tickets can be re-routed")
    old = ticket.opd_code
    ticket.opd_code, ticket.needs_triage, ticket.updated_at = opd_code, False, utcnow()
    ticket.routing_confidence, ticket.routing_rule = 1.0, f"manual:{actor}"
    ticket.escalation_level = 0
    session.add(ticket)
    add_event(session, ticket, actor, "rerouted", note=note, from_opd=old, to_opd=opd_code)
    if learn:
        from hub.router_learning import record_example

        record_example(session, ticket.text_original, opd_code, "reroute")
    queue_delivery(session, ticket, "ticket.rerouted")
    return ticket


def merge(session: Session, ticket: Ticket, into: Ticket, actor: str, cfg: RegencyConfig,
          note: str | None = None) -> Ticket:
    from hub import replies

    if ticket.id == into.id:
        raise IllegalMove("a ticket cannot be merged into itself")
    if ticket.status == Status.DIGABUNG.value:
        raise IllegalMove(f"ticket {ticket.code} is already merged into {ticket.merged_into}")
    if into.status == Status.DIGABUNG.value:
        raise IllegalMove(f"ticket {into.code} is itself merged; merge into {into.merged_into}")
    prev = ticket.status
    ticket.status, ticket.merged_into, ticket.updated_at = Status.DIGABUNG.value, into.code, utcnow()
    ticket.closed_at = ticket.updated_at
    if into.incident_id and ticket.incident_id != into.incident_id:
        ticket.incident_id = into.incident_id
    session.add(ticket)
    add_event(session, ticket, actor, "merged", note=note, from_status=prev,
              to_status=Status.DIGABUNG.value, data={"into": into.code})
    add_event(session, into, actor, "note", note=f"Laporan {ticket.code} digabung ke laporan ini")
    replies.queue_status(session, ticket, cfg, note)
    return ticket


def _maybe_close_incident(session: Session, ticket: Ticket) -> None:
    if ticket.incident_id is None:
        return
    open_left = session.scalars(select(Ticket.id).where(Ticket.incident_id == ticket.incident_id,
                                                        Ticket.status.in_(OPEN_STATUSES)).limit(1)).first()
    inc = session.get(Incident, ticket.incident_id)
    if inc is not None:
        inc.is_open = open_left is not None
        session.add(inc)


def ticket_dict(t: Ticket, include_reporter: bool = True) -> dict[str, Any]:
    """The canonical ticket as JSON (the API, webhooks and Open311 all start from this)."""
    hide = t.confidential or t.anonymous or not include_reporter
    return {
        "code": t.code, "channel": t.channel, "channel_message_id": t.channel_message_id,
        "status": t.status, "urgency": t.urgency, "opd": t.opd_code,
        "routing": {"confidence": round(t.routing_confidence, 3), "rule": t.routing_rule,
                    "needs_triage": t.needs_triage},
        "category": t.category, "subcategory": t.subcategory,
        "text": t.text_original, "text_clean": t.text_clean, "attachments": t.attachments,
        "fields": {k: v for k, v in (t.fields or {}).items() if k not in {"nik"}},
        "place": {"kecamatan_code": t.kecamatan_code, "desa_code": t.desa_code, "address": t.address,
                  "latitude": t.latitude, "longitude": t.longitude},
        "reporter": None if hide else {
            "name": t.reporter_name, "phone": t.reporter_phone, "telegram_chat_id": t.reporter_chat_id,
            "lapor_id": t.reporter_lapor_id, "nik_masked": t.reporter_nik_masked},
        "anonymous": t.anonymous, "confidential": t.confidential,
        "incident_id": t.incident_id, "merged_into": t.merged_into,
        "due_at": t.due_at.isoformat() if t.due_at else None,
        "overdue": bool(t.due_at and t.status in OPEN_STATUSES and t.due_at < datetime.now(timezone.utc)),
        "created_at": t.created_at.isoformat(), "updated_at": t.updated_at.isoformat(),
        "closed_at": t.closed_at.isoformat() if t.closed_at else None,
    }


def event_dict(e: TicketEvent) -> dict[str, Any]:
    return {"at": e.at.isoformat(), "actor": e.actor, "kind": e.kind, "from_status": e.from_status,
            "to_status": e.to_status, "from_opd": e.from_opd, "to_opd": e.to_opd, "note": e.note,
            "data": e.data}
