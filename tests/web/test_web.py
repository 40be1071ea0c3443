"""Fast web tests without a browser (TestClient): login, lockout, CSRF, role scoping, the
overview's numbers and click-throughs, ticket actions, console, public report and follow-up."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from tests.web.conftest import KEC_DURENAN, KEC_POGALAN, PASSWORD, csrf_of, login

PNG_1PX = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def ticket(code: str):
    from hub.db import session_scope
    from hub.models import Ticket

    with session_scope() as s:
        return s.scalars(select(Ticket).where(Ticket.code == code)).first()


def stat(html: str, label: str) -> int:
    m = re.search(r'<b>(\d+)</b>' + label, html)
    assert m, f"no stat {label}"
    return int(m.group(1))


@pytest.mark.parametrize("username,home", [("admin", "/"), ("bupati", "/"), ("operator", "/"), ("pupr", "/opd")])
def test_login_lands_on_the_role_home_and_logout_ends_the_session(web, username, home):
    r = login(web, username)
    assert r.status_code == 303 and r.headers["location"] == home
    page = web.get(home)
    assert page.status_code == 200
    r = web.post("/keluar", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert web.get("/tiket", follow_redirects=False).status_code == 303


def test_pages_need_login(web):
    r = web.get("/tiket/PUPR001", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/masuk?lanjut=%2Ftiket%2FPUPR001"
    assert web.get("/api/v1/stats/summary").status_code == 401


def test_wrong_password_is_refused_and_five_failures_lock_for_15_minutes(web):
    from sqlalchemy import update

    from hub.db import session_scope
    from hub.models import RateCounter

    for _ in range(4):
        r = login(web, "bupati", "salah-sandi")
        assert r.status_code == 401 and "salah" in r.text
    r = login(web, "bupati", "salah-sandi")  # fifth failure locks
    assert r.status_code == 401
    r = login(web, "bupati", PASSWORD)  # the right password no longer helps (from this address)
    assert r.status_code == 401 and "dikunci" in r.text
    with session_scope() as s:
        lock = s.scalars(select(RateCounter).where(RateCounter.key.startswith("login:lock:"))).one()
        assert lock.key == "login:lock:testclient|bupati" and lock.window_s == 15 * 60
        left = lock.window_start + lock.window_s - datetime.now(timezone.utc).timestamp()
        assert 14 * 60 < left <= 15 * 60
        s.execute(update(RateCounter).values(window_start=RateCounter.window_start - 15 * 60))  # 15 minutes pass
    assert login(web, "bupati", PASSWORD).status_code == 303


def test_admin_unlocks_a_locked_account(web):
    for _ in range(5):
        login(web, "operator", "salah-sandi")
    assert "dikunci" in login(web, "operator", PASSWORD).text
    login(web, "admin")
    page = web.get("/admin")
    uid = re.search(r'action="/admin/pengguna/(\d+)/buka"', page.text).group(1)
    r = web.post(f"/admin/pengguna/{uid}/buka", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    web.cookies.clear()
    assert login(web, "operator", PASSWORD).status_code == 303


@pytest.mark.parametrize("path,data", [
    ("/tiket/PUPR001/status", {"status": "diproses", "note": "x"}),
    ("/tiket/PUPR001/rute", {"opd": "DLH"}),
    ("/tiket/PUPR001/gabung", {"into": "PUPR002"}),
])
def test_forms_without_the_csrf_token_change_nothing(web, path, data):
    login(web, "admin")
    for token in (None, "forged-token"):
        body = dict(data, **({"csrf": token} if token else {}))
        r = web.post(path, data=body, follow_redirects=False)
        assert r.status_code == 403
    t = ticket("PUPR001")
    assert (t.status, t.opd_code, t.merged_into) == ("menunggu", "PUPR", None)


def test_login_form_without_csrf_is_rejected(web):
    r = web.post("/masuk", data={"username": "admin", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403


def test_opd_staff_see_only_their_own_opd(web):
    login(web, "pupr")
    assert web.get("/tiket/PUPR001").status_code == 200
    r = web.get("/tiket/DUKC001")
    assert r.status_code == 404 and "DUKC001" in r.text and "Laporan uji DUKC001" not in r.text
    listing = web.get("/tiket").text
    assert "PUPR001" in listing and "DUKC001" not in listing and "BPBD001" not in listing
    assert "DUKC001" not in web.get("/tiket?opd=DUKCAPIL").text
    assert web.get("/", follow_redirects=False).headers["location"] == "/opd"
    assert web.get("/admin").status_code == 403
    assert web.get("/konsol/psc119").status_code == 403
    # The JSON API accepts the session, with the same scoping.
    assert web.get("/api/v1/tickets/DUKC001").status_code == 404
    assert web.get("/api/v1/tickets/PUPR001").json()["opd"] == "PUPR"
    assert web.get("/api/v1/stats/summary").json()["total"] == 4
    # OPD staff do not see who reported.
    assert "+6281234500001" not in web.get("/tiket/PUPR001").text


def test_api_changes_with_a_session_need_the_csrf_header(web):
    login(web, "admin")
    token = csrf_of(web.get("/tiket/PUPR001").text)
    r = web.patch("/api/v1/tickets/PUPR001", json={"status": "diproses"})
    assert r.status_code == 401
    r = web.patch("/api/v1/tickets/PUPR001", json={"status": "diproses"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and r.json()["status"] == "diproses"


@pytest.mark.parametrize("username,path,code", [
    ("bupati", "/admin", 403), ("bupati", "/konsol/bpbd", 403), ("operator", "/admin", 403),
    ("operator", "/konsol/bpbd", 200), ("admin", "/opd?opd=PUPR", 200), ("bupati", "/opd", 403),
])
def test_role_gates(web, username, path, code):
    login(web, username)
    assert web.get(path).status_code == code


def test_overview_counts_the_known_tickets_and_numbers_click_through(web):
    login(web, "bupati")
    html = web.get("/").text
    assert (stat(html, "Menunggu"), stat(html, "Diproses"), stat(html, "Selesai")) == (4, 2, 2)
    assert stat(html, "Lewat tenggat") == 2
    assert "2 darurat terbuka" in html
    # The attention list: the darurat and overdue tickets, not the calm ones.
    attention = html.split('id="urgent-list"')[1].split("</ul>")[0]
    assert {"BPBD001", "BPBD002", "PUPR002"} <= set(re.findall(r"/tiket/([A-Z0-9]+)", attention))
    assert "PUPR001" not in attention
    # Every number is a link to the tickets behind it.
    link = re.search(r'href="/tiket\?([^"]*opd=PUPR[^"]*status=menunggu[^"]*)"', html).group(1)
    listing = web.get("/tiket?" + link.replace("&amp;", "&")).text
    assert set(re.findall(r'class="code">([A-Z0-9]+)<', listing)) == {"PUPR001", "PUPR002"}
    kec = web.get(f"/tiket?kecamatan={KEC_DURENAN}").text
    assert set(re.findall(r'class="code">([A-Z0-9]+)<', kec)) == {"PUPR003", "PUPR004", "BPBD001", "BPBD002"}
    over = web.get("/tiket?overdue=1").text
    assert set(re.findall(r'class="code">([A-Z0-9]+)<', over)) == {"PUPR002", "BPBD001"}


def test_overview_filters(web):
    login(web, "admin")
    html = web.get("/?opd=BPBD").text
    assert (stat(html, "Menunggu"), stat(html, "Diproses"), stat(html, "Selesai")) == (1, 1, 0)
    html = web.get(f"/?kecamatan={KEC_POGALAN}&periode=7h").text
    assert (stat(html, "Menunggu"), stat(html, "Diproses")) == (2, 0)
    html = web.get("/?channel=lapor&periode=hari").text
    assert stat(html, "Diproses") + stat(html, "Selesai") <= 2


def test_live_endpoint_reports_new_emergencies(web, cfg):
    from hub.db import session_scope
    from tests.web.conftest import make_ticket

    login(web, "bupati")
    first = web.get("/dasbor/live?after=0").json()
    assert first["items"] == [] and first["darurat_open"] == 2
    with session_scope() as s:
        make_ticket(s, "BARU001", "BPBD", urgency="darurat", channel="bpbd", kecamatan=KEC_DURENAN)
        make_ticket(s, "BARU002", "PUPR", urgency="normal")
    later = web.get(f"/dasbor/live?after={first['last_id']}").json()
    assert [i["code"] for i in later["items"]] == ["BARU001"] and later["darurat_open"] == 3


def test_reroute_from_the_ticket_page_moves_it_and_records_who(web):
    login(web, "operator")
    page = web.get("/tiket/PUPR001")
    r = web.post("/tiket/PUPR001/rute", data={"csrf": csrf_of(page.text), "opd": "DLH", "note": "soal sampah"})
    assert r.status_code == 200 and "dialihkan" in r.text.lower()
    assert ticket("PUPR001").opd_code == "DLH"
    assert "Dialihkan dari" in r.text and "oleh operator" in r.text  # the timeline says who, in words
    from hub.db import session_scope
    from hub.models import RoutingExample

    with session_scope() as s:
        assert s.scalars(select(RoutingExample).where(RoutingExample.opd_code == "DLH")).first() is not None


def test_pimpinan_cannot_change_tickets(web):
    login(web, "bupati")
    page = web.get("/tiket/PUPR001")
    assert 'action="/tiket/PUPR001/status"' not in page.text
    r = web.post("/tiket/PUPR001/status", data={"csrf": csrf_of(page.text), "status": "selesai"})
    assert r.status_code == 403 and ticket("PUPR001").status == "menunggu"


def test_opd_staff_work_a_ticket_ack_process_finish_with_photo(web, tmp_path, monkeypatch):
    monkeypatch.setenv("SIMPUL_DATA_DIR", str(tmp_path))
    from hub.settings import reset_settings

    reset_settings()
    login(web, "pupr")
    token = csrf_of(web.get("/tiket/PUPR001").text)
    assert web.post("/tiket/PUPR001/terima", data={"csrf": token}).status_code == 200
    web.post("/tiket/PUPR001/status", data={"csrf": token, "status": "diproses", "note": "tim berangkat"})
    r = web.post("/tiket/PUPR001/status", data={"csrf": token, "status": "selesai", "note": "sudah ditambal",
                                                "foto_url": "https://contoh.id/foto.jpg"},
                 files={"foto": ("hasil.png", PNG_1PX, "image/png")})
    assert r.status_code == 200 and "Diterima OPD" in r.text and "sudah ditambal" in r.text
    assert ticket("PUPR001").status == "selesai"
    photo = re.search(r'href="(/lampiran/[^"]+)"', r.text).group(1)
    assert web.get(photo).content == PNG_1PX
    # Another OPD's ticket cannot be worked.
    assert web.post("/tiket/DUKC001/status", data={"csrf": token, "status": "selesai"}).status_code == 404
    # Illegal moves come back as a message in Bahasa Indonesia, not a 500.
    r = web.post("/tiket/PUPR001/status", data={"csrf": token, "status": "diproses"})
    assert r.status_code == 200 and "tidak bisa diubah dari selesai ke diproses" in r.text


def test_merge_duplicates(web):
    login(web, "admin")
    token = csrf_of(web.get("/tiket/BPBD002").text)
    r = web.post("/tiket/BPBD002/gabung", data={"csrf": token, "into": "bpbd001"})
    assert r.status_code == 200
    assert ticket("BPBD002").status == "digabung" and ticket("BPBD002").merged_into == "BPBD001"
    r = web.post("/tiket/PUPR001/gabung", data={"csrf": token, "into": "NOPE999"})
    assert "tidak ditemukan" in r.text and ticket("PUPR001").status == "menunggu"


def test_console_saves_a_call_and_finds_earlier_calls(web):
    from hub.processing import drain

    login(web, "operator")
    page = web.get("/konsol/psc119")
    assert 'list="kec-list"' in page.text and "Pogalan" in page.text
    hist = web.get("/konsol/riwayat", params={"phone": "0812-3450-0001"}).json()
    assert [t["code"] for t in hist["tickets"]] == ["PUPR001"]
    body = {"csrf": csrf_of(page.text), "call_id": "uji-1", "caller_phone": "081299990000",
            "caller_name": "Pak Darto", "incident_type": "kecelakaan", "kecamatan": "Pogalan",
            "description": "motor tabrakan di jalan raya, satu korban", "triage_colour": "merah"}
    r = web.post("/konsol/psc119", data=body, headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    code = r.json()["code"]
    again = web.post("/konsol/psc119", data=body, headers={"Accept": "application/json"}).json()
    assert again["code"] == code and again["duplicate"]  # a double save is one ticket
    drain()
    t = ticket(code)
    assert t.channel == "psc119" and t.kecamatan_code == KEC_POGALAN and t.urgency == "darurat"
    bad = web.post("/konsol/psc119", data=dict(body, call_id="uji-2", kecamatan=""),
                   headers={"Accept": "application/json"})
    assert bad.status_code == 422


def test_public_report_with_photo_then_follow_by_code(web, tmp_path, monkeypatch):
    monkeypatch.setenv("SIMPUL_DATA_DIR", str(tmp_path))
    from hub.processing import drain
    from hub.settings import reset_settings

    reset_settings()
    page = web.get("/lapor")
    assert page.status_code == 200
    r = web.post("/lapor", data={"csrf": csrf_of(page.text), "report_id": "r1",
                                 "text": "Lampu jalan mati di depan balai desa sejak seminggu",
                                 "kecamatan": KEC_POGALAN, "desa": "", "nama": "Sri", "telepon": "081355550000"},
                 files={"foto": ("x.png", PNG_1PX, "image/png")}, follow_redirects=False)
    assert r.status_code == 303
    code = re.search(r"kode=([A-Z0-9]+)", r.headers["location"]).group(1)
    assert list((tmp_path / "uploads").iterdir())
    drain()
    web.cookies.clear()  # a citizen without any session
    cek = web.get(f"/cek?kode={code}")
    assert cek.status_code == 200 and "Menunggu" in cek.text and "Diteruskan ke" in cek.text
    assert "Sri" not in cek.text and "081355550000" not in cek.text and "+6281355550000" not in cek.text
    t = ticket(code)
    assert t.channel == "web" and t.kecamatan_code == KEC_POGALAN and t.attachments[0]["kind"] == "photo"
    assert web.get(t.attachments[0]["url"], follow_redirects=False).status_code == 303  # staff only
    assert web.get("/cek?kode=ZZZZZZZ").status_code == 404


@pytest.mark.parametrize("change,reason", [
    ({"text": "pendek"}, "paling sedikit"),
    ({"csrf": "palsu"}, "kedaluwarsa"),
    ({"kecamatan": "99.99"}, "Kecamatan tidak dikenal"),
    ({"telepon": "12"}, "Nomor HP"),
])
def test_public_report_rejects_bad_input_and_stores_nothing(web, change, reason):
    from hub.db import session_scope
    from hub.models import RawMessage

    page = web.get("/lapor")
    body = {"csrf": csrf_of(page.text), "report_id": "r2", "text": "Jalan rusak parah di dekat pasar desa",
            **change}
    r = web.post("/lapor", data=body)
    assert r.status_code == 400 and reason in r.text
    with session_scope() as s:
        assert s.scalars(select(RawMessage)).first() is None


def test_public_report_rejects_a_file_that_is_not_a_photo(web):
    page = web.get("/lapor")
    r = web.post("/lapor", data={"csrf": csrf_of(page.text), "report_id": "r3",
                                 "text": "Sampah menumpuk di pinggir sungai desa"},
                 files={"foto": ("x.jpg", b"<?php echo 1; ?>" * 10, "image/jpeg")})
    assert r.status_code == 400 and "JPEG, PNG atau WebP" in r.text


def test_public_report_rate_limit(web, monkeypatch):
    from hub.web import public

    monkeypatch.setattr(public, "REPORT_LIMIT", public.RateLimit(2, 600))
    codes = []
    for i in range(3):
        page = web.get("/lapor")
        r = web.post("/lapor", data={"csrf": csrf_of(page.text), "report_id": f"rl{i}",
                                     "text": f"Laporan nomor {i} tentang jalan rusak"}, follow_redirects=False)
        codes.append(r.status_code)
    assert codes == [303, 303, 429]


def test_admin_creates_a_key_shown_once_and_revokes_it(web):
    login(web, "admin")
    page = web.get("/admin")
    r = web.post("/admin/kunci", data={"csrf": csrf_of(page.text), "name": "SIMDA PUPR", "role": "opd",
                                       "opd": "PUPR"})
    key = re.search(r'<code id="new-key">([^<]+)</code>', r.text).group(1)
    assert web.get("/admin").text.count(key) == 0  # shown once
    web.cookies.clear()
    assert web.get("/api/v1/tickets/PUPR001", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    login(web, "admin")
    page = web.get("/admin")
    prefix = key.split("_")[1]
    web.post(f"/admin/kunci/{prefix}/cabut", data={"csrf": csrf_of(page.text)})
    web.cookies.clear()
    assert web.get("/api/v1/tickets/PUPR001", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_admin_adds_an_opd_user(web):
    login(web, "admin")
    page = web.get("/admin")
    r = web.post("/admin/pengguna", data={"csrf": csrf_of(page.text), "username": "dlh1", "password": "sandi-dlh-123",
                                          "role": "opd", "opd": "DLH"})
    assert "dlh1 ditambahkan" in r.text
    web.cookies.clear()
    assert login(web, "dlh1", "sandi-dlh-123").headers["location"] == "/opd"


INTAKE_CASES = [
    ("good", "api", b'{"text": "Jalan rusak di desa Ngadirenggo", "id": "same-1"}', 202),
    ("repeat", "api", b'{"text": "Jalan rusak di desa Ngadirenggo", "id": "same-1"}', 202),
    ("malformed json", "api", b'{"text": "a', 400),
    ("missing text", "api", b'{"id": "2"}', 422),
    ("unknown field", "api", b'{"text": "x", "bogus": 1}', 422),
    ("unknown channel", "fax", b'{"text": "x"}', 404),
    # hub.guard at the door (issue #15): a time beyond year 9999 in UTC, an offset beyond 14:00
    ("year 10000 in UTC", "api", b'{"text": "x", "id": "t1", "received_at": "9999-12-31T23:59:59-05:00"}', 422),
    ("offset +15:00", "api", b'{"text": "x", "id": "t2", "received_at": "2026-11-28T10:00:00+15:00"}', 422),
]


def test_intake_answers_alike_for_an_api_key_and_a_logged_in_operator(web, make_key):
    """API-key requests are served by the ASGI fast path (hub.api.intake.IntakeFastPath), a
    logged-in operator by the documented FastAPI route: the same input gets the same answer."""
    key = make_key("intake")
    login(web, "operator")
    csrf = csrf_of(web.get("/konsol").text)
    answers = {}
    for path, headers in (("key", key), ("session", {"X-CSRF-Token": csrf})):
        for label, channel, body, status in INTAKE_CASES:
            r = web.post(f"/api/v1/intake/{channel}", content=body,
                         headers={**headers, "content-type": "application/json"})
            assert r.status_code == status, (path, label, r.text)
            answers[path, label] = r.json()
    for label, *_ in INTAKE_CASES:
        k, s = answers["key", label], answers["session", label]
        if label in ("good", "repeat"):
            # one message id, one ticket, whichever door it came through
            assert k["code"] == s["code"] == answers["key", "good"]["code"]
            assert (k["duplicate"], s["duplicate"]) == ((False, True) if label == "good" else (True, True))
        else:  # same reason and error types (the JSON parser's wording may differ)
            shape = lambda a: (a["detail"], [e["type"] for e in a.get("errors", [])])  # noqa: E731
            assert shape(k) == shape(s), (label, k, s)
    web.cookies.clear()
    assert web.post("/api/v1/intake/api", json={"text": "x"}).status_code == 401


def test_a_strangers_wrong_passwords_do_not_lock_the_owner_out(web):
    from fastapi.testclient import TestClient

    for _ in range(5):
        login(web, "bupati", "tebakan-salah")
    assert "dikunci" in login(web, "bupati", PASSWORD).text  # the stranger's address is locked out
    with TestClient(web.app, client=("10.20.30.40", 50000)) as owner:  # the regent, elsewhere
        assert login(owner, "bupati", PASSWORD).status_code == 303


def test_unknown_and_known_usernames_get_the_same_answers(web):
    def answers(name):
        texts = []
        for _ in range(6):
            r = login(web, name, "salah-sandi-123")
            texts.append((r.status_code, r.text.replace(name, "NAMA")))
        return texts

    known, unknown = answers("operator"), answers("tidak-ada-orangnya")
    assert [k[0] for k in known] == [u[0] for u in unknown] == [401] * 6
    assert [("salah" in k[1], "dikunci" in k[1]) for k in known] == \
        [("salah" in u[1], "dikunci" in u[1]) for u in unknown]
    assert "dikunci" in known[-1][1]


def test_admin_sees_and_lifts_a_lockout_and_the_cli_unlocks(web):
    from typer.testing import CliRunner

    from hub.cli import app

    for _ in range(5):
        login(web, "operator", "salah-sandi")
    with TestClient_for(web, "10.0.0.9") as admin:
        login(admin, "admin")
        page = admin.get("/admin").text
        assert "Kunci masuk" in page and "operator" in page and "testclient" in page
        key = re.search(r'name="key" value="(login:lock:[^"]+)"', page).group(1)
        r = admin.post("/admin/kunci-masuk/buka", data={"csrf": csrf_of(page), "key": key}, follow_redirects=False)
        assert r.status_code == 303
        assert "Tidak ada akun yang terkunci" in admin.get("/admin").text
    assert login(web, "operator", PASSWORD).status_code == 303
    web.cookies.clear()
    for _ in range(5):
        login(web, "operator", "salah-sandi")
    out = CliRunner().invoke(app, ["users", "lockouts"])
    assert out.exit_code == 0 and "operator" in out.output and "testclient" in out.output
    out = CliRunner().invoke(app, ["users", "unlock", "operator"])
    assert out.exit_code == 0 and "lifted" in out.output, out.output
    assert login(web, "operator", PASSWORD).status_code == 303


def TestClient_for(web, host):
    from fastapi.testclient import TestClient

    return TestClient(web.app, client=(host, 50000))


def test_admin_lifts_an_address_limit_the_hub_remembers(web, monkeypatch):
    """A source over its login limit is refused from the limiter's memory (no write per attempt);
    the admin page still lists it, and lifting it there lets the next login through at once."""
    from hub.limiter import Limiter
    from hub.web import security

    monkeypatch.setattr(security, "REFUSAL_DELAY_S", 0)  # answered at once (tests/core/test_login_refusals.py)
    for _ in range(security.SOURCE_RULE.limit):  # thirty attempts from this address so far
        Limiter().hit("login:src:testclient", security.SOURCE_RULE)
    for name in ("operator", "tidak-ada", "operator"):
        r = login(web, name, PASSWORD)
        assert r.status_code == 401 and "perangkat ini" in r.text
    with TestClient_for(web, "10.0.0.9") as admin:
        login(admin, "admin")
        page = admin.get("/admin").text
        assert "batas alamat" in page and 'value="login:src:testclient"' in page
        r = admin.post("/admin/kunci-masuk/buka", data={"csrf": csrf_of(page), "key": "login:src:testclient"},
                       follow_redirects=False)
        assert r.status_code == 303
    assert login(web, "operator", PASSWORD).status_code == 303
