"""Gammu SMSD line: UDH/multipart joining and schema versions 15-18 on Gammu's own SQL schema,
and the end-to-end round trip with the real gammu-smsd daemon (dummy modem, PostgreSQL):
SMS in -> ticket with code -> receipt in Gammu's outbox -> sent by the daemon (sentitems)."""
from __future__ import annotations

import asyncio
import gzip
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from adapters.base import OutboundMessage, PermanentError, RetryableError
from adapters.gammu import GammuAdapter, GammuSchemaError, gsm7_length, parse_udh, split_sms
from tests.lines.runner import Expect, OutCase, PullCase, run_outgoing, run_pull

IN_CI = os.environ.get("CI") == "true"
PG_URL = os.environ.get("SIMPUL_TEST_POSTGRES_URL")
EXAMPLES = Path("/usr/share/doc/gammu-smsd/examples")
NIK = "3503114506900002"




def need_gammu(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if not (EXAMPLES / "pgsql.sql").exists() and not (EXAMPLES / "pgsql.sql.gz").exists():
        missing.append("gammu-smsd SQL examples")
    if missing:
        reason = f"needs Debian packages gammu-smsd and gammu (missing: {', '.join(missing)})"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


def schema_sql(name: str) -> str:
    plain, gz = EXAMPLES / name, EXAMPLES / f"{name}.gz"
    return plain.read_text() if plain.exists() else gzip.decompress(gz.read_bytes()).decode()


def ucs2(s: str) -> str:
    return s.encode("utf-16-be").hex().upper()


# -- pure helpers ------------------------------------------------------------------------------
UDH = [
    ("8-bit reference", "050003A70302", (0xA7, 3, 2)),
    ("16-bit reference", "06080412340201", (0x1234, 2, 1)),
    ("port IE before concat IE", "0B0504158A0000" + "0003070201", (7, 2, 1)),
    ("no UDH", "", None),
    ("garbage", "zz", None),
    ("truncated", "0500", None),
]


@pytest.mark.parametrize("label,udh,expected", UDH, ids=[u[0] for u in UDH])
def test_parse_udh(label, udh, expected):
    got = parse_udh(udh)
    assert (None if got is None else (got.ref, got.total, got.seq)) == expected


SPLITS = [
    ("short gsm", "Laporan K7X2M9P diterima.", "Default_No_Compression", 1),
    ("160 gsm", "a" * 160, "Default_No_Compression", 1),
    ("161 gsm", "a" * 161, "Default_No_Compression", 2),
    ("extension chars count double", "{" * 80, "Default_No_Compression", 1),
    ("extension chars split", "{" * 81, "Default_No_Compression", 2),
    ("unicode", "Laporan “selesai”", "Unicode_No_Compression", 1),
    ("long unicode", "“" + "b" * 100, "Unicode_No_Compression", 2),
]


@pytest.mark.parametrize("label,text_,coding,parts", SPLITS, ids=[s[0] for s in SPLITS])
def test_split_sms(label, text_, coding, parts):
    got_coding, got_parts = split_sms(text_)
    assert (got_coding, len(got_parts)) == (coding, parts)
    assert "".join(got_parts) == text_
    for p in got_parts:
        if coding == "Default_No_Compression":
            assert gsm7_length(p) <= (160 if parts == 1 else 153)
        else:
            assert len(p.encode("utf-16-be")) <= (140 if parts == 1 else 134)


# -- schema versions 15-18 on Gammu's own SQLite schema -----------------------------------------
def gammu_sqlite(tmp_path: Path, version: int) -> str:
    need_gammu()
    path = tmp_path / f"smsd-{version}.db"
    con = sqlite3.connect(path)
    con.executescript(schema_sql("sqlite.sql"))
    con.execute("UPDATE gammu SET Version = ?", (version,))
    if version >= 18:
        con.execute("ALTER TABLE inbox ADD COLUMN MessageID INTEGER NOT NULL DEFAULT 0")
        con.execute("ALTER TABLE inbox ADD COLUMN SequencePosition INTEGER NOT NULL DEFAULT 1")
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def insert_inbox(url: str, rows: list[dict]) -> None:
    eng = create_engine(url)
    with eng.begin() as c:
        for r in rows:
            row = {"Text": ucs2(r.get("text", "")), "TextDecoded": r.get("decoded", r.get("text", "")),
                   "SenderNumber": r.get("sender", "+6281234567890"), "Coding": r.get("coding", "Default_No_Compression"),
                   "UDH": r.get("udh", ""), "RecipientID": "modem1", "Class": r.get("cls", -1),
                   "ReceivingDateTime": r.get("at", "2026-11-28 10:00:00")}
            if "mid" in r:
                row["MessageID"], row["SequencePosition"] = r["mid"], r["seq"]
            cols = ", ".join(row)
            c.execute(text(f"INSERT INTO inbox ({cols}) VALUES ({', '.join(':' + k for k in row)})"), row)
    eng.dispose()


PART1 = "Jalan di desa Ngadirenggo kecamatan Pogalan rusak parah sejak banjir bulan lalu, " \
        "banyak lubang besar dan sudah ada pengendara motor yang jatuh. Mohon segera "
PART2 = "diperbaiki sebelum musim hujan. Terima kasih."
def _sms(text_: str) -> tuple[Expect]:
    return (Expect(channel="sms", text=text_, sender="+6281234567890"),)


# items: (Gammu schema version, rows of its inbox)
VERSION_CASES = [
    PullCase("v15 udh", (15, [dict(text=PART1, udh="050003110201"), dict(text=PART2, udh="050003110202")]),
             _sms(PART1 + PART2)),
    PullCase("v16 udh parts out of order",
             (16, [dict(text=PART2, udh="050003120202"), dict(text=PART1, udh="050003120201")]), _sms(PART1 + PART2)),
    PullCase("v17 daemon-joined text in part 1",
             (17, [dict(text=PART1, decoded=PART1 + PART2, udh="0608040A0B0201"),
                   dict(text=PART2, decoded="", udh="0608040A0B0202")]), _sms(PART1 + PART2)),
    PullCase("v18 MessageID/SequencePosition",
             (18, [dict(text=PART2, mid=77, seq=2, udh="050003130202"), dict(text=PART1, mid=77, seq=1, udh="050003130201")]),
             _sms(PART1 + PART2)),
    PullCase("v17 single", (17, [dict(text="Lampu jalan mati di Sumbergedong")]), _sms("Lampu jalan mati di Sumbergedong")),
    PullCase("v17 unicode", (17, [dict(text="Jembatan “Bendungan” retak", coding="Unicode_No_Compression")]),
             _sms("Jembatan “Bendungan” retak")),
]


@pytest.mark.parametrize("case", VERSION_CASES, ids=lambda c: c.label)
def test_schema_versions_join_multipart(case, tmp_path):
    version, rows = case.items

    def pull(items):
        url = gammu_sqlite(tmp_path, version)
        insert_inbox(url, rows)
        adapter = GammuAdapter(url)
        assert adapter.schema_version() == version
        fetched = adapter.fetch()
        messages = [adapter.to_inbound(sms) for sms in fetched]
        for sms, msg in zip(fetched, messages):
            assert sms.text == msg.text and sms.sender == "+6281234567890" and not sms.missing
            assert msg.provider_id == f"{min(sms.ids)}@20261128T100000"
        assert adapter.mark_processed([i for sms in fetched for i in sms.ids]) == len(rows)
        assert adapter.fetch() == []
        adapter.dispose()
        return messages

    run_pull(case, pull)


def test_unsupported_schema_version_is_refused(tmp_path):
    adapter = GammuAdapter(gammu_sqlite(tmp_path, 14))
    with pytest.raises(GammuSchemaError, match="14"):
        adapter.schema_version()


def test_incomplete_multipart_waits_then_comes_as_is(tmp_path):
    url = gammu_sqlite(tmp_path, 17)
    insert_inbox(url, [dict(text=PART1, udh="050003210301"), dict(text=PART2, udh="050003210303"),
                       dict(text="Pesan lain", sender="+6281234567899")])
    adapter = GammuAdapter(url, multipart_wait_s=60)
    first = adapter.fetch(now=1000.0)
    assert [m.text for m in first] == ["Pesan lain"]  # the split message waits for part 2
    adapter.mark_processed(first[0].ids)
    assert adapter.fetch(now=1030.0) == []
    [late] = adapter.fetch(now=1061.0)
    assert late.text == PART1 + PART2 and late.missing == (2,)
    assert adapter.to_inbound(late).fields["sms_parts_missing"] == [2]


def test_binary_and_ussd_rows(tmp_path):
    url = gammu_sqlite(tmp_path, 17)
    insert_inbox(url, [dict(text="", coding="8bit", decoded=""), dict(text="Sisa pulsa Anda", cls=127)])
    rows = GammuAdapter(url).fetch()
    assert rows[0].binary and rows[0].text == "" and GammuAdapter(url).to_inbound(rows[0]).fields == {"binary": True}
    assert rows[1].ussd


def test_keyword_sms_gets_fields(tmp_path):
    url = gammu_sqlite(tmp_path, 17)
    insert_inbox(url, [dict(text=f"KTP#{NIK}#Siti Aminah#belum jadi")])
    adapter = GammuAdapter(url)
    msg = adapter.to_inbound(adapter.fetch()[0])
    assert msg.fields["keyword"] == "KTP" and msg.fields["nik"] == NIK and msg.fields["nama"] == "Siti Aminah"


def test_send_is_idempotent_and_splits_long_text(tmp_path):
    url = gammu_sqlite(tmp_path, 17)
    adapter = GammuAdapter(url, phone_id="modem1")
    long = "Laporan K7X2M9P telah selesai ditangani. " * 6
    msg = OutboundMessage("sms", "+6281234567890", long, extra={"message_id": "msg_1"})
    first = adapter.send_sync(msg)
    again = adapter.send_sync(msg)  # the hub's outbox lost our answer and retries
    assert first.provider_id == again.provider_id and again.detail.get("repeat")
    eng = create_engine(url)
    with eng.connect() as c:
        out = c.execute(text("SELECT ID, MultiPart, UDH, TextDecoded, CreatorID, SenderID FROM outbox")).all()
        parts = c.execute(text("SELECT SequencePosition, UDH, TextDecoded FROM outbox_multipart ORDER BY 1")).all()
    assert len(out) == 1 and out[0].MultiPart == "true" and out[0].CreatorID == "simpul:msg_1"
    assert out[0].SenderID == "modem1" and out[0].UDH.startswith("050003")
    assert out[0].TextDecoded + "".join(p.TextDecoded for p in parts) == long
    assert [p.SequencePosition for p in parts] == [2]
    with pytest.raises(PermanentError):
        adapter.send_sync(OutboundMessage("sms", "telegram-chat-12", "x"))
    eng.dispose()


def test_poll_stores_then_marks_and_survives_a_crash_before_marking(tmp_path, sqlite_url, seeded, cfg):
    from hub.db import get_engine
    from hub.lines.gammu import poll_once
    from hub.models import Outbox, RawMessage
    from hub.settings import get_settings

    url = gammu_sqlite(tmp_path, 17)
    insert_inbox(url, [dict(text="Jalan rusak di Ngadirenggo"), dict(text="CEK ABCDEFG", sender="+6281234567891"),
                       dict(text="", coding="8bit", decoded="", sender="+6281234567892")])
    adapter = GammuAdapter(url)

    class CrashBeforeMark(GammuAdapter):
        def mark_processed(self, ids):
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        poll_once(CrashBeforeMark(url), cfg, get_settings())
    res = poll_once(adapter, cfg, get_settings())  # the rows come again: nothing doubles
    assert (res.stored, res.duplicates, res.status_queries) == (0, 2, 1)
    with Session(get_engine()) as s:
        raws = s.scalars(select(RawMessage).order_by(RawMessage.id)).all()
        replies = s.scalars(select(Outbox).where(Outbox.kind == "reply")).all()
    assert [(r.channel, r.sender, r.text) for r in raws] == [("sms", "+6281234567890", "Jalan rusak di Ngadirenggo"),
                                                              ("sms", "+6281234567892", "")]
    assert raws[1].message["fields"] == {"binary": True}
    [answer] = replies  # the CEK is answered once, though its row was read twice
    assert answer.payload["to"] == "+6281234567891" and "ABCDEFG tidak ditemukan" in answer.payload["text"]
    assert adapter.fetch() == []
    from hub.models import Ticket
    from hub.processing import drain

    drain()  # the binary SMS gets the polite template, not a ticket
    with Session(get_engine()) as s:
        assert [t.reporter_phone for t in s.scalars(select(Ticket))] == ["+6281234567890"]
        polite = s.scalars(select(Outbox).where(Outbox.kind == "reply")).all()
    assert any(r.payload["to"] == "+6281234567892" and "kosong atau tidak dapat dibaca" in r.payload["text"]
               for r in polite)


# -- end to end with the real daemon -----------------------------------------------------------
MYSQL_URL = os.environ.get("SIMPUL_TEST_MYSQL_URL")  # e.g. mysql://root@127.0.0.1:3306/test


def _statements(sql: str) -> list[str]:
    """Split a Gammu schema script into statements (no procedures in the shipped scripts)."""
    body = "\n".join(line for line in sql.splitlines()
                     if not line.strip().startswith("--") and "CREATE LANGUAGE" not in line)
    if "$update_timestamp$" in body:  # PostgreSQL: one function body with ';' inside
        return [body]
    return [st.strip() for st in body.split(";") if st.strip()]


@pytest.fixture(params=["native_pgsql", "native_mysql"])
def gammu_db(request, tmp_path):
    """(driver, URL) of a throwaway PostgreSQL or MariaDB database with Gammu's schema."""
    need_gammu("gammu-smsd", "gammu")
    driver = request.param
    if driver == "native_pgsql":
        if not PG_URL:
            if IN_CI:
                pytest.fail("CI=true but SIMPUL_TEST_POSTGRES_URL is not set")
            pytest.skip("the gammu-smsd round trip needs SIMPUL_TEST_POSTGRES_URL")
        base, sa_driver, script = make_url(PG_URL), "postgresql+psycopg", "pgsql.sql"
    else:
        if not MYSQL_URL:
            pytest.skip("the MariaDB variant of the gammu-smsd round trip needs SIMPUL_TEST_MYSQL_URL")
        base, sa_driver, script = make_url(MYSQL_URL), "mysql+pymysql", "mysql.sql"
    name = f"gammu_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    q = '"' if driver == "native_pgsql" else "`"
    admin = create_engine(base.set(drivername=sa_driver), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {q}{name}{q}"))
    url = base.set(database=name)
    eng = create_engine(url.set(drivername=sa_driver))
    with eng.begin() as c:
        for st in _statements(schema_sql(script)):
            c.exec_driver_sql(st)
    eng.dispose()
    try:
        yield driver, url
    finally:
        with admin.connect() as c:
            force = " WITH (FORCE)" if driver == "native_pgsql" else ""
            c.execute(text(f"DROP DATABASE IF EXISTS {q}{name}{q}{force}"))
        admin.dispose()


def save_incoming(device: Path, sender: str, body: str) -> None:
    """`gammu savesms` into the dummy modem's inbox folder, turned into a received (Deliver) SMS."""
    rc = device.parent / "gammurc"
    rc.write_text(f"[gammu]\nmodel = dummy\nconnection = none\ndevice = {device}\n")
    before = set((device / "sms" / "1").iterdir())
    subprocess.run(["gammu", "-c", str(rc), "savesms", "TEXT", "-folder", "1", "-sender", sender,
                    "-len", str(len(body)), "-text", body], check=True, capture_output=True, timeout=20)
    for f in set((device / "sms" / "1").iterdir()) - before:
        f.write_text(f.read_text().replace("PDU = Submit", "PDU = Deliver").replace("State = Sent", "State = UnRead"))


def wait_for(fn, timeout: float = 60.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = fn()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_round_trip_with_gammu_smsd(gammu_db, tmp_path, sqlite_url, seeded, cfg, monkeypatch):
    from hub.db import get_engine, session_scope
    from hub.lines import gammu as line
    from hub.models import Ticket
    from hub.outbox import run_once
    from hub.processing import drain
    from hub.settings import get_settings, reset_settings
    from hub.tickets import change_status
    from hub.wiring import install, wire

    driver, gammu_url_obj = gammu_db
    gammu_url = gammu_url_obj.render_as_string(hide_password=False)
    monkeypatch.setenv("SIMPUL_GAMMU_DATABASE_URL", gammu_url)
    monkeypatch.setenv("SIMPUL_SMS_PROVIDER", "gammu")
    reset_settings()
    settings = get_settings()
    install(wire(settings))  # SMS replies through Gammu from now on
    device = tmp_path / "dummy"
    for folder in range(1, 6):
        (device / "sms" / str(folder)).mkdir(parents=True)
    long_report = ("Jalan di desa Ngadirenggo kecamatan Pogalan rusak parah sejak banjir bulan lalu. "
                   "Banyak lubang besar, dua pengendara motor sudah jatuh minggu ini. Mohon segera diperbaiki.")
    save_incoming(device, "+6281234567890", "Lampu penerangan jalan mati di desa Sumbergedong kecamatan Trenggalek")
    save_incoming(device, "+6281234567891", long_report)  # two parts
    save_incoming(device, "+6281234567892", f"KTP#{NIK}#Siti Aminah#sudah 3 bulan belum jadi")
    u = gammu_url_obj
    (tmp_path / "smsdrc").write_text(f"""[gammu]
model = dummy
connection = none
device = {device}

[smsd]
service = sql
driver = {driver}
host = {u.host or '127.0.0.1'}{f':{u.port}' if u.port else ''}
user = {u.username or 'postgres'}
password = {u.password or ''}
database = {u.database}
logfile = {tmp_path / 'smsd.log'}
debuglevel = 1
ReceiveFrequency = 1
StatusFrequency = 0
CommTimeout = 1
LoopSleep = 1
MultipartTimeout = 2
CheckSecurity = 0
CheckBattery = 0
CheckSignal = 0
CheckNetwork = 0
""")
    pg = driver == "native_pgsql"
    gammu_eng = create_engine(u.set(drivername="postgresql+psycopg" if pg else "mysql+pymysql"))

    def q(sql: str):
        with gammu_eng.connect() as c:
            return c.execute(text(sql if pg else sql.replace('"', "`"))).all()

    daemon = subprocess.Popen(["gammu-smsd", "-c", str(tmp_path / "smsdrc")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # SMS in: the daemon moves the modem's messages into Gammu's inbox table.
        wait_for(lambda: len(q('SELECT 1 FROM inbox')) >= 4, what="gammu-smsd to fill inbox")
        adapter = line.adapter_for(settings)
        res = line.poll_once(adapter, cfg, settings)
        assert res.stored == 3
        assert q("SELECT count(*) FROM inbox WHERE \"Processed\" = 'false'")[0][0] == 0
        drain()
        with Session(get_engine()) as s:
            tickets = {t.reporter_phone: t for t in s.scalars(select(Ticket))}
        assert set(tickets) == {"+6281234567890", "+6281234567891", "+6281234567892"}
        assert tickets["+6281234567891"].text_original == long_report  # multipart joined
        ktp = tickets["+6281234567892"]
        assert ktp.opd_code == "DUKCAPIL" and ktp.fields["keyword"] == "KTP"
        assert NIK not in str(ktp.fields)  # masked outside the raw store
        # Receipt: hub outbox -> Gammu outbox -> sent by the daemon.
        assert asyncio.run(run_once(kinds=["reply"])) == 3

        def sent_to(number: str, needle: str):
            return [r for r in q(f"SELECT \"ID\", \"SequencePosition\", \"TextDecoded\", \"Status\" FROM sentitems "
                                 f"WHERE \"DestinationNumber\" = '{number}' ORDER BY 1, 2")
                    if needle in r.TextDecoded]

        for phone, t in tickets.items():
            [row] = wait_for(lambda: sent_to(phone, t.code), what=f"receipt to {phone[:5]}... in sentitems")
            assert "diterima dengan kode" in row.TextDecoded and row.Status.startswith("SendingOK")
        # A status change goes back the same way; a long note is sent as a multipart SMS.
        note = "Tim PUPR sudah memeriksa lokasi dan penambalan dijadwalkan minggu depan. " * 2
        with session_scope() as s:
            change_status(s, s.get(Ticket, tickets["+6281234567891"].id), "diproses", "user:pupr", cfg, note=note)
        assert asyncio.run(run_once(kinds=["reply"])) == 1
        code = tickets["+6281234567891"].code
        [first] = wait_for(lambda: sent_to("+6281234567891", "sedang diproses"), what="status SMS in sentitems")

        def parts_of_status_sms():
            return [r for r in q(f"SELECT \"SequencePosition\", \"TextDecoded\", \"UDH\" FROM sentitems "
                                 f"WHERE \"ID\" = {first.ID} ORDER BY 1")]

        parts = wait_for(lambda: len(parts_of_status_sms()) >= 2 and parts_of_status_sms(),
                         what="both parts of the status SMS in sentitems")
        assert [p[0] for p in parts] == [1, 2]
        assert parts[0][2][:6] == parts[1][2][:6] == "050003"  # concatenated SMS
        assert note.strip() in "".join(p[1] for p in parts)
        # CEK <code> from the reporter's phone: answered by SMS, no new ticket.
        save_incoming(device, "+6281234567891", f"CEK {code}")
        wait_for(lambda: q("SELECT 1 FROM inbox WHERE \"Processed\" = 'false'"), what="CEK in inbox")
        assert line.poll_once(adapter, cfg, settings).status_queries == 1
        assert asyncio.run(run_once(kinds=["reply"])) == 1
        wait_for(lambda: sent_to("+6281234567891", f"Status laporan {code}: sedang diproses"),
                 what="status answer in sentitems")
        wait_for(lambda: not q('SELECT 1 FROM outbox'), what="the daemon to send everything we queued")
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=5)
        gammu_eng.dispose()
        line.adapter_for(settings).dispose()
        line._adapter.cache_clear()


def test_flood_from_one_number_is_held_and_told_once(tmp_path, sqlite_url, seeded, cfg, monkeypatch):
    from hub.db import get_engine
    from hub.lines.gammu import poll_once
    from hub.models import Outbox, RawMessage
    from hub.settings import get_settings, reset_settings

    monkeypatch.setenv("SIMPUL_RATE_LIMIT_PER_SENDER", "2")
    reset_settings()
    url = gammu_sqlite(tmp_path, 17)
    insert_inbox(url, [dict(text=f"Laporan nomor {i} jalan rusak") for i in range(5)])
    res = poll_once(GammuAdapter(url), cfg, get_settings())
    assert (res.stored, res.held) == (2, 3)
    with Session(get_engine()) as s:
        assert [r.state for r in s.scalars(select(RawMessage).order_by(RawMessage.id))] == ["pending"] * 2 + ["held"] * 3
        [told] = s.scalars(select(Outbox).where(Outbox.kind == "reply")).all()
    assert "terlalu banyak pesan" in told.payload["text"]


def test_poll_job_reads_the_configured_database(tmp_path, sqlite_url, seeded, monkeypatch):
    from hub.db import get_engine
    from hub.lines import gammu as line
    from hub.models import RawMessage
    from hub.settings import reset_settings

    url = gammu_sqlite(tmp_path, 16)
    insert_inbox(url, [dict(text="Banjir di desa Karangan")])
    monkeypatch.setenv("SIMPUL_GAMMU_DATABASE_URL", url)
    reset_settings()
    try:
        asyncio.run(line.poll_job())
    finally:
        line._adapter.cache_clear()
    with Session(get_engine()) as s:
        assert [r.text for r in s.scalars(select(RawMessage))] == ["Banjir di desa Karangan"]


def test_a_modem_line_that_cannot_poll_shows_as_stopped_then_recovers(tmp_path, sqlite_url, seeded, monkeypatch):
    """Issue #13 item 1: a stopped line shows (linehealth feeds /readyz, /metrics, admin page)."""
    from hub import readiness as linehealth
    from hub.db import get_engine
    from hub.lines import gammu as line
    from hub.models import ChannelState, RawMessage
    from hub.settings import get_settings, reset_settings

    broken = tmp_path / "not-gammu.db"
    sqlite3.connect(broken).close()  # a database without Gammu's tables (wrong path in smsdrc)
    monkeypatch.setenv("SIMPUL_GAMMU_DATABASE_URL", f"sqlite:///{broken}")
    reset_settings()
    linehealth.register("gammu", line.health_check(get_settings()))  # what the line's start-up does
    try:
        for _ in range(linehealth.FAILURES_STOPPED):
            with pytest.raises(Exception):
                asyncio.run(line.poll_job())
        report = linehealth.report()
        assert report["gammu"]["running"] is False and "failures in a row" in report["gammu"]["detail"]
        url = gammu_sqlite(tmp_path, 17)
        insert_inbox(url, [dict(text="Banjir di desa Karangan")])
        monkeypatch.setenv("SIMPUL_GAMMU_DATABASE_URL", url)
        reset_settings()
        asyncio.run(line.poll_job())
        assert linehealth.report()["gammu"]["running"] is True
    finally:
        line._adapter.cache_clear()
        linehealth.unregister("gammu")
    with Session(get_engine()) as s:
        assert [r.text for r in s.scalars(select(RawMessage))] == ["Banjir di desa Karangan"]
        st = s.get(ChannelState, "gammu")
        assert st.consecutive_failures == 0 and st.last_message_at is not None


# -- parts late, twice, or with an emoji across the cut (issue #13 items 3 and 4) --------------
EMOJI = "\U0001F30A"  # 🌊: a surrogate pair in UTF-16
SPLIT_1 = "Banjir di desa Karangan kecamatan Karangan, air naik cepat "  # + high surrogate
SPLIT_2 = " mohon bantuan perahu"  # low surrogate +


def _emoji_parts(ref: str = "31") -> list[dict]:
    pair = EMOJI.encode("utf-16-be")
    p1 = (SPLIT_1.encode("utf-16-be") + pair[:2]).hex().upper()
    p2 = (pair[2:] + SPLIT_2.encode("utf-16-be")).hex().upper()
    return [dict(text="", coding="Unicode_No_Compression", udh=f"050003{ref}0201", decoded=SPLIT_1, raw=p1),
            dict(text="", coding="Unicode_No_Compression", udh=f"050003{ref}0202", decoded=SPLIT_2, raw=p2)]


def _insert_raw_parts(url: str, parts: list[dict]) -> None:
    """Rows as Gammu writes them: Text is the part's own UTF-16 bytes in hex."""
    eng = create_engine(url)
    with eng.begin() as c:
        for p in parts:
            c.execute(text("INSERT INTO inbox (Text, TextDecoded, SenderNumber, Coding, UDH, RecipientID, Class,"
                           " ReceivingDateTime) VALUES (:t, :d, '+6281234567890', :c, :u, 'modem1', -1,"
                           " '2026-11-28 10:00:00')"), {"t": p["raw"], "d": p["decoded"], "c": p["coding"], "u": p["udh"]})
    eng.dispose()


def test_an_emoji_split_across_parts_survives(tmp_path):
    url = gammu_sqlite(tmp_path, 17)
    _insert_raw_parts(url, _emoji_parts())
    [sms] = GammuAdapter(url).fetch()
    assert sms.text == SPLIT_1 + EMOJI + SPLIT_2 and "\ufffd" not in sms.text


def _poll(url, cfg):
    from hub.lines.gammu import poll_once
    from hub.settings import get_settings

    return poll_once(GammuAdapter(url, multipart_wait_s=0), cfg, get_settings())


def _state():
    from hub.db import get_engine
    from hub.models import Outbox, RawMessage, Ticket, TicketEvent

    with Session(get_engine()) as s:
        return (list(s.scalars(select(Ticket))), list(s.scalars(select(RawMessage).order_by(RawMessage.id))),
                [e.note for e in s.scalars(select(TicketEvent).where(TicketEvent.kind == "note"))],
                [o.kind for o in s.scalars(select(Outbox))])


def test_a_late_part_completes_its_ticket_instead_of_making_a_second(tmp_path, db_url, seeded, cfg):
    from hub.processing import drain

    url = gammu_sqlite(tmp_path, 17)
    first, second = _emoji_parts()
    _insert_raw_parts(url, [first])
    assert _poll(url, cfg).stored == 1  # part 2 is late: the message goes on without it
    drain()
    [t], _, _, outbox = _state()
    assert t.fields["sms_parts_missing"] == [2]
    _insert_raw_parts(url, [second])  # minutes later
    _poll(url, cfg)
    drain()
    [t], raws, notes, outbox_after = _state()
    assert t.text_original == SPLIT_1 + EMOJI + SPLIT_2
    assert "sms_parts_missing" not in t.fields
    assert notes == ["Bagian SMS yang terlambat tiba digabungkan ke laporan ini"]
    assert [r.state for r in raws] == ["done", "duplicate"]
    assert outbox_after == outbox  # no second receipt, no second delivery to the OPD
    _insert_raw_parts(url, [first])  # the modem stores part 1 once more, hours later
    res = _poll(url, cfg)
    assert res.stored == 0 and res.duplicates == 1
    drain()
    assert len(_state()[0]) == 1 and len(_state()[1]) == 2


def test_a_late_part_before_processing_completes_the_stored_message(tmp_path, db_url, seeded, cfg):
    from hub.processing import drain

    url = gammu_sqlite(tmp_path, 17)
    first, second = _emoji_parts("42")
    _insert_raw_parts(url, [first])
    _poll(url, cfg)
    _insert_raw_parts(url, [second, first])  # the late part, and part 1 again
    res = _poll(url, cfg)
    assert res.stored == 0
    drain()
    [t], raws, notes, _ = _state()
    assert t.text_original == SPLIT_1 + EMOJI + SPLIT_2 and len(raws) == 1 and notes == []


# -- outgoing table: a reply -> the exact rows in Gammu's outbox ---------------------------------
def _outbox_rows(url: str) -> list[dict]:
    """Every queued SMS as {"outbox": row, "multipart": [rows]}. The UDH's concatenation
    reference is random per message: shown as "RR" when every part carries the same one."""
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            if not c.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'outbox'")).first():
                return []  # the row that takes the table away
            out = c.execute(text("SELECT ID, DestinationNumber, TextDecoded, Coding, UDH, MultiPart, CreatorID, "
                                 "SenderID, Class, DeliveryReport FROM outbox ORDER BY ID")).mappings().all()
            parts = c.execute(text("SELECT ID, SequencePosition, TextDecoded, Coding, UDH, Class "
                                   "FROM outbox_multipart ORDER BY ID, SequencePosition")).mappings().all()
    finally:
        eng.dispose()
    result = []
    for o in out:
        head = {k: v for k, v in o.items() if k != "ID"}
        rest = [{k: v for k, v in p.items() if k != "ID"} for p in parts if p["ID"] == o["ID"]]
        udhs = [head["UDH"], *(p["UDH"] for p in rest)]
        if head["UDH"] and len({u[6:8] for u in udhs}) == 1:
            for row in (head, *rest):
                row["UDH"] = row["UDH"][:6] + "RR" + row["UDH"][8:]
        result.append({"outbox": head, "multipart": rest})
    return result


def _queued(to: str, text_: str, coding: str = "Default_No_Compression", udh: str = "", multi: str = "false",
            creator: str = "simpul", parts: tuple[tuple[int, str, str], ...] = ()) -> dict:
    return {"outbox": {"DestinationNumber": to, "TextDecoded": text_, "Coding": coding, "UDH": udh,
                       "MultiPart": multi, "CreatorID": creator, "SenderID": "modem1", "Class": -1,
                       "DeliveryReport": "default"},
            "multipart": [{"SequencePosition": pos, "TextDecoded": t, "Coding": coding, "UDH": u, "Class": -1}
                          for pos, u, t in parts]}


RECEIPT = "Laporan Anda diterima. Kode: K7X2M9P. Cek status: kirim CEK K7X2M9P."
LONG_GSM = ("Laporan K7X2M9P selesai ditangani Dinas PUPR: lubang di Jl. Soekarno-Hatta sudah ditambal "
            "dan diaspal ulang. Terima kasih atas laporan Anda {dan} kesabarannya!! ~Simpul")  # 171 septets: 151 + 17 characters
EMOJI = "Laporan K7X2M9P selesai 👍"
LONG_UCS2 = "’" + "x" * 99  # one character outside GSM-7: 100 UTF-16 units, parts of 67
STRADDLE = "a" * 66 + "🙏" + "b" * 10  # the emoji's surrogate pair would cross unit 67
SPLIT_GSM = split_sms(LONG_GSM)[1]

OUTGOING = [
    OutCase("short reply", OutboundMessage("sms", "+6281234567890", RECEIPT),
            request=_queued("+6281234567890", RECEIPT)),
    OutCase("whatsapp: prefix dropped", OutboundMessage("sms", "whatsapp:+6281234567890", "Halo"),
            request=_queued("+6281234567890", "Halo")),
    OutCase("hub message id: CreatorID carries it", OutboundMessage("sms", "081234567890", "Halo",
                                                                    extra={"message_id": "msg_42"}),
            request=_queued("081234567890", "Halo", creator="simpul:msg_42")),
    OutCase("exactly 160 GSM-7: one part", OutboundMessage("sms", "+6281234567890", "a" * 160),
            request=_queued("+6281234567890", "a" * 160)),
    OutCase("161 GSM-7: two parts of 153 + 8", OutboundMessage("sms", "+6281234567890", "b" * 161),
            request=_queued("+6281234567890", "b" * 153, udh="050003RR0201", multi="true",
                            parts=((2, "050003RR0202", "b" * 8),))),
    OutCase("GSM-7 extension characters count twice", OutboundMessage("sms", "+6281234567890", LONG_GSM),
            request=_queued("+6281234567890", SPLIT_GSM[0], udh="050003RR0201", multi="true",
                            parts=((2, "050003RR0202", SPLIT_GSM[1]),))),
    OutCase("emoji: one UCS-2 part", OutboundMessage("sms", "+6281234567890", EMOJI),
            request=_queued("+6281234567890", EMOJI, coding="Unicode_No_Compression")),
    OutCase("long UCS-2: parts of 67 units", OutboundMessage("sms", "+6281234567890", LONG_UCS2),
            request=_queued("+6281234567890", LONG_UCS2[:67], coding="Unicode_No_Compression", udh="050003RR0201",
                            multi="true", parts=((2, "050003RR0202", LONG_UCS2[67:]),))),
    OutCase("a surrogate pair is never cut", OutboundMessage("sms", "+6281234567890", STRADDLE),
            request=_queued("+6281234567890", "a" * 66, coding="Unicode_No_Compression", udh="050003RR0201",
                            multi="true", parts=((2, "050003RR0202", "🙏" + "b" * 10),))),
    OutCase("three parts", OutboundMessage("sms", "+6281234567890", "c" * 400),
            request=_queued("+6281234567890", "c" * 153, udh="050003RR0301", multi="true",
                            parts=((2, "050003RR0302", "c" * 153), (3, "050003RR0303", "c" * 94)))),
    OutCase("not a phone number", OutboundMessage("sms", "telegram-chat-12", "x"), error=PermanentError),
    OutCase("empty text", OutboundMessage("sms", "+6281234567890", ""), error=PermanentError),
    OutCase("database unreachable", OutboundMessage("sms", "+6281234567890", "Halo"), error=RetryableError,
            fail=dict(database="missing")),
    OutCase("outbox table missing: retried until the schema is fixed", OutboundMessage("sms", "+6281234567890", "Halo"),
            error=RetryableError, fail=dict(drop="outbox")),
]


@pytest.mark.parametrize("case", OUTGOING, ids=lambda c: c.label)
def test_outgoing(case, tmp_path, capfd):
    """The exact outbox rows gammu-smsd will send, split as the adapter does, or the typed error;
    the number is in neither the error text nor the logs."""
    from hub.logging import configure_logging

    configure_logging("DEBUG", json=True)
    url = gammu_sqlite(tmp_path, 17)
    if case.fail.get("drop"):
        eng = create_engine(url)
        with eng.begin() as c:
            c.execute(text(f"DROP TABLE {case.fail['drop']}"))
        eng.dispose()
    target = f"sqlite:///{tmp_path}/no/such/dir/smsd.db" if case.fail.get("database") == "missing" else url
    adapter = GammuAdapter(target, phone_id="modem1")
    try:
        run_outgoing(case, adapter.send, lambda: _outbox_rows(url), secrets=("6281234567890",),
                     logs=lambda: "".join(capfd.readouterr()))
    finally:
        adapter.dispose()


# -- a citizen's quick follow-up texts (issue #13 item 3) ---------------------------------------
REPORT = "Lapor, jalan di Desa Ngadirenggo Kec. Pogalan berlubang besar depan SDN 2"
SPLIT_BY_PHONE = ("Pak sy mau lapor jalan di Desa Ngadirenggo Kec Pogalan depan SDN 2 berlubang besar sekali dan "
                  "sudah berbulan bulan tidak diperbaiki padahal itu jalan utama anak anak ke")
FOLLOW_UPS = [  # (label, first SMS, second SMS 90 s later, one ticket?)
    ("tambahan", REPORT, "tambahan: lubangnya sdh bikin 2 motor jatuh pak", True),
    ("tmbhn", REPORT, "tmbhn pak lubang'y sdh bikin 2 motor jatuh", True),
    ("lokasinya", "Jalan berlubang besar, sudah ada motor jatuh", "oh iya lokasinya dekat masjid al ikhlas", True),
    ("lokasi'y dket", "Jalan berlubang besar, sudah ada motor jatuh", "lokasi'y dket masjid al ikhlas pak", True),
    ("mohon segera", REPORT, "mohon segera ditindak", True),
    ("fotonya nyusul", REPORT, "fotonya nyusul", True),
    ("maaf lupa nama", REPORT, "maaf lupa, atas nama Siti RT 03 RW 01", True),
    ("split by the phone", SPLIT_BY_PHONE, "sekolah, mohon segera", True),
    ("another matter", REPORT, "Lampu jalan mati di Pogalan", False),
    ("satu lagi", REPORT, "satu lagi pak, lampu PJU di desa Karangan mati sudah seminggu", False),
    ("another desa", REPORT, "Jalan berlubang juga di desa Karangan kec Karangan", False),
    ("two numbered reports", "Laporan nomor 1 jalan rusak", "Laporan nomor 2 jalan rusak", False),
]


def _tickets_replies():
    from hub.db import get_engine
    from hub.models import Outbox, RawMessage, Ticket

    with Session(get_engine()) as s:
        return (list(s.scalars(select(Ticket).order_by(Ticket.id))),
                [o.payload["text"] for o in s.scalars(select(Outbox).where(Outbox.kind == "reply").order_by(Outbox.id))],
                [r.state for r in s.scalars(select(RawMessage).order_by(RawMessage.id))])


@pytest.mark.parametrize("label,first,second,joined", FOLLOW_UPS, ids=[f[0] for f in FOLLOW_UPS])
def test_a_follow_up_sms_joins_the_report_and_a_second_report_stays_apart(tmp_path, db_url, seeded, cfg,
                                                                          label, first, second, joined):
    from hub.processing import drain

    url = gammu_sqlite(tmp_path, 17)
    insert_inbox(url, [dict(text=first, at="2026-11-28 10:00:00")])
    _poll(url, cfg)
    drain()
    insert_inbox(url, [dict(text=second, at="2026-11-28 10:01:30")])
    _poll(url, cfg)
    drain()
    tickets, replies, states = _tickets_replies()
    if joined:
        [t] = tickets
        assert t.text_original.startswith(first) and t.text_original.endswith(f"] {second}")
        assert re.search(r"\n\n\[Tambahan \d\d:\d\d WIB\] ", t.text_original)  # when it came, regency time
        assert len(replies) == 2 and "diterima dengan kode" in replies[0]  # one receipt, no second one
        assert replies[1] == f"Tambahan diterima dan digabungkan ke laporan {t.code}."
        assert states == ["done", "duplicate"]
    else:
        assert len(tickets) == 2 and [t.text_original for t in tickets] == [first, second]
        assert len(replies) == 2 and all("diterima dengan kode" in r for r in replies)


def test_a_follow_up_in_the_same_poll_is_told_by_the_one_receipt(tmp_path, db_url, seeded, cfg):
    from hub.processing import drain

    url = gammu_sqlite(tmp_path, 17)
    insert_inbox(url, [dict(text=REPORT, at="2026-11-28 10:00:00"),
                       dict(text="oh iya lokasinya dekat masjid al ikhlas", at="2026-11-28 10:00:40"),
                       dict(text="mohon segera ditindak pak", at="2026-11-28 10:01:10")])
    _poll(url, cfg)
    drain()
    [t], replies, states = _tickets_replies()
    assert t.text_original.count("[Tambahan") == 2 and t.fields["follow_ups"] == 2
    assert len(replies) == 1 and "diterima dengan kode" in replies[0]
    assert states == ["done", "duplicate", "duplicate"]


def test_a_follow_up_after_the_window_is_a_ticket_of_its_own(tmp_path, db_url, seeded, cfg, monkeypatch):
    from hub.processing import drain
    from hub.settings import reset_settings

    monkeypatch.setenv("SIMPUL_FOLLOW_UP_WINDOW_S", "1")  # the hub's arrival times count (modem clocks drift)
    reset_settings()
    url = gammu_sqlite(tmp_path, 17)
    insert_inbox(url, [dict(text=REPORT)])
    _poll(url, cfg)
    drain()
    time.sleep(2.5)
    insert_inbox(url, [dict(text="mohon segera ditindak")])
    _poll(url, cfg)
    drain()
    tickets, replies, _ = _tickets_replies()
    assert len(tickets) == 2 and all("diterima dengan kode" in r for r in replies)
