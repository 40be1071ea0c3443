"""Works pages: the public list and project page (no login, Bahasa Indonesia, inline SVG
curve), the contractor's progress form, the budget executor's payment form, and the regional
head's Proyek tab with closing a flag only with a reason."""
from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select
from sqlmodel import Session

from tests.works.conftest import make_project

C1 = "027/1/406.011/2026"


def _csrf(client, path: str) -> str:
    html = client.get(path).text
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _login(client, username: str, role: str, opd: str | None = None) -> None:
    from hub.auth import create_user
    from hub.db import session_scope

    with session_scope() as s:
        create_user(s, username, "rahasia-123", role, opd)
    tok = _csrf(client, "/masuk")
    r = client.post("/masuk", data={"username": username, "password": "rahasia-123", "csrf": tok},
                    follow_redirects=False)
    assert r.status_code == 303


def test_public_list_and_project_page_without_login(client, register):
    r = client.get("/proyek")
    assert r.status_code == 200 and "Proyek pembangunan" in r.text and "41000000" in r.text
    assert "Kec. Trenggalek" in r.text or "Kec." in r.text
    page = client.get("/proyek/41000000")
    assert page.status_code == 200
    assert "Rp1.000.000.000" in page.text and "CV Maju Jaya" in page.text and 'id="kurva-s"' in page.text
    assert "Bendera merah" not in page.text  # flags are for staff
    assert client.get("/proyek/99999999").status_code == 404


def test_contractor_form_records_progress_and_correction(client, register):
    from hub.db import session_scope
    from hub.works.api import create_contractor_key
    from hub.works.models import WorksProgress

    with session_scope() as s:
        key = create_contractor_key(s, "CV Maju Jaya", "012345678654000")
    tok = _csrf(client, "/mitra")
    assert client.post("/mitra/masuk", data={"kunci": "ck_bad_key", "csrf": tok}).text.count("Kunci akses tidak sah") == 1
    client.post("/mitra/masuk", data={"kunci": key, "csrf": tok})
    home = client.get("/mitra")
    assert "Kirim progres" in home.text and C1 in home.text and "027/2/406.011/2026" not in home.text
    r = client.post("/mitra/progres", data={"kontrak": C1, "persen": "22,5", "tanggal": "2026-03-30",
                                            "catatan": "Pemadatan", "csrf": tok},
                    files={"foto": ("lapangan.jpg", b"\xff\xd8\xff\xe0" + b"0" * 200, "image/jpeg")})
    assert r.status_code == 200 and "Progres tersimpan" in r.text
    with session_scope() as s:
        first = s.scalars(select(WorksProgress)).one()
        assert first.actor == "mitra:CV Maju Jaya" and first.source == "form" and len(first.photos) == 1
    client.post("/mitra/progres", data={"kontrak": C1, "persen": "20", "tanggal": "2026-03-30",
                                        "koreksi": str(first.id), "csrf": tok})
    other = client.post("/mitra/progres", data={"kontrak": "027/2/406.011/2026", "persen": "5",
                                                "tanggal": "2026-03-30", "csrf": tok})
    assert other.status_code == 404
    with session_scope() as s:
        rows = s.scalars(select(WorksProgress).order_by(WorksProgress.id)).all()
        assert [(r.pct, r.corrects_id) for r in rows] == [(22.5, None), (20.0, first.id)]
    page = client.get("/proyek/41000000").text
    assert "20.0 %" in page and "koreksi laporan" in page


def test_payment_form_and_proyek_tab_close_flag_needs_reason(client, register):
    from hub.db import session_scope
    from hub.works.models import WorksFlag, WorksPayment

    _login(client, "pupr1", "opd", "PUPR")
    tok = _csrf(client, "/proyek/41000000")
    r = client.post("/proyek/41000000/bayar", data={"jumlah": "1.200.000.000", "tanggal": "2026-03-20",
                                                    "jenis": "termin", "termin_ke": "1", "csrf": tok})
    assert "Pembayaran+dicatat" in str(r.url) or "Pembayaran dicatat" in r.text
    assert client.post("/proyek/41000007/bayar", data={"jumlah": "1", "tanggal": "2026-03-20", "jenis": "termin",
                                                       "csrf": tok}).status_code == 404  # another OPD's project
    with session_scope() as s:
        assert s.scalars(select(WorksPayment)).one().actor == "user:pupr1"
        flags = {f.rule: f for f in s.scalars(select(WorksFlag))}
    assert {"bayar_melebihi_kontrak", "bayar_mendahului_progres"} <= set(flags)
    tab = client.get("/dasbor/proyek")
    assert tab.status_code == 200 and "Bendera merah terbuka" in tab.text and "Uang dibayar vs progres" in tab.text
    fid = flags["bayar_melebihi_kontrak"].id
    r = client.post(f"/dasbor/proyek/bendera/{fid}/tutup", data={"alasan": "ok", "csrf": tok})
    assert "galat" in str(r.url)
    r = client.post(f"/dasbor/proyek/bendera/{fid}/tutup", data={"alasan": "Salah input, sudah dikoreksi BPKPD",
                                                                 "csrf": tok})
    assert "Bendera ditutup" in r.text
    with session_scope() as s:
        f = s.get(WorksFlag, fid)
        assert f.state == "closed" and f.close_reason.startswith("Salah input") and f.closed_by == "user:pupr1"


def test_public_pages_need_no_login_and_staff_tab_does(client, register):
    r = client.get("/dasbor/proyek", follow_redirects=False)
    assert r.status_code == 303 and "/masuk" in r.headers["location"]


def test_citizen_says_belum_beres_and_the_report_reopens(client, register, make_key):
    from hub.db import session_scope
    from hub.intake import accept_many
    from hub.models import Ticket
    from hub.processing import drain
    from hub.tickets import change_status
    from normalizer.types import InboundMessage
    from datetime import datetime, timezone

    accept_many([InboundMessage(channel="sms", text="Proyek 41000000 aspal mengelupas di depan balai desa",
                                sender="+6281298765432", provider_id="bb1", received_at=datetime.now(timezone.utc))])
    drain()
    with session_scope() as s:
        t = s.scalars(select(Ticket)).one()
        change_status(s, t, "selesai", "user:pupr", register, note="Sudah ditambal")
        code = t.code
    page = client.get("/proyek/41000000").text
    assert "Sudah ditambal" in page and "Belum beres?" in page
    tok = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    bad = client.post("/proyek/41000000/belum-beres", data={"tiket": code, "hp4": "1111", "csrf": tok})
    assert "tidak cocok" in bad.text
    ok = client.post("/proyek/41000000/belum-beres", data={"tiket": code, "hp4": "5432", "csrf": tok})
    assert "dibuka kembali" in ok.text
    with session_scope() as s:
        assert s.scalars(select(Ticket)).one().status == "menunggu"


def test_public_map_json_and_boundaries_without_login(client, register):
    """/proyek/peta.json feeds the public map: public fields only, a point per located project
    (a road's marker at its line's middle, with its line), the list's filters; the boundaries
    are public at /proyek/kecamatan.geojson while the staff map's stay behind the login."""
    from hub.db import session_scope

    with session_scope() as s:
        make_project(s, code="41000009", number=None, lat=None, lon=None, name="Jalan Ruas Uji Garis",
                     line=[[-8.06, 111.70], [-8.058, 111.706], [-8.057, 111.712]], buffer_m=15)
        make_project(s, code="41000010", number=None, lat=None, lon=None, name="Tanpa Lokasi")
    r = client.get("/proyek/peta.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    by = {p["code"]: p for p in body["projects"]}
    assert set(by) == {"41000000", "41000007", "41000009"} and body["without_location"] == 1 and body["count"] == 4
    p = by["41000000"]
    assert set(p) == {"code", "name", "kecamatan", "kecamatan_name", "status", "status_label", "value", "lat",
                      "lng", "line", "url"}
    assert p["value"] == "Rp1.000.000.000" and p["url"] == "/proyek/41000000" and (p["lat"], p["lng"]) == (-8.05, 111.71)
    assert p["line"] is None and p["status_label"]
    road = by["41000009"]
    assert (road["lat"], road["lng"]) == (-8.058, 111.706) and len(road["line"]) == 3
    assert "npwp" not in r.text.lower() and "012345678654000" not in r.text
    assert [x["code"] for x in client.get("/proyek/peta.json?kode=41000007").json()["projects"]] == ["41000007"]
    assert client.get("/proyek/peta.json?kecamatan=35.03.99").json()["projects"] == []
    status = p["status"]
    assert "41000000" in {x["code"] for x in client.get(f"/proyek/peta.json?status={status}").json()["projects"]}
    geo = client.get("/proyek/kecamatan.geojson")
    assert geo.status_code == 200 and geo.headers["content-type"].startswith("application/geo+json")
    assert geo.json()["type"] == "FeatureCollection"
    assert client.get("/peta/kecamatan.geojson", follow_redirects=False).status_code in (302, 303, 401, 403)
    page = client.get("/proyek")
    assert 'id="peta-proyek"' in page.text and "/static/works_map.js" in page.text and "<noscript>" in page.text
    one = client.get("/proyek/41000000")
    assert 'data-src="/proyek/peta.json?kode=41000000"' in one.text and 'id="kurva-s"' in one.text
    assert 'id="peta-proyek"' not in client.get("/proyek/41000010").text
