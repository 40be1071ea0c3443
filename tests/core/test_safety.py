"""Issue #15: one bad message never stops the stream (SQLite and PostgreSQL).

- the door: impossible times and offsets are a 422 with the reason on every intake path; NUL
  characters are removed, so both stores keep the same text;
- behind the door: a stored message that cannot be processed is retried a few times, then
  parked as `failed` (admin page, replay) while every message around it becomes a ticket;
- the group-commit writer: a row the store refuses fails alone, not its batch neighbours.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text
from sqlmodel import Session

from hub import guard
from hub.intake import IntakeWriter, accept_many
from hub.models import RawMessage, Ticket
from hub.processing import drain
from normalizer.types import InboundMessage

NOW = datetime.now(timezone.utc)
BAD_TIMES = ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+07:00", "2026-11-28T10:00:00+15:00",
             "2026-11-28T10:00:00-14:30", "1970-01-01T00:00:00Z", (NOW + timedelta(days=30)).isoformat()]


def good(i: int, channel: str = "api") -> InboundMessage:
    return InboundMessage(channel=channel, text=f"Jalan berlubang nomor {i} di desa Ngadirenggo kec. Pogalan",
                          provider_id=f"good-{i}", received_at=datetime.now(timezone.utc))


def tickets(engine) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(Ticket))


@pytest.mark.parametrize("when", BAD_TIMES)
def test_impossible_received_at_is_422_with_reason_on_both_intake_routes(client, admin_headers, when):
    body = {"text": "Banjir di Pogalan", "id": f"t-{when}", "received_at": when}
    fast = client.post("/api/v1/intake/api", json=body, headers=admin_headers)  # IntakeFastPath
    assert fast.status_code == 422, fast.text
    assert "received_at" in fast.json()["detail"]


def test_the_session_route_refuses_the_same_times(engine, seeded):
    for when in BAD_TIMES:
        with pytest.raises(guard.InvalidMessage, match="received_at"):
            guard.check_message(InboundMessage(channel="api", text="x", provider_id="p",
                                               received_at=datetime.fromisoformat(when)))
    # every library path (importer, rate limiter, Telegram flush) goes through accept_many
    with pytest.raises(guard.InvalidMessage):
        accept_many([InboundMessage(channel="api", text="x", provider_id="p",
                                    received_at=datetime(1, 1, 1, tzinfo=timezone.utc))])


def test_reasonable_times_pass(client, admin_headers):
    for i, when in enumerate(["2026-11-28T10:00:00+07:00", "2015-03-01T08:00:00-12:00",
                              "2026-11-28T10:00:00+14:00", (NOW + timedelta(minutes=5)).isoformat()]):
        r = client.post("/api/v1/intake/api", json={"text": "Banjir", "id": f"ok-{i}", "received_at": when},
                        headers=admin_headers)
        assert r.status_code == 202, (when, r.text)


def test_hotline_called_at_in_year_one_is_422(client, admin_headers):
    r = client.post("/api/v1/hotline/psc119/calls", headers=admin_headers,
                    json={"incident_type": "kecelakaan", "kecamatan": "Pogalan", "id": "call-1",
                          "called_at": "0001-01-01T00:00:00+07:00"})
    assert r.status_code == 422 and "received_at" in r.text, r.text


def test_nul_is_removed_on_both_stores(client, admin_headers, engine):
    body = {"text": "Lampu\x00 jalan mati di Pogalan", "id": "nul\x00-1", "sender": "0812\x003456789",
            "fields": {"catatan\x00": "a\x00b"}}
    r = client.post("/api/v1/intake/api", json=body, headers=admin_headers)
    assert r.status_code == 202, r.text
    drain()
    with Session(engine) as s:
        raw = s.scalars(select(RawMessage)).one()
        t = s.scalars(select(Ticket)).one()
    assert raw.text == "Lampu jalan mati di Pogalan" and raw.provider_id == "nul-1"
    assert "\x00" not in str(raw.message) and "\x00" not in t.text_original
    # the same id without NUL is the same message
    again = client.post("/api/v1/intake/api", json={**body, "text": "x"}, headers=admin_headers)
    assert again.json()["duplicate"] is True


def test_too_long_id_is_422_on_both_stores(client, admin_headers):
    r = client.post("/api/v1/intake/api", json={"text": "Banjir", "id": "x" * 199}, headers=admin_headers)
    assert r.status_code == 422 and "id is too long" in r.text


def _store_poison(engine, i: int) -> int:
    """A row an older hub stored and the driver cannot load (PostgreSQL: a time in year 10000,
    which Python cannot represent; SQLite: a time that is not a time)."""
    bad_time = "10000-01-01 04:59:59+00" if engine.dialect.name == "postgresql" else "not a time"
    with engine.begin() as c:
        c.execute(text("INSERT INTO raw_messages (idempotency_key, ticket_code, channel, provider_id, text,"
                       " message, received_at, stored_at, state) VALUES (:k, :c, 'api', :p, 'racun', :m,"
                       " :r, :s, 'pending')"),
                  {"k": f"api:poison-{i}", "c": f"RACUN{i}", "p": f"poison-{i}",
                   "m": '{"channel": "api", "text": "racun", "provider_id": "poison", "received_at":'
                        ' "9999-12-31T23:59:59-05:00", "attachments": [], "fields": {}, "raw": {}}',
                   "r": bad_time, "s": datetime.now(timezone.utc)})
        return c.execute(text("SELECT id FROM raw_messages WHERE ticket_code = :c"), {"c": f"RACUN{i}"}).scalar_one()


def test_poison_message_among_good_ones_is_parked_and_the_rest_flow(engine, seeded):
    accept_many([good(i) for i in range(20)])
    poison = _store_poison(engine, 1)
    accept_many([good(i) for i in range(20, 40)])
    drain(batch=500)
    assert tickets(engine) == 40
    with Session(engine) as s:
        failed = guard.list_failed(s)
        assert [r.id for r in failed] == [poison]
        assert f"after {guard.MAX_ATTEMPTS} attempts" in failed[0].error
        pending = s.scalar(select(func.count()).select_from(RawMessage).where(RawMessage.state == "pending"))
    assert pending == 0
    # more messages still flow with the parked row in the store
    accept_many([good(i) for i in range(40, 45)])
    drain()
    assert tickets(engine) == 45
    # the admin replays it: the unloadable time is replaced by the time it was stored
    from hub.db import writer

    with Session(writer(engine)) as s:
        guard.replay_failed(s, poison)
        s.commit()
    drain()
    assert tickets(engine) == 46
    with Session(engine) as s:
        assert guard.count_failed(s) == 0


def _one_processor_run(db_url: str, tmp_path) -> None:
    """One processor lifetime: a fresh Python process (new engine, nothing remembered) takes
    one batch, as a restarted `simpul serve` or a second one would."""
    env = {**os.environ, "SIMPUL_DATABASE_URL": db_url, "SIMPUL_DATA_DIR": str(tmp_path / "data")}
    subprocess.run([sys.executable, "-c", "from hub.processing import process_pending; process_pending()"],
                   env=env, check=True, timeout=120, capture_output=True)


def attempts_and_state(engine, raw_id: int) -> tuple[int, str]:
    with engine.connect() as c:
        row = c.execute(select(RawMessage.attempts, RawMessage.state).where(RawMessage.id == raw_id)).one()
    return row[0], row[1]


def test_failed_attempts_are_counted_in_the_store_across_restarts(db_url, engine, seeded, tmp_path):
    """Three processor processes one after another, each failing the poison row once: the
    count goes on (1, 2, 3 -> parked), it does not start again at 1 in each process."""
    accept_many([good(1)])
    poison = _store_poison(engine, 3)
    accept_many([good(2)])
    for run in range(1, guard.MAX_ATTEMPTS + 1):
        _one_processor_run(db_url, tmp_path)
        n, state = attempts_and_state(engine, poison)
        assert n == run
        assert state == ("failed" if run == guard.MAX_ATTEMPTS else "pending")
    assert tickets(engine) == 2
    with Session(engine) as s:
        assert f"after {guard.MAX_ATTEMPTS} attempts" in guard.list_failed(s)[0].error
    # parked rows are not tried again; a replay starts the count afresh
    _one_processor_run(db_url, tmp_path)
    assert attempts_and_state(engine, poison) == (guard.MAX_ATTEMPTS, "failed")
    from hub.db import writer

    with Session(writer(engine)) as s:
        guard.replay_failed(s, poison)
        s.commit()
    assert attempts_and_state(engine, poison) == (0, "pending")


def test_two_processes_share_one_count(db_url, engine, seeded):
    """Two engines (as two processes would hold) failing the same row: MAX_ATTEMPTS in all."""
    from hub.db import make_engine

    poison = _store_poison(engine, 4)
    other = make_engine(db_url)
    try:
        boom = RuntimeError("cannot load")
        assert guard.record_failure(engine, poison, boom) is False
        assert guard.record_failure(other, poison, boom) is False
        assert guard.record_failure(engine, poison, boom) is True
        assert guard.record_failure(other, poison, boom) is False  # already parked: not counted again
    finally:
        other.dispose()
    assert attempts_and_state(engine, poison) == (guard.MAX_ATTEMPTS, "failed")


def test_admin_page_lists_and_replays_failed_intake(client, engine, seeded):
    from hub.auth import create_user
    from hub.db import session_scope
    from tests.web.conftest import PASSWORD, csrf_of, login

    poison = _store_poison(engine, 2)
    accept_many([good(1)])
    drain()
    with session_scope() as s:
        create_user(s, "admin1", PASSWORD, "admin")
    assert login(client, "admin1").status_code in (302, 303)
    page = client.get("/admin")
    assert page.status_code == 200
    assert f"/admin/masuk/{poison}/ulang" in page.text and "RACUN2" in page.text
    csrf = csrf_of(page.text)
    r = client.post(f"/admin/masuk/{poison}/ulang", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    drain()
    assert tickets(engine) == 2


def test_a_row_the_store_refuses_fails_alone_in_its_group_commit(engine, seeded):
    """20 concurrent good messages and one the store cannot write share a transaction: the
    batch is retried one by one, only the bad one fails."""
    bad = InboundMessage(channel="api", text="tidak bisa disimpan", provider_id="bad-1",
                         received_at=datetime.now(timezone.utc), fields={"x": object()})  # not JSON

    async def run():
        w = IntakeWriter(engine)
        await w.start()
        loop = asyncio.get_running_loop()
        bad_fut = loop.create_future()
        w._queue.put_nowait((bad, bad_fut))  # past the door, as a row only the store refuses
        results = await asyncio.gather(*(w.submit(good(i)) for i in range(20)), bad_fut,
                                       return_exceptions=True)
        await w.stop()
        return results

    results = asyncio.run(run())
    assert all(not isinstance(r, BaseException) for r in results[:20]), results[:20]
    assert isinstance(results[20], BaseException)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(RawMessage)) == 20
