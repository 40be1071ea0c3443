"""Twilio line: webhook fixtures through the shared runner, rate limit, dedup, receipts, and
replies sent with the real twilio Client to a local fake Twilio API."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from sqlmodel import Session
from twilio.request_validator import RequestValidator

from adapters.base import OutboundMessage, PermanentError, RetryableError
from adapters.twilio_sms import TwilioAdapter
from tests.lines.runner import Case, OutCase, app_client, load_fixture, run_case, run_outgoing, use_env
from tests.fakes.twilio_api import FakeTwilio

FIXTURES = Path(__file__).parent / "fixtures"
PUBLIC = "https://simpul.trenggalekkab.go.id"
PATH = "/webhooks/twilio/sms"
TOKEN = "test-auth-token"
ACCOUNT = "AC" + "0" * 32
SMS_FROM = "+6285100000000"
WA_FROM = "whatsapp:+14155238886"




@pytest.fixture
def fake_twilio():
    fake = FakeTwilio(account_sid=ACCOUNT, auth_token=TOKEN).start()
    yield fake
    fake.stop()


def _env(monkeypatch, fake: FakeTwilio | None, **extra) -> None:
    env = {"SIMPUL_PUBLIC_URL": PUBLIC, "SIMPUL_TWILIO_ACCOUNT_SID": ACCOUNT, "SIMPUL_TWILIO_AUTH_TOKEN": TOKEN,
           "SIMPUL_TWILIO_FROM_NUMBER": SMS_FROM, "SIMPUL_TWILIO_WHATSAPP_FROM": WA_FROM,
           "SIMPUL_SMS_PROVIDER": "twilio", "SIMPUL_GAMMU_DATABASE_URL": ""}
    if fake is not None:
        env["SIMPUL_TWILIO_BASE_URL"] = fake.url
    env.update(extra)
    use_env(monkeypatch, env)


def _client(monkeypatch, fake_twilio):
    _env(monkeypatch, fake_twilio)
    return app_client()


@pytest.fixture
def twilio_client(sqlite_url, monkeypatch, fake_twilio, seeded):
    """Behaviour rows: SQLite is enough."""
    with _client(monkeypatch, fake_twilio) as c:
        yield c


@pytest.fixture
def twilio_client_db(db_url, monkeypatch, fake_twilio, seeded):
    """Storage behaviour (dedup, receipts, outbox): SQLite and PostgreSQL."""
    with _client(monkeypatch, fake_twilio) as c:
        yield c


def sign(url: str, body, headers: dict[str, str]) -> dict[str, str]:
    params = dict(body)
    headers["X-Twilio-Signature"] = RequestValidator(TOKEN).compute_signature(url, params)
    return headers


def post(client, fixture: str, headers: dict[str, str] | None = None, **override):
    data = load_fixture(FIXTURES, fixture)
    params = dict(data.items() if isinstance(data, dict) else data)
    params.update(override)
    h = sign(PUBLIC + PATH, params, {"Content-Type": "application/x-www-form-urlencoded"})
    h.update(headers or {})
    return client.post(PATH, content=urlencode(params).encode(), headers=h)


CASES = [
    Case("sms text", "message__sms_text.json", channel="sms", sender="+6281234567890",
         text="Jalan di desa Ngadirenggo kecamatan Pogalan rusak parah, banyak lubang",
         provider_id="SM11111111111111111111111111111101", reply="Laporan Anda diterima dengan kode",
         fields={"receipt_sent": True}),
    Case("sms raw form body", "message__sms_form_raw.txt", channel="sms", sender="+6281234567893",
         text="Sampah menumpuk di pasar Pogalan, bau sekali", provider_id="SM11111111111111111111111111111110",
         reply="kirim CEK"),
    Case("sms dukcapil keyword", "message__sms_keyword.json", channel="sms", sender="+6281234567892",
         provider_id="SM11111111111111111111111111111102", reply="diterima",
         fields={"keyword": "KTP", "nik": "3503114506900002", "nama": "Siti Aminah",
                 "keterangan": "sudah 3 bulan belum jadi"}),
    Case("whatsapp text", "message__whatsapp_text.json", channel="whatsapp", sender="whatsapp:+6281234567891",
         provider_id="SM11111111111111111111111111111103", reply="<Message>Laporan Anda diterima"),
    Case("whatsapp photo", "message__whatsapp_photo.json", channel="whatsapp",
         text="Pohon tumbang menutup jalan", provider_id="MM11111111111111111111111111111104", reply="diterima",
         attachments=({"kind": "photo", "mime": "image/jpeg"},)),
    Case("whatsapp location", "message__whatsapp_location.json", channel="whatsapp",
         provider_id="SM11111111111111111111111111111105", reply="diterima",
         fields={"alamat": "Jl. Soekarno-Hatta"}, coordinates=(-8.0503, 111.7081)),
    Case("empty sms: polite answer, no ticket", "message__sms_empty.json", stored=False,
         reply="Pesan Anda kosong atau tidak dapat dibaca"),
    Case("binary sms: polite answer, no ticket", "message__sms_binary.json", stored=False,
         reply="tidak dapat dibaca"),
    Case("status query for an unknown code", "message__sms_status_query.json", stored=False,
         reply="Kode laporan ABCDEFG tidak ditemukan"),
    # Signed by Twilio but not readable in full: nothing is lost (issue #13 item 1). With a sender
    # it is a ticket for triage; without one a dead intake row an admin sees, and a 400.
    Case("missing MessageSid", "message__missing_sid.json", channel="sms", sender="+6281234567890",
         raw_state="pending", fields={"unreadable": "twilio: MessageSid is missing"}, reply="kode"),
    Case("no sender at all", "message__no_sender.json", status=400, stored=True, raw_state="unreadable",
         reply="From is missing"),
    Case("NumMedia without MediaUrl", "message__bad_media.json", channel="whatsapp",
         sender="whatsapp:+6281234567891", provider_id="MM11111111111111111111111111111109",
         raw_state="pending", fields={"unreadable": "twilio: MediaUrl1 is missing (NumMedia=2)"},
         reply="kode"),
    Case("bad signature", "message__sms_text.json", headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
         status=403, stored=False),
    Case("missing signature", "message__sms_text.json", headers={"X-Twilio-Signature": ""},
         status=403, stored=False),
    Case("signed for another URL", "message__sms_text.json", status=403, stored=False,
         path_suffix="?utm=1"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_webhook_fixtures(case, twilio_client):
    prepare = sign if case.path_suffix == "" else (lambda url, body, h: sign(PUBLIC + PATH, body, h))
    response, stored = run_case(twilio_client, PATH, FIXTURES, case, encoding="form", prepare=prepare,
                                base_url=PUBLIC)
    if case.status == 200:
        assert response.headers["content-type"].startswith("application/xml")
        assert response.text.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>')
    if stored is not None and stored.state != "unreadable":
        assert stored.ticket_code in response.text
    if stored is not None and stored.state == "unreadable":  # the form as Twilio sent it
        assert "SM0000000000000000000000000000NOFROM" in stored.message["raw"]["body"] and stored.sender is None
    if case.label == "whatsapp photo":
        att = stored.message["attachments"]
        assert att[0]["kind"] == "photo" and att[0]["mime"] == "image/jpeg"
    if case.label == "whatsapp location":
        assert (stored.message["latitude"], stored.message["longitude"]) == (-8.0503, 111.7081)


def test_bad_signature_is_logged_without_the_phone(twilio_client, capfd):
    from hub.logging import configure_logging

    configure_logging("INFO", json=True)  # bind the log stream to this test's captured stderr
    r = post(twilio_client, "message__sms_text.json", headers={"X-Twilio-Signature": "AAAA"})
    assert r.status_code == 403
    out = capfd.readouterr()
    logged = out.out + out.err
    assert "twilio.bad_signature" in logged
    assert "6281234567890" not in logged and TOKEN not in logged


def test_retry_of_the_same_message_sid_gets_the_same_code_and_one_row(twilio_client_db):
    from hub.db import get_engine
    from hub.models import RawMessage

    first = post(twilio_client_db, "message__sms_text.json")
    again = post(twilio_client_db, "message__sms_text.json", Body="teks lain, MessageSid sama")
    assert first.status_code == again.status_code == 200
    assert first.text == again.text
    with Session(get_engine()) as s:
        assert len(s.scalars(select(RawMessage)).all()) == 1


def test_receipt_is_answered_once_then_status_changes_go_out_through_twilio(twilio_client_db, fake_twilio, cfg):
    from hub.db import get_engine, session_scope
    from hub.models import Outbox, Ticket
    from hub.outbox import run_once
    from hub.processing import drain
    from hub.tickets import change_status

    r = post(twilio_client_db, "message__sms_text.json")
    wa = post(twilio_client_db, "message__whatsapp_text.json")
    assert r.status_code == wa.status_code == 200
    drain()
    with Session(get_engine()) as s:
        tickets = {t.channel: t for t in s.scalars(select(Ticket))}
        assert set(tickets) == {"sms", "whatsapp"}
        assert tickets["sms"].reporter_phone == "+6281234567890"
        assert tickets["whatsapp"].reporter_phone == "+6281234567891"
        # The TwiML answer was the receipt: no second receipt in the outbox.
        assert s.scalars(select(Outbox).where(Outbox.kind == "reply")).all() == []
    with session_scope() as s:
        for t in s.scalars(select(Ticket)):
            change_status(s, t, "diproses", "user:test", cfg, note="Petugas sudah ke lokasi")
    assert asyncio.run(run_once(kinds=["reply"])) == 2
    sent = {m["To"]: m for m in fake_twilio.sent}
    sms = sent["+6281234567890"]
    assert sms["From"] == SMS_FROM
    assert tickets["sms"].code in sms["Body"] and "sedang diproses" in sms["Body"]
    assert "Petugas sudah ke lokasi" in sms["Body"]
    whatsapp = sent["whatsapp:+6281234567891"]
    assert whatsapp["From"] == WA_FROM and tickets["whatsapp"].code in whatsapp["Body"]
    with Session(get_engine()) as s:
        assert {o.state for o in s.scalars(select(Outbox).where(Outbox.kind == "reply"))} == {"done"}


def test_cek_answers_the_reporter_only(twilio_client):
    from hub.processing import drain

    r = post(twilio_client, "message__sms_text.json")
    drain()
    code = r.text.split("kode ")[1].split(".")[0]
    mine = post(twilio_client, "message__sms_status_query.json", Body=f"CEK {code}")
    assert f"Status laporan {code}: menunggu" in mine.text
    other = post(twilio_client, "message__sms_status_query.json", Body=f"cek {code}", From="+6281299999999",
                 MessageSid="SM11111111111111111111111111119999")
    assert "tidak ditemukan" in other.text and "menunggu" not in other.text


def test_flood_from_one_number_is_kept_but_held(db_url, monkeypatch, fake_twilio, seeded):
    from fastapi.testclient import TestClient

    from hub.app import create_app
    from hub.db import get_engine
    from hub.lines.ratelimit import release_held
    from hub.models import Outbox, RawMessage, Ticket
    from hub.processing import drain

    _env(monkeypatch, fake_twilio, SIMPUL_RATE_LIMIT_PER_SENDER="3")
    texts = ["Jalan rusak di desa Ngadirenggo", "Lampu jalan mati di Pogalan", "Sampah menumpuk di pasar",
             "Pohon tumbang di Karangan", "Air PDAM tidak mengalir di Durenan"]
    with TestClient(create_app(workers=False)) as c:
        answers = [post(c, "message__sms_text.json", Body=t, MessageSid=f"SM{i:032d}").text
                   for i, t in enumerate(texts)]
        retry = post(c, "message__sms_text.json", Body=texts[4], MessageSid=f"SM{4:032d}").text
        emergency = post(c, "message__sms_text.json", MessageSid=f"SM{9:032d}",
                         Body="Tolong banjir bandang, rumah kami terendam, ada warga hanyut di desa Karangan").text
    assert "diterima dengan kode" in emergency  # an emergency is never held back
    assert all("diterima dengan kode" in a for a in answers[:3])
    assert "terlalu banyak pesan" in answers[3] and "diterima" not in answers[3]
    assert answers[4].endswith("<Response />")  # told once per window, not once per message
    assert retry == answers[4]
    with Session(get_engine()) as s:
        states = [r.state for r in s.scalars(select(RawMessage).order_by(RawMessage.id))]
    assert states == ["pending"] * 3 + ["held"] * 2 + ["pending"]
    drain()
    with Session(get_engine()) as s:
        tickets = s.scalars(select(Ticket).order_by(Ticket.id)).all()
        assert len(tickets) == 4  # the OPD is not flooded
        assert tickets[-1].urgency == "darurat" and tickets[-1].fields.get("receipt_sent")
        assert s.scalars(select(Outbox).where(Outbox.kind == "reply")).all() == []  # TwiML was the receipt
    assert release_held(channel="sms", sender="+6281234567890") == 2
    drain()
    with Session(get_engine()) as s:
        assert len(s.scalars(select(Ticket)).all()) == 6  # nothing was lost
        released = s.scalars(select(Outbox).where(Outbox.kind == "reply")).all()
    assert len(released) == 2 and all("diterima dengan kode" in r.payload["text"] for r in released)


def test_proxy_headers_only_count_when_trusted(sqlite_url, monkeypatch, fake_twilio, seeded):
    from fastapi.testclient import TestClient

    from hub.app import create_app

    proxied = "https://pengaduan.trenggalekkab.go.id" + PATH
    params = dict(load_fixture(FIXTURES, "message__sms_text.json"))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "pengaduan.trenggalekkab.go.id",
               "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(proxied, params)}
    for trust, expected in (("false", 403), ("true", 200)):
        _env(monkeypatch, fake_twilio, SIMPUL_TRUST_PROXY=trust)
        with TestClient(create_app(workers=False)) as c:
            assert c.post(PATH, content=urlencode(params).encode(), headers=headers).status_code == expected


# -- sending: the real twilio Client against the fake Twilio API -----------------------------------
def _adapter(fake: FakeTwilio, **kw) -> TwilioAdapter:
    args = dict(account_sid=ACCOUNT, auth_token=TOKEN, from_number=SMS_FROM, whatsapp_from=WA_FROM,
                base_url=fake.url)
    args.update(kw)
    return TwilioAdapter(**args)


def test_send_sms_and_whatsapp(fake_twilio):
    a = _adapter(fake_twilio)
    res = asyncio.run(a.send(OutboundMessage("sms", "+6281234567890", "Laporan K7X2M9P selesai.")))
    assert res.provider_id.startswith("SM") and res.detail["status"] == "queued"
    asyncio.run(a.send(OutboundMessage("whatsapp", "+6281234567891", "Halo")))
    req = fake_twilio.requests
    assert req[0].path == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert req[0].form == {"To": "+6281234567890", "From": SMS_FROM, "Body": "Laporan K7X2M9P selesai."}
    assert req[1].form["To"] == "whatsapp:+6281234567891" and req[1].form["From"] == WA_FROM


SMS = OutboundMessage("sms", "+6281234567890", "Laporan K7X2M9P selesai.")
OUTGOING = [
    OutCase("sms", SMS, request={"To": "+6281234567890", "From": SMS_FROM, "Body": "Laporan K7X2M9P selesai."}),
    OutCase("whatsapp", OutboundMessage("whatsapp", "+6281234567891", "Halo"),
            request={"To": "whatsapp:+6281234567891", "From": WA_FROM, "Body": "Halo"}),
    OutCase("429 with Retry-After", SMS, error=RetryableError, retry_after=30.0,
            fail=dict(status=429, code=20429, retry_after="30")),
    OutCase("500", SMS, error=RetryableError, fail=dict(status=500, code=20500)),
    OutCase("503", SMS, error=RetryableError, fail=dict(status=503, code=20503)),
    OutCase("invalid To", SMS, error=PermanentError, fail=dict(status=400, code=21211)),
    OutCase("unsubscribed", SMS, error=PermanentError, fail=dict(status=400, code=21610)),
    OutCase("WhatsApp window closed", SMS, error=PermanentError, fail=dict(status=400, code=63016)),
]


@pytest.mark.parametrize("case", OUTGOING, ids=lambda c: c.label)
def test_outgoing(case, fake_twilio, capfd):
    """The exact request Twilio gets, or the typed error; error texts end up in logs and the
    dashboard, so neither they nor the logs carry the number or the token."""
    from hub.logging import configure_logging

    configure_logging("INFO", json=True)  # what the send logs, into this test's capture
    if case.fail:
        fake_twilio.fail_next(message="The 'To' number +6281234567890 is not valid", **case.fail)
    run_outgoing(case, _adapter(fake_twilio).send, lambda: fake_twilio.sent, secrets=("6281234567890", TOKEN),
                 logs=lambda: "".join(capfd.readouterr()))


def test_wrong_credentials_are_permanent(fake_twilio):
    with pytest.raises(PermanentError, match="20003"):
        asyncio.run(_adapter(fake_twilio, auth_token="wrong").send(OutboundMessage("sms", "+6281234567890", "x")))


def test_timeout_and_unreachable_are_retryable(fake_twilio):
    fake_twilio.delay_s = 1.0
    with pytest.raises(RetryableError, match="unreachable"):
        asyncio.run(_adapter(fake_twilio, timeout_s=0.2).send(OutboundMessage("sms", "+6281234567890", "x")))
    url = fake_twilio.url
    fake_twilio.stop()
    with pytest.raises(RetryableError):
        asyncio.run(_adapter(fake_twilio, base_url=url).send(OutboundMessage("sms", "+6281234567890", "x")))
    fake_twilio.start()  # so the fixture can stop it


def test_missing_whatsapp_sender_is_permanent(fake_twilio):
    with pytest.raises(PermanentError, match="WhatsApp"):
        asyncio.run(_adapter(fake_twilio, whatsapp_from=None).send(OutboundMessage("whatsapp", "+62812", "x")))


def test_outbox_honours_retry_after(twilio_client_db, fake_twilio, cfg):
    from datetime import datetime, timedelta, timezone

    from hub.db import get_engine, session_scope
    from hub.models import Outbox
    from hub.outbox import run_once
    from hub.replies import queue_text

    with session_scope() as s:
        queue_text(s, None, "sms", "+6281234567890", "Laporan K7X2M9P sedang diproses.")
    fake_twilio.fail_next(429, 20429, "Too Many Requests", retry_after="120")
    before = datetime.now(timezone.utc)
    assert asyncio.run(run_once(kinds=["reply"])) == 1
    with Session(get_engine()) as s:
        row = s.scalars(select(Outbox)).one()
    assert row.state == "pending" and row.attempts == 1 and "429" in row.last_error
    due = row.next_attempt_at if row.next_attempt_at.tzinfo else row.next_attempt_at.replace(tzinfo=timezone.utc)
    assert due >= before + timedelta(seconds=119)
    assert json.dumps(fake_twilio.sent)  # the request reached the fake


def test_storage_failure_is_503_and_the_retry_is_stored(sqlite_url, monkeypatch, fake_twilio, seeded):
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from hub.app import create_app
    from hub.db import get_engine
    from hub.models import RawMessage

    _env(monkeypatch, fake_twilio)
    with get_engine().begin() as c:  # the disk refuses writes to the raw store
        c.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON raw_messages "
                       "BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
    with TestClient(create_app(workers=False)) as c:
        failed = post(c, "message__sms_text.json")
        assert failed.status_code == 503 and "diterima" not in failed.text  # nothing acknowledged
        with get_engine().begin() as conn:
            conn.execute(text("DROP TRIGGER refuse"))
        retried = post(c, "message__sms_text.json")  # Twilio (or the citizen) tries again
    assert retried.status_code == 200 and "diterima dengan kode" in retried.text
    with Session(get_engine()) as s:
        assert len(s.scalars(select(RawMessage)).all()) == 1


# --- a location pin or media alone (issue #13 item 2) -------------------------------------

def _tickets_and_replies():
    from hub.db import get_engine
    from hub.models import Outbox, RawMessage, Ticket, TicketEvent

    with Session(get_engine()) as s:
        tickets = list(s.scalars(select(Ticket).order_by(Ticket.id)))
        replies = [o.payload["text"] for o in s.scalars(select(Outbox).where(Outbox.kind == "reply").order_by(Outbox.id))]
        notes = [e.note for e in s.scalars(select(TicketEvent).where(TicketEvent.kind == "note").order_by(TicketEvent.id))]
        raws = list(s.scalars(select(RawMessage).order_by(RawMessage.id)))
    return tickets, replies, notes, raws


def test_a_location_pin_after_a_report_becomes_its_place(twilio_client_db):
    from hub.processing import drain
    from hub.tickets import resolve_code
    from hub.db import get_engine

    r = post(twilio_client_db, "message__whatsapp_text.json",
             Body="Jalan berlubang besar, sudah ada motor jatuh")  # no place in words
    assert "diterima dengan kode" in r.text
    drain()
    pin = post(twilio_client_db, "message__whatsapp_location_place.json")
    assert pin.status_code == 200 and "kosong" not in pin.text and "<Message>" not in pin.text
    drain()
    [t], replies, notes, raws = _tickets_and_replies()
    assert (t.latitude, t.longitude) == (-8.0521, 111.7152)
    assert t.address and "Alun-Alun Trenggalek" in t.address
    assert replies == [f"Lokasi/lampiran diterima dan ditambahkan pada laporan {t.code}."]
    assert notes == ["Pelapor menambahkan lokasi"]
    with Session(get_engine()) as s:  # the pin's own reserved code leads to the same ticket
        assert resolve_code(s, raws[1].ticket_code).code == t.code


def test_a_location_pin_first_asks_what_happened_and_the_answer_takes_the_place(twilio_client_db):
    from hub.processing import drain

    post(twilio_client_db, "message__whatsapp_location_pin.json")
    drain()
    tickets, replies, _, raws = _tickets_and_replies()
    assert tickets == [] and raws[0].state == "waiting"
    assert replies == ["Lokasi/lampiran sudah kami terima. Sekarang ceritakan apa yang terjadi "
                       "(balas pesan ini dengan keterangan kejadian)."]
    post(twilio_client_db, "message__whatsapp_media_only.json")  # a photo too, still no words
    post(twilio_client_db, "message__whatsapp_text.json", Body="Pohon tumbang menutup jalan")
    drain()
    [t], replies, _, raws = _tickets_and_replies()
    assert t.text_original == "Pohon tumbang menutup jalan"
    assert (t.latitude, t.longitude) == (-8.0503, 111.7081)
    assert [a["kind"] for a in t.attachments] == ["photo"]
    assert {r.state for r in raws} == {"duplicate", "done"}


def test_a_pin_nobody_explains_still_becomes_a_ticket(twilio_client_db):
    from datetime import datetime, timedelta, timezone

    from hub import pieces
    from hub.db import session_scope
    from hub.processing import drain

    post(twilio_client_db, "message__whatsapp_location_pin.json")
    drain()
    with session_scope() as s:
        assert pieces.submit_waiting(s, datetime.now(timezone.utc) + timedelta(minutes=16)) == 1
    drain()
    [t], _, _, _ = _tickets_and_replies()
    assert t.text_original == pieces.NO_WORDS and t.latitude == -8.0503


def test_media_alone_joins_the_open_report(twilio_client_db):
    from hub.processing import drain

    post(twilio_client_db, "message__whatsapp_text.json")
    post(twilio_client_db, "message__whatsapp_media_only.json")  # same batch: joins all the same
    drain()
    [t], replies, notes, _ = _tickets_and_replies()
    assert [a["url"].rsplit("/", 1)[-1] for a in t.attachments] == ["ME11111111111111111111111111111122"]
    assert notes == ["Pelapor menambahkan 1 lampiran"]



# --- delivery reports and the WhatsApp 24-hour window (issue #13 item 8) -------------------

DIPROSES_SID = "HX" + "d" * 32
DEFAULT_SID = "HX" + "0" * 32


def _templates(tmp_path, monkeypatch):
    import shutil

    from hub.settings import reset_settings

    cfg_dir = tmp_path / "cfg"
    shutil.copytree(Path(__file__).resolve().parents[3] / "config" / "trenggalek", cfg_dir)
    (cfg_dir / "whatsapp_templates.yaml").write_text(
        "window_hours: 24\ntemplates:\n"
        f"  status_diproses: {{content_sid: {DIPROSES_SID}, variables: {{'1': code, '2': opd_name, '3': note}}}}\n"
        f"  default: {{content_sid: {DEFAULT_SID}, variables: {{'1': code, '2': text}}}}\n")
    monkeypatch.setenv("SIMPUL_CONFIG_DIR", str(cfg_dir))
    reset_settings()


def _status_callback(client, url: str, **form):
    from urllib.parse import urlsplit

    params = {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "From": WA_FROM,
              "To": "whatsapp:+6281234567891", "ChannelPrefix": "whatsapp", **form}
    params.setdefault("SmsSid", params.get("MessageSid", ""))
    params.setdefault("SmsStatus", params.get("MessageStatus", ""))
    parts = urlsplit(url)
    path = f"{parts.path}?{parts.query}"
    h = sign(PUBLIC + path, params, {"Content-Type": "application/x-www-form-urlencoded"})
    return client.post(path, content=urlencode(params).encode(), headers=h)


def _age_whatsapp_messages(days: float) -> None:
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update

    from hub.db import get_engine
    from hub.models import RawMessage

    with get_engine().begin() as conn:
        conn.execute(update(RawMessage.__table__).values(
            received_at=datetime.now(timezone.utc) - timedelta(days=days)))


def test_whatsapp_status_update_after_24_hours_goes_as_a_template(twilio_client_db, fake_twilio, cfg, tmp_path,
                                                                   monkeypatch):
    from hub.db import get_engine, session_scope
    from hub.models import Outbox, Ticket, TicketEvent
    from hub.outbox import run_once
    from hub.processing import drain
    from hub.tickets import change_status

    post(twilio_client_db, "message__whatsapp_text.json")
    drain()
    _age_whatsapp_messages(3)  # the citizen wrote three days ago: the window is closed
    fake_twilio.window_closed.add("whatsapp:+6281234567891")
    _templates(tmp_path, monkeypatch)
    with session_scope() as s:
        t = s.scalars(select(Ticket)).one()
        change_status(s, t, "diproses", "user:test", cfg, note="Tim menuju lokasi")
        code = t.code
    assert asyncio.run(run_once(kinds=["reply"])) == 1
    [sent] = fake_twilio.sent
    assert sent["ContentSid"] == DIPROSES_SID and "Body" not in sent
    variables = json.loads(sent["ContentVariables"])
    assert variables["1"] == code and variables["3"] == "Tim menuju lokasi" and variables["2"].startswith("Dinas")
    with Session(get_engine()) as s:
        row = s.scalars(select(Outbox).where(Outbox.kind == "reply")).one()
    assert row.state == "done"
    assert sent["StatusCallback"] == f"{PUBLIC}/webhooks/twilio/status?m={row.message_id}"

    # Twilio reports later that WhatsApp could not deliver it: dead letter, noted on the ticket
    r = _status_callback(twilio_client_db, sent["StatusCallback"], MessageSid="SM" + "9" * 32,
                         MessageStatus="sent")
    assert r.status_code == 200, r.text
    r = _status_callback(twilio_client_db, sent["StatusCallback"], MessageSid="SM" + "9" * 32,
                         MessageStatus="undelivered", ErrorCode="63024")
    assert r.json()["result"] == "failed"
    assert _status_callback(twilio_client_db, sent["StatusCallback"], MessageSid="SM" + "9" * 32,
                            MessageStatus="delivered").json()["result"] == "kept"  # never backwards
    with Session(get_engine()) as s:
        row = s.scalars(select(Outbox).where(Outbox.kind == "reply")).one()
        [ev] = s.scalars(select(TicketEvent).where(TicketEvent.kind == "reply_failed")).all()
    assert row.state == "dead" and "undelivered" in row.last_error and "63024" in row.last_error
    assert row.payload["twilio_status"]["status"] == "undelivered"
    assert "tidak terkirim" in ev.note
    bad = _status_callback(twilio_client_db, sent["StatusCallback"], MessageSid="SM1", MessageStatus="failed")
    assert bad.status_code == 200  # signed: fine; an unsigned one is refused
    assert twilio_client_db.post("/webhooks/twilio/status?m=x", data={"MessageStatus": "failed"}).status_code == 403


def test_inside_the_window_replies_are_text_and_every_send_asks_for_status(twilio_client_db, fake_twilio, cfg,
                                                                            tmp_path, monkeypatch):
    from hub.db import session_scope
    from hub.models import Ticket
    from hub.outbox import run_once
    from hub.processing import drain
    from hub.tickets import change_status

    _templates(tmp_path, monkeypatch)
    post(twilio_client_db, "message__whatsapp_text.json")
    post(twilio_client_db, "message__sms_text.json")
    drain()
    with session_scope() as s:
        for t in s.scalars(select(Ticket)):
            change_status(s, t, "diproses", "user:test", cfg)
    assert asyncio.run(run_once(kinds=["reply"])) == 2
    assert all("Body" in m and "ContentSid" not in m for m in fake_twilio.sent)
    assert all("/webhooks/twilio/status?m=msg_" in m["StatusCallback"] for m in fake_twilio.sent)


# --- media copied into the hub's storage (issue #13 item 5) ----------------------------------

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8
OGG = b"OggS\x00\x02" + bytes(3000)
PHOTO_SID = "MM11111111111111111111111111111104"  # message__whatsapp_photo.json


def _post_media(client, fake: FakeTwilio, *media: tuple[bytes, str]):
    form = {"NumMedia": str(len(media))}
    for i, (data, ctype) in enumerate(media):
        form[f"MediaUrl{i}"] = fake.add_media(PHOTO_SID, data, ctype)
        form[f"MediaContentType{i}"] = ctype
    r = post(client, "message__whatsapp_photo.json", **form)
    assert r.status_code == 200, r.text
    return [form[f"MediaUrl{i}"] for i in range(len(media))]


def _media_rows():
    from hub.db import get_engine
    from hub.models import Outbox

    with Session(get_engine()) as s:
        return list(s.scalars(select(Outbox).where(Outbox.kind == "twilio_media").order_by(Outbox.id)))


def _run_media():
    from hub.outbox import run_once

    return asyncio.run(run_once(kinds=["twilio_media"]))


def _due_now():
    from datetime import datetime, timezone

    from sqlalchemy import update

    from hub.db import get_engine
    from hub.models import Outbox

    with get_engine().begin() as conn:
        conn.execute(update(Outbox.__table__).where(Outbox.__table__.c.state == "pending")
                     .values(next_attempt_at=datetime.now(timezone.utc)))


def test_media_are_copied_into_the_hub_and_every_link_is_the_signed_hub_url(twilio_client_db, fake_twilio):
    from hub.db import get_engine
    from hub.delivery.payloads import open311_request, ticket_payload
    from hub.lines.twilio.media import queue_new
    from hub.models import Ticket
    from hub.processing import drain

    urls = _post_media(twilio_client_db, fake_twilio, (JPEG, "image/jpeg"), (OGG, "audio/ogg"))
    assert fake_twilio.media_gets == []  # nothing fetched while Twilio waits for the answer
    drain()
    assert queue_new() == 2 and queue_new() == 0  # one fetch per media, queued once
    assert _run_media() == 2
    api_gets = [r for r in fake_twilio.media_gets if "/Media/ME" in r.path]
    host_gets = [r for r in fake_twilio.media_gets if "/Media/ME" not in r.path]
    assert len(api_gets) == len(host_gets) == 2
    assert all(r.headers["Authorization"].startswith("Basic ") for r in api_gets)
    assert all("Authorization" not in r.headers for r in host_gets)  # credentials stay at Twilio
    assert [r.state for r in _media_rows()] == ["done", "done"]
    for url in urls:  # Twilio deletes its copy: ours stays
        fake_twilio.delete_media(url)
    with Session(get_engine()) as s:
        t = s.scalars(select(Ticket)).one()
    assert [a["url"] for a in t.attachments] == urls  # the original reference is kept
    links = ticket_payload(t)["attachments"]  # webhooks and e-mails
    assert all(a["url"].startswith(PUBLIC + "/media/" + t.code + "/") for a in links)
    assert open311_request(t).media_url == links[0]["url"]
    for link, (data, ctype) in zip(links, ((JPEG, "image/jpeg"), (OGG, "audio/ogg"))):
        got = twilio_client_db.get(link["url"][len(PUBLIC):])
        assert got.status_code == 200 and got.content == data and got.headers["content-type"] == ctype
    from hub.web.routes import _attachment_links  # what the staff ticket page links to

    hrefs = [a["href"] for a in _attachment_links(t)]
    assert all(h.startswith(PUBLIC + f"/media/{t.code}/") for h in hrefs) and len(hrefs) == 2


def test_a_media_fetch_that_fails_is_retried_and_loses_nothing(twilio_client_db, fake_twilio, monkeypatch):
    from hub import media
    from hub.db import get_engine
    from hub.lines.twilio.media import queue_new
    from hub.models import Ticket
    from hub.processing import drain

    [url] = _post_media(twilio_client_db, fake_twilio, (JPEG, "image/jpeg"))
    drain()
    queue_new()
    fake_twilio.media_failures += [503, 429]
    _run_media()
    [row] = _media_rows()
    assert row.state == "pending" and row.attempts == 1 and "503" in row.last_error
    _due_now()
    _run_media()
    [row] = _media_rows()
    assert row.state == "pending" and row.attempts == 2
    with Session(get_engine()) as s:
        t = s.scalars(select(Ticket)).one()
    assert t.attachments[0]["url"] == url  # nothing lost meanwhile
    _due_now()
    _run_media()
    assert _media_rows()[0].state == "done"
    sid = url.rsplit("/", 1)[-1]
    assert media.twilio_path(sid).read_bytes() == JPEG


def test_deleted_or_too_large_media_are_dead_letters_and_the_reference_stays(twilio_client_db, fake_twilio,
                                                                              monkeypatch):
    from hub import media
    from hub.db import get_engine
    from hub.delivery.payloads import ticket_payload
    from hub.lines.twilio.media import queue_new
    from hub.models import Ticket
    from hub.processing import drain

    monkeypatch.setattr(media, "MAX_FETCH", 4096)
    gone, big = _post_media(twilio_client_db, fake_twilio, (JPEG, "image/jpeg"), (bytes(5000), "video/mp4"))
    fake_twilio.delete_media(gone)
    drain()
    queue_new()
    _run_media()
    rows = {r.payload["url"]: r for r in _media_rows()}
    assert rows[gone].state == "dead" and "404" in rows[gone].last_error
    assert rows[big].state == "dead" and "limit" in rows[big].last_error
    with Session(get_engine()) as s:
        t = s.scalars(select(Ticket)).one()
    assert [a["url"] for a in t.attachments] == [gone, big]
    link = ticket_payload(t)["attachments"][0]["url"]
    assert twilio_client_db.get(link[len(PUBLIC):]).status_code == 404


def test_a_link_opened_before_the_copy_fetches_it_then(twilio_client_db, fake_twilio):
    from hub.db import get_engine
    from hub.delivery.payloads import ticket_payload
    from hub.lines.twilio.media import queue_new
    from hub.models import Ticket
    from hub.processing import drain

    _post_media(twilio_client_db, fake_twilio, (JPEG, "image/jpeg"))
    drain()
    with Session(get_engine()) as s:
        t = s.scalars(select(Ticket)).one()
    link = ticket_payload(t)["attachments"][0]["url"]
    got = twilio_client_db.get(link[len(PUBLIC):])
    assert got.status_code == 200 and got.content == JPEG
    assert queue_new() == 0  # stored already: nothing to queue


# --- a citizen's quick follow-up texts (issue #13 item 3) ----------------------------------

REPORT = "Lapor, jalan di Desa Ngadirenggo Kec. Pogalan berlubang besar depan SDN 2"
TWIML_EMPTY = "<Response />"


def _deliveries():
    from hub.db import get_engine
    from hub.models import Outbox

    with Session(get_engine()) as s:
        return list(s.scalars(select(Outbox).where(Outbox.kind == "deliver").order_by(Outbox.id)))


@pytest.mark.parametrize("fixture,second,joined", [
    ("message__whatsapp_text.json", "tambahan: lubangnya sdh bikin 2 motor jatuh pak", True),
    ("message__whatsapp_text.json", "oh iya lokasinya dekat masjid al ikhlas", True),
    ("message__sms_text.json", "maaf lupa, atas nama Siti RT 03 RW 01", True),
    ("message__sms_text.json", "fotonya nyusul", True),
    ("message__whatsapp_text.json", "satu lagi pak, lampu PJU di desa Karangan mati sudah seminggu", False),
    ("message__sms_text.json", "Sampah menumpuk di pasar", False),
], ids=["wa tambahan", "wa lokasinya", "sms lupa nama", "sms fotonya nyusul", "wa satu lagi", "sms other matter"])
def test_a_follow_up_joins_the_report_without_a_second_receipt(twilio_client_db, fixture, second, joined):
    from hub.processing import drain

    first = post(twilio_client_db, fixture, Body=REPORT, MessageSid="SM" + "1" * 32)
    assert "diterima dengan kode" in first.text
    drain()
    answer = post(twilio_client_db, fixture, Body=second, MessageSid="SM" + "2" * 32)
    drain()
    tickets, replies, notes, raws = _tickets_and_replies()
    if joined:
        [t] = tickets
        assert answer.text.endswith(TWIML_EMPTY)  # no receipt with a code of its own
        assert replies == [f"Tambahan diterima dan digabungkan ke laporan {t.code}."]
        assert t.text_original.startswith(REPORT) and t.text_original.endswith(second)
        assert notes == [f"Pelapor menambahkan keterangan: {second}"]
        assert [r.state for r in raws] == ["done", "duplicate"]
        retry = post(twilio_client_db, fixture, Body=second, MessageSid="SM" + "2" * 32)
        assert retry.text == answer.text  # Twilio's retry is answered as the first time
    else:
        assert "diterima dengan kode" in answer.text and len(tickets) == 2 and replies == []


def test_a_follow_up_before_processing_still_joins(twilio_client_db):
    from hub.processing import drain

    post(twilio_client_db, "message__whatsapp_text.json", Body=REPORT, MessageSid="SM" + "1" * 32)
    answer = post(twilio_client_db, "message__whatsapp_text.json", Body="mohon segera ditindak pak",
                  MessageSid="SM" + "2" * 32)  # within seconds: the report is not a ticket yet
    assert answer.text.endswith(TWIML_EMPTY)
    drain()
    [t], replies, _, _ = _tickets_and_replies()
    assert replies == [f"Tambahan diterima dan digabungkan ke laporan {t.code}."]


def test_a_follow_up_reaches_an_opd_that_already_has_the_ticket(twilio_client_db):
    from hub.db import session_scope
    from hub.models import Outbox
    from hub.processing import drain

    post(twilio_client_db, "message__sms_text.json", Body=REPORT, MessageSid="SM" + "1" * 32)
    post(twilio_client_db, "message__sms_text.json", Body="oh iya lokasinya dekat masjid al ikhlas",
         MessageSid="SM" + "2" * 32)
    drain()
    [created] = _deliveries()  # PUPR gets its tickets by e-mail; not sent yet: it carries the addition
    assert created.payload["event"] == "ticket.created" and created.target == "PUPR"
    with session_scope() as s:  # the e-mail left (the outbox marks a sent row so)
        row = s.get(Outbox, created.id)
        row.state, row.attempts = "done", 1
    post(twilio_client_db, "message__sms_text.json", Body="tambahan: lubangnya sdh bikin 2 motor jatuh pak",
         MessageSid="SM" + "3" * 32)
    drain()
    [t], _, _, _ = _tickets_and_replies()
    _, update = _deliveries()
    assert update.payload["event"] == "ticket.updated" and update.target == "PUPR" and update.ticket_id == t.id
    assert update.payload["note"] == "Pelapor menambahkan keterangan: tambahan: lubangnya sdh bikin 2 motor jatuh pak"
    assert t.text_original.count("[Tambahan") == 2


def test_a_held_follow_up_joins_its_report_when_released(db_url, monkeypatch, fake_twilio, seeded):
    """The flood hold comes first: follow-ups count like any message; one held past the limit
    is judged on release by its own arrival time, and joins the report it followed."""
    from fastapi.testclient import TestClient

    from hub.app import create_app
    from hub.lines.ratelimit import release_held
    from hub.processing import drain

    _env(monkeypatch, fake_twilio, SIMPUL_RATE_LIMIT_PER_SENDER="2")
    with TestClient(create_app(workers=False)) as c:
        post(c, "message__sms_text.json", Body=REPORT, MessageSid="SM" + "1" * 32)
        post(c, "message__sms_text.json", Body="mohon segera ditindak", MessageSid="SM" + "2" * 32)
        held = post(c, "message__sms_text.json", Body="fotonya nyusul pak", MessageSid="SM" + "3" * 32)
    assert "terlalu banyak pesan" in held.text
    drain()
    [t], _, _, raws = _tickets_and_replies()
    assert [r.state for r in raws] == ["done", "duplicate", "held"]
    assert release_held(channel="sms", sender="+6281234567890") == 1
    drain()
    [t], replies, _, raws = _tickets_and_replies()
    assert t.text_original.endswith("fotonya nyusul pak") and raws[2].state == "duplicate"
    assert replies == [f"Tambahan diterima dan digabungkan ke laporan {t.code}."] * 2


def test_the_report_sent_again_after_a_follow_up_is_still_a_repeat(twilio_client_db):
    from hub.processing import drain

    post(twilio_client_db, "message__sms_text.json", Body=REPORT, MessageSid="SM" + "1" * 32)
    drain()
    post(twilio_client_db, "message__sms_text.json", Body="mohon segera ditindak", MessageSid="SM" + "2" * 32)
    drain()
    again = post(twilio_client_db, "message__sms_text.json", Body=REPORT, MessageSid="SM" + "3" * 32)
    drain()
    [t], replies, _, raws = _tickets_and_replies()
    assert [r.state for r in raws] == ["done", "duplicate", "duplicate"] and raws[2].error == t.code
    assert replies[-1].startswith(f"Laporan Anda sudah tercatat dengan kode {t.code}")
    assert "diterima dengan kode" in again.text  # TwiML answered before processing saw the repeat
