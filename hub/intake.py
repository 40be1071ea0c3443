"""Intake: store each inbound message raw, idempotently, and hand back its ticket code fast.

The request path only inserts into raw_messages (one group-committed transaction for many
concurrent requests) and reserves the public ticket code. Normalizing, routing and queuing
happen off that path in hub/processing.py. A message whose storage fails is never acknowledged.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hub import metrics
from hub.codes import new_code
from hub.db import get_engine, writer
from hub.logging import get_logger
from hub.models import RawMessage
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


_INSERT_STMTS = {"postgresql": pg_insert(RAW).on_conflict_do_nothing(),
                 "sqlite": sqlite_insert(RAW).on_conflict_do_nothing()}
_SELECT_KEYS = select(RAW.c.idempotency_key, RAW.c.ticket_code, RAW.c.id).where(
    RAW.c.idempotency_key.in_(bindparam("keys", expanding=True)))


def _insert_stmt(engine: Engine):
    return _INSERT_STMTS["postgresql" if engine.dialect.name == "postgresql" else "sqlite"]


def accept_many(messages: Sequence[InboundMessage], engine: Engine | None = None,
                dedup_window_s: int = 600, state: str = "pending") -> list[Accepted]:
    """Store many messages in one transaction; duplicates return the code they already have.

    `state="held"` stores without processing (a rate-limited sender, hub/lines/ratelimit.py):
    the message is kept, and becomes a ticket only when released back to "pending"."""
    engine = engine or get_engine()
    now = datetime.now(timezone.utc)
    keys = [m.idempotency_key(dedup_window_s) for m in messages]
    pending = list(range(len(messages)))
    results: list[Accepted | None] = [None] * len(messages)
    # A message with no provider id near the start of its window may repeat one stored in the
    # window before: look that key up first, and answer with its code if it is close enough.
    prev = {i: messages[i].idempotency_key(dedup_window_s, previous=True) for i in pending}
    prev = {i: k for i, k in prev.items() if k}
    if prev:
        with engine.connect() as conn:
            found_prev = {row[0]: row for row in conn.execute(
                select(RAW.c.idempotency_key, RAW.c.ticket_code, RAW.c.id, RAW.c.received_at)
                .where(RAW.c.idempotency_key.in_(sorted(set(prev.values())))))}
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
            conn.execute(_insert_stmt(engine), rows)  # executemany: one cached statement
            wanted = sorted({keys[i] for i in pending})
            found = {}
            for chunk_start in range(0, len(wanted), 500):
                chunk = wanted[chunk_start:chunk_start + 500]
                for row in conn.execute(_SELECT_KEYS, {"keys": chunk}):
                    found[row[0]] = (row[1], row[2])
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


class IntakeWriter:
    """Group commit for the request path: concurrent requests share one INSERT transaction.

    Each request awaits its own future, resolved only after the transaction committed, so a
    2xx always means the message is on disk. Requests that arrive while a transaction is in
    flight wait together for the next one.

    `concurrency`: transactions in flight at once. SQLite has one writer lock and commits
    without waiting for the disk (WAL, synchronous=NORMAL), so one writer thread is fastest
    there. On PostgreSQL a transaction spends most of its time waiting: for round trips and
    for the WAL flush of its commit. A second batch is written meanwhile (bench/intake.py).
    Two batches holding the same idempotency key are safe: ON CONFLICT makes the later one
    wait for the first to commit, then it reads the stored code back.
    """

    def __init__(self, engine: Engine | None = None, max_batch: int = 256, dedup_window_s: int = 600,
                 concurrency: int | None = None):
        self.engine = engine
        self.max_batch = max_batch
        self.dedup_window_s = dedup_window_s
        self.concurrency = concurrency
        self._queue: asyncio.Queue[tuple[InboundMessage, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()

    async def start(self) -> None:
        if self._task is None:
            if self.concurrency is None:
                name = (self.engine or get_engine()).dialect.name
                self.concurrency = 1 if name == "sqlite" else 2
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._run(), name="intake-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._inflight:  # batches already being written finish and answer their requests
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def submit(self, msg: InboundMessage) -> Accepted:
        if self._task is None:
            await self.start()
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((msg, fut))
        return await fut

    async def _run(self) -> None:
        assert self._queue is not None and self.concurrency
        slots = asyncio.Semaphore(self.concurrency)
        while True:
            # Wait for a free slot first: while every slot is busy, requests pile up in the
            # queue and the next transaction takes them all at once.
            await slots.acquire()
            try:
                first = await self._queue.get()
            except BaseException:
                slots.release()
                raise
            batch = [first]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            task = asyncio.create_task(self._flush(batch, slots))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _flush(self, batch: list[tuple[InboundMessage, asyncio.Future]], slots: asyncio.Semaphore) -> None:
        try:
            results = await asyncio.to_thread(self._write, [m for m, _ in batch])
        except Exception as exc:  # storage failed: every waiter gets the error -> 503
            log.error("intake.store_failed", error=str(exc), batch=len(batch))
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        finally:
            slots.release()
        for (_, fut), res in zip(batch, results):
            if not fut.done():
                fut.set_result(res)

    def _write(self, msgs: list[InboundMessage]) -> list[Accepted]:
        global _last_write
        _last_write = time.monotonic()
        return accept_many(msgs, self.engine, self.dedup_window_s)


def pending_count(engine: Engine | None = None) -> int:
    from sqlalchemy import func

    engine = engine or get_engine()
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(RAW).where(RAW.c.state == "pending")).scalar_one()


def iter_keys(messages: Iterable[InboundMessage], window: int = 600) -> list[str]:
    return [m.idempotency_key(window) for m in messages]
