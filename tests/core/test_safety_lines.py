"""Issue #15, item 2 on every line: NUL characters are removed (the same on SQLite and
PostgreSQL), and a Telegram update with an impossible date becomes a report at receipt time
instead of a report that can never be stored."""
from __future__ import annotations

import re

from sqlalchemy import select
from sqlmodel import Session

from hub.db import get_engine
from hub.models import RawMessage
from hub.processing import drain
from tests.lines.telegram.test_telegram import dbclient, fixture, post as tg_post, tg  # noqa: F401
from tests.lines.twilio.test_twilio import fake_twilio, post as tw_post, twilio_client_db  # noqa: F401
from tests.web.conftest import csrf_of


def _raws() -> list[RawMessage]:
    with Session(get_engine()) as s:
        return list(s.scalars(select(RawMessage).order_by(RawMessage.id)))


def test_twilio_nul_is_removed(twilio_client_db):
    r = tw_post(twilio_client_db, "message__sms_text.json", Body="Jalan\x00 rusak di Pogalan",
                From="+62812\x0034567890")
    assert r.status_code == 200 and "diterima" in r.text, r.text
    [raw] = _raws()
    assert raw.text == "Jalan rusak di Pogalan" and "\x00" not in (raw.sender or "")
    drain()


def test_telegram_nul_is_removed_and_a_bogus_date_is_replaced(dbclient, tg):  # noqa: F811
    update = fixture("message__text_with_place.json")
    update["message"]["text"] = update["message"]["text"].replace("Jalan", "Jalan\x00")
    update["message"]["date"] = 1  # 1970: refused at the door, so receipt time is used
    r = tg_post(dbclient, update)
    assert r.status_code == 200, r.text
    [raw] = _raws()
    assert "\x00" not in raw.text and raw.text.startswith("Jalan berlubang")
    assert raw.received_at.year >= 2026


def test_public_form_nul_is_removed(client, seeded, monkeypatch):
    from hub.web import public

    monkeypatch.setattr(public, "REPORT_LIMIT", public.RateLimit(5, 600))  # not the process-wide one
    page = client.get("/lapor")
    r = client.post("/lapor", data={"csrf": csrf_of(page.text), "report_id": "nul1",
                                    "text": "Lampu jalan\x00 mati di depan balai desa sejak seminggu",
                                    "kecamatan": "", "desa": "", "nama": "Sri\x00", "telepon": ""},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    assert re.search(r"kode=([A-Z0-9]+)", r.headers["location"])
    [raw] = _raws()
    assert raw.text == "Lampu jalan mati di depan balai desa sejak seminggu"
    assert "\x00" not in str(raw.message)
