"""Turns stored raw messages into tickets, in batches, off the request path.

Claims pending raw rows (FOR UPDATE SKIP LOCKED on PostgreSQL; BEGIN IMMEDIATE on SQLite),
runs the pure normalizer, and writes tickets, events and outbox rows in one transaction.
A message the normalizer chokes on still becomes a ticket, sent to triage for a human.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine, select
from sqlmodel import Session

from hub.config import RegencyConfig, regency
from hub.db import get_engine, writer
from hub.intake import message_from_json
from hub.logging import get_logger
from hub.models import RawMessage
from hub.regency import current_regency
from hub.settings import get_settings
from hub.tickets import create_from_draft
from normalizer import normalize
from normalizer.types import Place, Reporter, Routing, TicketDraft, Urgency

log = get_logger(__name__)


def fallback_draft(raw: RawMessage, cfg: RegencyConfig, error: str) -> TicketDraft:
    return TicketDraft(channel=raw.channel, text_original=raw.text, text_clean=raw.text.strip(),
                       reporter=Reporter(), place=Place(), category=None, subcategory=None,
                       urgency=Urgency.NORMAL,
                       routing=Routing(opd=cfg.triage_opd, confidence=0.0,
                                       rule=f"fallback: normalizer error ({error[:120]})", needs_triage=True),
                       incident_key=None)


def process_pending(engine: Engine | None = None, limit: int = 500, cfg: RegencyConfig | None = None) -> int:
    """Process up to `limit` pending raw messages. Returns how many were handled."""
    engine = engine or get_engine()
    cfg = cfg or regency(str(get_settings().config_dir))
    with Session(writer(engine), expire_on_commit=False) as session:
        q = select(RawMessage).where(RawMessage.state == "pending").order_by(RawMessage.id).limit(limit)
        if engine.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        raws = list(session.scalars(q))
        if not raws:
            session.rollback()
            return 0
        reg = current_regency(session)
        now = datetime.now(timezone.utc)
        for raw in raws:
            try:
                draft = normalize(message_from_json(raw.message), reg, now)
            except Exception as exc:  # never lose a message to a normalizer bug
                log.exception("processing.normalize_failed", raw_id=raw.id, channel=raw.channel)
                draft = fallback_draft(raw, cfg, repr(exc))
            try:
                with session.begin_nested():
                    create_from_draft(session, raw, draft, cfg, now)
            except Exception as exc:  # parked for an admin, visible on the dashboard
                log.exception("processing.create_failed", raw_id=raw.id, channel=raw.channel)
                raw.state, raw.error = "failed", repr(exc)[:2000]
            session.add(raw)
        session.commit()
    return len(raws)


def drain(engine: Engine | None = None, batch: int = 500) -> int:
    total = 0
    while True:
        n = process_pending(engine, batch)
        total += n
        if n == 0:
            return total
