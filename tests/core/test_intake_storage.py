"""Intake and ticket storage on SQLite and PostgreSQL: idempotency, concurrency, lifecycle."""
from __future__ import annotations

import asyncio
import random
import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from hub.db import session_scope
from hub.intake import accept, accept_many
from hub.models import Outbox, RawMessage, Ticket, TicketEvent
from hub.processing import drain
from normalizer.types import InboundMessage


def msg(text="Jalan berlubang di desa Ngadirenggo kec. Pogalan", pid="m-1", channel="api", sender=None, **kw):
    return InboundMessage(channel=channel, text=text, provider_id=pid, sender=sender,
                          received_at=kw.pop("received_at", datetime.now(timezone.utc)), **kw)


def count(engine, model) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_migrations_create_every_table(engine):
    from sqlalchemy import inspect

    names = set(inspect(engine).get_table_names())
    assert {"tickets", "ticket_events", "raw_messages", "incidents", "opd", "users", "api_keys",
            "outbox", "routing_examples", "router_models", "channel_state", "alembic_version"} <= names


def test_duplicate_key_returns_existing_code_and_writes_nothing(engine, seeded):
    first = accept(msg())
    second = accept(msg(text="different text, same provider id"))
    assert not first.duplicate and second.duplicate
    assert second.ticket_code == first.ticket_code
    assert count(engine, RawMessage) == 1
    drain()
    third = accept(msg())
    assert third.duplicate and third.ticket_code == first.ticket_code
    drain()
    assert count(engine, Ticket) == 1


def test_message_without_provider_id_dedups_by_content_in_window(engine, seeded):
    now = datetime.now(timezone.utc)
    a = accept(msg(pid=None, sender="081234567890", received_at=now))
    b = accept(msg(pid=None, sender="081234567890", received_at=now + timedelta(seconds=5)))
    c = accept(msg(pid=None, sender="081299999999", received_at=now))
    assert b.duplicate and b.ticket_code == a.ticket_code
    assert not c.duplicate


def test_batch_with_repeated_key_stores_once(engine, seeded):
    res = accept_many([msg(pid="x"), msg(pid="y"), msg(pid="x")])
    assert [r.duplicate for r in res] == [False, False, True]
    assert res[0].ticket_code == res[2].ticket_code != res[1].ticket_code
    assert count(engine, RawMessage) == 2


def test_fifty_concurrent_threads_same_message_one_ticket(engine, seeded):
    results, errors = [], []
    barrier = threading.Barrier(50)

    def worker():
        try:
            barrier.wait()
            results.append(accept(msg(pid="same-id")))
        except Exception as exc:  # pragma: no cover - would fail the test below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.ticket_code for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    drain()
    assert count(engine, Ticket) == 1


async def test_fifty_concurrent_http_intakes_one_ticket(engine, seeded, make_key):
    from hub.app import create_app

    headers = make_key("intake")
    app = create_app(workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            body = {"text": "Banjir di desa Ngadisuko Durenan", "id": "wa-777", "sender": "081234567890"}
            responses = await asyncio.gather(*[c.post("/api/v1/intake/api", json=body, headers=headers)
                                               for _ in range(50)])
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["code"] for r in responses}) == 1
    assert sum(not r.json()["duplicate"] for r in responses) == 1
    drain()
    assert count(engine, Ticket) == 1


async def test_writer_batches_copies_of_one_message_into_one_row(engine, seeded):
    """The group commit sees copies of one message in one batch and across batches (a
    channel retrying while the first copy is being written): one row, one code for all."""
    from hub.intake import IntakeWriter

    writer = IntakeWriter(engine, max_batch=7)  # small batches: copies land in different ones
    await writer.start()
    try:
        keys = [f"k{i}" for i in range(40)]
        sent = [k for k in keys for _ in range(5)]  # each message five times, interleaved
        random.Random(3).shuffle(sent)
        results = await asyncio.gather(*[writer.submit(msg(pid=k)) for k in sent])
    finally:
        await writer.stop()
    by_key: dict[str, set[str]] = {}
    for k, r in zip(sent, results):
        by_key.setdefault(k, set()).add(r.ticket_code)
    assert all(len(codes) == 1 for codes in by_key.values())
    assert len({c for codes in by_key.values() for c in codes}) == 40
    assert sum(not r.duplicate for r in results) == 40
    assert count(engine, RawMessage) == 40


def test_processing_creates_ticket_with_history_delivery_and_receipt(engine, seeded):
    a = accept(msg(channel="sms", sender="0812-3456-7890", pid="sms-1",
                   text="jalan rusak parah di desa Ngadirenggo kec Pogalan banyak lubang"))
    assert drain() == 1
    with Session(engine) as s:
        t = s.scalars(select(Ticket).where(Ticket.code == a.ticket_code)).one()
        assert t.status == "menunggu" and t.channel == "sms"
        assert t.reporter_phone == "+6281234567890"
        assert t.opd_code and t.due_at is not None and t.incident_id is not None
        kinds = [e.kind for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id)
                                           .order_by(TicketEvent.id))]
        assert kinds[:2] == ["received", "routed"]
        replies = list(s.scalars(select(Outbox).where(Outbox.ticket_id == t.id, Outbox.kind == "reply")))
        assert len(replies) == 1 and a.ticket_code in replies[0].payload["text"]
        assert replies[0].payload["to"] == "+6281234567890"
        raw = s.scalars(select(RawMessage)).one()
        assert raw.state == "done"


def test_repeat_from_same_reporter_is_not_a_new_ticket(engine, seeded):
    text = "lampu jalan mati di depan pasar Durenan sudah seminggu"
    a = accept(msg(channel="sms", sender="081234567890", pid="r1", text=text))
    drain()
    b = accept(msg(channel="sms", sender="081234567890", pid="r2", text=text.upper() + "!!"))
    drain()
    assert not b.duplicate and b.ticket_code != a.ticket_code
    assert count(engine, Ticket) == 1
    from hub.tickets import resolve_code

    with Session(engine) as s:
        assert resolve_code(s, b.ticket_code).code == a.ticket_code


def test_storage_failure_is_not_acknowledged(sqlite_url, seeded, make_key):
    """Rule 1: if the raw message cannot be stored the channel gets a 5xx, never a 2xx."""
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from hub.app import create_app
    from hub.db import get_engine

    headers = make_key("intake")
    with TestClient(create_app(workers=False)) as c:
        with get_engine().begin() as conn:
            conn.execute(text("DROP TABLE raw_messages"))
        r = c.post("/api/v1/intake/api", json={"text": "x y z", "id": "lost?"}, headers=headers)
    assert r.status_code == 503


def test_content_dedup_holds_across_a_window_boundary(engine, seeded):
    window = 600
    boundary = datetime.fromtimestamp((int(datetime.now(timezone.utc).timestamp()) // window + 1) * window,
                                      timezone.utc)
    a = accept(msg(pid=None, sender="081234567890", received_at=boundary - timedelta(seconds=2)))
    b = accept(msg(pid=None, sender="081234567890", received_at=boundary + timedelta(seconds=2)))
    assert b.duplicate and b.ticket_code == a.ticket_code
    later = accept(msg(pid=None, sender="081234567890", received_at=boundary + timedelta(seconds=window + 5)))
    assert not later.duplicate
    assert count(engine, RawMessage) == 2
