"""Signed webhooks to an OPD system: the signature (checked with the reference library), the
status-code table, and a real local receiver that fails, times out, answers 429/500/410 and
recovers: every ticket is delivered exactly once by webhook-id; the 410 is a dead letter that
an admin replays."""
from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from sqlalchemy import select
from sqlmodel import Session
from standardwebhooks.webhooks import Webhook

from adapters import opd_webhook
from adapters.base import PermanentError, RetryableError
from hub import outbox
from hub.db import session_scope
from hub.delivery.payloads import FROZEN_BODY
from hub.models import Outbox, TicketEvent
from hub.tickets import queue_delivery
from tests.delivery.helpers import SECRET, SECRET_ENV, Act, Receiver, bulk_tickets, make_ticket, use_webhook


def test_signature_matches_the_standard_webhooks_reference():
    body = json.dumps({"type": "ticket.created", "data": {"code": "K7X2M9P", "text": "Jalan rusak, ñ"}}).encode()
    headers = opd_webhook.headers_for(SECRET, "msg_abc", body, timestamp=int(time.time()))
    assert headers["webhook-id"] == "msg_abc"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(body, headers)["data"]["code"] == "K7X2M9P"
    assert opd_webhook.verify(SECRET, headers, body)
    assert not opd_webhook.verify(SECRET, headers, body + b" ")
    assert not opd_webhook.verify("whsec_" + base64.b64encode(b"other").decode(), headers, body)
    old = opd_webhook.headers_for(SECRET, "msg_abc", body, timestamp=int(time.time()) - 3600)
    assert not opd_webhook.verify(SECRET, old, body)  # replayed an hour later


def test_known_vector():
    # the example of the Standard Webhooks spec
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert opd_webhook.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize("status,retry_after,error,wait", [
    (500, None, RetryableError, None), (502, None, RetryableError, None), (503, "7", RetryableError, 7.0),
    (408, None, RetryableError, None), (429, "30", RetryableError, 30.0), (429, "soon", RetryableError, None),
    (400, None, PermanentError, None), (401, None, PermanentError, None), (404, None, PermanentError, None),
    (410, None, PermanentError, None), (422, None, PermanentError, None), (301, None, PermanentError, None),
])
def test_status_table(status, retry_after, error, wait):
    with pytest.raises(error) as exc:
        opd_webhook.classify(status, retry_after, "body text")
    assert f"HTTP {status}" in str(exc.value)
    if error is RetryableError:
        assert exc.value.retry_after == wait


def test_retry_after_http_date():
    from email.utils import formatdate

    got = opd_webhook.retry_after_seconds(formatdate(time.time() + 120, usegmt=True))
    assert 110 <= got <= 121


async def test_connection_refused_is_retryable():
    target = opd_webhook.WebhookTarget("http://127.0.0.1:9/none", SECRET, timeout_s=1)
    with pytest.raises(RetryableError, match="connection failed"):
        await opd_webhook.send(target, "msg_x", b"{}")


# which failure each ticket meets, by its number
BEHAVIOUR = ["ok", "500", "429", "timeout", "drop", "410"]


def plan_for(recovered: dict) -> callable:
    def plan(mid: str, attempt: int, doc: dict) -> Act:
        kind = BEHAVIOUR[int(doc["data"]["code"][1:]) % len(BEHAVIOUR)]
        if kind == "410":
            return Act() if recovered["yes"] else Act(status=410)
        if attempt > 1 or kind == "ok":
            return Act()
        return {"500": Act(status=500), "429": Act(status=429, retry_after="2"),
                "timeout": Act(sleep_s=3.5), "drop": Act(drop=True)}[kind]
    return plan


async def _drain(engine, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await outbox.run_once(engine, limit=50, lease_s=30, max_attempts=6)
        with Session(engine) as s:
            if not s.scalars(select(Outbox.id).where(Outbox.state == "pending", Outbox.kind == "deliver")).first():
                return
        await asyncio.sleep(0.2)
    raise AssertionError("outbox did not drain in time")


async def test_flaky_receiver_gets_every_ticket_once_and_410_is_replayed(engine, seeded, client, admin_headers,
                                                                       monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    recovered = {"yes": False}
    with Receiver(plan_for(recovered)) as rx:
        with session_scope() as s:
            # a 3 s timeout: a machine busy with other work must not turn a clean answer late
            use_webhook(s, "PUPR", rx.url, timeout_s=3.0)
            tickets = [make_ticket(s, code=f"T{i:07d}", reporter_phone="+6281234567890",
                                   reporter_name="Siti", confidential=(i == 0)) for i in range(12)]
            for t in tickets:
                queue_delivery(s, t, "ticket.created")
            codes = [t.code for t in tickets]
        await _drain(engine)
        with Session(engine) as s:
            rows = {r.payload["code"]: r for r in s.scalars(select(Outbox).where(Outbox.kind == "deliver"))}
        gone = [c for c in codes if BEHAVIOUR[int(c[1:]) % 6] == "410"]
        assert {c for c, r in rows.items() if r.state == "dead"} == set(gone)
        assert all(r.state == "done" for c, r in rows.items() if c not in gone)
        assert all("HTTP 410" in rows[c].last_error and rows[c].attempts == 1 for c in gone)

        # every delivered ticket reached the OPD system once, under the one id of its outbox row
        acted = {doc["data"]["code"]: mid for mid, doc in rx.bodies.items()}
        assert set(acted) == set(codes) - set(gone)
        assert all(acted[c] == rows[c].message_id for c in acted)
        assert all(n == 1 for n in rx.processed.values())
        assert rx.bad_signatures == 0
        answered = rx.answered_2xx()
        for c in acted:
            kind = BEHAVIOUR[int(c[1:]) % 6]
            mid = rows[c].message_id
            assert rx.attempts[mid] == (1 if kind == "ok" else 2), (c, kind)
            # after a 2xx the hub never sends again, except when it did not hear the answer
            assert answered[mid] == (2 if kind == "timeout" else 1), (c, kind)
            if kind == "429":
                assert rx.times[mid][1] - rx.times[mid][0] >= 1.9  # Retry-After honoured
        # confidential reporter never leaves; others do
        assert rx.bodies[acted["T0000000"]]["data"]["reporter"] is None
        assert rx.bodies[acted["T0000001"]]["data"]["reporter"]["phone"] == "+6281234567890"
        with Session(engine) as s:
            delivered = s.scalars(select(TicketEvent).where(TicketEvent.kind == "delivered")).all()
        assert len(delivered) == len(acted)

        # the OPD fixes its endpoint; the admin replays the dead letters; same webhook-id again
        recovered["yes"] = True
        dead = client.get("/api/v1/admin/outbox?state=dead&kind=deliver", headers=admin_headers).json()["items"]
        assert sorted(d["payload"]["code"] for d in dead) == sorted(gone)
        for d in dead:
            assert client.post(f"/api/v1/admin/outbox/{d['id']}/replay", headers=admin_headers).status_code == 200
        await _drain(engine)
        for c in gone:
            mid = rows[c].message_id
            assert rx.processed[mid] == 1 and rx.attempts[mid] == 2 and rx.bodies[mid]["data"]["code"] == c
        assert len(rx.processed) == len(codes)


async def test_rerouted_before_sending_is_not_sent_to_the_old_opd(engine, seeded, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with Receiver() as rx:
        with session_scope() as s:
            use_webhook(s, "PUPR", rx.url)
            t = make_ticket(s, code="T0000100")
            queue_delivery(s, t, "ticket.created")
            t.opd_code = "DLH"  # moved on before the worker ran
            s.add(t)
        await _drain(engine, 10)
        assert rx.attempts == {}


async def test_missing_secret_is_retried_not_sent_unsigned(engine, seeded, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with Receiver() as rx:
        with session_scope() as s:
            use_webhook(s, "PUPR", rx.url)
            queue_delivery(s, make_ticket(s, code="T0000200"), "ticket.created")
        await outbox.run_once(engine)
        assert rx.attempts == {}
        with Session(engine) as s:
            row = s.scalars(select(Outbox).where(Outbox.kind == "deliver")).one()
        assert row.state == "pending" and SECRET_ENV in row.last_error


def test_the_verification_snippet_in_the_docs_works():
    """docs/delivery.md gives OPD developers a stdlib-only verify(); it must accept our webhooks."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "delivery.md").read_text()
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "def verify" in b)
    ns: dict = {}
    exec(snippet, ns)
    body = json.dumps({"type": "ticket.created", "data": {"code": "K7X2M9P"}}).encode()
    headers = {k.title(): v for k, v in opd_webhook.headers_for(SECRET, "msg_doc", body).items()}
    assert ns["verify"](SECRET, headers, body) is True
    assert ns["verify"](SECRET, headers, body.replace(b"K7X", b"K8X")) is False


async def test_every_attempt_of_one_message_carries_the_same_body(engine, seeded, monkeypatch, cfg):
    """Issue #13 item 7 (Standard Webhooks): one webhook-id, one body. The body's timestamp is
    the event's, and a change of the ticket between attempts does not change what is resent."""
    from datetime import timezone

    from hub.tickets import change_status

    monkeypatch.setenv(SECRET_ENV, SECRET)
    with Receiver(lambda mid, n, doc: Act(status=503) if n == 1 else Act()) as rx:
        with session_scope() as s:
            use_webhook(s, "PUPR", rx.url, timeout_s=3.0)
            t = make_ticket(s, code="TSAMEBD", reporter_phone="+6281234567890")
            queue_delivery(s, t, "ticket.created")
        await outbox.run_once(engine, limit=10, max_attempts=6)
        with session_scope() as s:  # the OPD's own answer changes the ticket before the retry
            from hub.models import Ticket

            change_status(s, s.scalars(select(Ticket).where(Ticket.code == "TSAMEBD")).one(), "diproses",
                          "user:test", cfg)
        await asyncio.sleep(1.1)  # a new second: a fresh timestamp would show
        with session_scope() as s:
            row = s.scalars(select(Outbox).where(Outbox.kind == "deliver")).one()
            row.next_attempt_at = row.created_at
        await _drain(engine, 30)
        with Session(engine) as s:
            row = s.scalars(select(Outbox).where(Outbox.kind == "deliver")).one()
    [first, second] = rx.raw[row.message_id]
    assert first == second
    doc = json.loads(first)
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=timezone.utc)
    assert doc["timestamp"] == created.astimezone(timezone.utc).isoformat()
    assert doc["data"]["status"] == "menunggu"  # as it was when the event happened
    assert row.state == "done" and rx.bad_signatures == 0


async def test_a_batch_stores_every_body_before_its_first_send(engine, seeded, monkeypatch):
    """Issue #15 ("lift" 2): the bodies of a claimed batch are frozen in one transaction before
    any of them is sent (not one commit per row as it is sent), so the first POST already finds
    every row of the batch with its body stored, and each POST carries exactly that body."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    stored_at_post: list[int] = []  # how many rows had their body stored, at each POST

    def plan(mid: str, n: int, doc: dict) -> Act:
        with Session(engine) as s:
            rows = list(s.scalars(select(Outbox).where(Outbox.kind == "deliver")))
        stored_at_post.append(sum(1 for r in rows if FROZEN_BODY in r.payload))
        return Act()

    with Receiver(plan) as rx:
        with session_scope() as s:
            use_webhook(s, "PUPR", rx.url, timeout_s=3.0)
        bulk_tickets(engine, 6)
        assert await outbox.run_once(engine, limit=10, concurrency=2) == 6
    assert stored_at_post == [6] * 6
    with Session(engine) as s:
        rows = list(s.scalars(select(Outbox).where(Outbox.kind == "deliver")))
    assert {r.state for r in rows} == {"done"}
    for r in rows:
        assert rx.raw[r.message_id] == [r.payload[FROZEN_BODY].encode()]
    assert rx.bad_signatures == 0
