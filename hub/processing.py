"""Turns stored raw messages into tickets, in batches, off the request path.

Claims pending raw rows (FOR UPDATE SKIP LOCKED on PostgreSQL; BEGIN IMMEDIATE on SQLite),
runs the pure normalizer, and writes tickets, events and outbox rows in one transaction.
A message the normalizer chokes on still becomes a ticket, sent to triage for a human.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from sqlalchemy import Engine, select
from sqlmodel import Session

from hub.config import RegencyConfig, regency_config
from hub.db import get_engine, writer
from hub.guard import pending_ids, process_isolated
from hub.intake import message_from_json
from hub.logging import get_logger
from hub.models import RawMessage
from hub.normalizer_loader import current_regency
from hub.settings import get_settings
from hub.unavailable import is_unavailable
from hub.unreadable import triage_reason
from hub.tickets import HistoricRow, batch_context, create_from_draft, create_historic_many, create_many, is_historic_plain
from normalizer import normalize
from normalizer.types import InboundMessage, Place, Reporter, Routing, TicketDraft, Urgency

log = get_logger(__name__)
SQLITE_WRITE_CHUNK = 25


def fallback_draft(raw: RawMessage, cfg: RegencyConfig, error: str) -> TicketDraft:
    return TicketDraft(channel=raw.channel, text_original=raw.text, text_clean=raw.text.strip(),
                       reporter=Reporter(), place=Place(), category=None, subcategory=None,
                       urgency=Urgency.NORMAL,
                       routing=Routing(opd=cfg.triage_opd, confidence=0.0,
                                       rule=f"fallback: normalizer error ({error[:120]})", needs_triage=True),
                       incident_key=None)


def _normalize_all(session: Session, raws: list[RawMessage], cfg: RegencyConfig,
                   now: datetime) -> dict[int, TicketDraft]:
    reg = current_regency(session)
    drafts = {}
    for raw in raws:
        try:
            drafts[raw.id] = normalize(message_from_json(raw.message), reg, now)
            reason = triage_reason(raw.message)
            if reason:  # read by hand from a payload the line's library refused: a person looks
                drafts[raw.id] = dataclasses.replace(drafts[raw.id], routing=Routing(
                    opd=cfg.triage_opd, confidence=0.0, rule=f"unreadable payload ({reason[:120]})",
                    needs_triage=True))
        except Exception as exc:  # never lose a message to a normalizer bug
            log.exception("processing.normalize_failed", raw_id=raw.id, channel=raw.channel)
            drafts[raw.id] = fallback_draft(raw, cfg, repr(exc))
    return drafts


def _write_all(session: Session, raws: list[RawMessage], drafts: dict[int, TicketDraft],
               cfg: RegencyConfig, now: datetime) -> int:
    """Create the tickets of `raws` in `session` (the caller commits). Returns how many.

    Fast path: the whole batch in one savepoint with a few round trips. If anything in it
    fails, the savepoint is rolled back and the batch is redone one ticket per savepoint, so
    one bad message is parked as failed and the others still become tickets."""
    items = [(raw, drafts[raw.id]) for raw in raws]
    try:
        with session.begin_nested():
            create_many(session, items, cfg, now, batch_context(session, [d for _, d in items], now))
        for raw in raws:
            session.add(raw)
        return len(raws)
    except Exception as exc:
        if is_unavailable(exc):  # the store went away: nothing to retry one by one
            raise
        log.warning("processing.batch_retry_one_by_one", size=len(raws))
    for raw in raws:
        if raw.state != "pending":  # the rolled-back attempt may have changed it in memory
            raw.state, raw.error = "pending", None
    ctx = batch_context(session, [d for _, d in items], now)
    for raw, draft in items:
        try:
            with session.begin_nested():
                create_from_draft(session, raw, draft, cfg, now, ctx)
        except Exception as exc:  # parked for an admin, visible on the dashboard
            log.exception("processing.create_failed", raw_id=raw.id, channel=raw.channel)
            raw.state, raw.error = "failed", repr(exc)[:2000]
            # the rolled-back savepoint may have taken objects the context remembers
            ctx = batch_context(session, [d for _, d in items], now)
        session.add(raw)
    return len(raws)


def process_pending(engine: Engine | None = None, limit: int = 500, cfg: RegencyConfig | None = None) -> int:
    """Process up to `limit` pending raw messages. Returns how many were handled.

    PostgreSQL: rows are claimed with FOR UPDATE SKIP LOCKED, so several hub processes share
    the work. SQLite: messages are normalized before the write lock is taken, and the short
    BEGIN IMMEDIATE transaction re-checks that each is still pending, so intake never waits
    behind the normalizer.

    If the batch fails as a whole (a row the driver cannot load, anything), its rows are
    processed in halves down to single rows (hub.guard.process_isolated): a message that keeps failing is
    parked as `failed` after a few attempts and every other message still becomes a ticket.
    """
    engine = engine or get_engine()
    cfg = cfg or regency_config(str(get_settings().config_dir))
    try:
        return _process(engine, limit, cfg)
    except Exception as exc:
        if is_unavailable(exc):  # the store is gone: nothing to isolate, the job retries
            raise
        log.warning("processing.batch_failed_isolating", error=repr(exc)[:300])
        return process_isolated(engine, pending_ids(engine, limit), lambda ids: _process(engine, len(ids), cfg, ids))


def _process(engine: Engine, limit: int, cfg: RegencyConfig, only: list[int] | None = None) -> int:
    q = select(RawMessage).where(RawMessage.state == "pending").order_by(RawMessage.id).limit(limit)
    if only is not None:
        q = q.where(RawMessage.id.in_(only))
    now = datetime.now(timezone.utc)
    if engine.dialect.name == "postgresql":
        with Session(engine, expire_on_commit=False) as session:
            raws = list(session.scalars(q.with_for_update(skip_locked=True)))
            if not raws:
                session.rollback()
                return 0
            drafts = _normalize_all(session, raws, cfg, now)
            _write_all(session, raws, drafts, cfg, now)
            session.commit()
        return len(raws)
    with Session(engine, expire_on_commit=False) as session:
        raws = list(session.scalars(q))
        if not raws:
            return 0
        drafts = _normalize_all(session, raws, cfg, now)
        session.rollback()
    # Short write transactions (SQLITE_WRITE_CHUNK tickets each): SQLite has one writer at a
    # time, and the intake path must not wait behind a long batch.
    ids = sorted(drafts)
    for start in range(0, len(ids), SQLITE_WRITE_CHUNK):
        with Session(writer(engine), expire_on_commit=False) as session:
            fresh = list(session.scalars(select(RawMessage).where(
                RawMessage.id.in_(ids[start:start + SQLITE_WRITE_CHUNK]), RawMessage.state == "pending")
                .order_by(RawMessage.id)))
            if fresh:
                _write_all(session, fresh, drafts, cfg, now)
                session.commit()
    return len(raws)


def normalize_imported(messages: list[InboundMessage], reg, now: datetime) -> list[TicketDraft | None]:
    """The drafts of old call-log rows (None where the normalizer chokes: that row is left
    pending for process_pending, which logs it and sends it to triage). Pure: it may run in
    the importer's second process (hub/lines/hotline/importer.py)."""
    drafts: list[TicketDraft | None] = []
    for msg in messages:
        try:
            drafts.append(normalize(msg, reg, now))
        except Exception:
            drafts.append(None)
    return drafts


def process_imported(engine: Engine, stored: list[tuple[int, str, InboundMessage]], cfg: RegencyConfig,
                     drafts: list[TicketDraft | None] | None = None, now: datetime | None = None) -> int:
    """Turn old call-log rows this process has just stored (raw id, ticket code, message) into
    their closed tickets, in one transaction, without reading them back: the messages are still
    in memory, so they are normalized as they are (or `drafts` holds them, one per stored row,
    made by normalize_imported at `now`) and written by hub.tickets.create_historic_many.

    Whatever this does not take stays pending for process_pending, which makes the same ticket
    the usual way: a message the normalizer chokes on (fallback to triage), one that is not a
    plain imported call, a batch the store refuses. Returns how many tickets were made."""
    if not stored:
        return 0
    if drafts is None:
        now = datetime.now(timezone.utc)
        with Session(engine) as session:
            reg = current_regency(session)
        drafts = normalize_imported([msg for _, _, msg in stored], reg, now)
    now = now or datetime.now(timezone.utc)
    rows = []
    for (raw_id, code, msg), draft in zip(stored, drafts, strict=True):
        if draft is None:
            continue
        if is_historic_plain(draft) and not triage_reason({"fields": msg.fields}):
            rows.append(HistoricRow(raw_id, code, msg.provider_id, msg.received_at or now, draft))
    try:
        with writer(engine).begin() as conn:
            return create_historic_many(conn, rows, cfg, now)
    except Exception as exc:
        if is_unavailable(exc):
            raise
        log.warning("processing.imported_batch_failed", size=len(rows), error=repr(exc)[:300])
        return 0  # rolled back: the rows are still pending, process_pending isolates the bad one


def drain(engine: Engine | None = None, batch: int = 500) -> int:
    total = 0
    while True:
        n = process_pending(engine, batch)
        total += n
        if n == 0:
            return total
