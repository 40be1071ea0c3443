"""The OPD API: pull with scope, filters and cursor; status back (acknowledge, diproses,
selesai, hand back) with the reply to the reporter queued on their own line, a LAPOR! push for
LAPOR! tickets, and all the way to a sendMessage at the fake Telegram Bot API."""
from __future__ import annotations


import pytest
from sqlalchemy import select
from sqlmodel import Session

from hub.db import get_engine, session_scope
from hub.models import Outbox, Ticket, TicketEvent
from tests.delivery.helpers import make_ticket

CHAT = "555001"


@pytest.fixture
def world(client, seeded, make_key):
    with session_scope() as s:
        make_ticket(s, opd="PUPR", code="TGA2345", channel="telegram", reporter_chat_id=CHAT,
                         reporter_name="Siti", text="Jalan berlubang di Desa Karangsoko")
        make_ticket(s, opd="PUPR", code="LPB2345", channel="lapor", reporter_lapor_id="TRK-998877")
        make_ticket(s, opd="PUPR", code="SMC2345", channel="sms", reporter_phone="+6281234567890",
                          confidential=True)
        make_ticket(s, opd="DLH", code="DLD2345", channel="telegram", reporter_chat_id="555002")
    return {"pupr": make_key("opd", "PUPR", name="SIMPUPR"), "dlh": make_key("opd", "DLH", name="SIMDLH"),
            "intake": make_key("intake"), "admin": make_key("admin")}


def _outbox(code: str, kind: str | None = None) -> list[Outbox]:
    with Session(get_engine()) as s:
        t = s.scalars(select(Ticket).where(Ticket.code == code)).one()
        q = select(Outbox).where(Outbox.ticket_id == t.id)
        if kind:
            q = q.where(Outbox.kind == kind)
        return list(s.scalars(q.order_by(Outbox.id)))


def _events(code: str) -> list[TicketEvent]:
    with Session(get_engine()) as s:
        t = s.scalars(select(Ticket).where(Ticket.code == code)).one()
        return list(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id).order_by(TicketEvent.id)))


def test_pull_is_scoped_filtered_and_paged(client, world):
    r = client.get("/api/v1/opd/tickets", headers=world["pupr"])
    assert r.status_code == 200
    items = r.json()["items"]
    assert sorted(i["code"] for i in items) == ["LPB2345", "SMC2345", "TGA2345"]
    by_code = {i["code"]: i for i in items}
    assert by_code["SMC2345"]["reporter"] is None  # confidential never leaves
    assert by_code["TGA2345"]["reporter"]["name"] == "Siti"
    assert by_code["TGA2345"]["escalation_level"] == 0
    assert [i["code"] for i in client.get("/api/v1/opd/tickets", headers=world["dlh"]).json()["items"]] == ["DLD2345"]
    # cursor: one at a time, no repeats, no gaps
    seen, cursor = [], None
    for _ in range(5):
        page = client.get("/api/v1/opd/tickets", params={"limit": 1, **({"cursor": cursor} if cursor else {})},
                          headers=world["pupr"]).json()
        seen += [i["code"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert sorted(seen) == ["LPB2345", "SMC2345", "TGA2345"] and len(seen) == 3
    # the last cursor gives nothing until something changes, then exactly that ticket
    assert client.get("/api/v1/opd/tickets", params={"cursor": cursor}, headers=world["pupr"]).json()["items"] == []
    client.post("/api/v1/opd/tickets/LPB2345/status", json={"status": "diproses"}, headers=world["pupr"])
    changed = client.get("/api/v1/opd/tickets", params={"cursor": cursor}, headers=world["pupr"]).json()["items"]
    assert [i["code"] for i in changed] == ["LPB2345"]
    assert [i["code"] for i in client.get("/api/v1/opd/tickets?status=diproses", headers=world["pupr"]).json()["items"]] \
        == ["LPB2345"]
    assert client.get("/api/v1/opd/tickets?since=2999-01-01T00:00:00Z", headers=world["pupr"]).json()["items"] == []


@pytest.mark.parametrize("who,params,status", [
    (None, {}, 401), ("intake", {}, 403), ("pupr", {"opd": "DLH"}, 403), ("pupr", {"status": "bogus"}, 400),
    ("pupr", {"cursor": "!!!"}, 400), ("pupr", {"limit": 0}, 422), ("admin", {"opd": "DLH"}, 200),
])
def test_pull_refusals(client, world, who, params, status):
    r = client.get("/api/v1/opd/tickets", params=params, headers=world[who] if who else {})
    assert r.status_code == status, r.text
    if status == 200:
        assert [i["code"] for i in r.json()["items"]] == ["DLD2345"]


def test_another_opds_ticket_is_404(client, world):
    assert client.get("/api/v1/opd/tickets/DLD2345", headers=world["pupr"]).status_code == 404
    r = client.post("/api/v1/opd/tickets/DLD2345/status", json={"status": "selesai"}, headers=world["pupr"])
    assert r.status_code == 404
    assert client.get("/api/v1/opd/tickets/DLD2345", headers=world["dlh"]).status_code == 200


@pytest.mark.parametrize("body,status", [
    ({"status": "dibatalkan"}, 422), ({"status": "selesai", "photo_url": "ftp://x/y.jpg"}, 422),
    ({"status": "selesai", "extra": 1}, 422), ({"status": "bukan_kewenangan"}, 400),
    ({"status": "bukan_kewenangan", "note": "   "}, 400), ({}, 422),
])
def test_bad_status_updates_change_nothing(client, world, body, status):
    r = client.post("/api/v1/opd/tickets/TGA2345/status", json=body, headers=world["pupr"])
    assert r.status_code == status, r.text
    assert _outbox("TGA2345") == []
    assert [e.kind for e in _events("TGA2345")] == []


def test_status_round_trip_to_the_reporter(client, world):
    h = world["pupr"]
    # acknowledge: an event, no status change, nothing to the reporter
    r = client.post("/api/v1/opd/tickets/TGA2345/status", json={"status": "diterima", "external_id": "SIM-77"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "menunggu"
    assert [(e.kind, e.actor, e.data) for e in _events("TGA2345")] == [("acknowledged", "key:SIMPUPR", {"external_id": "SIM-77"})]
    assert _outbox("TGA2345") == []
    # diproses with a note: the reporter hears it on Telegram
    r = client.post("/api/v1/opd/tickets/TGA2345/status", json={"status": "diproses", "note": "Tim survei berangkat besok"},
                    headers=h)
    assert r.status_code == 200 and r.json()["status"] == "diproses"
    [reply] = _outbox("TGA2345", "reply")
    assert reply.target == "telegram" and reply.payload["to"] == CHAT
    assert "TGA2345" in reply.payload["text"] and "sedang diproses" in reply.payload["text"]
    assert "Tim survei berangkat besok" in reply.payload["text"]
    # selesai with a photo
    r = client.post("/api/v1/opd/tickets/TGA2345/status",
                    json={"status": "selesai", "note": "Sudah ditambal", "photo_url": "https://pupr.example/foto/1.jpg"},
                    headers=h)
    assert r.status_code == 200 and r.json()["status"] == "selesai" and r.json()["closed_at"]
    assert any(a["url"] == "https://pupr.example/foto/1.jpg" for a in r.json()["attachments"])
    replies = _outbox("TGA2345", "reply")
    assert len(replies) == 2 and "telah selesai" in replies[1].payload["text"]
    status_events = [e for e in _events("TGA2345") if e.kind == "status"]
    assert [(e.from_status, e.to_status) for e in status_events] == [("menunggu", "diproses"), ("diproses", "selesai")]
    assert status_events[1].data["photo_url"] == "https://pupr.example/foto/1.jpg"
    # done is done
    r = client.post("/api/v1/opd/tickets/TGA2345/status", json={"status": "selesai"}, headers=h)
    assert r.status_code == 409 and "already selesai" in r.json()["detail"]
    r = client.post("/api/v1/opd/tickets/TGA2345/status", json={"status": "diterima"}, headers=h)
    assert r.status_code == 409


def test_lapor_ticket_status_is_pushed_to_lapor(client, world):
    r = client.post("/api/v1/opd/tickets/LPB2345/status", json={"status": "selesai", "note": "Selesai diperbaiki"},
                    headers=world["pupr"])
    assert r.status_code == 200
    [push] = _outbox("LPB2345")
    assert push.kind == "lapor_push" and push.payload["tracking_id"] == "TRK-998877"
    assert push.payload["status"] == "selesai" and push.payload["note"] == "Selesai diperbaiki"


def test_hand_back_goes_to_triage(client, world, seeded):
    r = client.post("/api/v1/opd/tickets/TGA2345/status",
                    json={"status": "bukan_kewenangan", "note": "Jalan provinsi, kewenangan PU Bina Marga Jatim"},
                    headers=world["pupr"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["opd"] == seeded.triage_opd and body["routing"]["needs_triage"] is True
    assert body["status"] == "menunggu"
    kinds = [(e.kind, e.from_opd, e.to_opd) for e in _events("TGA2345")]
    assert kinds == [("rerouted", "PUPR", "DISKOMINFO"), ("handed_back", "PUPR", "DISKOMINFO")]
    assert "Jalan provinsi" in _events("TGA2345")[1].note
    [reply] = _outbox("TGA2345", "reply")
    assert "ditinjau ulang" in reply.payload["text"] and reply.payload["to"] == CHAT
    # it is no longer PUPR's
    assert client.get("/api/v1/opd/tickets/TGA2345", headers=world["pupr"]).status_code == 404
    triage = client.get("/api/v1/tickets?needs_triage=true", headers=world["admin"]).json()["items"]
    assert [t["code"] for t in triage] == ["TGA2345"]


async def test_status_reaches_telegram_bot_api(client, world, monkeypatch):
    from hub import outbox
    from hub.settings import reset_settings
    from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI

    with FakeTelegramAPI() as tg:
        monkeypatch.setenv("SIMPUL_TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("SIMPUL_TELEGRAM_BASE_URL", tg.base_url)
        reset_settings()
        r = client.post("/api/v1/opd/tickets/TGA2345/status", json={"status": "selesai", "note": "Sudah ditambal"},
                        headers=world["pupr"])
        assert r.status_code == 200
        assert await outbox.run_once(get_engine(), kinds=["reply"]) == 1
        [text] = tg.texts_to(int(CHAT))
        assert "TGA2345" in text and "telah selesai" in text and "Sudah ditambal" in text
        [row] = _outbox("TGA2345", "reply")
        assert row.state == "done"


def test_acknowledge_is_one_rule_for_open_tickets_and_a_repeat_is_a_no_op(client, world):
    h = world["pupr"]
    r = client.post("/api/v1/opd/tickets/TGA2345/status", json={"status": "diproses"}, headers=h)
    assert r.status_code == 200
    for _ in range(2):  # acknowledged after work started, and sent twice: accepted, recorded once
        r = client.post("/api/v1/opd/tickets/TGA2345/status", json={"status": "diterima"}, headers=h)
        assert r.status_code == 200 and r.json()["status"] == "diproses"
    assert [e.kind for e in _events("TGA2345")].count("acknowledged") == 1
    r = client.post("/api/v1/opd/tickets/TGA2345/status", json={"status": "menunggu"}, headers=h)
    assert r.status_code == 422  # not an OPD action (request validation)


def test_an_illegal_move_answers_409_with_the_allowed_moves(client, world):
    h = world["pupr"]
    assert client.post("/api/v1/opd/tickets/TGA2345/status", json={"status": "selesai"}, headers=h).status_code == 200
    r = client.post("/api/v1/opd/tickets/TGA2345/status", json={"status": "diproses"}, headers=h)
    assert r.status_code == 409 and "allowed" in r.json() and "diproses" not in r.json()["allowed"]
