"""Intake: store each inbound message raw, idempotently, and hand back its ticket code fast.

The request path only inserts into raw_messages (one group-committed transaction for many
concurrent requests) and reserves the public ticket code. Normalizing, routing and queuing
happen off that path in hub/processing.py. A message whose storage fails is never acknowledged.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hub import metrics
from hub.codes import new_code
from hub.db import get_engine, writer
from hub.guard import InvalidMessage, check_message  # noqa: F401  (InvalidMessage: for the intake paths)
from hub.logging import get_logger
from hub.models import RawMessage
from hub.unavailable import is_unavailable, log_throttled
from normalizer.types import Attachment, InboundMessage

log = get_logger(__name__)
RAW = RawMessage.__table__
_last_write = 0.0  # time.monotonic() of the last group commit in this process


def seconds_since_intake() -> float:
    """How long the request path of this process has been quiet (the processor yields to it)."""
    return time.monotonic() - _last_write


@dataclass(frozen=True)
class Accepted:
    ticket_code: str
    duplicate: bool
    raw_id: int
    idempotency_key: str


def message_to_json(msg: InboundMessage) -> dict[str, Any]:
    """The stored form of a message (hand-written: dataclasses.asdict is slow on the hot path)."""
    return {
        "channel": msg.channel, "text": msg.text, "sender": msg.sender, "provider_id": msg.provider_id,
        "received_at": msg.received_at.isoformat() if msg.received_at else None,
        "sender_name": msg.sender_name,
        "attachments": [dataclasses.asdict(a) for a in msg.attachments],
        "latitude": msg.latitude, "longitude": msg.longitude,
        "fields": msg.fields, "raw": msg.raw,
    }


def message_from_json(data: dict[str, Any]) -> InboundMessage:
    data = dict(data)
    if data.get("received_at"):
        data["received_at"] = datetime.fromisoformat(data["received_at"])
    data["attachments"] = tuple(Attachment(**a) for a in data.get("attachments") or ())
    return InboundMessage(**data)


_SQLITE_INSERT = sqlite_insert(RAW).on_conflict_do_nothing()
# PostgreSQL: one INSERT ... SELECT FROM unnest(arrays) ... RETURNING. The new rows' codes and
# ids come back with the insert, so the common batch (no duplicates) needs no lookup; its text
# never changes with the batch size, so it is prepared once. Lookups run unprepared (below).
_PG_COLUMNS = ("idempotency_key", "ticket_code", "channel", "provider_id", "sender", "text")
_PG_INSERT = (
    "INSERT INTO raw_messages (idempotency_key, ticket_code, channel, provider_id, sender, text,"
    " message, received_at, stored_at, state)"
    " SELECT k, c, ch, p, s, t, m::json, r, %(stored_at)s, %(state)s FROM unnest(%(idempotency_key)s::text[],"
    " %(ticket_code)s::text[], %(channel)s::text[], %(provider_id)s::text[], %(sender)s::text[],"
    " %(text)s::text[], %(message)s::text[], %(received_at)s::timestamptz[]) AS u(k, c, ch, p, s, t, m, r)"
    " ON CONFLICT DO NOTHING RETURNING idempotency_key, ticket_code, id")
_SQLITE_LOOKUP = select(RAW.c.idempotency_key, RAW.c.ticket_code, RAW.c.id, RAW.c.received_at).where(
    RAW.c.idempotency_key.in_(bindparam("keys", expanding=True)))
_PG_LOOKUP = ("SELECT idempotency_key, ticket_code, id, received_at FROM raw_messages"
              " WHERE idempotency_key = ANY(%s)")


def _pg_cursor(conn):
    """A psycopg cursor on the connection (and in the transaction) SQLAlchemy holds."""
    return conn.connection.driver_connection.cursor(binary=True)


def _lookup(conn, keys: list[str]) -> dict[str, tuple]:
    """key -> (key, code, id, received_at) for the stored ones among `keys`.

    On PostgreSQL never as a prepared statement: a plan cached while raw_messages was nearly
    empty is a sequential scan, and stays one while the table grows (a fresh hub's first flood
    read the whole table once per batch and halved intake)."""
    found: dict[str, tuple] = {}
    if conn.dialect.name == "postgresql":
        with _pg_cursor(conn) as cur:
            for start in range(0, len(keys), 500):
                cur.execute(_PG_LOOKUP, (keys[start:start + 500],), prepare=False)
                found.update((row[0], row) for row in cur.fetchall())
        return found
    for start in range(0, len(keys), 500):
        found.update((row[0], tuple(row)) for row in conn.execute(_SQLITE_LOOKUP, {"keys": keys[start:start + 500]}))
    return found


def _insert(conn, rows: list[dict[str, Any]], now: datetime, state: str) -> dict[str, tuple[str, int]]:
    """Insert rows, skipping stored keys; return key -> (code, id) for every key as stored."""
    found: dict[str, tuple[str, int]] = {}
    if conn.dialect.name == "postgresql":
        arrays: dict[str, Any] = {c: [r[c] for r in rows] for c in _PG_COLUMNS}
        arrays.update(message=[json.dumps(r["message"]) for r in rows], received_at=[r["received_at"] for r in rows],
                      stored_at=now, state=state)
        with _pg_cursor(conn) as cur:
            cur.execute(_PG_INSERT, arrays)
            found.update((k, (c, i)) for k, c, i in cur.fetchall())
    else:
        conn.execute(_SQLITE_INSERT, rows)  # executemany of one cached statement: cheapest here
    missing = sorted({r["idempotency_key"] for r in rows} - found.keys())
    if missing:  # already stored before (a retry from the channel), or twice in this batch
        found.update((k, (row[1], row[2])) for k, row in _lookup(conn, missing).items())
    return found


def accept_many(messages: Sequence[InboundMessage], engine: Engine | None = None,
                dedup_window_s: int = 600, state: str = "pending", checked: bool = False) -> list[Accepted]:
    """Store many messages in one transaction; duplicates return the code they already have.

    Every message passes hub.guard.check_message first (InvalidMessage for a bad one) unless
    the caller already did (`checked`, the group-commit writer).

    `state="held"` stores without processing (a rate-limited sender, hub/lines/ratelimit.py):
    the message is kept, and becomes a ticket only when released back to "pending"."""
    engine = engine or get_engine()
    now = datetime.now(timezone.utc)
    if not checked:  # the door (hub/guard.py): NUL removed, impossible times refused
        messages = [check_message(m, now) for m in messages]
    keys = [m.idempotency_key(dedup_window_s) for m in messages]
    pending = list(range(len(messages)))
    results: list[Accepted | None] = [None] * len(messages)
    # A message with no provider id near the start of its window may repeat one stored in the
    # window before: look that key up first, and answer with its code if it is close enough.
    prev = {i: messages[i].idempotency_key(dedup_window_s, previous=True) for i in pending}
    prev = {i: k for i, k in prev.items() if k}
    if prev:
        with engine.connect() as conn:
            found_prev = _lookup(conn, sorted(set(prev.values())))
        for i, k in prev.items():
            row = found_prev.get(k)
            at = messages[i].received_at or now
            if row is not None and abs((_aware(row[3]) - at).total_seconds()) <= dedup_window_s:
                results[i] = Accepted(row[1], True, row[2], k)
        pending = [i for i in pending if results[i] is None]
    for _attempt in range(5):  # a retry only happens on a (very rare) ticket-code collision
        if not pending:
            break
        codes = {i: new_code() for i in pending}
        rows = []
        for i in pending:
            m = messages[i]
            rows.append({
                "idempotency_key": keys[i], "ticket_code": codes[i], "channel": m.channel,
                "provider_id": m.provider_id, "sender": m.sender, "text": m.text,
                "message": message_to_json(m), "received_at": m.received_at or now,
                "stored_at": now, "state": state,
            })
        with writer(engine).begin() as conn:
            found = _insert(conn, rows, now, state)
        retry = []
        first_claim: dict[str, int] = {}
        for i in pending:
            hit = found.get(keys[i])
            if hit is None:
                retry.append(i)
                continue
            code, raw_id = hit
            # The first message of a batch that carried the stored code is the original one.
            mine = code == codes[i] and keys[i] not in first_claim
            first_claim.setdefault(keys[i], i)
            results[i] = Accepted(code, not mine, raw_id, keys[i])
        pending = retry
        if not pending:
            break
    if pending:
        raise RuntimeError("could not reserve a unique ticket code")
    for r, m in zip(results, messages):
        metrics.INTAKE.labels(channel=m.channel, duplicate=str(r.duplicate).lower()).inc()
    return [r for r in results if r is not None]


def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def accept(msg: InboundMessage, engine: Engine | None = None, dedup_window_s: int = 600,
           state: str = "pending") -> Accepted:
    return accept_many([msg], engine, dedup_window_s, state)[0]


GATHER_S = 0.002  # longest wait for the rest of a wave of requests (IntakeWriter._gather)


class IntakeWriter:
    """Group commit for the request path: concurrent requests share one INSERT transaction.

    Each request awaits its own future, resolved only after the transaction committed, so a
    2xx always means the message is on disk. Requests that arrive while a transaction is being
    written wait together for the next one. One writer thread: SQLite has one writer lock, and
    on PostgreSQL two transactions in flight measured no faster (bench/intake.py).
    """

    def __init__(self, engine: Engine | None = None, max_batch: int = 256, dedup_window_s: int = 600):
        self.engine = engine
        self.max_batch = max_batch
        self.dedup_window_s = dedup_window_s
        self._queue: asyncio.Queue[tuple[InboundMessage, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None
        self._last_batch = 1  # size of the previous transaction: how many to wait for (_gather)
        self._want = 0
        self._enough: asyncio.Event | None = None

    async def start(self) -> None:
        if self._task is None:
            self._queue = asyncio.Queue()
            self._enough = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="intake-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def submit(self, msg: InboundMessage) -> Accepted:
        """Store `msg` (group-committed) and return its code. InvalidMessage (-> 422) for a
        message refused at the door; any other exception means not stored (-> 503)."""
        msg = check_message(msg)
        if self._task is None:
            await self.start()
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((msg, fut))
        if self._want and self._queue.qsize() >= self._want:
            self._enough.set()
        return await fut

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            await self._gather()
            batch = [first]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._last_batch = len(batch)
            try:
                results = await asyncio.to_thread(self._write, [m for m, _ in batch])
            except Exception as exc:
                if len(batch) > 1 and not is_unavailable(exc):
                    # One bad row must not fail its neighbours: store each on its own, and
                    # fail only the one(s) that fail alone.
                    log.warning("intake.batch_retry_one_by_one", size=len(batch), error=str(exc)[:200])
                    await self._write_each(batch)
                    continue
                # storage failed: every waiter gets the error -> 503
                log_throttled("intake.store_failed", exc, batch=len(batch))
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), res in zip(batch, results):
                if not fut.done():
                    fut.set_result(res)

    async def _write_each(self, batch: list[tuple[InboundMessage, asyncio.Future]]) -> None:
        for i, (msg, fut) in enumerate(batch):
            try:
                [res] = await asyncio.to_thread(self._write, [msg])
            except Exception as exc:
                if is_unavailable(exc):  # the store went away: the rest fail the same way
                    log_throttled("intake.store_failed", exc, batch=len(batch) - i)
                    for _, f in batch[i:]:
                        if not f.done():
                            f.set_exception(exc)
                    return
                log.error("intake.message_refused_by_store", channel=msg.channel, error=str(exc)[:300])
                if not fut.done():
                    fut.set_exception(exc)
                continue
            if not fut.done():
                fut.set_result(res)

    async def _gather(self) -> None:
        """Let requests already on their way join the transaction about to start.

        Under load requests come in waves: a commit answers a whole batch at once, and those
        clients send their next messages within a few milliseconds. Taking only what was
        queued at that instant made every full batch be followed by one of 1-3 messages that
        had just missed it (half the transactions for 3% of the messages; bench/intake.py on
        SQLite: 4,500 -> 6,300 msgs/s with this wait). So wait, at most GATHER_S, until as
        many are queued as the previous batch held. A lone request (previous batch of one)
        never waits, and the wait sleeps in the event loop rather than spinning, so a
        database server on the same cores keeps its CPU."""
        want = min(self._last_batch, self.max_batch) - 1  # the first message is already taken
        if want <= 0 or self._queue.qsize() >= want:
            return
        self._want = want
        self._enough.clear()
        try:
            await asyncio.wait_for(self._enough.wait(), GATHER_S)
        except asyncio.TimeoutError:
            pass
        finally:
            self._want = 0

    def _write(self, msgs: list[InboundMessage]) -> list[Accepted]:
        global _last_write
        _last_write = time.monotonic()
        return accept_many(msgs, self.engine, self.dedup_window_s, checked=True)


def pending_count(engine: Engine | None = None) -> int:
    from sqlalchemy import func

    engine = engine or get_engine()
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(RAW).where(RAW.c.state == "pending")).scalar_one()


def iter_keys(messages: Iterable[InboundMessage], window: int = 600) -> list[str]:
    return [m.idempotency_key(window) for m in messages]
