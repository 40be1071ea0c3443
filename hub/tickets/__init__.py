"""Ticket rules: create from a normalizer draft, move through the lifecycle, re-route, merge,
attachments added later, what an OPD reports back (hub.tickets.opd_updates) and who sees which
tickets (hub.tickets.query).

Every change is a TicketEvent (who, when, why) and queues what must leave the hub (delivery to
the OPD, reply to the reporter) in the same transaction. HTTP routes call these; nothing else
changes a ticket. Errors are hub.tickets.errors (HTTP-free; hub.api.errors maps them).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence

from sqlalchemy import func, or_, select
from sqlmodel import Session

from hub import metrics, pieces
from hub.config import RegencyConfig
from hub.logging import get_logger
from hub.models import (ALLOWED_MOVES, OPEN_STATUSES, Incident, Opd, RawMessage, Status, Ticket,
                        TicketEvent, utcnow)
from hub import replies
from hub.outbox import enqueue
from hub.replies import opd_name  # noqa: F401  (part of this module's API: T.opd_name)
from hub.sla import compute_due
from hub.tickets.errors import Forbidden, IllegalMove, InvalidValue, NotFound, TicketError
from normalizer import IncidentCandidate, category_family, is_repeat, match_incident
from normalizer.reporter import mask_niks
from normalizer.types import TicketDraft

log = get_logger(__name__)
REPEAT_WINDOW = timedelta(hours=24)
INCIDENT_WINDOW_H = 24.0


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


@dataclass
class _Recent:
    id: int  # 0 while the ticket is not flushed yet: then `ticket` has it
    code: str
    text: str
    ticket: Ticket | None = None


@dataclass
class BatchContext:
    """What creating a batch of tickets needs to look up, loaded once per batch.

    Creating tickets one query at a time cost tens of milliseconds each (every query flushed
    the session); with this a batch makes a handful of queries, and tickets created earlier in
    the same batch are seen by later ones (repeats, incidents).
    """

    opds: dict[str, tuple[str, str]]  # code -> (name, delivery type)
    incidents: list[Incident] = field(default_factory=list)
    incident_text: dict[int, str] = field(default_factory=dict)
    recent: dict[str, list[_Recent]] = field(default_factory=dict)  # reporter key -> open tickets
    after_flush: list = field(default_factory=list)  # steps that need ids of this batch's tickets

    def opd_name(self, code: str) -> str:
        return self.opds.get(code, (code, "pull"))[0]

    def delivery_type(self, code: str) -> str:
        return self.opds.get(code, (code, "pull"))[1]


def _reporter_key(phone: str | None, chat_id: str | None) -> str | None:
    if phone:
        return f"p:{phone}"
    if chat_id:
        return f"c:{chat_id}"
    return None


def batch_context(session: Session, drafts: list[TicketDraft], now: datetime) -> BatchContext:
    with session.no_autoflush:
        opds = {o.code: (o.name, (o.delivery or {}).get("type", "pull")) for o in session.scalars(select(Opd))}
        ctx = BatchContext(opds=opds)
        phones = {d.reporter.phone for d in drafts if d.reporter.phone}
        chats = {d.reporter.telegram_chat_id for d in drafts if d.reporter.telegram_chat_id and not d.reporter.phone}
        if phones or chats:
            cond = []
            if phones:
                cond.append(Ticket.reporter_phone.in_(sorted(phones)))
            if chats:
                cond.append(Ticket.reporter_chat_id.in_(sorted(chats)))
            rows = session.execute(
                select(Ticket.id, Ticket.code, Ticket.text_original, Ticket.reporter_phone, Ticket.reporter_chat_id)
                .where(or_(*cond), Ticket.created_at >= now - REPEAT_WINDOW, Ticket.status.in_(OPEN_STATUSES))
                .order_by(Ticket.id.desc()).limit(2000))
            for tid, code, text, phone, chat in rows:
                key = _reporter_key(phone, chat)
                if key:
                    ctx.recent.setdefault(key, []).append(_Recent(tid, code, text))
        since = now - timedelta(hours=INCIDENT_WINDOW_H)
        ctx.incidents = list(session.scalars(select(Incident).where(Incident.is_open.is_(True), Incident.last_at >= since)
                                             .order_by(Incident.last_at.desc()).limit(1000)))
        if ctx.incidents:
            latest = (select(func.max(Ticket.id)).where(Ticket.incident_id.in_([i.id for i in ctx.incidents]))
                      .group_by(Ticket.incident_id))
            for inc_id, text in session.execute(select(Ticket.incident_id, Ticket.text_clean)
                                                .where(Ticket.id.in_(latest))):
                ctx.incident_text[inc_id] = text
    return ctx


def _find_repeat(ctx: BatchContext, draft: TicketDraft) -> _Recent | None:
    key = _reporter_key(draft.reporter.phone, draft.reporter.telegram_chat_id)
    for t in ctx.recent.get(key, ())[:20] if key else ():
        # a ticket with follow-ups joined (hub.pieces): the report itself is what a resend repeats
        if is_repeat(t.text.split(pieces.FOLLOW_UP_HEAD, 1)[0], draft.text_original):
            return t
    return None


def _link_incident(session: Session, ctx: BatchContext, draft: TicketDraft, now: datetime) -> Incident:
    family = category_family(draft.category)
    since = now - timedelta(hours=INCIDENT_WINDOW_H)
    candidates = [IncidentCandidate(id=inc.id, category=inc.category, kecamatan_code=inc.kecamatan_code,
                                    desa_code=inc.desa_code, latitude=inc.latitude, longitude=inc.longitude,
                                    last_at=inc.last_at, text=ctx.incident_text.get(inc.id, ""))
                  for inc in ctx.incidents if inc.category == family and inc.last_at >= since][:50]
    found = match_incident(draft, now, candidates, window_hours=INCIDENT_WINDOW_H) if candidates else None
    if found is not None:
        inc = next(i for i in ctx.incidents if i.id == found)
        inc.last_at = max(inc.last_at, now)
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
    session.flush([inc])
    ctx.incidents.insert(0, inc)
    return inc


def create_from_draft(session: Session, raw: RawMessage, draft: TicketDraft, cfg: RegencyConfig,
                      now: datetime | None = None, ctx: BatchContext | None = None) -> Ticket | None:
    """Turn one stored raw message and its draft into a ticket (or link it as a repeat).

    Pass the batch's `ctx` (batch_context) when creating many; without it one is loaded.
    For many at once, `create_many` does the same in a few round trips."""
    now = now or utcnow()
    if ctx is None:
        ctx = batch_context(session, [draft], now)
    return create_many(session, [(raw, draft)], cfg, now, ctx)[0]


# Steps that see a batch of (raw, draft) before its tickets are made; each returns the items
# (drafts are frozen: a hook replaces one to re-route it) and may add ctx.after_flush steps.
# The wired parts' `draft_hooks` (hub.parts.Line), set for this process by hub.wiring.install,
# like the outbox's senders; `create_many(hooks=...)` overrides them for one call.
DraftHook = Callable[[Session, list, RegencyConfig, "BatchContext"], list]
_DRAFT_HOOKS: tuple[DraftHook, ...] = ()


def use_draft_hooks(hooks: Sequence[DraftHook]) -> None:
    global _DRAFT_HOOKS
    _DRAFT_HOOKS = tuple(hooks)


def create_many(session: Session, items: list[tuple[RawMessage, TicketDraft]], cfg: RegencyConfig,
                now: datetime, ctx: BatchContext, hooks: Sequence[DraftHook] | None = None) -> list[Ticket | None]:
    """Create the tickets of many raw messages: all tickets in one INSERT, then their events
    and outbox rows in one more (a ticket per round trip was the processing bottleneck)."""
    for hook in (_DRAFT_HOOKS if hooks is None else hooks):  # e.g. hub.works.linking (wired parts)
        items = hook(session, items, cfg, ctx)
    with session.no_autoflush:
        prepared = [_prepare(session, raw, draft, cfg, now, ctx, replies) for raw, draft in items]
        session.flush()
        for step in ctx.after_flush:
            step()
        ctx.after_flush.clear()
        out = []
        for (raw, draft), ticket in zip(items, prepared):
            if ticket is not None:
                _finish(session, raw, draft, ticket, cfg, ctx, replies)
            out.append(ticket)
    return out


def _prepare(session: Session, raw: RawMessage, draft: TicketDraft, cfg: RegencyConfig, now: datetime,
             ctx: BatchContext, replies) -> Ticket | None:
    if draft.is_empty and not pieces.takes_wordless(raw, draft):
        raw.state, raw.error = "rejected", "empty message"
        replies.queue_text(session, None, draft.channel, raw.sender, cfg.template("empty_message"), raw=raw)
        return None
    historic = bool((draft.fields or {}).get("imported"))  # an old hotline log row (hub/lines/hotline/importer.py)
    if pieces.before_create(session, raw, draft, cfg, now, replies, ctx,  # joined, or waiting for words
                            _reporter_key(draft.reporter.phone, draft.reporter.telegram_chat_id), resolve_code):
        return None
    repeat = None if historic else _find_repeat(ctx, draft)
    if repeat is not None:
        raw.state, raw.error = "duplicate", repeat.code

        def note_repeat(repeat=repeat, raw=raw, channel=draft.channel):
            session.add(TicketEvent(ticket_id=repeat.id if repeat.id else repeat.ticket.id,
                                    actor=f"channel:{channel}", kind="repeat",
                                    note="Pesan yang sama dikirim ulang oleh pelapor", data={"raw_id": raw.id}))
        ctx.after_flush.append(note_repeat)
        replies.queue_repeat(session, repeat.code, draft, cfg)
        return None
    if not historic and pieces.join_follow_up(  # "tambahan: ...", "lokasinya ...": onto their report
            session, raw, draft, cfg, now, replies, ctx,
            _reporter_key(draft.reporter.phone, draft.reporter.telegram_chat_id),
            lambda t, note: queue_delivery(session, t, "ticket.updated", ctx, note=note)):
        return None
    created = min(raw.received_at, now) if raw.received_at else now
    # Historic calls are history, not part of a happening the dashboard follows now.
    incident = None if historic else _link_incident(session, ctx, draft, created)
    ticket = Ticket(**_ticket_values(raw.ticket_code, raw.id, raw.provider_id, draft, cfg, created,
                                     incident.id if incident else None))
    session.add(ticket)
    pieces.after_create(session, raw, draft, ticket, now, ctx)  # a place or photo sent before the words
    key = _reporter_key(ticket.reporter_phone, ticket.reporter_chat_id)
    if key and not historic:  # a later message of this batch sees it (its id comes with the flush)
        ctx.recent.setdefault(key, []).insert(0, _Recent(0, ticket.code, ticket.text_original, ticket))
    if incident is not None:
        ctx.incident_text[incident.id] = ticket.text_clean
    return ticket


def _finish(session: Session, raw: RawMessage, draft: TicketDraft, ticket: Ticket, cfg: RegencyConfig,
            ctx: BatchContext, replies) -> None:
    historic = bool((draft.fields or {}).get("imported"))
    for ev in _created_events(raw.id, draft, ticket.opd_code, ticket.needs_triage, historic):
        add_event(session, ticket, **ev)
    raw.state = "done"
    if not historic:
        queue_delivery(session, ticket, "ticket.created", ctx)
        replies.queue_receipt(session, ticket, cfg, opd_label=ctx.opd_name(ticket.opd_code))
    metrics.TICKETS_CREATED.labels(channel=ticket.channel, opd=ticket.opd_code).inc()


def _ticket_values(code: str, raw_id: int | None, provider_id: str | None, draft: TicketDraft,
                   cfg: RegencyConfig, created: datetime, incident_id: int | None,
                   json_text: bool = False) -> dict[str, Any]:
    """The new ticket's columns (one place for create_many and create_historic_many).
    `json_text`: the JSON columns as their stored text (hub.db.insert_rows' `ready` columns)."""
    r, p, routing = draft.reporter, draft.place, draft.routing
    opd = routing.opd if routing.opd in cfg.opd_codes() else cfg.triage_opd
    values = dict(
        code=code, raw_message_id=raw_id, channel=draft.channel,
        channel_message_id=provider_id, reporter_name=r.name, reporter_phone=r.phone,
        reporter_chat_id=r.telegram_chat_id, reporter_lapor_id=r.lapor_id,
        reporter_nik_masked=r.nik_masked, anonymous=r.anonymous, confidential=r.confidential,
        text_original=draft.text_original, text_clean=draft.text_clean,
        attachments=[asdict(a) for a in draft.attachments],
        fields=json.dumps(draft.fields, default=str) if json_text else _jsonable(draft.fields),
        kecamatan_code=p.kecamatan_code, desa_code=p.desa_code, address=p.address,
        latitude=p.latitude, longitude=p.longitude, category=draft.category,
        subcategory=draft.subcategory, urgency=draft.urgency.value, opd_code=opd,
        routing_confidence=routing.confidence, routing_rule=routing.rule,
        needs_triage=routing.needs_triage or opd != routing.opd, incident_id=incident_id,
        due_at=None, created_at=created, updated_at=created,
    )
    if json_text:
        values["attachments"] = json.dumps(values["attachments"])
    if (draft.fields or {}).get("imported"):  # handled back then: closed on arrival, never sent to the OPD or texted
        values.update(status=Status.SELESAI.value, closed_at=created)
    else:
        values["due_at"] = compute_due(cfg.sla, draft.urgency.value, draft.category, created)
    return values


def _created_events(raw_id: int | None, draft: TicketDraft, opd_code: str, needs_triage: bool,
                    historic: bool) -> list[dict[str, Any]]:
    """The events a new ticket starts with (add_event keywords), for both creation paths."""
    routing = draft.routing
    events = [dict(actor=f"channel:{draft.channel}", kind="received", to_status=Status.MENUNGGU.value,
                   data={"raw_id": raw_id}),
              dict(actor="system", kind="routed", to_opd=opd_code, note=routing.rule,
                   data={"confidence": routing.confidence, "needs_triage": needs_triage,
                         "candidates": [list(c) for c in routing.candidates]})]
    if historic:
        events.append(dict(actor="system", kind="status", note="Riwayat panggilan diimpor dari log lama",
                           from_status=Status.MENUNGGU.value, to_status=Status.SELESAI.value))
    return events


def is_historic_plain(draft: TicketDraft) -> bool:
    """A draft create_historic_many takes: an imported old call with words in it (an empty one,
    or anything else, goes through create_many)."""
    return bool((draft.fields or {}).get("imported")) and not draft.is_empty


@dataclass(frozen=True)
class HistoricRow:
    """A stored raw message of an old call log, as its importer knows it (no reload needed)."""
    raw_id: int
    code: str
    provider_id: str | None
    received_at: datetime | None
    draft: TicketDraft


def create_historic_many(conn, rows: Sequence[HistoricRow], cfg: RegencyConfig, now: datetime) -> int:
    """Create the closed tickets of imported old calls (hub/lines/hotline/importer.py) in bulk:
    the rows create_many makes for them (same _ticket_values, same _created_events; an imported
    row takes no repeat, incident, piece, draft hook, delivery or reply there either), written
    as three executemany statements instead of an ORM object per ticket and event.

    `conn` is a Connection in the caller's write transaction. Each raw message is claimed
    first (pending -> done, only if still pending), so a hub processing the same rows at the
    same time makes each ticket once. Returns how many tickets were made."""
    from sqlalchemy import update

    from hub.db import insert_rows

    for r in rows:
        if not is_historic_plain(r.draft):
            raise ValueError(f"raw {r.raw_id}: not a plain imported call; use create_many")
    if not rows:
        return 0
    raw_t, ticket_t, event_t = RawMessage.__table__, Ticket.__table__, TicketEvent.__table__
    claimed: set[int] = set()
    ids = [r.raw_id for r in rows]
    for start in range(0, len(ids), 500):
        res = conn.execute(update(raw_t).where(raw_t.c.id.in_(ids[start:start + 500]), raw_t.c.state == "pending")
                           .values(state="done").returning(raw_t.c.id))
        claimed.update(res.scalars())
    rows = [r for r in rows if r.raw_id in claimed]
    if not rows:
        return 0
    values = []
    for r in rows:
        created = min(r.received_at, now) if r.received_at else now
        v = _ticket_values(r.code, r.raw_id, r.provider_id, r.draft, cfg, created, None, json_text=True)
        v.setdefault("status", Status.MENUNGGU.value)
        v.setdefault("closed_at", None)
        v.update(merged_into=None, escalation_level=0)
        values.append(v)
    # A plain executemany, then the new ids by code: INSERT .. RETURNING with many rows runs one
    # statement per row on SQLite (its RETURNING order is not guaranteed), ~45 us a ticket.
    insert_rows(conn, ticket_t, values, ready=("fields", "attachments"))
    by_code: dict[str, int] = {}
    codes = [v["code"] for v in values]
    for start in range(0, len(codes), 500):
        by_code.update((code, tid) for code, tid in conn.execute(
            select(ticket_t.c.code, ticket_t.c.id).where(ticket_t.c.code.in_(codes[start:start + 500]))))
    new_ids = [by_code[c] for c in codes]
    events = []
    for r, v, tid in zip(rows, values, new_ids):
        for ev in _created_events(r.raw_id, r.draft, v["opd_code"], v["needs_triage"], True):
            events.append({"ticket_id": tid, "at": now, "from_status": None, "to_status": None, "from_opd": None,
                           "to_opd": None, "note": None, "data": {}, **ev})
    insert_rows(conn, event_t, events)
    counted: dict[tuple[str, str], int] = {}
    for v in values:
        counted[(v["channel"], v["opd_code"])] = counted.get((v["channel"], v["opd_code"]), 0) + 1
    for (channel, opd), n in counted.items():
        metrics.TICKETS_CREATED.labels(channel=channel, opd=opd).inc(n)
    return len(rows)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))


def queue_delivery(session: Session, ticket: Ticket, event: str, ctx: BatchContext | None = None,
                   note: str | None = None) -> None:
    """Queue delivery to the OPD's own system unless the OPD pulls over the API. `note` goes
    with the event (a webhook's data.note, the e-mail's note)."""
    if ctx is not None:
        kind = ctx.delivery_type(ticket.opd_code)
    else:
        opd = session.get(Opd, ticket.opd_code)
        kind = (opd.delivery or {}).get("type", "pull") if opd else "pull"
    if kind == "pull":
        return
    payload = {"event": event, "code": ticket.code, "type": kind}
    if note:
        payload["note"] = note
    enqueue(session, "deliver", ticket.opd_code, payload, ticket_id=ticket.id)


# Moves backwards: only an admin makes them ("buka kembali"), always with a reason. A citizen's
# "belum beres" reopens a finished ticket too (citizen_feedback), as a system actor.
BACKWARD_MOVES = frozenset({(Status.DIPROSES, Status.MENUNGGU), (Status.SELESAI, Status.MENUNGGU),
                            (Status.DITOLAK, Status.MENUNGGU)})
REOPEN_ROLES = ("admin",)


def is_reopen(from_status: str | None, to_status: str | None) -> bool:
    """A finished ticket (selesai/ditolak) moved back to menunggu: counted as reopened."""
    return from_status in (Status.SELESAI.value, Status.DITOLAK.value) and to_status == Status.MENUNGGU.value


def change_status(session: Session, ticket: Ticket, to: str, actor: str, cfg: RegencyConfig,
                  note: str | None = None, data: dict[str, Any] | None = None,
                  from_line: str | None = None, role: str | None = None,
                  public: bool = True) -> Ticket:
    """Move a ticket to status `to` (ALLOWED_MOVES) and tell the reporter on their line.

    `role` is the role of the person or OPD key asking (web pages, API); None for the hub's own
    moves and syncs from outside systems. People obey the safe-change rules: a move backwards
    (diproses -> menunggu, selesai/ditolak -> menunggu) is an admin's reopening with a reason;
    `ditolak` needs a reason, which the reporter always reads. `public=False` keeps the note
    internal (not sent to the reporter, not on /cek).

    `from_line` names the outside system this change came from (a sync such as LAPOR!'s): the
    reporter's update is not echoed back to that same line, which already shows it."""
    try:
        target = Status(to)
    except ValueError:
        raise TicketError(f"unknown status {to!r}; use one of {[s.value for s in Status]}",
                          user_message=f"Status {to!r} tidak dikenal.") from None
    current = Status(ticket.status)
    allowed = sorted(s.value for s in ALLOWED_MOVES[current] if s != Status.DIGABUNG)
    if target == current:
        raise IllegalMove(f"ticket {ticket.code} is already {current.value}", allowed,
                          user_message=f"Tiket sudah berstatus {current.value}.")
    if target not in ALLOWED_MOVES[current]:
        raise IllegalMove(f"cannot move ticket {ticket.code} from {current.value} to {target.value}; "
                          f"allowed: {', '.join(sorted(s.value for s in ALLOWED_MOVES[current]) or ['(none)'])}",
                          allowed, user_message=f"Status tidak bisa diubah dari {current.value} ke {target.value}.")
    if target == Status.DIGABUNG:
        raise IllegalMove("use merge to mark a ticket digabung", allowed,
                          user_message="Gunakan \u201cGabungkan sebagai duplikat\u201d.")
    note = note.strip() if note and note.strip() else None
    backward = (current, target) in BACKWARD_MOVES
    if role is not None:
        if backward and role not in REOPEN_ROLES:
            raise Forbidden(f"moving ticket {ticket.code} back from {current.value} to {target.value} "
                            "is a reopening: only an admin may do it, with a reason",
                            user_message="Mengembalikan status (buka kembali) hanya boleh dilakukan admin, "
                                         "dengan alasan.")
        if backward and not note:
            raise TicketError("reopening a ticket needs a reason (note)",
                              user_message="Tulis alasan membuka kembali tiket ini.")
        if target == Status.DITOLAK and not note:
            raise TicketError("status ditolak needs a reason (note) the reporter will read",
                              user_message="Status Ditolak perlu alasan; alasan ini dibaca pelapor.")
    if target == Status.DITOLAK:
        public = True  # the reporter must read why
    now = utcnow()
    ticket.status, ticket.updated_at = target.value, now
    ticket.closed_at = now if target in (Status.SELESAI, Status.DITOLAK) else None
    session.add(ticket)
    data = dict(data or {})
    if note:
        data["public"] = bool(public)
    if backward:
        data["reopen"] = True
    add_event(session, ticket, actor, "status", note=note, from_status=current.value,
              to_status=target.value, data=data)
    replies.queue_status(session, ticket, cfg, note if public else None, skip_line=from_line)
    if is_reopen(current.value, target.value):
        queue_delivery(session, ticket, "ticket.reopened")
    _maybe_close_incident(session, ticket)
    return ticket


def add_note(session: Session, ticket: Ticket, actor: str, note: str | None, public: bool = False,
             data: dict[str, Any] | None = None) -> TicketEvent:
    """A note without a status change: internal by default; a public one is shown to the
    citizen on /cek (it is not sent as a message)."""
    note = (note or "").strip()
    if not note:
        raise TicketError("a note needs text", user_message="Catatan masih kosong.")
    if ticket.status == Status.DIGABUNG.value:
        raise IllegalMove(f"ticket {ticket.code} is merged into {ticket.merged_into}; add the note there",
                          user_message=f"Tiket ini digabung ke {ticket.merged_into}; tulis catatan di sana.")
    ticket.updated_at = utcnow()
    session.add(ticket)
    return add_event(session, ticket, actor, "note", note=note[:2000], data={**(data or {}), "public": bool(public)})


FEEDBACK_ANSWERS = ("beres", "belum")


def citizen_feedback(session: Session, ticket: Ticket, answer: str, cfg: RegencyConfig, via: str,
                     rating: int | None = None, comment: str | None = None) -> Ticket:
    """The reporter's answer to a finished ticket (/cek, SMS "BERES <kode>" / "BELUM <kode>",
    Telegram): "beres" (done, optionally rated 1-5) or "belum" (not done: the ticket is reopened
    to menunggu and goes back to the OPD; counted as reopened)."""
    if answer not in FEEDBACK_ANSWERS:
        raise InvalidValue(f"unknown answer {answer!r}; use beres or belum",
                           user_message="Jawaban tidak dikenal: pilih sudah beres atau belum beres.")
    if rating is not None and not (isinstance(rating, int) and 1 <= rating <= 5):
        raise InvalidValue("rating must be 1-5", user_message="Nilai harus 1 sampai 5.")
    if ticket.status != Status.SELESAI.value:
        raise IllegalMove(f"ticket {ticket.code} is {ticket.status}; only a finished ticket takes an answer",
                          user_message=f"Laporan {ticket.code} belum selesai ditangani; jawaban bisa "
                                       "diberikan setelah statusnya Selesai.")
    comment = (comment or "").strip()[:500] or None
    actor = f"pelapor:{via}"
    add_event(session, ticket, actor, "feedback", note=comment,
              data={"answer": answer, "rating": rating, "via": via, "public": False})
    if answer == "belum":
        change_status(session, ticket, Status.MENUNGGU.value, actor, cfg,
                      note="Pelapor: belum beres" + (f" — {comment}" if comment else ""),
                      data={"citizen": True})
    else:
        ticket.updated_at = utcnow()
        session.add(ticket)
    return ticket


def reveal_nik(session: Session, ticket: Ticket, actor: str, role: str, opd_code: str | None,
               dukcapil_opd: str = "DUKCAPIL") -> str:
    """The ticket's text with NIKs in full, for a Dukcapil user (or an admin) who asks on
    purpose; recorded as a `nik_revealed` event. Everyone else sees masked text only."""
    if not (role == "admin" or (role == "opd" and opd_code == dukcapil_opd)):
        raise Forbidden("only Dukcapil staff or an admin may reveal a NIK",
                        user_message="Hanya petugas Dukcapil atau admin yang boleh membuka NIK.")
    add_event(session, ticket, actor, "nik_revealed", data={"public": False})
    return ticket.text_original


def add_attachments(session: Session, ticket: Ticket, attachments: list[dict[str, Any]], actor: str,
                    note: str | None = "Pelapor menambahkan lampiran") -> Ticket:
    """Attachments that arrive after the ticket exists (a late photo on Telegram, proof of work):
    appended, each with a "note" event carrying it."""
    for att in attachments:
        ticket.attachments = [*(ticket.attachments or []), att]
        add_event(session, ticket, actor, "note", note=note, data={"attachment": att})
    session.add(ticket)
    return ticket


def reroute(session: Session, ticket: Ticket, opd_code: str, actor: str, cfg: RegencyConfig,
            note: str | None = None, learn: bool = True) -> Ticket:
    if opd_code not in cfg.opd_codes():
        raise TicketError(f"unknown OPD {opd_code!r}", user_message=f"OPD {opd_code} tidak dikenal.")
    if opd_code == ticket.opd_code:
        raise IllegalMove(f"ticket {ticket.code} is already routed to {opd_code}",
                          user_message=f"Tiket sudah ditangani {opd_code}.")
    if ticket.status not in OPEN_STATUSES:
        raise IllegalMove(f"ticket {ticket.code} is {ticket.status}; only open tickets can be re-routed",
                          user_message="Hanya tiket yang masih terbuka yang bisa dialihkan.")
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
    if ticket.id == into.id:
        raise IllegalMove("a ticket cannot be merged into itself",
                          user_message="Tiket tidak bisa digabung ke dirinya sendiri.")
    if ticket.status == Status.DIGABUNG.value:
        raise IllegalMove(f"ticket {ticket.code} is already merged into {ticket.merged_into}",
                          user_message=f"Tiket ini sudah digabung ke {ticket.merged_into}.")
    if into.status == Status.DIGABUNG.value:
        raise IllegalMove(f"ticket {into.code} is itself merged; merge into {into.merged_into}",
                          user_message=f"Tiket {into.code} sendiri sudah digabung; gabungkan ke {into.merged_into}.")
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
        "text": mask_niks(t.text_original), "text_clean": t.text_clean, "attachments": t.attachments,
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


# Re-exported so `from hub.tickets import X` finds every ticket rule (imported last: they use the above).
from hub.tickets.opd_updates import ACTIONS, acknowledge, apply_opd_update  # noqa: E402
from hub.tickets.query import (InvalidCursor, TicketFilter, can_see, decode_cursor, encode_cursor,  # noqa: E402
                              get_visible, visible_to)

__all__ = ["ACTIONS", "BACKWARD_MOVES", "FEEDBACK_ANSWERS", "acknowledge", "add_note", "citizen_feedback",
           "is_reopen", "mask_niks", "reveal_nik", "BatchContext", "Forbidden", "IllegalMove", "InvalidValue", "NotFound", "TicketError",
           "InvalidCursor", "TicketFilter", "add_attachments", "can_see", "decode_cursor", "encode_cursor",
           "get_visible", "add_event", "apply_opd_update", "batch_context", "change_status",
           "create_from_draft", "create_historic_many", "create_many", "HistoricRow", "is_historic_plain", "event_dict", "merge", "opd_name", "queue_delivery", "reroute",
           "resolve_code", "ticket_dict", "visible_to"]
