"""Issue #15, item 5: a lease covers what a worker holds. A slow OPD (200 after a delay near its
timeout) and two workers on one store: every ticket is delivered once, no extra POST, and no
row is left pending after it was delivered. On SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlmodel import Session

from hub import outbox
from hub.db import get_engine, session_scope
from hub.models import Outbox
from tests.delivery.helpers import SECRET, SECRET_ENV, Act, Receiver, bulk_tickets, use_webhook


def test_claim_limit_fits_the_lease():
    assert outbox.claim_limit(50, 60, 8, 15) == 32  # 4 rounds of 8 sends of at most 15 s
    assert outbox.claim_limit(50, 60, 8, 1) == 50
    assert outbox.claim_limit(50, 5, 8, 15) == 8  # never less than one round
    assert outbox.claim_limit(3, 60, 8, 1) == 3


async def test_slow_opd_two_workers_no_extra_delivery(db_url, seeded, monkeypatch):
    """12 rows, lease 2 s, OPD answers 200 after 0.45 s (timeout 0.6 s), 2 sends at a time:
    one worker's claim takes ~2.7 s to send, longer than the lease. Before the lease was
    renewed, the other worker sent the same rows again."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    n = 12
    with Receiver(lambda mid, k, doc: Act(sleep_s=0.45)) as rx:
        with session_scope() as s:
            use_webhook(s, "PUPR", rx.url, timeout_s=0.6)
        bulk_tickets(get_engine(), n)

        async def worker(name: str) -> int:
            handled = 0
            for _ in range(40):
                got = await outbox.run_once(limit=n, lease_s=2, owner=name, kinds=["deliver"], concurrency=2,
                                            max_send_s=0.1)  # claims every row: the renewal must cover them
                handled += got
                if got == 0:
                    with Session(get_engine()) as s:
                        if not s.scalars(select(Outbox).where(Outbox.state == "pending")).first():
                            return handled
                    await asyncio.sleep(0.3)
            return handled

        handled = await asyncio.gather(worker("w1"), worker("w2"))
        posts = sum(rx.attempts.values())
    assert len(rx.attempts) == n
    assert posts == n, f"{posts - n} extra deliveries: {rx.attempts}"
    assert sum(handled) == n
    with Session(get_engine()) as s:
        rows = list(s.scalars(select(Outbox).where(Outbox.kind == "deliver")))
    assert {r.state for r in rows} == {"done"} and all(r.attempts == 1 for r in rows)


async def test_each_attempt_is_recorded_as_it_finishes(db_url, seeded, monkeypatch):
    """While a long batch is still sending, the rows already sent are marked done."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with Receiver(lambda mid, k, doc: Act(sleep_s=0.3)) as rx:
        with session_scope() as s:
            use_webhook(s, "PUPR", rx.url, timeout_s=2)
        bulk_tickets(get_engine(), 8)
        task = asyncio.create_task(outbox.run_once(limit=8, lease_s=6, owner="w1", kinds=["deliver"],
                                                   concurrency=1, max_send_s=0.1))
        await asyncio.sleep(1.8)
        with Session(get_engine()) as s:
            done_early = len(list(s.scalars(select(Outbox).where(Outbox.state == "done"))))
        await task
    assert 1 <= done_early < 8
