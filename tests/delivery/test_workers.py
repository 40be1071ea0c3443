"""Several worker processes on one database: a crashed worker's lease expires and another takes
the row; two worker processes on PostgreSQL deliver 2,000 tickets to a flaky receiver with no
duplicate and no gap, counted by webhook-id at the receiver."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select
from sqlmodel import Session

from hub import outbox
from hub.db import get_engine, session_scope
from hub.models import Outbox
from tests.conftest import IN_CI, PG_URL, _truncate_pg, _use_url
from tests.delivery.helpers import SECRET, SECRET_ENV, Act, Receiver, bulk_tickets, use_webhook


def worker(url: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "SIMPUL_DATABASE_URL": url, SECRET_ENV: SECRET, "SIMPUL_LOG_LEVEL": "WARNING",
           "SIMPUL_LOG_JSON": "false"}
    return subprocess.Popen([sys.executable, "-m", "hub.delivery_worker", "--kinds", "deliver", "--idle-sleep", "0.2",
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p: subprocess.Popen, timeout: float) -> str:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"worker did not finish in {timeout}s: {err[-2000:]}")
    assert p.returncode == 0, err[-2000:]
    return out


@pytest.fixture
def pg_url(request, monkeypatch) -> str:
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but SIMPUL_TEST_POSTGRES_URL is not set")
        pytest.skip("two worker processes need PostgreSQL: set SIMPUL_TEST_POSTGRES_URL")
    url = request.getfixturevalue("_pg_database")
    _truncate_pg(url)
    _use_url(url, monkeypatch)
    yield url
    from hub.db import reset_engine

    reset_engine()


def test_crashed_worker_lease_expires_and_another_delivers(db_url, seeded):
    # attempt 1 hangs at the OPD server; the worker holding the lease is killed mid-send
    plan = lambda mid, n, doc: Act(status=503, sleep_s=6) if n == 1 else Act()  # noqa: E731
    with Receiver(plan) as rx:
        with session_scope() as s:
            use_webhook(s, "PUPR", rx.url, timeout_s=20)
        [code] = bulk_tickets(get_engine(), 1)
        first = worker(db_url, "--lease", "2", "--max-seconds", "30")
        deadline = time.monotonic() + 60
        while not rx.attempts and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(rx.attempts.values()) == 1
        first.send_signal(signal.SIGKILL)
        first.wait(5)
        with Session(get_engine()) as s:
            row = s.scalars(select(Outbox)).one()
        assert row.state == "pending" and row.lease_owner is not None  # the dead worker's lease
        second = worker(db_url, "--lease", "30", "--until-empty")
        finish(second, 60)
        with Session(get_engine()) as s:
            row = s.scalars(select(Outbox)).one()
        assert row.state == "done"
        assert rx.attempts[row.message_id] == 2 and rx.processed[row.message_id] == 1
        assert rx.bodies[row.message_id]["data"]["code"] == code


N = 2000
# The sender's timeout, and how late the "slow" OPD answers. Generous, so that a machine busy
# with other work never makes a clean delivery look like a timeout (seen at 1 s under load).
TIMEOUT_S, SLOW_S = 3.0, 3.5


def plan_2000(mid: str, attempt: int, doc: dict) -> Act:
    i = int(doc["data"]["code"][1:])
    if i % 400 == 7:
        return Act(status=410)  # the OPD rejects these for good (until replayed below)
    if attempt > 1:
        return Act()
    if i % 50 == 1:
        return Act(status=500)
    if i % 70 == 2:
        return Act(status=429, retry_after="1")
    if i % 90 == 3:
        return Act(sleep_s=SLOW_S)  # answers after the sender's timeout; processed anyway
    if i % 110 == 4:
        return Act(drop=True)
    return Act()


def test_two_worker_processes_deliver_2000_tickets_exactly_once(pg_url, seeded):
    gone: set[str] = set()
    with Receiver(lambda mid, n, doc: Act() if doc["data"]["code"] in gone else plan_2000(mid, n, doc)) as rx:
        with session_scope() as s:
            use_webhook(s, "PUPR", rx.url, timeout_s=TIMEOUT_S)
        codes = bulk_tickets(get_engine(), N)
        procs = [worker(pg_url, "--until-empty", "--batch", "50", "--concurrency", "8", "--lease", "30",
                        "--max-attempts", "5") for _ in range(2)]
        outs = [finish(p, 300) for p in procs]
        handled = [int(o.strip().rsplit("handled=", 1)[1]) for o in outs]
        assert all(h > 0 for h in handled), handled  # both processes did real work
        with Session(get_engine()) as s:
            rows = {r.payload["code"]: r for r in s.scalars(select(Outbox).where(Outbox.kind == "deliver"))}
        assert len(rows) == N
        rejected = {c for c in codes if int(c[1:]) % 400 == 7}
        assert {c for c, r in rows.items() if r.state == "dead"} == rejected
        assert all(r.state == "done" for c, r in rows.items() if c not in rejected)

        seen = {doc["data"]["code"]: mid for mid, doc in rx.bodies.items()}
        assert set(seen) == set(codes) - rejected  # no gap
        assert len(rx.bodies) == len(seen)  # one webhook-id per ticket
        assert all(seen[c] == rows[c].message_id for c in seen)
        assert all(n == 1 for n in rx.processed.values())
        assert rx.bad_signatures == 0
        answered = rx.answered_2xx()
        clean = [c for c in seen if plan_2000("", 1, {"data": {"code": c}}) == Act()]
        assert len(clean) > 1500
        # no duplicate: a ticket that met no trouble was POSTed exactly once across both processes
        assert all(rx.attempts[seen[c]] == 1 and answered[seen[c]] == 1 for c in clean)
        assert all(rx.attempts[seen[c]] == 2 for c in seen if c not in clean)

        # the OPD fixes its side; an admin replays the dead letters; one worker sends them
        gone.update(rejected)
        with session_scope() as s:
            for c in rejected:
                outbox.replay(s, rows[c].id)
        finish(worker(pg_url, "--until-empty"), 60)
        for c in rejected:
            mid = rows[c].message_id
            assert rx.processed[mid] == 1 and rx.bodies[mid]["data"]["code"] == c
        assert len(rx.processed) == N
