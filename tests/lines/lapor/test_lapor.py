"""SP4N-LAPOR!: report parsing (fixture table), pull -> tickets, idempotent re-pull, status push,
status sync from LAPOR!, outage with backoff and recovery, all against the local fake server."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from adapters.base import InvalidPayload, OutboundMessage, PermanentError, RetryableError
from adapters.lapor import map_status, parse_report
from tests.fakes.lapor_api import FakeLapor
from tests.lines.runner import Expect, OutCase, PullCase, run_outgoing, run_pull

FIXTURES = Path(__file__).parent / "fixtures"
INSTANSI = "Pemerintah Kabupaten Trenggalek"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# --- the adapter alone: one row per fixture ---------------------------------------------------

def _report(tid: str, kind: str, anon: bool, secret: bool, phone: str | None) -> tuple[Expect]:
    return (Expect(channel="lapor", provider_id=tid, sender=tid,
                   fields={"report_type": kind, "anonymous": anon, "rahasia": secret, "phone": phone}),)


# items: (fixture, sender_name, our status); None where LAPOR! must not show who reported
PARSE_CASES = [
    PullCase("report__pengaduan.json", ("report__pengaduan.json", "Siti Rahayu", "menunggu"),
             _report("9165816", "pengaduan", False, False, "081234567890")),
    PullCase("report__anonim.json", ("report__anonim.json", None, "menunggu"),
             _report("9165901", "pengaduan", True, False, None)),
    PullCase("report__rahasia.json", ("report__rahasia.json", None, "diproses"),
             _report("9166002", "aspirasi", False, True, None)),
    PullCase("report__permintaan_informasi.json", ("report__permintaan_informasi.json", "Agus", "selesai"),
             _report("9166100", "permintaan informasi", False, False, None)),
]


@pytest.mark.parametrize("case", PARSE_CASES, ids=lambda c: c.label)
def test_parse_report(case):
    name, sender_name, status = case.items
    rep = parse_report(fixture(name))
    [m] = run_pull(case, lambda items: [rep.message])
    anon, secret = case.expect[0].fields["anonymous"], case.expect[0].fields["rahasia"]
    assert m.fields["anonymous"] is anon and m.fields["rahasia"] is secret
    assert m.sender_name == sender_name
    assert rep.status == status
    assert m.received_at is not None and m.received_at.tzinfo is not None
    if anon or secret:  # the identity is not even in the stored raw payload
        assert "pelapor" not in m.raw and "Budi" not in json.dumps(m.fields) and "Wulan" not in json.dumps(m.raw)


@pytest.mark.parametrize("name,reason", [
    ("report__no_tracking_id.json", "tracking id"),
    ("report__unknown_type.json", "unknown report type"),
    ("report__empty.json", "neither title nor text"),
    ("report__bad_time.json", "ISO 8601"),
])
def test_parse_report_rejects(name, reason):
    with pytest.raises(InvalidPayload, match=reason):
        parse_report(fixture(name))


@pytest.mark.parametrize("text,ours,instansi", [
    ("Terdisposisi ke Pemerintah Kabupaten Trenggalek", "menunggu", "Pemerintah Kabupaten Trenggalek"),
    ("Ditindaklanjuti oleh Instansi", "diproses", None),
    ("Ditanggapi oleh Pelapor", "diproses", None),
    ("Selesai otomatis dalam 10 hari", "selesai", None),
    ("Bukan Wewenang", "ditolak", None),
    ("Diarsipkan", "ditolak", None),
    ("Ditunda", "menunggu", None),
    ("Belum Terverifikasi", None, None),
    ("sesuatu yang baru", None, None),
])
def test_status_table(text, ours, instansi):
    assert map_status(text) == (ours, instansi)


# --- the hub side against the fake server -----------------------------------------------------

@pytest.fixture
def fake():
    f = FakeLapor(instansi=INSTANSI).start()
    yield f
    f.stop()


@pytest.fixture
def lapor(fake, engine, seeded, monkeypatch):
    """Settings pointing at the fake; returns a function running one forced pull."""
    from hub.settings import reset_settings

    monkeypatch.setenv("SIMPUL_LAPOR_BASE_URL", fake.url)
    monkeypatch.setenv("SIMPUL_LAPOR_TOKEN", fake.token)
    monkeypatch.setenv("SIMPUL_LAPOR_TIMEOUT_S", "1.5")
    reset_settings()
    import hub.lines.lapor as L

    def pull(force: bool = True):
        return asyncio.run(L.pull_once(engine=engine, force=force))

    return pull


def stalled_pull(lapor, fake, monkeypatch):
    """One pull that LAPOR! never answers in time: the fake holds the request for 3 s and the
    client gives up after 0.3 s (set for this pull only, so the pulls that must succeed keep the
    fixture's 1.5 s under load; a timeout firing late never makes a stalled pull succeed)."""
    from hub.settings import reset_settings

    fake.stall_next(1, 3.0)
    monkeypatch.setenv("SIMPUL_LAPOR_TIMEOUT_S", "0.3")
    reset_settings()
    try:
        return lapor()
    finally:
        monkeypatch.setenv("SIMPUL_LAPOR_TIMEOUT_S", "1.5")
        reset_settings()


def tickets(engine):
    from hub.models import Ticket

    with Session(engine) as s:
        return {t.channel_message_id: t for t in s.scalars(select(Ticket).where(Ticket.channel == "lapor"))}


def count(engine, model) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


def state(engine):
    from hub.lines.lapor import line_state

    return line_state(engine)


def seed_reports(fake: FakeLapor) -> None:
    fake.submit(9165816, "Jalan berlubang di Desa Ngulankulon",
                "Jalan di Desa Ngulankulon Kecamatan Pogalan berlubang besar, sudah dua motor jatuh.",
                location="Ngulankulon, Pogalan")
    fake.submit(9165901, "Pungutan liar pembuatan KK", "Di kantor desa diminta bayar Rp100.000 untuk KK.",
                anonymous=True, name="Budi Santoso", phone="085733221100")
    fake.submit(9166002, "Guru sering tidak masuk", "Guru kelas 4 SDN 2 Kampak sering tidak masuk.",
                kind="aspirasi", rahasia=True, name="Wulan", phone="081355577799")
    fake.submit(9166100, "Belum diverifikasi", "Laporan ini belum diverifikasi admin LAPOR!")
    for tid in (9165816, 9165901, 9166002):
        fake.verify(tid)


def test_pull_creates_tickets_keyed_on_tracking_id(fake, lapor, engine):
    from hub.tickets import ticket_dict

    seed_reports(fake)
    res = lapor()
    assert res.error is None and (res.pulled, res.new) == (3, 3)
    got = tickets(engine)
    assert set(got) == {"9165816", "9165901", "9166002"}  # the unverified one is not ours yet
    t = got["9165816"]
    assert t.reporter_lapor_id == "9165816" and t.reporter_name == "Siti Rahayu"
    assert t.reporter_phone == "+6281234567890"
    assert t.fields["report_type"] == "pengaduan" and t.fields["disposition"] == INSTANSI
    assert t.fields["lapor_status"] == f"Terdisposisi ke {INSTANSI}"
    assert fake.requests[0]["headers"]["Authorization"] == f"Bearer {fake.token}"
    # LAPOR!'s follow-up SLA: 5 working days after the disposition (Mon 23 Nov 2026 09:00 WIB)
    assert t.fields["lapor_sla"]["follow_up_due"] == "2026-11-30T09:00:00+00:00"
    assert t.fields["lapor_sla"]["verified_in_time"] is True
    due = t.due_at if t.due_at.tzinfo else t.due_at.replace(tzinfo=timezone.utc)
    assert due <= datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
    for tid in ("9165901", "9166002"):  # anonymous / rahasia: no identity anywhere an OPD looks
        hidden = got[tid]
        assert hidden.reporter_name is None and hidden.reporter_phone is None
        d = ticket_dict(hidden)
        assert d["reporter"] is None and (d["anonymous"] or d["confidential"])
    assert got["9165901"].anonymous and got["9166002"].confidential
    st = state(engine)
    assert st["consecutive_failures"] == 0 and st["last_ok_at"] is not None and st["cursor"]["since"]


def test_pulling_twice_makes_nothing_twice(fake, lapor, engine):
    from hub.models import Outbox, RawMessage, Ticket, TicketEvent

    seed_reports(fake)
    lapor()
    before = [count(engine, m) for m in (RawMessage, Ticket, TicketEvent, Outbox)]
    res = lapor()
    # the cursor overlap re-reads the newest reports on purpose: stored once, nothing new made
    assert res.new == 0 and res.synced == 0
    assert [count(engine, m) for m in (RawMessage, Ticket, TicketEvent, Outbox)] == before
    # also with the cursor wiped (a full re-read of everything)
    from hub.db import writer
    from hub.models import ChannelState

    with Session(writer(engine)) as s:
        st = s.get(ChannelState, "lapor")
        st.cursor = {}
        s.add(st)
        s.commit()
    res = lapor()
    assert res.pulled == 3 and res.new == 0
    assert [count(engine, m) for m in (RawMessage, Ticket, TicketEvent, Outbox)] == before


def _run_outbox(engine):
    from hub.outbox import run_once

    return asyncio.run(run_once(engine, kinds=["lapor_push"]))


def _outbox_rows(engine, kind="lapor_push"):
    from hub.models import Outbox

    with Session(engine) as s:
        return list(s.scalars(select(Outbox).where(Outbox.kind == kind).order_by(Outbox.id)))


def _change(engine, cfg, tid: str, to: str, note: str | None):
    from hub.db import session_scope
    from hub.models import Ticket
    from hub.tickets import change_status

    with session_scope(engine) as s:
        t = s.scalars(select(Ticket).where(Ticket.channel_message_id == tid)).one()
        change_status(s, t, to, "user:pupr", cfg, note=note)


@pytest.mark.parametrize("to,note,expect", [
    ("diproses", "Tim PUPR meninjau lokasi besok pagi.", ("follow_up", False, "Tim PUPR meninjau lokasi besok pagi.")),
    ("selesai", "Lubang sudah ditambal.", ("follow_up", True, "Lubang sudah ditambal.")),
    ("ditolak", "Jalan nasional, kewenangan BBPJN.", ("admin_action", "bukan_wewenang", "Jalan nasional, kewenangan BBPJN.")),
    ("diproses", None, ("follow_up", False, "sedang diproses")),
])
def test_status_changes_are_pushed_to_lapor(fake, lapor, engine, cfg, to, note, expect):
    seed_reports(fake)
    lapor()
    _change(engine, cfg, "9165816", to, note)
    rows = _outbox_rows(engine)
    assert len(rows) == 1 and rows[0].payload["tracking_id"] == "9165816"
    assert _run_outbox(engine) == 1
    assert _outbox_rows(engine)[0].state == "done"
    kind, flag, text = expect
    if kind == "follow_up":
        assert len(fake.follow_ups) == 1 and not fake.actions
        sent = fake.follow_ups[0]
        assert sent["tracking_id"] == "9165816" and sent["selesai"] is flag and text in sent["isi"]
        assert sent["referensi"] == rows[0].payload["ticket_code"]
    else:
        assert fake.actions == [{"tracking_id": "9165816", "aksi": flag, "alasan": text}]
    # our own change came back on the next pull: it is not echoed or turned into a new change
    before = len(_outbox_rows(engine))
    lapor()
    assert len(_outbox_rows(engine)) == before


def test_lapor_status_changes_are_followed_without_echo(fake, lapor, engine):
    from hub.models import TicketEvent

    seed_reports(fake)
    lapor()
    fake.reporter_replies(9165816, "Sampai hari ini belum ada perbaikan.")
    res = lapor()
    assert res.synced == 1
    t = tickets(engine)["9165816"]
    assert t.fields["lapor_status"] == "Ditanggapi oleh Pelapor"
    with Session(engine) as s:
        notes = [e.note for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id,
                                                                     TicketEvent.kind == "note"))]
    assert any("belum ada perbaikan" in n for n in notes)
    fake.auto_close(9165816)
    lapor()
    t = tickets(engine)["9165816"]
    assert t.status == "selesai"
    assert _outbox_rows(engine) == []  # LAPOR! closed it; nothing goes back to LAPOR!
    # the reporter answers after closing: the ticket opens again for the OPD
    fake.reporter_replies(9165816, "Masih berlubang, tolong dicek lagi.")
    lapor()
    assert tickets(engine)["9165816"].status == "menunggu"
    assert _outbox_rows(engine) == []


def test_report_first_seen_already_closed_is_closed(fake, lapor, engine):
    fake.submit(9170000, "Informasi jadwal", "Kapan jadwal vaksin di Puskesmas Durenan?", kind="permintaan_informasi")
    fake.verify(9170000)
    fake.auto_close(9170000)
    lapor()
    t = tickets(engine)["9170000"]
    assert t.status == "selesai" and t.fields["report_type"] == "permintaan informasi"
    assert _outbox_rows(engine) == []


@pytest.mark.parametrize("outage", ["http500", "timeout"])
def test_pull_outage_backs_off_and_recovers(fake, lapor, engine, outage, monkeypatch):
    seed_reports(fake)
    if outage == "http500":
        fake.fail_next(1, 500)
        res = lapor()
    else:
        res = stalled_pull(lapor, fake, monkeypatch)
    assert res.error and res.new == 0
    st = state(engine)
    assert st["consecutive_failures"] == 1 and st["last_error_at"] is not None
    assert ("500" in st["last_error"]) if outage == "http500" else ("timeout" in st["last_error"])
    next_at = datetime.fromisoformat(st["cursor"]["next_pull_at"])
    assert timedelta(seconds=14) <= next_at - datetime.now(timezone.utc) <= timedelta(seconds=31)
    assert lapor(force=False).skipped  # the scheduler tick waits for the backoff
    fake.fail_next(1, 503)
    lapor()  # a second failure doubles the wait (30..60 s)
    st = state(engine)
    assert st["consecutive_failures"] == 2 and st["cursor"]["pull_failures"] == 2
    assert datetime.fromisoformat(st["cursor"]["next_pull_at"]) - datetime.now(timezone.utc) > timedelta(seconds=29)
    res = lapor()  # LAPOR! is back
    assert res.error is None and res.new == 3
    st = state(engine)
    assert st["consecutive_failures"] == 0 and st["cursor"]["pull_failures"] == 0
    assert st["last_ok_at"] > st["last_error_at"]


def test_bad_token_is_an_outage_not_a_crash(fake, lapor, engine, monkeypatch):
    from hub.settings import reset_settings

    monkeypatch.setenv("SIMPUL_LAPOR_TOKEN", "wrong")
    reset_settings()
    res = lapor()
    assert res.error and "401" in res.error
    assert "wrong" not in (state(engine)["last_error"] or "")


def test_push_outage_is_retried(fake, lapor, engine, cfg):
    from hub.db import writer

    seed_reports(fake)
    lapor()
    _change(engine, cfg, "9165816", "diproses", "Ditinjau.")
    fake.fail_next(1, 502)
    _run_outbox(engine)
    row = _outbox_rows(engine)[0]
    assert row.state == "pending" and row.attempts == 1 and "502" in row.last_error
    assert state(engine)["consecutive_failures"] == 1
    with Session(writer(engine)) as s:  # let the retry be due now
        r = s.get(type(row), row.id)
        r.next_attempt_at = datetime.now(timezone.utc)
        s.add(r)
        s.commit()
    _run_outbox(engine)
    assert _outbox_rows(engine)[0].state == "done" and len(fake.follow_ups) == 1
    assert state(engine)["consecutive_failures"] == 0


def test_unknown_tracking_id_on_push_is_a_dead_letter(fake, lapor, engine):
    from hub.db import session_scope
    from hub.outbox import enqueue

    with session_scope(engine) as s:
        enqueue(s, "lapor_push", "lapor", {"tracking_id": "1", "status": "diproses", "text": "x",
                                           "note": None, "ticket_code": "X"})
    _run_outbox(engine)
    row = _outbox_rows(engine)[0]
    assert row.state == "dead" and "404" in row.last_error


def test_pages_are_followed(fake, lapor, engine, tmp_path, monkeypatch):
    import shutil

    from hub import config as hub_config
    from hub.settings import reset_settings

    cfg_dir = tmp_path / "cfg"
    shutil.copytree(Path(__file__).parents[3] / "config" / "trenggalek", cfg_dir)
    text = (cfg_dir / "lapor.yaml").read_text().replace("per_page: 50", "per_page: 2")
    (cfg_dir / "lapor.yaml").write_text(text)
    monkeypatch.setenv("SIMPUL_CONFIG_DIR", str(cfg_dir))
    reset_settings()
    hub_config.regency_config.cache_clear()
    for i in range(5):
        fake.submit(9180000 + i, f"Lampu jalan mati {i}", f"Lampu PJU di Jalan Soekarno-Hatta nomor {i} mati.")
        fake.verify(9180000 + i)
    res = lapor()
    assert res.pages == 3 and res.new == 5


@pytest.mark.parametrize("yaml_text,problem", [
    ("pull: {per_page: -1}", "non-negative"),
    ("pull: {speed: 3}", "unknown setting"),
    ("service_levels: 5", "must be a mapping"),
])
def test_lapor_config_errors(tmp_path, yaml_text, problem):
    from hub.config import ConfigError
    from hub.lines.lapor import lapor_config

    (tmp_path / "lapor.yaml").write_text(yaml_text)
    with pytest.raises(ConfigError, match=problem):
        lapor_config(tmp_path)


def test_shipped_lapor_config():
    from hub.lines.lapor import lapor_config

    c = lapor_config(Path(__file__).parents[3] / "config" / "trenggalek")
    assert c["service_levels"] == {"verify_working_days": 3, "follow_up_working_days": 5,
                                   "auto_close_working_days": 10}


def test_one_puller_at_a_time(fake, lapor, engine):
    """Another hub process holding the pull lease: this one skips; an expired lease is taken over."""
    from hub.lines.lapor import _claim

    seed_reports(fake)
    now = datetime.now(timezone.utc)
    assert _claim(engine, now, 300, force=True) is not None  # "the other process"
    res = lapor()
    assert res.skipped and not fake.requests
    assert _claim(engine, now + timedelta(seconds=301), 300, force=True) is not None  # it crashed; lease expired
    from hub.db import writer
    from hub.models import ChannelState

    with Session(writer(engine)) as s:  # its lease runs out
        st = s.get(ChannelState, "lapor")
        st.cursor = {k: v for k, v in st.cursor.items() if k != "lease_until"}
        s.add(st)
        s.commit()
    assert lapor().new == 3


def test_a_change_from_lapor_is_not_pushed_back_to_lapor(fake, lapor, engine, cfg):
    """change_status(from_line="lapor") records the change and tells no one on that line."""
    from hub.db import session_scope
    from hub.models import Ticket, TicketEvent
    from hub.tickets import change_status

    seed_reports(fake)
    lapor()
    with session_scope(engine) as s:
        t = s.scalars(select(Ticket).where(Ticket.channel_message_id == "9165816")).one()
        change_status(s, t, "diproses", "channel:lapor", cfg, note="Ditindaklanjuti di LAPOR!", from_line="lapor")
    assert _outbox_rows(engine) == []
    with Session(engine) as s:
        kinds = [e.kind for e in s.scalars(select(TicketEvent).where(TicketEvent.actor == "channel:lapor"))]
    assert "status" in kinds


def test_a_report_we_cannot_read_is_kept_and_the_pull_goes_on(fake, lapor, engine, cfg):
    """Issue #13 item 1: a report LAPOR! sends in a shape we do not know is stored before anything
    else. With a tracking id and text (a report type LAPOR! added later, a time that is not ISO
    8601) it becomes a ticket for the triage OPD; without even that, a dead intake row an admin
    sees, once per version. The others still pull, and the cursor moves past all of them."""
    from hub import unreadable
    from hub.models import RawMessage

    seed_reports(fake)
    fake.reports["9165901"]["jenis"] = "usulan_kebijakan"  # a report type LAPOR! added later
    fake.reports["9166002"]["tanggal_lapor"] = "kemarin sore"
    fake.submit(9166300, "", "")  # a report LAPOR! hands out with neither title nor text
    fake.verify(9166300)
    res = lapor()
    assert res.error is None and res.new == 1 and len(res.rejected) == 3
    got = tickets(engine)
    assert set(got) == {"9165816", "9165901", "9166002"}
    for tid, why in (("9165901", "usulan_kebijakan"), ("9166002", "ISO 8601")):
        t = got[tid]
        assert t.opd_code == cfg.triage_opd and why in t.fields["unreadable"]
        assert t.reporter_name is None and t.reporter_phone is None  # anonymous / rahasia stay hidden
    assert "pungutan liar" in got["9165901"].text_original.lower()
    newest = fake.reports["9166300"]["diperbarui"]  # the dead row is the newest report of all
    assert datetime.fromisoformat(state(engine)["cursor"]["since"]) == datetime.fromisoformat(newest)
    res = lapor()  # the next pull sees them again: still one row and one ticket each
    assert unreadable.count(engine) == 1 and set(tickets(engine)) == set(got)
    with Session(engine) as s:
        [dead] = s.scalars(select(RawMessage).where(RawMessage.state == "unreadable"))
    assert dead.channel == "lapor" and "9166300" in dead.message["raw"]["body"]
    assert "neither title nor text" in dead.message["fields"]["unreadable"]
    # LAPOR! fixes the report later: its status is followed on the triage ticket, no second ticket
    fake.reports["9165901"]["jenis"] = "pengaduan"
    fake.auto_close(9165901)
    lapor()
    assert tickets(engine)["9165901"].status == "selesai" and len(tickets(engine)) == 3


# --- a LAPOR! that keeps failing shows, and recovers by itself (issue #13 item 1) -------------

@pytest.fixture
def check(lapor):
    from hub import readiness
    from hub.lines import lapor as L
    from hub.settings import get_settings

    readiness.register("lapor", L.health_check(get_settings()))  # what the line's start-up does
    yield lambda: readiness.report()["lapor"]
    readiness.unregister("lapor")


@pytest.mark.parametrize("fault", ["http500", "http503", "timeout", "not_a_page", "unknown_json"])
def test_a_failing_lapor_is_degraded_then_stopped_then_recovers(fake, lapor, engine, check, fault,
                                                              monkeypatch):
    from hub import readiness, unreadable

    seed_reports(fake)
    assert lapor().new == 3 and check()["state"] == "running"
    fake.submit(9170001, "Sampah menumpuk", "Sampah di pasar Pon menumpuk tiga hari.")
    fake.verify(9170001)

    def fail() -> None:
        if fault == "timeout":
            res = stalled_pull(lapor, fake, monkeypatch)
        else:
            if fault.startswith("http"):
                fake.fail_next(1, int(fault[4:]))
            elif fault == "not_a_page":
                fake.garble_next(1)  # a proxy's error page, answered 200
            else:
                fake.garble_next(1, json.dumps({"pesan": "format baru", "laporan": []}), "application/json")
            res = lapor()
        assert res.error and res.new == 0

    fail()
    got = check()
    assert got["state"] == "degraded" and got["running"] is True and "retrying" in got["detail"]
    for _ in range(readiness.FAILURES_STOPPED - 1):
        fail()
    got = check()
    assert got["state"] == "stopped" and got["running"] is False
    assert f"{readiness.FAILURES_STOPPED} pulls failed in a row" in got["detail"]
    # raw first: what LAPOR! answered instead of a page is kept for an admin, once per body
    assert unreadable.count(engine) == (1 if fault in ("not_a_page", "unknown_json") else 0)
    res = lapor()  # LAPOR! answers again
    assert res.error is None and res.new == 1 and check()["state"] == "running"


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_stops_the_line_until_the_config_is_fixed(fake, lapor, engine, check, monkeypatch,
                                                                  status):
    from hub.lines import lapor as L
    from hub.settings import get_settings, reset_settings

    seed_reports(fake)
    if status == 401:
        monkeypatch.setenv("SIMPUL_LAPOR_TOKEN", "wrong")  # the fake refuses it with 401
        reset_settings()
    else:
        fake.fail_next(1, 403, message="akses ditolak")
    res = lapor()
    assert str(status) in res.error
    got = check()  # one refusal is enough: retrying will not fix a token
    assert got["state"] == "stopped" and "SIMPUL_LAPOR_TOKEN" in got["page"] and "wrong" not in got["detail"]
    assert lapor(force=False).skipped  # backing off
    monkeypatch.setenv("SIMPUL_LAPOR_TOKEN", fake.token)  # the operator fixes it and restarts
    reset_settings()
    asyncio.run(L.on_startup(None, get_settings()))
    try:
        res = lapor(force=False)  # due at once after the restart, not after the back-off
        assert not res.skipped and res.new == 3 and check()["state"] == "running"
        assert "auth_failed" not in state(engine)["cursor"]
    finally:
        asyncio.run(L.on_shutdown(None, get_settings()))


def test_a_stopped_lapor_shows_in_readyz_metrics_and_the_admin_page(fake, lapor, engine, cfg):
    from tests.lines.runner import app_client
    from tests.web.conftest import login, seed_known

    seed_reports(fake)
    with app_client() as c:  # the line's start-up registers its check (LAPOR! is configured)
        assert lapor().new == 3
        assert c.get("/readyz").json()["lines"]["lapor"]["state"] == "running"
        fake.fail_next(1, 502)
        lapor()
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json()["degraded"] == ["lapor"]
        assert 'simpul_line_degraded{line="lapor"} 1.0' in c.get("/metrics").text
        seed_known(cfg)
        login(c, "admin")
        assert "TERGANGGU" in c.get("/admin").text
        fake.fail_next(1, 401)
        lapor()
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["stopped"] == ["lapor"]
        assert 'simpul_line_up{line="lapor"} 0.0' in c.get("/metrics").text
        page = c.get("/admin").text
        assert "BERHENTI" in page and "LAPOR! menolak token" in page
        lapor()
        assert c.get("/readyz").status_code == 200
        assert 'simpul_line_up{line="lapor"} 1.0' in c.get("/metrics").text


# --- outgoing table: our status change -> the exact request at the fake LAPOR! -----------------

def _http_date(seconds_from_now: float) -> str:
    from email.utils import format_datetime

    return format_datetime(datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now), usegmt=True)


def _push(status: str, text: str = "Laporan K7X2M9P sedang ditangani Dinas PUPR.", note: str | None = None,
          tid: str = "9165816", reference: str | None = "K7X2M9P") -> dict:
    """One push (adapters.lapor.LaporAdapter.push) as a row's message."""
    return dict(tracking_id=tid, status=status, text=text, note=note, reference=reference)


def _follow_up(tid: str, body: dict) -> dict:
    return {"method": "POST", "path": f"/api/v1/instansi/laporan/{tid}/tindak-lanjut",
            "auth": "Bearer lapor-test-token", "json": body}


PUSH = _push("diproses")
OUTGOING = [
    OutCase("diproses: follow-up", PUSH, request=_follow_up("9165816", {
        "isi": "Laporan K7X2M9P sedang ditangani Dinas PUPR.", "selesai": False, "referensi": "K7X2M9P",
        "status_internal": "diproses"})),
    OutCase("selesai: closing follow-up, the OPD's note wins", _push("selesai", note="  Sudah ditambal. "),
            request=_follow_up("9165816", {"isi": "Sudah ditambal.", "selesai": True, "referensi": "K7X2M9P",
                                           "status_internal": "selesai"})),
    OutCase("menunggu: reopened", _push("menunggu", reference=None), request=_follow_up("9165816", {
        "isi": "Laporan K7X2M9P sedang ditangani Dinas PUPR.", "selesai": False, "referensi": None,
        "status_internal": "menunggu"})),
    OutCase("ditolak: admin action bukan wewenang", _push("ditolak", note="Bukan wewenang kabupaten."),
            request={"method": "POST", "path": "/api/v1/instansi/laporan/9165816/aksi",
                     "auth": "Bearer lapor-test-token",
                     "json": {"aksi": "bukan_wewenang", "alasan": "Bukan wewenang kabupaten."}}),
    OutCase("plain reply (send)", OutboundMessage("lapor", "9165816", "Mohon kirim foto lokasi.",
                                                  ticket_code="K7X2M9P"),
            request=_follow_up("9165816", {"isi": "Mohon kirim foto lokasi.", "selesai": False,
                                           "referensi": "K7X2M9P"})),
    OutCase("429 Retry-After seconds", PUSH, error=RetryableError, retry_after=120.0,
            fail=dict(status=429, retry_after="120", message="Too Many Requests")),
    OutCase("503 Retry-After HTTP date", PUSH, error=RetryableError, retry_after=pytest.approx(90, abs=3),
            fail=dict(status=503, retry_after=lambda: _http_date(90), message="Service Unavailable")),
    OutCase("429 Retry-After date in the past", PUSH, error=RetryableError, retry_after=0.0,
            fail=dict(status=429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")),
    OutCase("500 without Retry-After", PUSH, error=RetryableError, fail=dict(status=500)),
    OutCase("502", PUSH, error=RetryableError, fail=dict(status=502, message="Bad Gateway")),
    OutCase("401 token refused", PUSH, error=PermanentError, fail=dict(status=401, message="token tidak valid")),
    OutCase("403", PUSH, error=PermanentError, fail=dict(status=403, message="akses ditolak")),
    OutCase("404 unknown report", _push("diproses", tid="9999999"), error=PermanentError),
    OutCase("422 empty text", _push("diproses", text=""), error=PermanentError),
    OutCase("status without a LAPOR! mapping", _push("baru"), error=PermanentError),
    OutCase("not a tracking id", _push("diproses", tid="+6281234567890"), error=PermanentError),
]


@pytest.mark.parametrize("case", OUTGOING, ids=lambda c: c.label)
def test_outgoing(case, fake, capfd):
    """The exact request LAPOR! gets for each of our status changes, or the typed error with the
    server's Retry-After; the token is in neither the error text nor the logs."""
    from adapters.lapor import LaporAdapter
    from hub.logging import configure_logging

    configure_logging("DEBUG", json=True)
    seed_reports(fake)
    if case.fail:
        fail = dict(case.fail)
        if callable(fail.get("retry_after")):  # an HTTP date is relative to when the row runs
            fail["retry_after"] = fail["retry_after"]()
        fake.fail_next(1, **fail)
    adapter = LaporAdapter(fake.url, fake.token, timeout_s=5)

    async def send(message):
        if isinstance(message, OutboundMessage):
            return await adapter.send(message)
        return await adapter.push(**message)

    def sent():
        return [{"method": r["method"], "path": r["path"], "auth": r["headers"].get("Authorization"),
                 "json": r["json"]} for r in fake.requests]

    run_outgoing(case, send, sent, secrets=(fake.token, "6281234567890"), logs=lambda: "".join(capfd.readouterr()))
