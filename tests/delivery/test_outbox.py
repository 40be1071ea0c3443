"""Outbox rules (DESIGN.md rules 3 and 5): leases, takeover after a crash, backoff with jitter
and Retry-After, dead letters, replay, and the admin API over them. SQLite and PostgreSQL."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlmodel import Session

from adapters.base import PermanentError, RetryableError
from hub import outbox
from hub.db import session_scope
from hub.parts import OutboxSender
from hub.models import Outbox


def _rows(n: int, kind: str = "test", target: str = "x") -> list[int]:
    with session_scope() as s:
        rows = [outbox.enqueue(s, kind, target, {"i": i}) for i in range(n)]
        s.flush()
        return [r.id for r in rows]


def _get(engine, oid: int) -> Outbox:
    with Session(engine) as s:
        return s.get(Outbox, oid)


def test_lease_blocks_others_until_it_expires_then_the_crashed_owner_cannot_finish(engine):
    [oid] = _rows(1)
    got = outbox.claim(engine, 10, lease_s=1, owner="worker-a")
    assert [r.id for r in got] == [oid]
    assert outbox.claim(engine, 10, lease_s=30, owner="worker-b") == []  # leased to a
    time.sleep(1.2)  # worker-a "crashed": its lease runs out
    taken = outbox.claim(engine, 10, lease_s=30, owner="worker-b")
    assert [r.id for r in taken] == [oid]
    assert outbox.mark_done(engine, got[0], owner="worker-a") is False  # too late: b owns it
    assert outbox.mark_done(engine, taken[0], owner="worker-b") is True
    row = _get(engine, oid)
    assert (row.state, row.attempts, row.lease_owner) == ("done", 1, None)


def test_concurrent_claimers_never_share_a_row(engine):
    ids = set(_rows(120))
    got: dict[str, list[int]] = {}

    def grab(owner: str) -> None:
        mine = []
        while True:
            rows = outbox.claim(engine, 7, lease_s=60, owner=owner)
            if not rows:
                break
            mine += [r.id for r in rows]
        got[owner] = mine

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [i for mine in got.values() for i in mine]
    assert len(claimed) == len(set(claimed)) == len(ids)
    assert set(claimed) == ids


def test_a_batch_records_only_what_its_worker_still_holds(engine):
    """finish_batch writes a batch's outcomes in one statement (issue #15, "lift" 2) and keeps
    the per-row lease check: a row taken over after the lease ran out keeps the new owner's
    outcome and gets no "delivered" record from the old one; the others are done, retried with
    back-off or dead, each with its attempt counted and its on_done record written once."""
    done_records: list[int] = []
    senders = {"test": OutboxSender(lambda row: None, lambda conn, row, detail: done_records.append(row.id))}
    ids = _rows(4)
    mine = outbox.claim(engine, 10, lease_s=1, owner="worker-a")
    assert [r.id for r in mine] == ids
    time.sleep(1.2)  # worker-a's lease runs out; worker-b takes over (only) the first row
    with session_scope() as s:
        s.get(Outbox, ids[0]).lease_until = None
        for oid in ids[1:]:
            s.get(Outbox, oid).lease_until = datetime.now(timezone.utc) + timedelta(seconds=60)
    [taken] = outbox.claim(engine, 10, lease_s=60, owner="worker-b")
    assert taken.id == ids[0]
    before = datetime.now(timezone.utc)
    outbox.finish_batch(engine, [(mine[0], {"ok": 1}, None), (mine[1], {"ok": 1}, None),
                                 (mine[2], None, RetryableError("HTTP 503")),
                                 (mine[3], None, PermanentError("HTTP 410"))],
                        max_attempts=12, owner="worker-a", senders=senders)
    rows = {oid: _get(engine, oid) for oid in ids}
    assert (rows[ids[0]].state, rows[ids[0]].lease_owner, rows[ids[0]].attempts) == ("pending", "worker-b", 0)
    assert (rows[ids[1]].state, rows[ids[1]].attempts, rows[ids[1]].lease_owner) == ("done", 1, None)
    assert rows[ids[1]].done_at is not None
    retry = rows[ids[2]]
    assert (retry.state, retry.attempts, retry.lease_owner, retry.done_at) == ("pending", 1, None, None)
    assert "HTTP 503" in retry.last_error
    wait = (retry.next_attempt_at.replace(tzinfo=retry.next_attempt_at.tzinfo or timezone.utc) - before)
    assert 0.9 <= wait.total_seconds() <= 2.5  # attempt 1: 1-2 s of back-off
    assert (rows[ids[3]].state, rows[ids[3]].attempts, rows[ids[3]].last_error) == ("dead", 1,
                                                                                     "PermanentError: HTTP 410")
    assert done_records == [ids[1]]
    assert outbox.mark_done(engine, taken, owner="worker-b") is True  # b still finishes its row


@pytest.mark.parametrize("error,max_attempts,state,min_delay,max_delay", [
    (RetryableError("HTTP 500"), 12, "pending", 1.0, 2.0),
    (RetryableError("HTTP 429", retry_after=120), 12, "pending", 120.0, 121.0),
    (RetryableError("HTTP 503", retry_after=0.5), 12, "pending", 1.0, 2.0),  # backoff wins over a shorter Retry-After
    (PermanentError("HTTP 410"), 12, "dead", None, None),
    (RetryableError("HTTP 500"), 1, "dead", None, None),  # attempts exhausted
])
def test_mark_failed(engine, error, max_attempts, state, min_delay, max_delay):
    [oid] = _rows(1)
    [row] = outbox.claim(engine, 1, 60)
    before = datetime.now(timezone.utc)
    assert outbox.mark_failed(engine, row, error, max_attempts) == ("dead" if state == "dead" else "retry")
    got = _get(engine, oid)
    assert got.state == state and got.attempts == 1 and got.lease_owner is None
    assert str(error) in got.last_error
    if min_delay is not None:
        delay = (got.next_attempt_at - before).total_seconds()
        assert min_delay - 0.05 <= delay <= max_delay + 0.5


@pytest.mark.parametrize("attempt,low,high", [(1, 1, 2), (2, 2, 4), (5, 16, 32), (12, 1800, 3600), (30, 1800, 3600)])
def test_backoff_has_jitter_within_bounds(attempt, low, high):
    values = {outbox.backoff_seconds(attempt) for _ in range(50)}
    assert all(low <= v <= high for v in values)
    assert len(values) > 1  # jitter: not all the same


async def test_run_once_maps_sender_outcomes(engine):
    calls: list[str] = []

    async def sender(row: Outbox):
        calls.append(row.payload["how"])
        how = row.payload["how"]
        if how == "retry":
            raise RetryableError("try later", retry_after=60)
        if how == "permanent":
            raise PermanentError("gone")
        if how == "bug":
            raise KeyError("oops")
        return {"ok": True}

    senders = {"test_kind": OutboxSender(sender)}
    with session_scope() as s:
        ids = {how: outbox.enqueue(s, "test_kind", "x", {"how": how}) for how in ("ok", "retry", "permanent", "bug")}
        ids["nosender"] = outbox.enqueue(s, "no_such_kind", "x", {})
        s.flush()
        ids = {k: r.id for k, r in ids.items()}
    assert await outbox.run_once(engine, limit=10, max_attempts=5, senders=senders) == 5
    states = {k: (_get(engine, i).state, _get(engine, i).attempts) for k, i in ids.items()}
    assert states == {"ok": ("done", 1), "retry": ("pending", 1), "permanent": ("dead", 1),
                      "bug": ("pending", 1), "nosender": ("dead", 1)}
    assert "KeyError" in _get(engine, ids["bug"]).last_error
    assert await outbox.run_once(engine, limit=10, senders=senders) == 0  # nothing due: retries wait for their time


def test_replay_keeps_the_message_id(engine):
    [oid] = _rows(1)
    [row] = outbox.claim(engine, 1, 60)
    outbox.mark_failed(engine, row, PermanentError("HTTP 410"), 12)
    with session_scope() as s:
        again = outbox.replay(s, oid)
        assert again.state == "pending"
    got = _get(engine, oid)
    assert (got.state, got.attempts, got.message_id) == ("pending", 0, row.message_id)
    with session_scope() as s, pytest.raises(ValueError):
        outbox.replay(s, oid)  # only dead letters
    with session_scope() as s, pytest.raises(LookupError):
        outbox.replay(s, 999_999)


def test_admin_outbox_api(client, admin_headers, make_key, engine):
    ids = _rows(3, kind="deliver", target="PUPR")
    rows = outbox.claim(engine, 3, 60)
    outbox.mark_failed(engine, rows[0], PermanentError("HTTP 410: gone"), 12)
    outbox.mark_done(engine, rows[1])
    opd = make_key("opd", "PUPR")
    assert client.get("/api/v1/admin/outbox?state=dead", headers=opd).status_code == 403
    assert client.get("/api/v1/admin/outbox?state=dead").status_code == 401
    r = client.get("/api/v1/admin/outbox?state=dead", headers=admin_headers)
    assert r.status_code == 200
    body = r.json()
    assert [i["id"] for i in body["items"]] == [ids[0]]
    assert body["items"][0]["last_error"].endswith("HTTP 410: gone")
    assert body["counts"]["dead"] == {"deliver": 1} and body["counts"]["done"] == {"deliver": 1}
    assert client.get("/api/v1/admin/outbox?state=nonsense", headers=admin_headers).status_code == 422
    # pagination, newest first
    page1 = client.get("/api/v1/admin/outbox?limit=2", headers=admin_headers).json()
    page2 = client.get(f"/api/v1/admin/outbox?limit=2&cursor={page1['next_cursor']}", headers=admin_headers).json()
    assert [i["id"] for i in page1["items"] + page2["items"]] == sorted(ids, reverse=True)
    assert page2["next_cursor"] is None
    # replay
    assert client.post(f"/api/v1/admin/outbox/{ids[0]}/replay", headers=opd).status_code == 403
    assert client.post(f"/api/v1/admin/outbox/{ids[1]}/replay", headers=admin_headers).status_code == 409
    assert client.post("/api/v1/admin/outbox/999999/replay", headers=admin_headers).status_code == 404
    r = client.post(f"/api/v1/admin/outbox/{ids[0]}/replay", headers=admin_headers)
    assert r.status_code == 200 and r.json()["state"] == "pending"
    assert _get(engine, ids[0]).state == "pending"
    assert client.get("/api/v1/admin/outbox?state=dead", headers=admin_headers).json()["items"] == []


async def test_outbox_gauges_job_sets_the_metric(engine):
    from prometheus_client import REGISTRY

    from hub.delivery import outbox_gauges_job

    [oid] = _rows(1)
    [row] = outbox.claim(engine, 1, 60)
    outbox.mark_failed(engine, row, PermanentError("HTTP 410"), 12)
    _rows(2)
    await outbox_gauges_job()
    assert REGISTRY.get_sample_value("simpul_outbox_pending", {"state": "dead"}) == 1
    assert REGISTRY.get_sample_value("simpul_outbox_pending", {"state": "pending"}) == 2


def test_bulk_replay_and_purge(client, admin_headers, engine):
    from datetime import timedelta

    pupr = _rows(3, kind="deliver", target="PUPR")
    dlh = _rows(1, kind="deliver", target="DLH")
    for row in outbox.claim(engine, 10, 60):
        outbox.mark_failed(engine, row, PermanentError("HTTP 404"), 12)
    assert client.post("/api/v1/admin/outbox/replay", headers=admin_headers).status_code == 400
    r = client.post("/api/v1/admin/outbox/replay?target=PUPR", headers=admin_headers)
    assert r.status_code == 200 and r.json() == {"replayed": 3, "ids": pupr}
    assert _get(engine, dlh[0]).state == "dead"
    for row in outbox.claim(engine, 10, 60):
        outbox.mark_done(engine, row)
    assert outbox.purge_done(engine, timedelta(days=30)) == 0  # fresh: kept
    assert outbox.purge_done(engine, timedelta(seconds=0)) == 3  # done rows only
    with Session(engine) as s:
        assert [r.id for r in s.scalars(select(Outbox))] == dlh  # the dead letter stays
