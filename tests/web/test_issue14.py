"""Issue #14 without a browser: safe status changes (hub.tickets rules, the page and the API),
NIKs masked everywhere (reveal by Dukcapil recorded), emergencies and escalations lists,
the triage queue, held messages released from /admin, the citizen's answer on /cek and by
SMS/Telegram, errors in Bahasa Indonesia next to the field, flash messages, history in words.
Storage-touching tests run on SQLite and PostgreSQL (`both`)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.web.conftest import KEC_DURENAN, PASSWORD, csrf_of, login, make_ticket, seed_known

NIK = "3503114507850012"
KTP_TEXT = f"KTP#{NIK}#SITI AMINAH#Ngadisuko#KTP elektronik belum jadi sejak 3 bulan"


@pytest.fixture
def both(client, cfg):
    """The web app over SQLite and PostgreSQL with the known tickets and users."""
    seed_known(cfg)
    return client


def tk(code: str):
    from hub.db import session_scope
    from hub.models import Ticket

    with session_scope() as s:
        return s.scalars(select(Ticket).where(Ticket.code == code)).first()


def events(code: str) -> list:
    from hub.db import session_scope
    from hub.models import Ticket, TicketEvent

    with session_scope() as s:
        t = s.scalars(select(Ticket).where(Ticket.code == code)).one()
        return list(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id).order_by(TicketEvent.id)))


def add(code: str, opd: str = "PUPR", **kw):
    from hub.db import session_scope

    with session_scope() as s:
        make_ticket(s, code, opd, **kw)


def post_form(web, path: str, page_path: str, data: dict, files=None):
    page = web.get(page_path)
    return web.post(path, data={"csrf": csrf_of(page.text), **data}, files=files, follow_redirects=False)


# --- 1. safe status changes ------------------------------------------------------------------

def test_status_select_defaults_to_no_change_and_a_note_alone_keeps_the_status(both):
    login(both, "pupr")
    page = both.get("/tiket/PUPR003")  # diproses
    sel = re.search(r'<select name="status" id="status-to">(.*?)</select>', page.text, re.S).group(1)
    first = re.search(r'<option value="([^"]*)"( selected)?>', sel)
    assert first.group(1) == "" and first.group(2) == " selected" and "Tanpa perubahan" in sel
    assert 'value="menunggu"' not in sel  # moving back is not offered to an OPD
    r = post_form(both, "/tiket/PUPR003/status", "/tiket/PUPR003", {"status": "", "note": "Tim sudah di lokasi", "publik": "1"})
    assert r.status_code == 303 and r.headers["location"] == "/tiket/PUPR003"
    assert tk("PUPR003").status == "diproses"
    ev = events("PUPR003")[-1]
    assert ev.kind == "note" and ev.note == "Tim sudah di lokasi" and ev.data["public"] is True
    page = both.get("/tiket/PUPR003")
    assert "Catatan disimpan" in page.text and "Tim sudah di lokasi" in page.text


def test_an_opd_cannot_send_a_ticket_back_and_an_admin_reopens_only_with_a_reason(both):
    login(both, "pupr")
    r = post_form(both, "/tiket/PUPR003/status", "/tiket/PUPR003", {"status": "menunggu", "note": "salah klik"})
    assert r.status_code == 303 and tk("PUPR003").status == "diproses"
    assert "hanya boleh dilakukan admin" in both.get("/tiket/PUPR003").text
    both.cookies.clear()
    login(both, "admin")
    page = both.get("/tiket/PUPR004")  # selesai
    assert "Buka kembali → Menunggu" in page.text
    post_form(both, "/tiket/PUPR004/status", "/tiket/PUPR004", {"status": "menunggu", "note": ""})
    assert tk("PUPR004").status == "selesai"
    page = both.get("/tiket/PUPR004")
    assert re.search(r'id="note-err" role="alert">Tulis alasan', page.text)  # next to the note field
    post_form(both, "/tiket/PUPR004/status", "/tiket/PUPR004", {"status": "menunggu", "note": "Warga lapor lagi"})
    assert tk("PUPR004").status == "menunggu"
    assert "Dibuka kembali (Selesai → Menunggu) oleh admin" in both.get("/tiket/PUPR004").text


def test_ditolak_needs_a_reason_and_the_reason_is_public(both):
    login(both, "pupr")
    post_form(both, "/tiket/PUPR001/status", "/tiket/PUPR001", {"status": "ditolak"})
    assert tk("PUPR001").status == "menunggu"
    assert "Ditolak perlu alasan" in both.get("/tiket/PUPR001").text
    post_form(both, "/tiket/PUPR001/status", "/tiket/PUPR001",
              {"status": "ditolak", "note": "Jalan provinsi, bukan kewenangan kabupaten"})  # publik unchecked
    t = tk("PUPR001")
    assert t.status == "ditolak"
    assert events("PUPR001")[-1].data["public"] is True
    from hub.db import session_scope
    from hub.models import Outbox

    with session_scope() as s:
        reply = s.scalars(select(Outbox).where(Outbox.ticket_id == t.id, Outbox.kind == "reply")).all()[-1]
    assert "bukan kewenangan kabupaten" in reply.payload["text"]


def test_api_obeys_the_same_rules(both, make_key):
    h = make_key("opd", "PUPR")
    r = both.patch("/api/v1/tickets/PUPR003", json={"status": "menunggu", "note": "x"}, headers=h)
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    r = both.patch("/api/v1/tickets/PUPR003", json={"status": "ditolak"}, headers=h)
    assert r.status_code == 400 and "reason" in r.json()["detail"]
    r = both.patch("/api/v1/tickets/PUPR003", json={"note": "progres 50%", "public": False}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "diproses"
    assert r.json()["history"][-1]["kind"] == "note" and r.json()["history"][-1]["data"]["public"] is False
    admin = make_key("admin")
    assert both.patch("/api/v1/tickets/PUPR004", json={"status": "menunggu"}, headers=admin).status_code == 400
    r = both.patch("/api/v1/tickets/PUPR004", json={"status": "menunggu", "note": "dibuka lagi"}, headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "menunggu"


def test_internal_note_is_not_sent_to_the_reporter(both):
    from hub.db import session_scope
    from hub.models import Outbox

    login(both, "pupr")
    post_form(both, "/tiket/PUPR001/status", "/tiket/PUPR001", {"status": "diproses", "note": "kode anggaran 5.2.3"})
    t = tk("PUPR001")
    with session_scope() as s:
        texts = [o.payload.get("text", "") for o in s.scalars(select(Outbox).where(Outbox.ticket_id == t.id))]
    assert texts and not any("anggaran" in x for x in texts)
    assert events("PUPR001")[-1].data["public"] is False


def test_acknowledge_is_offered_while_the_ticket_is_open_as_in_the_api(both):
    login(both, "pupr")
    assert "/tiket/PUPR003/terima" in both.get("/tiket/PUPR003").text  # diproses
    assert "/tiket/PUPR004/terima" not in both.get("/tiket/PUPR004").text  # selesai


# --- 2. NIK ----------------------------------------------------------------------------------

def test_nik_is_masked_in_ticket_list_search_and_api_and_dukcapil_reveals_it(both, make_key):
    add("DUKC009", "DUKCAPIL", text=KTP_TEXT)
    from hub.db import session_scope
    from hub.models import Ticket
    from normalizer.reporter import mask_niks

    with session_scope() as s:  # as the normalizer stores it: the cleaned text has NIKs masked
        s.scalars(select(Ticket).where(Ticket.code == "DUKC009")).one().text_clean = mask_niks(KTP_TEXT)
    masked = "3503**********12"
    for who in ("admin", "bupati", "operator", "dukcapil"):
        both.cookies.clear()
        login(both, who)
        page = both.get("/tiket/DUKC009")
        assert NIK not in page.text and masked in page.text, who
        assert NIK not in both.get("/tiket").text
        assert NIK not in both.get("/tiket?q=KTP").text
        assert "DUKC009" not in both.get(f"/tiket?q={NIK[4:12]}").text  # search never matches a NIK
        assert "DUKC009" not in both.get(f"/tiket?q={NIK}").text
    r = both.get("/api/v1/tickets/DUKC009", headers=make_key("admin"))
    assert NIK not in r.text and masked in r.json()["text"]
    # a Dukcapil user reveals it on purpose; recorded
    page = both.get("/tiket/DUKC009")
    assert 'id="reveal-nik"' in page.text
    r = both.post("/tiket/DUKC009/nik", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 200 and NIK in r.text
    assert events("DUKC009")[-1].kind == "nik_revealed" and events("DUKC009")[-1].actor.endswith("dukcapil")
    assert NIK not in both.get("/tiket/DUKC009").text  # not kept
    # PUPR staff may not
    both.cookies.clear()
    login(both, "operator")
    page = both.get("/tiket/DUKC009")
    assert 'id="reveal-nik"' not in page.text
    assert both.post("/tiket/DUKC009/nik", data={"csrf": csrf_of(page.text)}).status_code == 403


def test_ktp_sms_name_goes_to_the_reporter():
    from datetime import datetime, timezone

    from normalizer.core import _reporter
    from normalizer.reporter import ktp_name
    from normalizer.types import InboundMessage

    assert ktp_name(KTP_TEXT) == "Siti Aminah"
    assert ktp_name("KTP*3503114507850012*budi santoso*x") == "Budi Santoso"
    assert ktp_name("jalan rusak di Pogalan") is None
    msg = InboundMessage(channel="sms", text=KTP_TEXT, sender="+6281234567890", provider_id="x",
                         received_at=datetime.now(timezone.utc))
    rep = _reporter(msg, {})
    assert rep.name == "Siti Aminah" and rep.nik_masked == "3503**********12"


# --- 3. emergencies, incidents, escalations --------------------------------------------------

def test_every_open_emergency_in_one_tap_most_overdue_first_grouped_by_incident(both):
    from hub.db import session_scope
    from hub.models import Incident

    with session_scope() as s:
        inc = Incident(kecamatan_code=KEC_DURENAN, urgency="darurat", is_open=True, ticket_count=3)
        s.add(inc)
        s.flush()
        for i, ch in enumerate(("sms", "telegram", "bpbd")):
            make_ticket(s, f"BNJ00{i}", "BPBD", channel=ch, kecamatan=KEC_DURENAN, urgency="darurat",
                        incident_id=inc.id, text=f"banjir {ch}", due_in=timedelta(hours=1))
        for i in range(12):
            make_ticket(s, f"DRT{i:03d}", "DINKES", urgency="darurat", due_in=timedelta(hours=5 - i))
        make_ticket(s, "LAHIR14", "DINKES", urgency="darurat", age=timedelta(hours=14), due_in=timedelta(hours=1))
    login(both, "bupati")
    home = both.get("/")
    assert 'href="/darurat"' in home.text
    n = int(re.search(r'(\d+) darurat terbuka', home.text).group(1))
    page = both.get("/darurat")
    codes = re.findall(r'<span class="code">([A-Z0-9]+)</span>', page.text)
    assert len(codes) == n == 18
    assert codes[0] == "LAHIR14"  # 13 hours overdue: first
    assert "— 3 laporan: SMS Dukcapil, Telegram, BPBD Pusdalops" in page.text


def test_the_overview_lists_ten_incidents_not_ten_reports_of_one_flood(both):
    """A hundred reports of one flood (more than one window of the attention query) must not
    push every other emergency off the regent's first page: the overview shows each incident
    once (its most urgent report) and how many more of its reports are open."""
    from hub.db import session_scope
    from hub.models import Incident

    with session_scope() as s:
        inc = Incident(kecamatan_code=KEC_DURENAN, urgency="darurat", is_open=True, ticket_count=100)
        s.add(inc)
        s.flush()
        for i in range(100):
            make_ticket(s, f"BJR{i:03d}", "BPBD", channel=("sms", "telegram", "bpbd")[i % 3], kecamatan=KEC_DURENAN,
                        urgency="darurat", incident_id=inc.id, text=f"banjir masuk rumah no {i}",
                        due_in=timedelta(minutes=30 + i))
        make_ticket(s, "LAHIR01", "DINKES", urgency="darurat", text="ibu melahirkan, pendarahan",
                    due_in=timedelta(hours=2))
    login(both, "bupati")
    home = both.get("/").text
    urgent = home[home.index('id="urgent-list"'):home.index("</ul>", home.index('id="urgent-list"'))]
    codes = re.findall(r'<span class="code">([A-Z0-9]+)</span>', urgent)
    assert [c for c in codes if c.startswith("BJR")] == ["BJR000"]  # the flood once: its most urgent report
    assert "LAHIR01" in codes  # the birth is still on the first page
    assert re.search(r"dan 99 laporan lain tentang kejadian yang sama \([^;]+; SMS Dukcapil, Telegram, "
                     r"BPBD Pusdalops\)", urgent)


def test_escalations_to_the_regional_head_have_their_own_list(both):
    from hub.db import session_scope
    from hub.models import Ticket

    with session_scope() as s:
        t = s.scalars(select(Ticket).where(Ticket.code == "PUPR002")).one()
        t.escalation_level = 3
    login(both, "bupati")
    assert "1 eskalasi ke kepala daerah" in both.get("/").text
    page = both.get("/eskalasi")
    assert "PUPR002" in page.text and "PUPR001" not in page.text


# --- 4. triage queue, held messages ----------------------------------------------------------

def test_triage_queue_on_the_overview_with_suggestions(both):
    from hub.db import session_scope
    from hub.models import Ticket, TicketEvent

    with session_scope() as s:
        t = make_ticket(s, "TRI001", "DISKOMINFO", text="lampu jalan mati")
        t.needs_triage = True
        s.flush()
        routed = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id,
                                                     TicketEvent.kind == "routed")).one()
        routed.data = {"candidates": [["PUPR", 0.41], ["DISHUB", 0.33]]}
    for who in ("admin", "operator"):
        both.cookies.clear()
        login(both, who)
        page = both.get("/")
        assert "Perlu triase (1)" in page.text and "TRI001" in page.text
        assert re.search(r'value="PUPR"[^>]*>PUPR \(41%\)', page.text)
    both.cookies.clear()
    login(both, "bupati")
    assert "Perlu triase" not in both.get("/").text
    both.cookies.clear()
    login(both, "operator")
    page = both.get("/")
    r = both.post("/tiket/TRI001/rute", data={"csrf": csrf_of(page.text), "opd": "PUPR", "note": "saran router"},
                  follow_redirects=False)
    assert r.status_code == 303 and tk("TRI001").opd_code == "PUPR"
    assert "Perlu triase (0)" in both.get("/").text


def test_admin_releases_held_messages_all_or_one(both):
    from datetime import datetime, timezone

    from hub.db import session_scope
    from hub.models import RawMessage

    now = datetime.now(timezone.utc)
    with session_scope() as s:
        for i in range(3):
            s.add(RawMessage(channel="sms", provider_id=f"h{i}", idempotency_key=f"sms:h{i}", sender="+6281111111111",
                             text=f"spam {i}", received_at=now, state="held", ticket_code=f"HLD{i:04d}"))
        s.add(RawMessage(channel="telegram", provider_id="t1", idempotency_key="telegram:t1", sender="555",
                         text="pesan tg", received_at=now, state="held", ticket_code="HLDT001"))
    login(both, "operator")
    assert both.post("/admin/ditahan/lepas", data={"csrf": csrf_of(both.get("/").text), "semua": "1"},
                     follow_redirects=False).status_code in (303, 403)
    both.cookies.clear()
    login(both, "admin")
    page = both.get("/admin")
    assert "+6281111111111" in page.text and "3 pesan" in page.text and "pesan tg" in page.text
    assert both.post("/admin/ditahan/lepas", data={"semua": "1"}).status_code == 403  # no CSRF
    one = re.search(r'name="id" value="(\d+)"', page.text).group(1)
    r = both.post("/admin/ditahan/lepas", data={"csrf": csrf_of(page.text), "id": one}, follow_redirects=False)
    assert r.status_code == 303
    with session_scope() as s:
        assert s.get(RawMessage, int(one)).state == "pending"
        assert len(s.scalars(select(RawMessage).where(RawMessage.state == "held")).all()) == 3
    page = both.get("/admin")
    assert "1 pesan tertahan dilepas" in page.text
    both.post("/admin/ditahan/lepas", data={"csrf": csrf_of(page.text), "semua": "1"})
    with session_scope() as s:
        assert not s.scalars(select(RawMessage).where(RawMessage.state == "held")).all()


# --- 5. the citizen's page and answer --------------------------------------------------------

def test_cek_shows_public_note_and_after_photo_and_the_citizen_answers(both, tmp_path):
    from tests.web.test_web import PNG_1PX

    login(both, "pupr")
    post_form(both, "/tiket/PUPR001/status", "/tiket/PUPR001", {"status": "diproses", "note": "internal: cek gudang"})
    post_form(both, "/tiket/PUPR001/status", "/tiket/PUPR001",
              {"status": "selesai", "note": "Lubang sudah ditambal", "publik": "1"},
              files={"foto": ("sesudah.png", PNG_1PX, "image/png")})
    both.cookies.clear()
    page = both.get("/cek?kode=PUPR001")
    assert "Lubang sudah ditambal" in page.text and "cek gudang" not in page.text
    photo = re.search(r'src="(/cek/PUPR001/foto/[^"]+)"', page.text).group(1)
    assert both.get(photo).content == PNG_1PX
    assert both.get("/cek/PUPR002/foto/" + photo.rsplit("/", 1)[1]).status_code == 404  # not that ticket's
    assert 'id="form-feedback"' in page.text
    r = both.post("/cek/PUPR001/jawab", data={"csrf": csrf_of(page.text), "jawaban": "belum", "nilai": "2"},
                  follow_redirects=False)
    assert r.status_code == 303 and tk("PUPR001").status == "menunggu"
    page = both.get("/cek?kode=PUPR001")
    assert "dibuka kembali" in page.text.lower() and "Jawaban Anda: belum beres (nilai 2/5)" in page.text
    # counted as reopened on the overview
    login(both, "bupati")
    assert re.search(r'dibuka kembali <span id="reopened">1</span>', both.get("/").text)
    mine = tk("PUPR001").channel  # the overview's channel filter counts it only on its own channel
    assert re.search(r'dibuka kembali <span id="reopened">1</span>', both.get(f"/?channel={mine}").text)
    other = "telegram" if mine != "telegram" else "sms"
    assert re.search(r'dibuka kembali <span id="reopened">0</span>', both.get(f"/?channel={other}").text)


def test_citizen_answer_rules(both):
    page = both.get("/cek?kode=PUPR004")  # selesai
    r = both.post("/cek/PUPR004/jawab", data={"csrf": csrf_of(page.text), "jawaban": "beres", "nilai": "5"},
                  follow_redirects=False)
    assert r.status_code == 303 and tk("PUPR004").status == "selesai"
    ev = events("PUPR004")[-1]
    assert ev.kind == "feedback" and ev.data["rating"] == 5 and ev.data["answer"] == "beres"
    page = both.get("/cek?kode=PUPR004")
    assert 'id="form-feedback"' not in page.text and "Jawaban Anda tercatat" in page.text
    page = both.get("/cek?kode=PUPR001")  # still open: no answer possible
    assert 'id="form-feedback"' not in page.text
    both.post("/cek/PUPR001/jawab", data={"csrf": csrf_of(both.get("/lapor").text), "jawaban": "beres"},
              follow_redirects=False)
    assert "belum selesai ditangani" in both.get("/cek?kode=PUPR001").text


def test_beres_and_belum_by_sms_and_telegram_commands():
    from hub.commands import parse_citizen_command, parse_feedback

    assert parse_feedback("BERES PUPR001") == ("beres", "PUPR001", None)
    assert parse_feedback("beres pupr001 4") == ("beres", "PUPR001", 4)
    assert parse_feedback("BELUM BERES PUPR001") == ("belum", "PUPR001", None)
    assert parse_feedback("/belum@SimpulBot PUPR001") == ("belum", "PUPR001", None)
    assert parse_feedback("beres semua jalannya") is None or parse_feedback("beres semua jalannya")[1] == "SEMUA"
    assert parse_citizen_command("CEK PUPR001") == ("cek", "PUPR001", None)
    assert parse_citizen_command("jalan rusak di Pogalan") is None


def test_belum_by_sms_from_the_reporter_reopens(both, cfg):
    from hub.commands import answer_citizen_command
    from hub.db import session_scope
    from hub.models import Ticket

    with session_scope() as s:
        t = s.scalars(select(Ticket).where(Ticket.code == "PUPR001")).one()
        t.status = "selesai"
    with session_scope() as s:
        other = answer_citizen_command(s, cfg, "sms", "+6289999999999", ("belum", "PUPR001", None))
    assert tk("PUPR001").status == "selesai" and "PUPR001" in other  # a stranger: unknown code
    with session_scope() as s:
        text = answer_citizen_command(s, cfg, "sms", "081234500001", ("belum", "PUPR001", None))
    assert "dibuka kembali" in text and tk("PUPR001").status == "menunggu"
    assert events("PUPR001")[-2].kind == "feedback" and events("PUPR001")[-1].data.get("reopen")


# --- 8. errors, flash, 404, history ----------------------------------------------------------

def test_unknown_url_is_an_indonesian_page_and_api_stays_json(both):
    r = both.get("/tidak-ada")
    assert r.status_code == 404 and "text/html" in r.headers["content-type"] and "tidak ada" in r.text
    r = both.get("/api/v1/tidak-ada")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")


def test_no_message_text_from_the_url(both):
    login(both, "admin")
    for path in ("/tiket/PUPR001", "/admin"):
        page = both.get(path + "?galat=Sistem+diretas&pesan=Transfer+sekarang")
        assert "diretas" not in page.text and "Transfer sekarang" not in page.text


def test_admin_form_errors_in_indonesian_next_to_the_field(both):
    login(both, "admin")
    page = both.get("/admin")
    r = both.post("/admin/pengguna", data={"csrf": csrf_of(page.text), "username": "baru", "password": "rahasia-123",
                                           "role": "opd", "opd": ""}, follow_redirects=False)
    assert r.status_code == 303 and "?" not in r.headers["location"]
    page = both.get("/admin")
    assert re.search(r'id="err-opd" role="alert">Pengguna dengan peran OPD harus memilih OPD-nya', page.text)
    assert "needs --opd" not in page.text


def test_console_errors_next_to_the_field_with_the_closest_name(both):
    login(both, "operator")
    page = both.get("/konsol/psc119")
    r = both.post("/konsol/psc119", data={"csrf": csrf_of(page.text), "call_id": "x1", "caller_phone": "081234567890",
                                          "incident_type": "kecelakan", "kecamatan": "Pogalam"})
    assert r.status_code == 422
    assert re.search(r'id="err-kecamatan" role="alert">Kecamatan “Pogalam” tidak dikenal. Maksud Anda “Pogalan”\?',
                     r.text)
    assert "Maksud Anda “kecelakaan”?" in r.text and "unknown" not in r.text
    r = both.post("/konsol/psc119", data={"csrf": csrf_of(page.text), "call_id": "x2", "incident_type": "kecelakaan",
                                          "kecamatan": "Pogalan", "desa": "Ngadirejoo"},
                  headers={"Accept": "application/json"})
    assert r.status_code == 422 and "desa" in r.json()["errors"]


def test_history_rows_in_words(both):
    login(both, "admin")
    page = both.get("/tiket/PUPR001")
    r = post_form(both, "/tiket/PUPR001/rute", "/tiket/PUPR001", {"opd": "BPBD", "note": "pohon tumbang"})
    assert r.status_code == 303 and tk("PUPR001").opd_code == "BPBD", both.get("/tiket/PUPR001").text[:3000]
    page = both.get("/tiket/PUPR001")
    assert "Dialihkan dari" in page.text and " ke " in page.text and "oleh admin" in page.text
    assert "field incident_type" not in page.text
