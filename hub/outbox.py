"""The outbox: every message that leaves the hub is a row written in its cause's transaction.

Workers claim due rows with a lease (FOR UPDATE SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on
SQLite), send them through the sender wired for their kind (hub.wiring), and mark them done, retry
later with backoff and jitter, or park them as dead letters. Never send outside this module.
"""
from __future__ import annotations

import asyncio
import contextvars
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Mapping

from sqlalchemy import Connection, Engine, and_, bindparam, func, or_, select, update
from sqlmodel import Session

from adapters.base import PermanentError, RetryableError, backoff_delay
from hub import metrics
from hub.db import get_engine, writer
from hub.parts import OutboxSender
from hub.logging import get_logger
from hub.models import Outbox

log = get_logger(__name__)
OUT = Outbox.__table__
Sender = Callable[[Outbox], Awaitable[dict[str, Any] | None]]
# Runs inside the transaction that marks a row done (e.g. a "delivered" ticket event), so the
# record of a send and the send's completion commit together.
OnDone = Callable[[Connection, Outbox, dict[str, Any] | None], None]
# Runs once per claimed batch (in a worker thread) before its rows of that kind are sent, to
# load what the senders need in a few queries instead of a few per row. What it returns is
# available to the senders through `prepared()`.
Prepare = Callable[[list[Outbox]], Any]
Senders = Mapping[str, OutboxSender]  # kind -> who sends it (hub.wiring builds this)
_PREPARED: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("outbox_prepared", default={})
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"[:64]
STATES = ("pending", "done", "dead")


class _Installed:
    """The senders of this process, set once by hub.wiring.install (create_app, the workers);
    `run_once(senders=...)` overrides them for one call."""
    senders: Senders = {}


def use_senders(senders: Senders) -> None:
    _Installed.senders = dict(senders)


def _on_done(senders: Senders, kind: str) -> OnDone | None:
    s = senders.get(kind)
    return s.on_done if s is not None else None


def prepared(kind: str) -> Any:
    """What the kind's prepare hook returned for the batch being sent (None outside one)."""
    return _PREPARED.get().get(kind)


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
    """The outbox's back-off (adapters.base.backoff_delay): attempt 1 -> 1-2 s, 2 -> 2-4 s,
    3 -> 4-8 s ... up to an hour, with jitter."""
    return backoff_delay(attempt, base, cap)


def claim(engine: Engine, limit: int, lease_s: int, owner: str = WORKER_ID,
          kinds: list[str] | None = None) -> list[Outbox]:
    """Lease up to `limit` due rows to this worker. Safe with many processes on one database.

    A row is due when it is pending, its next attempt time has come, and nobody holds an
    unexpired lease on it, so a row leased by a worker that crashed is taken over once the
    lease runs out.
    """
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


def _finish_in(conn: Connection, row: Outbox, owner: str, on_done: OnDone | None = None,
               detail: dict[str, Any] | None = None, **values: Any) -> bool:
    res = conn.execute(update(OUT).where(OUT.c.id == row.id, OUT.c.lease_owner == owner,
                                         OUT.c.state == "pending")
                       .values(lease_owner=None, lease_until=None, **values))
    if res.rowcount != 1:
        log.warning("outbox.lease_lost", outbox_id=row.id, kind=row.kind, owner=owner)
        return False
    if on_done is not None:
        on_done(conn, row, detail)
    return True


def _finish(engine: Engine, row: Outbox, owner: str, on_done: OnDone | None = None,
            detail: dict[str, Any] | None = None, **values: Any) -> bool:
    """Write the outcome only if we still hold the lease (another worker may have taken over)."""
    with writer(engine).begin() as conn:
        return _finish_in(conn, row, owner, on_done, detail, **values)


def _done_values(row: Outbox) -> dict[str, Any]:
    return dict(state="done", done_at=datetime.now(timezone.utc), attempts=row.attempts + 1, last_error=None)


def _failed_values(row: Outbox, error: Exception, max_attempts: int) -> tuple[str, dict[str, Any]]:
    """Retry later (backoff with jitter, never before the peer's Retry-After) or park as dead."""
    attempts = row.attempts + 1
    reason = f"{type(error).__name__}: {error}"[:2000]
    if isinstance(error, PermanentError) or attempts >= max_attempts:
        return "dead", dict(attempts=attempts, last_error=reason, state="dead")
    delay = backoff_seconds(attempts)
    if isinstance(error, RetryableError) and error.retry_after is not None:
        delay = max(delay, float(error.retry_after))
    return "retry", dict(attempts=attempts, last_error=reason,
                         next_attempt_at=datetime.now(timezone.utc) + timedelta(seconds=delay))


def _log_outcome(row: Outbox, result: str, values: dict[str, Any]) -> None:
    metrics.OUTBOX_SENT.labels(kind=row.kind, result=result).inc()
    if result == "dead":
        log.warning("outbox.dead_letter", outbox_id=row.id, kind=row.kind, target=row.target,
                    attempts=values["attempts"], error=values["last_error"][:300])
    elif result == "retry":
        delay = (values["next_attempt_at"] - datetime.now(timezone.utc)).total_seconds()
        log.info("outbox.retry", outbox_id=row.id, kind=row.kind, attempts=values["attempts"],
                 delay_s=round(delay, 2), error=values["last_error"][:300])


def mark_done(engine: Engine, row: Outbox, owner: str = WORKER_ID, detail: dict | None = None,
              senders: Senders | None = None) -> bool:
    ok = _finish(engine, row, owner, _on_done(_Installed.senders if senders is None else senders, row.kind),
                 detail, **_done_values(row))
    if ok:
        metrics.OUTBOX_SENT.labels(kind=row.kind, result="done").inc()
    return ok


def mark_failed(engine: Engine, row: Outbox, error: Exception, max_attempts: int,
                owner: str = WORKER_ID) -> str:
    """Retry later (backoff with jitter, never before the peer's Retry-After) or park as dead."""
    result, values = _failed_values(row, error, max_attempts)
    if _finish(engine, row, owner, **values):
        _log_outcome(row, result, values)
    return result


Outcome = tuple[Outbox, dict[str, Any] | None, Exception | None]


# One statement for every outcome of a batch, built once and run as one executemany: building
# and compiling an UPDATE per row cost more CPU than the send itself (issue #15, "lift" 2).
_FINISH = (update(OUT)
           .where(OUT.c.id == bindparam("b_id"), OUT.c.lease_owner == bindparam("b_owner"),
                  OUT.c.state == "pending")
           .values(state=bindparam("b_state"), done_at=bindparam("b_done_at"),
                   attempts=bindparam("b_attempts"), last_error=bindparam("b_last_error"),
                   next_attempt_at=bindparam("b_next"), lease_owner=None, lease_until=None))


def finish_batch(engine: Engine, outcomes: list[Outcome], max_attempts: int, owner: str = WORKER_ID,
                 senders: Senders | None = None) -> None:
    """Record a whole batch's outcomes in one transaction (one commit, not one per row).

    Only rows this worker still holds are written: they are locked first (FOR UPDATE on
    PostgreSQL; SQLite's writer already holds the database), so a row whose lease ran out and
    was taken over keeps the other worker's outcome, exactly as a per-row conditional UPDATE.
    If the process dies before this commits, the rows stay leased to it and are sent again
    after the lease: at-least-once, with the same message id, which receivers dedup on.
    """
    if not outcomes:
        return
    senders = _Installed.senders if senders is None else senders
    logged: list[tuple[Outbox, str, dict[str, Any]]] = []
    with writer(engine).begin() as conn:
        held_q = select(OUT.c.id).where(OUT.c.id.in_([row.id for row, _d, _e in outcomes]),
                                        OUT.c.lease_owner == owner, OUT.c.state == "pending")
        if engine.dialect.name == "postgresql":
            held_q = held_q.with_for_update()
        held = {r[0] for r in conn.execute(held_q)}
        params, done = [], []
        for row, detail, error in outcomes:
            if row.id not in held:
                log.warning("outbox.lease_lost", outbox_id=row.id, kind=row.kind, owner=owner)
                continue
            if error is None:
                values, result = _done_values(row), "done"
                done.append((row, detail))
            else:
                result, values = _failed_values(row, error, max_attempts)
            params.append({"b_id": row.id, "b_owner": owner, "b_state": values.get("state", "pending"),
                           "b_done_at": values.get("done_at"), "b_attempts": values["attempts"],
                           "b_last_error": values["last_error"],
                           "b_next": values.get("next_attempt_at", row.next_attempt_at)})
            logged.append((row, result, values))
        if params:
            conn.execute(_FINISH, params)
        for row, detail in done:
            on_done = _on_done(senders, row.kind)
            if on_done is not None:
                on_done(conn, row, detail)
    for row, result, values in logged:
        _log_outcome(row, result, values)


async def _send_one(row: Outbox, senders: Senders) -> Outcome:
    sender = senders.get(row.kind)
    try:
        if sender is None:
            raise PermanentError(f"no sender registered for outbox kind {row.kind!r}")
        return row, await sender.send(row), None
    except (RetryableError, PermanentError) as exc:
        return row, None, exc
    except Exception as exc:  # an unexpected bug in a sender is retried, then dead-lettered
        log.exception("outbox.sender_crashed", outbox_id=row.id, kind=row.kind)
        return row, None, RetryableError(repr(exc))


MAX_SEND_S = 15.0  # longest one send may take (the OPD webhook's default timeout)


def claim_limit(limit: int, lease_s: float, concurrency: int, max_send_s: float = MAX_SEND_S) -> int:
    """How many rows a worker may claim: no more than it can send within one lease even if
    every send takes the full timeout (`concurrency` at a time). The lease is renewed while
    sending too; this bounds what another worker waits for if this one stops renewing."""
    rounds = max(1, int(lease_s // max(max_send_s, 0.001)))
    return max(1, min(limit, max(1, concurrency) * rounds))


def renew(engine: Engine, ids: list[int], lease_s: float, owner: str = WORKER_ID) -> set[int]:
    """Extend this worker's lease on `ids`; return the ids it still holds (a row whose lease
    ran out and was taken over is not renewed, and must not be sent by this worker)."""
    if not ids:
        return set()
    until = datetime.now(timezone.utc) + timedelta(seconds=lease_s)
    with writer(engine).begin() as conn:
        conn.execute(update(OUT).where(OUT.c.id.in_(ids), OUT.c.lease_owner == owner, OUT.c.state == "pending")
                     .values(lease_until=until))
        return {r[0] for r in conn.execute(select(OUT.c.id).where(
            OUT.c.id.in_(ids), OUT.c.lease_owner == owner, OUT.c.state == "pending"))}


async def run_once(engine: Engine | None = None, limit: int = 50, lease_s: int = 60,
                   max_attempts: int = 12, owner: str = WORKER_ID,
                   kinds: list[str] | None = None, concurrency: int = 8,
                   max_send_s: float = MAX_SEND_S, senders: Senders | None = None) -> int:
    """Claim and send one batch. Returns how many rows were handled.

    Rows of one ticket are sent one after the other in queue order; different tickets are
    sent concurrently (up to `concurrency` at a time), so one slow OPD does not hold up all.

    The lease covers what the worker holds (issue #15, item 5): it claims only what it can
    send within one lease (`claim_limit`), renews the lease of the rows not yet sent every
    third of it, and records finished attempts as it goes (every `lease_s / 6` s, at most 1 s
    apart, and at the end), so a slow OPD never makes another worker send the same row again.
    """
    engine = engine or get_engine()
    senders = _Installed.senders if senders is None else senders
    claimed_at = asyncio.get_running_loop().time()  # the lease runs from here
    rows = await asyncio.to_thread(claim, engine, claim_limit(limit, lease_s, concurrency, max_send_s),
                                   lease_s, owner, kinds)
    if not rows:
        return 0
    groups: dict[Any, list[Outbox]] = {}
    for row in rows:
        groups.setdefault(("t", row.ticket_id) if row.ticket_id is not None else ("r", row.id), []).append(row)
    gate = asyncio.Semaphore(max(1, concurrency))
    outcomes: list[Outcome] = []
    unsent = {r.id for r in rows}
    lost: set[int] = set()
    skipped = 0

    async def run_group(group: list[Outbox]) -> None:
        for row in group:
            async with gate:
                if row.id in lost:  # taken over by another worker: it sends it, not us
                    nonlocal skipped
                    unsent.discard(row.id)
                    skipped += 1
                    continue
                outcome = await _send_one(row, senders)
                unsent.discard(row.id)
                outcomes.append(outcome)

    async def flush() -> None:
        if outcomes:
            batch = outcomes[:]
            del outcomes[:len(batch)]
            await asyncio.to_thread(finish_batch, engine, batch, max_attempts, owner, senders)

    async def keep_lease(done: asyncio.Event) -> None:
        tick = min(1.0, lease_s / 6)
        last_renew = claimed_at
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), tick)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await flush()
                if asyncio.get_running_loop().time() - last_renew >= lease_s / 3 and unsent:
                    ids = sorted(unsent)
                    held = await asyncio.to_thread(renew, engine, ids, lease_s, owner)
                    lost.update(set(ids) - held)
                    last_renew = asyncio.get_running_loop().time()
            except Exception as exc:  # the store is away: the next tick tries again
                log.warning("outbox.lease_renew_failed", error=repr(exc)[:200])

    done = asyncio.Event()
    keeper = asyncio.create_task(keep_lease(done))  # from the claim on: preparing takes time too
    token = None
    try:
        ready: dict[str, Any] = {}
        for kind in {r.kind for r in rows}:
            prepare = senders[kind].prepare if kind in senders else None
            if prepare is None:
                continue
            try:
                ready[kind] = await asyncio.to_thread(prepare, [r for r in rows if r.kind == kind])
            except Exception:  # the senders load for themselves then
                log.exception("outbox.prepare_failed", kind=kind)
        token = _PREPARED.set(ready)
        await asyncio.gather(*(run_group(g) for g in groups.values()))
    finally:
        if token is not None:
            _PREPARED.reset(token)
        done.set()
        await keeper
    await flush()
    return len(rows) - skipped  # rows taken over by another worker were handled there


def replay(session: Session, outbox_id: int) -> Outbox:
    """An admin sends a dead letter again: same message id (the receiver still dedups), fresh attempts."""
    row = session.get(Outbox, outbox_id)
    if row is None:
        raise LookupError(f"outbox row {outbox_id} not found")
    if row.state != "dead":
        raise ValueError(f"outbox row {outbox_id} is {row.state}, only dead letters can be replayed")
    row.state, row.attempts = "pending", 0
    row.next_attempt_at = datetime.now(timezone.utc)
    row.lease_owner = row.lease_until = None
    # last_error stays until the next outcome, so the admin page still says why it had died
    session.add(row)
    log.info("outbox.replay", outbox_id=row.id, kind=row.kind, target=row.target)
    return row


def replay_many(session: Session, kind: str | None = None, target: str | None = None,
                limit: int = 1000) -> list[int]:
    """Replay the dead letters of a kind and/or target (an OPD server that was broken is fixed)."""
    q = select(Outbox.id).where(Outbox.state == "dead")
    if kind:
        q = q.where(Outbox.kind == kind)
    if target:
        q = q.where(Outbox.target == target)
    ids = list(session.scalars(q.order_by(Outbox.id).limit(limit)))
    for oid in ids:
        replay(session, oid)
    return ids


def purge_done(engine: Engine, older_than: timedelta, limit: int = 5000) -> int:
    """Delete sent rows older than the retention (their "delivered" ticket events stay)."""
    cutoff = datetime.now(timezone.utc) - older_than
    with writer(engine).begin() as conn:
        ids = select(OUT.c.id).where(OUT.c.state == "done", OUT.c.done_at < cutoff).limit(limit)
        return conn.execute(OUT.delete().where(OUT.c.id.in_(ids.scalar_subquery()))).rowcount


@dataclass(frozen=True)
class Page:
    rows: list[Outbox]
    next_cursor: int | None


def list_rows(session: Session, state: str | None = None, kind: str | None = None,
              target: str | None = None, ticket_id: int | None = None, limit: int = 50,
              before_id: int | None = None) -> Page:
    """Newest first; `before_id` continues from the previous page's next_cursor."""
    q = select(Outbox)
    if state:
        q = q.where(Outbox.state == state)
    if kind:
        q = q.where(Outbox.kind == kind)
    if target:
        q = q.where(Outbox.target == target)
    if ticket_id is not None:
        q = q.where(Outbox.ticket_id == ticket_id)
    if before_id is not None:
        q = q.where(Outbox.id < before_id)
    rows = list(session.scalars(q.order_by(Outbox.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, rows[-1].id if more and rows else None)


def counts(session: Session) -> dict[str, dict[str, int]]:
    """{state: {kind: n}} for the admin page and the metrics gauge."""
    out: dict[str, dict[str, int]] = {s: {} for s in STATES}
    for state, kind, n in session.execute(select(Outbox.state, Outbox.kind, func.count())
                                          .group_by(Outbox.state, Outbox.kind)):
        out.setdefault(state, {})[kind] = n
    for state in ("pending", "dead"):
        metrics.OUTBOX_PENDING.labels(state=state).set(sum(out.get(state, {}).values()))
    return out


def row_dict(row: Outbox) -> dict[str, Any]:
    """An outbox row for the admin API. The payload is shown as is: it holds ticket codes and
    reply texts, never secrets (those are resolved from the environment at send time)."""
    iso = lambda d: d.isoformat() if d else None  # noqa: E731
    return {"id": row.id, "message_id": row.message_id, "kind": row.kind, "target": row.target,
            "ticket_id": row.ticket_id, "state": row.state, "attempts": row.attempts,
            "next_attempt_at": iso(row.next_attempt_at), "lease_owner": row.lease_owner,
            "lease_until": iso(row.lease_until), "last_error": row.last_error,
            "created_at": iso(row.created_at), "done_at": iso(row.done_at), "payload": row.payload}
