"""Telegram line: webhook rows over fixture Updates (shared runner), the guided conversation,
dedup, edits, replies through the outbox, error mapping, polling and setWebhook.

Everything runs the real python-telegram-bot `Bot` against tests/fakes/telegram_api.py.
"""
from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from adapters.base import OutboundMessage, PermanentError, RetryableError
from tests.lines.runner import Case, OutCase, app_client, load_fixture, run_case, run_outgoing, use_env
from tests.fakes.telegram_api import BOT_ID, TOKEN, FakeTelegramAPI

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "s3cret-Telegram-webhook_0123456789"
CHAT = 555001
PATH = "/webhooks/telegram"


# --- set-up -------------------------------------------------------------------------------

@pytest.fixture
def tg():
    with FakeTelegramAPI(max_poll_s=0.5) as fake:
        yield fake


def _configure(monkeypatch, tg, **extra: str) -> None:
    use_env(monkeypatch, {"SIMPUL_TELEGRAM_BOT_TOKEN": TOKEN, "SIMPUL_TELEGRAM_WEBHOOK_SECRET": SECRET,
                          "SIMPUL_TELEGRAM_BASE_URL": tg.base_url, "SIMPUL_TELEGRAM_MODE": "webhook",
                          "SIMPUL_PUBLIC_URL": "http://127.0.0.1:8000", **extra})


def _app_client(monkeypatch, tg, **extra: str):
    _configure(monkeypatch, tg, **extra)
    return app_client()


@pytest.fixture
def tclient(sqlite_url, seeded, tg, monkeypatch):
    with _app_client(monkeypatch, tg) as c:
        yield c


@pytest.fixture
def dbclient(db_url, seeded, tg, monkeypatch):
    """The same, on SQLite and on PostgreSQL (the conversation lock differs)."""
    with _app_client(monkeypatch, tg) as c:
        yield c


def sign(url, body, headers):
    return {**headers, "X-Telegram-Bot-Api-Secret-Token": SECRET}


def deliver() -> int:
    """Process stored messages into tickets, then let the outbox send to the fake Bot API."""
    from hub.lines.telegram import close_adapters
    from hub.outbox import run_once
    from hub.processing import drain

    drain()

    async def go() -> int:
        try:
            return await run_once(limit=200, max_attempts=3)
        finally:
            await close_adapters()

    return asyncio.run(go())


def replies_to(tg, chat=CHAT):
    def read(_response) -> str:
        deliver()
        return "\n".join(tg.texts_to(chat))
    return read


def post(client, update: dict, secret: str | None = SECRET):
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    return client.post(PATH, json=update, headers=headers)


def fixture(name: str, **changes) -> dict:
    """A fixture update, optionally with another update_id / message fields."""
    data = load_fixture(FIXTURES, name)
    if "update_id" in changes:
        data["update_id"] = changes.pop("update_id")
    key = "message" if "message" in data else "edited_message"
    data[key].update(changes)
    return data


def raws(engine=None):
    from hub.db import get_engine
    from hub.models import RawMessage

    with Session(engine or get_engine()) as s:
        return list(s.scalars(select(RawMessage).order_by(RawMessage.id)))


def tickets():
    from hub.db import get_engine
    from hub.models import Ticket

    with Session(get_engine()) as s:
        return list(s.scalars(select(Ticket).order_by(Ticket.id)))


# --- one update at a time: the shared table runner ----------------------------------------

PID = f"{BOT_ID}:"
CASES = [
    Case("text naming a place is submitted", "message__text_with_place.json", channel="telegram",
         text="Jalan berlubang besar di depan SDN 2 Ngantru, Kecamatan Trenggalek, mohon diperbaiki",
         sender=str(CHAT), provider_id=PID + "10001", fields={"telegram_message_ids": [11]},
         reply="tercatat dengan kode", attachments=()),
    Case("text without a place asks for it", "message__text_without_place.json", stored=False,
         reply="Di mana lokasi kejadiannya?"),
    Case("an emergency is never held back", "message__text_emergency.json", channel="telegram",
         provider_id=PID + "10003", reply="tercatat dengan kode"),
    Case("text with nothing in it gets a polite answer, no ticket", "message__text_empty.json",
         channel="telegram", text="???", reply="kosong atau tidak dapat dibaca"),
    Case("/start welcomes", "command__start.json", stored=False, reply="Selamat datang"),
    Case("/status of an unknown code", "command__status.json", stored=False, reply="K7X2M9P tidak ditemukan"),
    Case("/status without a code explains", "command__status_without_code.json", stored=False,
         reply="/status diikuti kode"),
    Case("a location alone asks what happened", "message__location.json", stored=False,
         reply="ceritakan apa yang terjadi"),
    Case("a venue alone asks what happened", "message__venue.json", stored=False,
         reply="ceritakan apa yang terjadi"),
    Case("a photo alone asks what happened", "message__photo.json", stored=False,
         reply="ceritakan apa yang terjadi"),
    Case("photo with a caption naming a place", "message__photo_caption.json", channel="telegram",
         text="Tumpukan sampah di pinggir jalan Desa Ngantru kecamatan Trenggalek", provider_id=PID + "10010",
         reply="tercatat dengan kode", attachments=({"kind": "photo"},)),
    Case("an edit of nothing known is ignored", "edited_message__text.json", stored=False, reply=""),
    Case("group chatter is ignored", "message__group.json", stored=False, reply=""),
    Case("sticker gets a polite answer", "message__sticker.json", stored=False, reply="belum dapat kami proses"),
    Case("other update types are ignored", "callback_query.json", stored=False),
    # Nothing is lost: what the secret-holder sent is kept as a dead intake row an admin sees.
    Case("not an Update", "malformed__not_an_update.json", status=400, stored=True, raw_state="unreadable"),
    Case("message without chat", "malformed__message_without_chat.json", stored=True, raw_state="unreadable",
         channel="telegram"),
    Case("text that is not a string", "malformed__text_not_string.json", stored=True, raw_state="unreadable",
         channel="telegram"),
    # python-telegram-bot cannot parse it (forward_origin hidden_user without sender_user_name):
    # read by hand, a report like any other, sent to triage.
    Case("an update the library cannot parse", "message__forward_hidden_user_unparseable.json",
         channel="telegram", sender=str(CHAT), provider_id=PID + "10040", raw_state="pending",
         text="Banjir setinggi lutut di Desa Ngantru Kecamatan Trenggalek, warga butuh perahu",
         reply="tercatat dengan kode"),
    Case("wrong secret", "message__text_with_place.json", status=403, stored=False,
         headers={"X-Telegram-Bot-Api-Secret-Token": "guess"}),
    Case("missing secret", "message__text_with_place.json", status=403, stored=False,
         headers={"X-Telegram-Bot-Api-Secret-Token": ""}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_webhook(case, tclient, tg):
    run_case(tclient, PATH, FIXTURES, case, prepare=sign, reply_of=replies_to(tg))


def test_group_command_gets_a_polite_pointer_to_the_private_chat(tclient, tg):
    assert post(tclient, fixture("message__group_command.json")).status_code == 200
    deliver()
    assert tg.texts_to(-1001234567890) == ["Mohon kirim laporan lewat chat pribadi dengan bot ini, bukan di grup."]
    assert raws() == []


@pytest.mark.parametrize("body", [b'{"update_id": 1, "message": ', b"\xff\xfe", b"", b"[1, 2]", b'"text"'],
                         ids=["truncated", "not utf-8", "empty", "a list", "a string"])
def test_malformed_body_is_400_with_a_reason(tclient, body):
    r = tclient.post(PATH, content=body, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET,
                                                  "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["detail"]
    if body:  # kept as a dead intake row, once however often it is sent
        assert tclient.post(PATH, content=body, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET,
                                                         "Content-Type": "application/json"}).status_code == 400
        [row] = raws()
        assert row.state == "unreadable" and row.message["raw"]["body"]
        assert row.message["fields"]["unreadable"]
    else:
        assert raws() == []


def test_bad_secret_is_logged_without_the_secret(tclient, capsys):
    from hub.logging import configure_logging

    configure_logging("INFO", json=True)  # log to this test's captured stderr
    r = post(tclient, fixture("message__text_with_place.json"), secret=SECRET[:-1] + "X")
    assert r.status_code == 403
    err = capsys.readouterr().err
    assert "telegram.webhook_forbidden" in err and "mismatch" in err
    assert SECRET not in err and SECRET[:-1] not in err


@pytest.mark.parametrize("mode,token", [("off", TOKEN), ("polling", TOKEN), ("webhook", "")])
def test_webhook_is_404_unless_enabled(sqlite_url, seeded, tg, monkeypatch, mode, token):
    with _app_client(monkeypatch, tg, SIMPUL_TELEGRAM_MODE=mode, SIMPUL_TELEGRAM_BOT_TOKEN=token,
                     SIMPUL_TELEGRAM_POLL_TIMEOUT_S="1") as c:
        assert post(c, fixture("message__text_with_place.json")).status_code == 404


def test_no_secret_configured_refuses_everything(sqlite_url, seeded, tg, monkeypatch):
    with _app_client(monkeypatch, tg, SIMPUL_TELEGRAM_WEBHOOK_SECRET="") as c:
        assert post(c, fixture("message__text_with_place.json"), secret="").status_code == 403


# --- the conversation ---------------------------------------------------------------------

def test_report_then_shared_location_makes_one_ticket_with_coordinates(dbclient, tg):
    r = post(dbclient, fixture("message__text_without_place.json"))
    assert r.json()["action"] == "awaiting_location"
    assert raws() == []
    deliver()  # the question goes out before the citizen answers it
    r = post(dbclient, fixture("message__location.json", update_id=10020, message_id=30))
    assert r.json()["action"] == "submitted_with_location"
    [raw] = raws()
    assert raw.provider_id == f"{BOT_ID}:10002"  # the report's first update
    assert raw.text == "Lampu penerangan jalan mati sudah seminggu"
    assert raw.message["latitude"] == -8.0512 and raw.message["longitude"] == 111.7128
    assert raw.message["fields"]["telegram_message_ids"] == [12, 30]
    deliver()
    [t] = tickets()
    assert (t.latitude, t.longitude, t.reporter_chat_id, t.reporter_name) == (-8.0512, 111.7128, str(CHAT), "Sri Wahyuni")
    assert tg.texts_to(CHAT) == [
        "Di mana lokasi kejadiannya? Sebutkan desa dan kecamatan, atau kirim lokasi (Share Location).",
        f"Terima kasih, laporan Anda tercatat dengan kode {t.code} dan diteruskan ke "
        f"{tg_opd_name(t.opd_code)}. Ketik /status {t.code} untuk melihat perkembangannya."]


def tg_opd_name(code: str) -> str:
    from hub.db import get_engine
    from hub.tickets import opd_name

    with Session(get_engine()) as s:
        return opd_name(s, code)


def test_place_answered_in_words_lands_in_text_address_and_gazetteer(dbclient, tg):
    post(dbclient, fixture("message__text_without_place.json"))
    r = post(dbclient, fixture("message__text_with_place.json", update_id=10021, message_id=31,
                               text="Desa Sumbergedong, Kecamatan Trenggalek"))
    assert r.json()["action"] == "submitted_with_location"
    deliver()
    [t] = tickets()
    assert t.text_original == "Lampu penerangan jalan mati sudah seminggu\nLokasi: Desa Sumbergedong, Kecamatan Trenggalek"
    assert (t.kecamatan_code, t.desa_code) == ("35.03.11", "35.03.11.1007")
    assert t.address == "Desa Sumbergedong, Kecamatan Trenggalek"


def test_photo_first_then_text_attaches_the_photo_by_file_id(dbclient, tg):
    tg.add_file("AgACAgUAAxkBAAIBsmaLarge", b"\xff\xd8jpeg", "photos/file_7.jpg")
    assert post(dbclient, fixture("message__photo.json")).json()["action"] == "awaiting_text"
    r = post(dbclient, fixture("message__text_with_place.json", update_id=10022, message_id=32))
    assert r.json()["action"] == "submitted"
    deliver()
    [t] = tickets()
    assert t.attachments == [{"url": "telegram-file:AgACAgUAAxkBAAIBsmaLarge", "kind": "photo",
                              "mime": "image/jpeg", "name": "photos/file_7.jpg"}]
    assert [c.params["file_id"] for c in tg.calls("getFile")] == ["AgACAgUAAxkBAAIBsmaLarge"]
    assert t.kecamatan_code == "35.03.11"


def test_photo_while_waiting_for_the_place_is_kept_and_getfile_failure_loses_nothing(dbclient, tg):
    tg.fail("getFile", 500)
    post(dbclient, fixture("message__text_without_place.json"))
    r = post(dbclient, fixture("message__photo.json", update_id=10023, message_id=33))
    assert r.json()["action"] == "awaiting_location"
    post(dbclient, fixture("message__venue.json", update_id=10024, message_id=34))
    deliver()
    [t] = tickets()
    assert t.attachments[0]["url"] == "telegram-file:AgACAgUAAxkBAAIBsmaLarge"
    assert t.attachments[0]["name"] is None  # getFile failed: the file_id is still enough
    assert t.text_original.endswith("Lokasi: Alun-alun Trenggalek, Jl. Panglima Sudirman, Kelurahan Sutojayan, Trenggalek")
    assert (t.latitude, t.longitude) == (-8.0498, 111.7101)
    assert "Foto diterima dan dilampirkan pada laporan Anda." in tg.texts_to(CHAT)


def test_webhook_keeps_the_line_health_row(tclient):
    import hub.lines.telegram as line
    from hub.db import get_engine
    from hub.models import ChannelState

    line._last_health = 0.0
    post(tclient, fixture("command__start.json"))
    with Session(get_engine()) as s:
        state = s.get(ChannelState, "telegram")
    assert state.last_ok_at is not None and state.last_message_at is not None


def test_a_retried_update_is_handled_once(dbclient, tg):
    first = post(dbclient, fixture("message__text_without_place.json"))
    again = post(dbclient, fixture("message__text_without_place.json"))  # Telegram retries
    assert (first.json()["action"], again.json()["action"]) == ("awaiting_location", "duplicate")
    post(dbclient, fixture("message__text_with_place.json"))
    post(dbclient, fixture("message__text_with_place.json"))
    assert len(raws()) == 1  # the retry was not taken as the answer, nor stored twice
    deliver()
    assert tg.texts_to(CHAT).count(
        "Di mana lokasi kejadiannya? Sebutkan desa dan kecamatan, atau kirim lokasi (Share Location).") == 1


def test_updates_arriving_out_of_order_are_not_dropped(tclient):
    a = post(tclient, fixture("command__start.json", update_id=20002))
    b = post(tclient, fixture("message__text_with_place.json", update_id=20001))
    assert (a.json()["action"], b.json()["action"]) == ("welcome", "submitted")
    assert len(raws()) == 1


def test_edit_of_a_pending_report_replaces_its_text(tclient):
    post(tclient, fixture("message__text_without_place.json"))
    r = post(tclient, fixture("edited_message__text.json"))
    assert r.json()["action"] == "edit_applied"
    post(tclient, fixture("message__location.json", update_id=10030, message_id=40))
    assert raws()[0].text == "Lampu penerangan jalan mati sudah dua minggu"


def test_edit_after_submission_is_a_note_not_a_second_ticket(dbclient):
    post(dbclient, fixture("message__text_with_place.json"))
    deliver()
    r = post(dbclient, {"update_id": 10040, "edited_message": {
        **fixture("message__text_with_place.json")["message"], "edit_date": 1764320100,
        "text": "Jalan berlubang besar di depan SDN 2 Ngantru, sudah ada korban jatuh, NIK saya 3503111503900001"}})
    assert r.json()["action"] == "edit_noted"
    from hub.db import get_engine
    from hub.models import TicketEvent

    [t] = tickets()
    with Session(get_engine()) as s:
        notes = list(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id, TicketEvent.kind == "note")))
    assert len(tickets()) == 1 and len(raws()) == 1
    assert len(notes) == 1 and "sudah ada korban jatuh" in notes[0].note
    assert "3503111503900001" not in notes[0].note  # never a full NIK outside the raw store


def test_photo_right_after_a_submitted_report_is_added_to_its_ticket(tclient, tg):
    post(tclient, fixture("message__text_with_place.json"))
    deliver()
    r = post(tclient, fixture("message__photo.json", update_id=10050, message_id=50))
    assert r.json()["action"] == "attached_to_last_report"
    [t] = tickets()
    assert [a["url"] for a in t.attachments] == ["telegram-file:AgACAgUAAxkBAAIBsmaLarge"]
    deliver()
    assert "Foto diterima dan ditambahkan pada laporan Anda sebelumnya." in tg.texts_to(CHAT)


def test_cancel_drops_the_pending_report(tclient, tg):
    post(tclient, fixture("message__text_without_place.json"))
    r = post(tclient, fixture("command__start.json", update_id=10060, text="/batal",
                              entities=[{"offset": 0, "length": 6, "type": "bot_command"}]))
    assert r.json()["action"] == "cancelled"
    post(tclient, fixture("message__location.json", update_id=10061))
    assert raws() == []  # the location now starts a new report instead of completing the old one


def test_report_nobody_completes_is_submitted_without_a_place(dbclient):
    from hub.lines.telegram import submit_stale
    from hub.settings import get_settings

    post(dbclient, fixture("message__text_without_place.json"))
    assert submit_stale() == 0  # not yet
    later = datetime.now(timezone.utc) + timedelta(seconds=get_settings().telegram_ask_timeout_s + 1)
    assert submit_stale(now=later) == 1
    [raw] = raws()
    assert raw.text == "Lampu penerangan jalan mati sudah seminggu" and raw.provider_id == f"{BOT_ID}:10002"
    assert submit_stale(now=later) == 0
    # the citizen answers late: a new report starts, nothing is attached to the old one twice
    post(dbclient, fixture("message__location.json", update_id=10070, message_id=70))
    assert len(raws()) == 1


def test_status_is_told_only_to_the_chat_that_reported(dbclient, tg):
    post(dbclient, fixture("message__text_with_place.json"))
    deliver()
    [t] = tickets()
    post(dbclient, fixture("command__status.json", text=f"/status {t.code.lower()}"))
    other = {"id": 777002, "type": "private", "first_name": "Budi"}
    post(dbclient, fixture("command__status.json", update_id=10080, chat=other, text=f"/status {t.code}"))
    deliver()
    assert tg.texts_to(CHAT)[-1].startswith(f"Status laporan {t.code}: menunggu")
    assert tg.texts_to(777002) == [f"Kode laporan {t.code} tidak ditemukan. Periksa kembali kode Anda."]


def test_status_change_reaches_the_reporter_on_telegram(dbclient, tg, cfg):
    from hub.db import session_scope
    from hub.models import Ticket
    from hub.tickets import change_status

    post(dbclient, fixture("message__text_with_place.json"))
    deliver()
    with session_scope() as s:
        t = s.scalars(select(Ticket)).one()
        change_status(s, t, "selesai", "user:pupr", cfg, note="Lubang sudah ditambal")
        code = t.code
    deliver()
    assert tg.texts_to(CHAT)[-1].startswith(f"Laporan {code} telah selesai ditangani")
    assert "Keterangan: Lubang sudah ditambal" in tg.texts_to(CHAT)[-1]


def test_flood_from_one_chat_is_muted_but_nothing_is_lost(tclient, tg, monkeypatch):
    limit = 20
    for i in range(limit + 3):
        post(tclient, fixture("command__start.json", update_id=30000 + i, message_id=300 + i))
    for i in range(2):
        post(tclient, fixture("message__text_with_place.json", update_id=30100 + i, message_id=400 + i,
                              text=f"Jalan rusak nomor {i} di Desa Ngantru kecamatan Trenggalek"))
    assert len(raws()) == 2  # reports are stored even while the bot is muted
    deliver()
    sent = tg.texts_to(CHAT)
    assert sum(s.startswith("Selamat datang") for s in sent) == limit
    assert sum(s.startswith("Anda mengirim terlalu banyak pesan") for s in sent) == 1


# --- replies through the outbox when Telegram misbehaves ----------------------------------

@pytest.mark.parametrize("status,kw,state,retry_at_least", [
    (429, {"retry_after": 120}, "pending", 119),
    (500, {}, "pending", 0),
    (502, {}, "pending", 0),
    (403, {}, "dead", None),
    (400, {}, "dead", None),
], ids=["429 flood control", "500", "502", "403 blocked", "400 chat not found"])
def test_reply_failures_retry_or_park(tclient, tg, status, kw, state, retry_at_least):
    from hub.db import get_engine
    from hub.models import Outbox

    tg.fail("sendMessage", status, **kw)
    post(tclient, fixture("command__start.json"))
    before = datetime.now(timezone.utc)
    deliver()
    with Session(get_engine()) as s:
        [row] = list(s.scalars(select(Outbox).where(Outbox.kind == "reply")))
    assert row.state == state and row.attempts == 1
    assert tg.texts_to(CHAT) == []
    if retry_at_least is not None:
        wait = row.next_attempt_at.replace(tzinfo=timezone.utc) - before
        assert wait >= timedelta(seconds=retry_at_least)
    assert TOKEN not in (row.last_error or "")


def test_a_reply_queued_while_telegram_is_down_is_sent_later(tclient, tg):
    from hub.db import get_engine
    from hub.models import Outbox
    from sqlalchemy import update

    tg.fail("sendMessage", 500, times=1)
    post(tclient, fixture("command__start.json"))
    deliver()
    assert tg.texts_to(CHAT) == []
    with Session(get_engine()) as s:  # the backoff has passed
        s.execute(update(Outbox).values(next_attempt_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
        s.commit()
    deliver()
    assert tg.texts_to(CHAT) == [load_template("welcome")]


def load_template(name: str) -> str:
    from hub.config import regency_config
    from hub.settings import get_settings

    return regency_config(str(get_settings().config_dir)).templates[name]


def test_adapter_maps_timeouts_and_redacts_the_token(tg):
    from adapters.base import OutboundMessage, PermanentError, RetryableError
    from adapters.telegram import TelegramAdapter

    async def go():
        a = TelegramAdapter(TOKEN, tg.base_url, read_timeout=0.3)
        try:
            tg.fail("sendMessage", 200, delay_s=1.0)
            with pytest.raises(RetryableError, match="TimedOut"):
                await a.send(OutboundMessage("telegram", str(CHAT), "halo"))
            with pytest.raises(PermanentError, match="not a chat id"):
                await a.send(OutboundMessage("telegram", "+6281234567890", "halo"))
            tg.add_file("F9", b"photo-bytes", "photos/file_9.jpg")
            assert await a.file_path("F9") == "photos/file_9.jpg"
            assert await a.download("F9") == b"photo-bytes"
            assert (await a.get_me())["username"] == "simpul_test_bot"
        finally:
            await a.close()
        bad = TelegramAdapter("42:" + "x" * 35, tg.base_url)
        try:
            with pytest.raises(RetryableError) as exc:
                await bad.get_me()
            assert "x" * 35 not in str(exc.value)
        finally:
            await bad.close()

    asyncio.run(go())
    long = tg.calls("sendMessage")
    assert long and long[0].params["chat_id"] == CHAT


def test_library_log_lines_never_carry_the_token(caplog):
    import logging

    import hub.lines.telegram  # noqa: F401  (installs the filters)

    with caplog.at_level(logging.DEBUG):
        logging.getLogger("httpx").info('HTTP Request: POST http://127.0.0.1/bot%s/sendMessage "200 OK"', TOKEN)
        logging.getLogger("telegram.Bot").debug("Set Bot API URL: %s", f"https://api.telegram.org/bot{TOKEN}")
    assert len(caplog.records) == 2
    assert all(TOKEN not in r.getMessage() and "123456789:***" in r.getMessage() for r in caplog.records)


def test_long_texts_are_cut_to_telegrams_limit(tg):
    from adapters.base import OutboundMessage
    from adapters.telegram import MAX_TEXT, TelegramAdapter

    async def go():
        a = TelegramAdapter(TOKEN, tg.base_url)
        try:
            await a.send(OutboundMessage("telegram", str(CHAT), "a" * 5000))
        finally:
            await a.close()

    asyncio.run(go())
    assert len(tg.texts_to(CHAT)[0]) == MAX_TEXT


# --- polling and start-up -----------------------------------------------------------------

def _wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_polling_mode_turns_updates_into_tickets(sqlite_url, seeded, tg, monkeypatch):
    from hub.db import get_engine
    from hub.models import ChannelState

    tg.push_update(fixture("message__text_with_place.json"),
                   fixture("message__text_without_place.json"),
                   fixture("message__location.json", update_id=10020, message_id=30))
    tg.fail("getUpdates", 502, times=1)  # a hiccup first: the loop backs off and carries on
    with _app_client(monkeypatch, tg, SIMPUL_TELEGRAM_MODE="polling", SIMPUL_TELEGRAM_POLL_TIMEOUT_S="1"):
        assert _wait(lambda: len(raws()) == 2), tg.calls()
        assert _wait(lambda: any(c.params.get("offset") == 10021 for c in tg.calls("getUpdates")))
    assert tg.calls("deleteWebhook")
    deliver()
    assert len(tickets()) == 2
    assert {t.latitude for t in tickets()} == {None, -8.0512}
    with Session(get_engine()) as s:
        state = s.get(ChannelState, "telegram")
    assert state.cursor["offset"] == 10021 and state.last_ok_at is not None
    assert len(tg.texts_to(CHAT)) == 3  # ask_location + two receipts


def test_webhook_is_registered_at_start_up_with_the_secret(sqlite_url, seeded, tg, monkeypatch):
    with _app_client(monkeypatch, tg, SIMPUL_PUBLIC_URL="https://simpul.trenggalekkab.go.id"):
        assert _wait(lambda: tg.webhook is not None)
    assert tg.webhook["url"] == "https://simpul.trenggalekkab.go.id/webhooks/telegram"
    assert tg.webhook["secret_token"] == SECRET
    assert tg.webhook["allowed_updates"] == ["message", "edited_message"]


@pytest.mark.parametrize("env,problem", [({"SIMPUL_TELEGRAM_MODE": "longpoll"}, "SIMPUL_TELEGRAM_MODE"),
                                         ({"SIMPUL_TELEGRAM_WEBHOOK_SECRET": "has spaces!"}, "WEBHOOK_SECRET")])
def test_bad_line_settings_stop_start_up(sqlite_url, seeded, tg, monkeypatch, env, problem):
    with pytest.raises(ValueError, match=problem):
        with _app_client(monkeypatch, tg, **env):
            pass


def test_adapter_is_registered_by_name(tg):
    from adapters.base import Adapter, load_adapter
    from adapters.telegram import TelegramAdapter

    cls = load_adapter("telegram")
    assert cls is TelegramAdapter and cls.name == "telegram"
    adapter = cls(TOKEN, tg.base_url)
    assert isinstance(adapter, Adapter) and adapter.bot_id == str(BOT_ID)
    asyncio.run(adapter.close())


def test_fixture_files_are_valid_json_objects():
    for path in FIXTURES.glob("*.json"):
        assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict), path.name


def test_concurrent_deliveries_of_one_update_are_handled_once(db_url, seeded, tg, monkeypatch):
    """Telegram may retry while the first attempt still runs: the chat's lock decides."""
    from concurrent.futures import ThreadPoolExecutor

    from adapters.telegram import parse_update
    from hub.lines.telegram import handle_update
    from hub.models import Outbox

    _configure(monkeypatch, tg)
    update = parse_update(fixture("message__text_without_place.json"))
    others = [parse_update(fixture("command__start.json", update_id=40000 + i)) for i in range(4)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda u: handle_update(u, str(BOT_ID)).action, [update] * 4 + others))
    assert sorted(outcomes[:4]) == ["awaiting_location", "duplicate", "duplicate", "duplicate"]
    assert outcomes[4:] == ["welcome"] * 4
    from hub.db import get_engine

    with Session(get_engine()) as s:
        assert s.scalar(select(func.count()).select_from(Outbox)) == 5  # one ask_location, four welcomes


def test_end_to_end_with_workers_a_polled_report_gets_its_receipt(sqlite_url, seeded, tg, monkeypatch):
    """No manual draining: the scheduler processes the report and the outbox worker answers."""
    from fastapi.testclient import TestClient

    from hub.app import create_app

    _configure(monkeypatch, tg, SIMPUL_TELEGRAM_MODE="polling", SIMPUL_TELEGRAM_POLL_TIMEOUT_S="1",
               SIMPUL_OUTBOX_INTERVAL_S="0.3")
    tg.push_update(fixture("message__text_with_place.json"))
    with TestClient(create_app(workers=True)):
        assert _wait(lambda: any("tercatat dengan kode" in t for t in tg.texts_to(CHAT)), timeout=20), tg.calls()
    [t] = tickets()
    assert tg.texts_to(CHAT) == [f"Terima kasih, laporan Anda tercatat dengan kode {t.code} dan diteruskan ke "
                                 f"{tg_opd_name(t.opd_code)}. Ketik /status {t.code} untuk melihat perkembangannya."]


def test_reporter_answers_belum_beres_on_telegram_and_the_ticket_reopens(dbclient, tg, cfg):
    """Issue #14 item 5: the citizen's answer by Telegram, words or /belum; strangers cannot."""
    from hub.db import session_scope
    from hub.models import Ticket
    from hub.tickets import change_status

    post(dbclient, fixture("message__text_with_place.json"))
    deliver()
    with session_scope() as s:
        t = s.scalars(select(Ticket)).one()
        change_status(s, t, "selesai", "user:pupr", cfg, note="Lampu sudah diganti")
        code = t.code
    other = {"id": 777003, "type": "private", "first_name": "Budi"}
    post(dbclient, fixture("command__status.json", update_id=10090, chat=other, text=f"/belum {code}"))
    post(dbclient, fixture("command__status.json", update_id=10091, text=f"BELUM {code.lower()}"))
    deliver()
    with session_scope() as s:
        t = s.scalars(select(Ticket)).one()
        assert t.status == "menunggu"
    assert any("dibuka kembali" in x for x in tg.texts_to(CHAT))
    assert tg.texts_to(777003) == [f"Kode laporan {code} tidak ditemukan. Periksa kembali kode Anda."]


# --- updates the library cannot read (issue #13, item 1) ----------------------------------

def test_an_update_the_library_refuses_becomes_a_triage_ticket_with_its_raw_payload(dbclient, tg):
    from telegram import Update

    update = fixture("message__forward_hidden_user_unparseable.json")
    with pytest.raises(Exception):  # the real library refuses it: that is the case under test
        Update.de_json(update, None)
    r = post(dbclient, update)
    assert r.status_code == 200, r.text
    assert post(dbclient, update).status_code == 200  # Telegram's retry: still one row
    [raw] = raws()
    assert raw.state == "pending" and raw.message["raw"]["updates"] == [update]
    assert "hidden_user" in json.dumps(raw.message["raw"]) and "python-telegram-bot" in raw.message["fields"]["unreadable"]
    deliver()
    [t] = tickets()
    assert t.opd_code == "DISKOMINFO" and t.needs_triage and "unreadable" in t.routing_rule
    assert "Banjir setinggi lutut" in t.text_original and t.reporter_chat_id == str(CHAT)
    assert any("tercatat dengan kode" in m for m in tg.texts_to(CHAT))


def test_polling_reads_past_an_update_the_library_refuses(db_url, seeded, tg, monkeypatch):
    """getUpdates used to fail as a whole on one bad update: the loop died and the offset
    never moved. Now every update is read on its own and the offset passes all of them."""
    from hub.db import get_engine
    from hub.models import ChannelState

    tg.push_update(fixture("message__text_with_place.json", update_id=20001),
                   fixture("message__forward_hidden_user_unparseable.json", update_id=20002),
                   load_fixture(FIXTURES, "malformed__message_without_chat.json") | {"update_id": 20003},
                   fixture("message__text_emergency.json", update_id=20004))
    with _app_client(monkeypatch, tg, SIMPUL_TELEGRAM_MODE="polling", SIMPUL_TELEGRAM_POLL_TIMEOUT_S="1"):
        assert _wait(lambda: len(raws()) == 4), tg.calls("getUpdates")
        assert _wait(lambda: any(c.params.get("offset") == 20005 for c in tg.calls("getUpdates")))
    states = sorted(r.state for r in raws())
    assert states == ["pending", "pending", "pending", "unreadable"]
    deliver()
    assert len(tickets()) == 3
    with Session(get_engine()) as s:
        assert s.get(ChannelState, "telegram").cursor["offset"] == 20005


def test_a_stopped_polling_line_shows_in_readyz_metrics_and_the_admin_page(sqlite_url, seeded, tg, cfg,
                                                                           monkeypatch):
    from tests.web.conftest import login, seed_known

    tg.push_update(load_fixture(FIXTURES, "malformed__not_an_update.json"))  # also a dead intake row
    with _app_client(monkeypatch, tg, SIMPUL_TELEGRAM_MODE="polling", SIMPUL_TELEGRAM_POLL_TIMEOUT_S="1") as c:
        assert _wait(lambda: len(raws()) == 1)
        assert _wait(lambda: c.get("/readyz").status_code == 200), c.get("/readyz").text
        assert c.get("/readyz").json()["lines"]["telegram"]["running"] is True
        assert 'simpul_line_up{line="telegram"} 1.0' in c.get("/metrics").text
        [task] = c.app.state.telegram_tasks  # the loop dies (as it did on a bad update before)
        c.portal.call(lambda: _cancel(task))
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["stopped"] == ["telegram"], r.text
        metrics = c.get("/metrics").text
        assert 'simpul_line_up{line="telegram"} 0.0' in metrics
        assert "simpul_intake_unreadable 1.0" in metrics
        seed_known(cfg)
        login(c, "admin")
        page = c.get("/admin").text
        assert "BERHENTI" in page and "polling loop ended" in page
        assert "tidak terbaca (1)" in page


async def _cancel(task) -> None:
    task.cancel()
    try:
        await task
    except BaseException:
        pass


# --- one message in several updates (issue #13 item 3, the whole kind) --------------------

@pytest.mark.parametrize("order", [(1, 2, 3), (2, 1, 3), (3, 1, 2)], ids=["in order", "caption first", "mixed"])
def test_an_album_is_one_ticket_with_every_photo(dbclient, tg, order):
    """An album arrives as one update per photo sharing a media_group_id, the caption on one."""
    from hub.lines.telegram import flush

    # an earlier report of the same chat, submitted minutes ago: the album must not land on it
    post(dbclient, fixture("message__text_with_place.json", update_id=10049, message_id=49))
    deliver()
    for i in order:
        assert post(dbclient, fixture(f"message__album_{i}.json")).status_code == 200
    deliver()
    flush(str(CHAT))
    from hub.db import get_engine
    from hub.models import TicketEvent

    with_album = [t for t in tickets() if t.attachments]
    assert len(with_album) == 1, [(t.text_original, t.attachments) for t in tickets()]
    files = sorted(a["url"] for a in with_album[0].attachments)
    assert files == [f"telegram-file:AgACAgUAAxkBAAIBalbum{i}Large" for i in (1, 2, 3)]
    with Session(get_engine()) as s:
        notes = [e.note for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == with_album[0].id))]
    said = with_album[0].text_original + " ".join(n or "" for n in notes)
    assert "Jembatan gantung putus" in said  # the caption, wherever it sat in the album
    if order[0] == 2:  # the caption came first: the album is a report of its own
        assert len(tickets()) == 2 and "Jembatan gantung" in with_album[0].text_original


def test_a_photo_is_fetched_into_the_hub_storage_on_intake(tclient, tg, tmp_path, monkeypatch):
    """Issue #13 item 5: Telegram's file may be gone later and its URL carries the token."""
    from hub import media
    from hub.settings import reset_settings

    monkeypatch.setenv("SIMPUL_DATA_DIR", str(tmp_path))
    reset_settings()

    content = b"\xff\xd8\xff\xe0" + b"\x00" * 200
    tg.add_file("AgACAgUAAxkBAAIBsmaLarge", content)
    assert post(tclient, fixture("message__photo_caption.json")).status_code == 200
    assert media.telegram_path("AgACAgUAAxkBAAIBsmaLarge").read_bytes() == content
    deliver()
    [t] = tickets()
    url = media.signed_url(t.code, 0).split("127.0.0.1:8000", 1)[1]
    r = tclient.get(url)
    assert r.status_code == 200 and r.content == content and r.headers["content-type"] == "image/jpeg"


# --- outgoing table: the real Bot's sendMessage against the fake Bot API ------------------------

TG_REPLY = OutboundMessage("telegram", str(CHAT), "Laporan K7X2M9P selesai.")
OUTGOING = [
    OutCase("text reply", TG_REPLY,
            request={"chat_id": CHAT, "text": "Laporan K7X2M9P selesai.",
                     "link_preview_options": {"is_disabled": True}}),
    OutCase("negative (group) chat id", OutboundMessage("telegram", "-1001234567890", "Halo"),
            request={"chat_id": -1001234567890, "text": "Halo", "link_preview_options": {"is_disabled": True}}),
    OutCase("429 with retry_after", TG_REPLY, error=RetryableError, retry_after=33.0,
            fail=dict(status=429, retry_after=33)),
    OutCase("400 chat not found", TG_REPLY, error=PermanentError, fail=dict(status=400)),
    OutCase("403 blocked by the user", TG_REPLY, error=PermanentError, fail=dict(status=403)),
    OutCase("500", TG_REPLY, error=RetryableError, fail=dict(status=500)),
    OutCase("502", TG_REPLY, error=RetryableError, fail=dict(status=502)),
    OutCase("not a chat id", OutboundMessage("telegram", "+6281234567890", "Halo"), error=PermanentError),
]


@pytest.mark.parametrize("case", OUTGOING, ids=lambda c: c.label)
def test_outgoing(case, tg, capfd):
    """The exact sendMessage python-telegram-bot puts on the wire, or the typed error; neither the
    error text (it reaches logs and the dashboard) nor the logs carry the bot token."""
    import logging

    import hub.lines.telegram  # noqa: F401  (installs the log filters that redact the token)
    from adapters.telegram import TelegramAdapter
    from hub.logging import configure_logging

    configure_logging("DEBUG", json=True)  # httpx and the Bot log every request URL at these levels
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    if case.fail:
        tg.fail("sendMessage", **case.fail)

    async def send(message):
        a = TelegramAdapter(TOKEN, tg.base_url)  # its httpx client belongs to this event loop
        try:
            return await a.send(message)
        finally:
            await a.close()

    run_outgoing(case, send, lambda: [c.params for c in tg.calls("sendMessage")],
                 secrets=(TOKEN, "6281234567890"),
                 logs=lambda: "".join(capfd.readouterr()))


# --- a citizen's quick follow-up texts (issue #13 item 3) ----------------------------------

@pytest.mark.parametrize("processed_between", [True, False], ids=["ticket made", "report still pending"])
def test_a_follow_up_text_joins_the_chats_report_and_is_not_asked_for_a_place(dbclient, tg, processed_between):
    """The same rule as SMS and WhatsApp (hub.pieces, normalizer.followup): the conversation does
    not ask where a follow-up happened, and processing appends it to the report."""
    now = int(time.time())
    first = post(dbclient, fixture("message__text_with_place.json", update_id=40001, message_id=501, date=now))
    assert first.json()["action"] == "submitted"
    if processed_between:
        deliver()
    follow = post(dbclient, fixture("message__text_without_place.json", update_id=40002, message_id=502,
                                    date=now + 60, text="oh iya lokasinya dket masjid al ikhlas, mohon segera"))
    assert follow.json()["action"] == "submitted_follow_up"
    deliver()
    [t] = tickets()
    assert t.text_original.endswith("] oh iya lokasinya dket masjid al ikhlas, mohon segera")
    sent = tg.texts_to(CHAT)
    assert sum("tercatat dengan kode" in s for s in sent) == 1  # one receipt
    assert sum(s == f"Tambahan diterima dan digabungkan ke laporan {t.code}." for s in sent) == \
        (1 if processed_between else 0)  # in one batch with the report: its receipt tells it all
    assert not any(s.startswith("Di mana lokasi") for s in sent)
    # another matter from the same chat a minute later is a report of its own, asked about as always
    other = post(dbclient, fixture("message__text_without_place.json", update_id=40003, message_id=503,
                                   date=now + 120, text="Sampah menumpuk di pasar"))
    assert other.json()["action"] == "awaiting_location"
    post(dbclient, fixture("message__text_without_place.json", update_id=40004, message_id=504,
                           date=now + 150, text="Desa Karangan kec Karangan"))
    deliver()
    assert len(tickets()) == 2
