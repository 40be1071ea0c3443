"""The outbox: every message that leaves the hub is a row written in its cause's transaction.

Workers claim due rows with a lease (FOR UPDATE SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on
SQLite), send them through the sender registered for their kind, and mark them done, retry
later with backoff and jitter, or park them as dead letters. Never send outside this module.
"""
from __future__ import annotations

import random
import socket
import os
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

from sqlalchemy import Engine, and_, or_, select, update
from sqlmodel import Session

from adapters.base import PermanentError, RetryableError
from hub import metrics
from hub.db import get_engine, writer
from hub.logging import get_logger
from hub.models import Outbox

log = get_logger(__name__)
OUT = Outbox.__table__
Sender = Callable[[Outbox], Awaitable[dict[str, Any] | None]]
SENDERS: dict[str, Sender] = {}
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def register_sender(kind: str, sender: Sender) -> None:
    SENDERS[kind] = sender


def enqueue(session: Session, kind: str, target: str, payload: dict[str, Any],
            ticket_id: int | None = None, message_id: str | None = None,
            not_before: datetime | None = None) -> Outbox:
    """Add an outbox row to the caller's transaction (it commits with the cause)."""
    row = Outbox(message_id=message_id or f"msg_{uuid.uuid4().hex}", kind=kind, target=target,
                 payload=payload, ticket_id=ticket_id,
                 next_attempt_at=not_before or datetime.now(timezone.utc))
    session.add(row)
    return row


def backoff_seconds(attempt: int, base: float = 2.0, cap: float = 3600.0) -> float:
    """Exponential backoff with full jitter: attempt 1 -> up to 2 s, 2 -> 4 s, ... capped."""
    return random.uniform(base ** attempt / 2, min(cap, base ** attempt))


def claim(engine: Engine, limit: int, lease_s: int, owner: str = WORKER_ID,
          kinds: list[str] | None = None) -> list[Outbox]:
    """Lease up to `limit` due rows to this worker. Safe with many processes on one database."""
    now = datetime.now(timezone.utc)
    due = and_(OUT.c.state == "pending", OUT.c.next_attempt_at <= now,
               or_(OUT.c.lease_until.is_(None), OUT.c.lease_until < now))
    if kinds:
        due = and_(due, OUT.c.kind.in_(kinds))
    q = select(OUT.c.id).where(due).order_by(OUT.c.next_attempt_at, OUT.c.id).limit(limit)
    if engine.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    with writer(engine).begin() as conn:  # on SQLite this is BEGIN IMMEDIATE: one claimer at a time
        ids = [r[0] for r in conn.execute(q)]
        if not ids:
            return []
        conn.execute(update(OUT).where(OUT.c.id.in_(ids))
                     .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s)))
    with Session(engine, expire_on_commit=False) as s:
        return list(s.scalars(select(Outbox).where(Outbox.id.in_(ids)).order_by(Outbox.id)))


def _finish(engine: Engine, row: Outbox, owner: str, **values: Any) -> bool:
    """Write the outcome only if we still hold the lease (another worker may have taken over)."""
    with writer(engine).begin() as conn:
        res = conn.execute(update(OUT).where(OUT.c.id == row.id, OUT.c.lease_owner == owner,
                                             OUT.c.state == "pending")
                           .values(lease_owner=None, lease_until=None, **values))
        return res.rowcount == 1


def mark_done(engine: Engine, row: Outbox, owner: str = WORKER_ID, detail: dict | None = None) -> bool:
    now = datetime.now(timezone.utc)
    ok = _finish(engine, row, owner, state="done", done_at=now, attempts=row.attempts + 1, last_error=None)
    metrics.OUTBOX_SENT.labels(kind=row.kind, result="done").inc()
    return ok


def mark_failed(engine: Engine, row: Outbox, error: Exception, max_attempts: int,
                owner: str = WORKER_ID) -> str:
    attempts = row.attempts + 1
    now = datetime.now(timezone.utc)
    if isinstance(error, PermanentError) or attempts >= max_attempts:
        _finish(engine, row, owner, state="dead", attempts=attempts, last_error=str(error)[:2000])
        metrics.OUTBOX_SENT.labels(kind=row.kind, result="dead").inc()
        log.warning("outbox.dead_letter", outbox_id=row.id, kind=row.kind, target=row.target,
                    attempts=attempts, error=str(error)[:300])
        return "dead"
    delay = backoff_seconds(attempts)
    if isinstance(error, RetryableError) and error.retry_after is not None:
        delay = max(delay, float(error.retry_after))
    _finish(engine, row, owner, attempts=attempts, last_error=str(error)[:2000],
            next_attempt_at=now + timedelta(seconds=delay))
    metrics.OUTBOX_SENT.labels(kind=row.kind, result="retry").inc()
    log.info("outbox.retry", outbox_id=row.id, kind=row.kind, attempts=attempts, delay_s=round(delay, 2),
             error=str(error)[:300])
    return "retry"


async def run_once(engine: Engine | None = None, limit: int = 50, lease_s: int = 60,
                   max_attempts: int = 12, owner: str = WORKER_ID,
                   kinds: list[str] | None = None) -> int:
    """Claim and send one batch. Returns how many rows were handled."""
    import asyncio

    engine = engine or get_engine()
    rows = await asyncio.to_thread(claim, engine, limit, lease_s, owner, kinds)
    for row in rows:
        sender = SENDERS.get(row.kind)
        try:
            if sender is None:
                raise PermanentError(f"no sender registered for outbox kind {row.kind!r}")
            detail = await sender(row)
        except (RetryableError, PermanentError) as exc:
            await asyncio.to_thread(mark_failed, engine, row, exc, max_attempts, owner)
        except Exception as exc:  # an unexpected bug in a sender is retried, then dead-lettered
            log.exception("outbox.sender_crashed", outbox_id=row.id, kind=row.kind)
            await asyncio.to_thread(mark_failed, engine, row, RetryableError(repr(exc)), max_attempts, owner)
        else:
            await asyncio.to_thread(mark_done, engine, row, owner, detail)
    return len(rows)


def replay(session: Session, outbox_id: int) -> Outbox:
    """An admin sends a dead letter again: same message id, fresh attempts."""
    row = session.get(Outbox, outbox_id)
    if row is None:
        raise LookupError(f"outbox row {outbox_id} not found")
    if row.state != "dead":
        raise ValueError(f"outbox row {outbox_id} is {row.state}, only dead letters can be replayed")
    row.state, row.attempts, row.last_error = "pending", 0, None
    row.next_attempt_at = datetime.now(timezone.utc)
    row.lease_owner = row.lease_until = None
    session.add(row)
    return row
