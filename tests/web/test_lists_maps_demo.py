"""Issue #14 items 6, 7, 9, 10, 11 without a browser: the ticket list's filters, sort and
downloads (NIK masked, phones hidden from OPD staff, OPD staff get their own tickets), the
monthly report per OPD, the map's data (same visibility), gzip and static caching, the demo
outbox, `simpul serve` on a busy port, readable or JSON logs."""
from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.web.conftest import KEC_DURENAN, KEC_POGALAN, login

ROOT = Path(__file__).resolve().parents[2]
NIK = "3503121505900001"


def _add(code, opd, **kw):
    from hub.db import session_scope
    from tests.web.conftest import make_ticket

    extra = kw.pop("extra", {})
    with session_scope() as s:
        t = make_ticket(s, code, opd, **kw)
        for k, v in extra.items():
            setattr(t, k, v)
        return t.id


# --- item 6: the ticket list ------------------------------------------------------------------

def test_ticket_list_filters_and_sort(web):
    login(web, "admin")
    page = web.get("/tiket").text
    for name in ("status", "opd", "kecamatan", "channel", "urgency", "periode", "urut", "overdue", "triase"):
        assert f'name="{name}"' in page, name
    r = web.get(f"/tiket?kecamatan={KEC_DURENAN}&urgency=darurat").text
    assert "BPBD001" in r and "BPBD002" in r and "PUPR003" not in r
    r = web.get("/tiket?overdue=1").text
    assert "PUPR002" in r and "BPBD001" in r and "PUPR001" not in r
    # a desa filter appears once a kecamatan is chosen, and filters by desa code
    _add("DESA001", "PUPR", kecamatan=KEC_POGALAN, extra={"desa_code": "35.03.12.2001"})
    r = web.get(f"/tiket?kecamatan={KEC_POGALAN}").text
    assert 'name="desa"' in r
    r = web.get(f"/tiket?kecamatan={KEC_POGALAN}&desa=35.03.12.2001").text
    assert "DESA001" in r and "PUPR001" not in r
    # sort: nearest due time first
    r = web.get("/tiket?status=menunggu,diproses&urut=tenggat").text
    import re

    codes = re.findall(r'class="code">(\w+)<', r)
    assert codes[:3] == ["PUPR002", "BPBD001", "BPBD002"], codes  # overdue longest first
    codes = re.findall(r'class="code">(\w+)<', web.get("/tiket?urut=urgensi").text)
    assert set(codes[:2]) == {"BPBD001", "BPBD002"}


def _csv(resp) -> list[list[str]]:
    assert resp.status_code == 200, resp.text
    return list(csv.reader(io.StringIO(resp.content.decode("utf-8-sig"))))


def test_csv_and_excel_downloads_follow_the_filter_mask_niks_and_hide_phones_from_opd(web):
    _add("NIK0001", "PUPR", text=f"KTP#{NIK}#Siti#jalan rusak", phone="+6281234500077")
    login(web, "admin")
    rows = _csv(web.get("/unduh/tiket.csv?opd=PUPR"))
    head, body = rows[0], rows[1:]
    assert head[0] == "Kode" and "Telepon pelapor" in head
    codes = {r[0] for r in body}
    assert {"PUPR001", "PUPR002", "NIK0001"} <= codes and not any(c.startswith("DUKC") for c in codes)
    flat = "\n".join(",".join(r) for r in body)
    assert NIK not in flat and "3503**********01" in flat
    assert "+6281234500077" in flat  # admins see phones
    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(web.get("/unduh/tiket.xlsx?opd=PUPR").content)).active
    assert "+6281234500077" in [c.value for row in ws.iter_rows() for c in row]
    web.post("/keluar", data={"csrf": ""})
    web.cookies.clear()
    login(web, "pupr")
    body = _csv(web.get("/unduh/tiket.csv"))[1:]  # no filter: still only PUPR's own tickets
    assert body and all(r[4] == "PUPR" for r in body)
    assert not _csv(web.get("/unduh/tiket.csv?opd=DUKCAPIL"))[1:]
    flat = "\n".join(",".join(r) for r in body)
    assert "+6281234500077" not in flat and "+6281234500001" not in flat and NIK not in flat

    r = web.get("/unduh/tiket.xlsx?urut=lama")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxmlformats")
    ws = load_workbook(io.BytesIO(r.content)).active
    values = [[c.value for c in row] for row in ws.iter_rows()]
    assert values[0][0] == "Kode" and all(v[4] == "PUPR" for v in values[1:])
    assert NIK not in json.dumps(values, default=str)


def test_monthly_report_per_opd(web, cfg):
    from hub import tickets as T
    from hub.db import session_scope
    from hub.models import Ticket

    with session_scope() as s:
        # made "now", not 2-8 hours ago: within 8 hours after a month starts in WIB the seeded
        # times fall in the previous month and the report (rightly) counts them there
        s.execute(update(Ticket).where(Ticket.code.in_(["PUPR001", "PUPR002", "PUPR003", "PUPR004"]))
                  .values(created_at=datetime.now(timezone.utc)))
        t = s.scalars(select(Ticket).where(Ticket.code == "PUPR004")).one()  # reopened this month
        T.change_status(s, t, "menunggu", "admin", cfg, "belum beres")
    login(web, "bupati")
    r = web.get("/laporan/bulanan")
    assert r.status_code == 200 and "@media print" not in r.text  # print CSS is in the stylesheet
    row = r.text.split('<th scope="row">')
    pupr = next(x for x in row if "PUPR</span>" in x)
    cells = [c.split("<")[0] for c in pupr.split("<td>")[1:]]
    assert cells[0] == "4"  # received this month: PUPR001-004
    assert cells[5] == "1"  # reopened
    css = web.get("/static/simpul.css").text
    assert "@media print" in css
    login(web, "pupr")
    other = web.get("/laporan/bulanan").text
    assert "DUKCAPIL</span>" not in other and "BPBD</span>" not in other


# --- item 7: the map ----------------------------------------------------------------------------

def test_map_data_respects_visibility_and_the_filter(web):
    _add("GEO0001", "PUPR", kecamatan=KEC_POGALAN, extra={"latitude": -8.09, "longitude": 111.75})
    _add("GEO0002", "BPBD", kecamatan=KEC_DURENAN, extra={"latitude": -8.12, "longitude": 111.8})
    login(web, "bupati")
    d = web.get("/peta/data.json").json()
    assert d["kecamatan"][KEC_DURENAN]["open"] == 4  # PUPR003, BPBD001, BPBD002, GEO0002
    assert {p["code"] for p in d["points"]} == {"GEO0001", "GEO0002"}
    d = web.get("/peta/data.json?opd=PUPR").json()
    assert {p["code"] for p in d["points"]} == {"GEO0001"}
    geo = web.get("/peta/kecamatan.geojson")
    assert geo.status_code == 200 and len(geo.json()["features"]) == 14
    page = web.get("/peta").text
    assert 'id="map"' in page and "/static/vendor/leaflet/leaflet.js" in page and "Durenan" in page
    assert 'id="map"' in web.get("/").text  # on the overview too
    login(web, "pupr")
    d = web.get("/peta/data.json").json()
    assert {p["code"] for p in d["points"]} == {"GEO0001"}
    assert all(v["open"] <= 3 for v in d["kecamatan"].values()) and "GEO0002" not in json.dumps(d)


def test_map_tiles_are_a_setting_allowed_by_the_csp(sqlite_url, monkeypatch, cfg):
    from fastapi.testclient import TestClient

    from hub.app import create_app
    from hub.settings import reset_settings
    from tests.web.conftest import seed_known

    monkeypatch.setenv("SIMPUL_MAP_TILES_URL", "https://tile.example.org/{z}/{x}/{y}.png")
    reset_settings()
    seed_known(cfg)
    with TestClient(create_app(workers=False)) as c:
        login(c, "bupati")
        r = c.get("/peta")
        assert 'data-tiles="https://tile.example.org/{z}/{x}/{y}.png"' in r.text
        assert "img-src 'self' data: blob: https://tile.example.org;" in r.headers["content-security-policy"]
    reset_settings()


# --- item 11: gzip, caching -------------------------------------------------------------------

def test_pages_are_gzipped_static_files_cacheable_and_intake_untouched(web, make_key):
    login(web, "bupati")
    r = web.get("/", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip"
    html = r.text
    import re

    css = re.search(r'href="(/static/simpul\.css\?v=[0-9a-f]{10})"', html).group(1)
    s = web.get(css, headers={"Accept-Encoding": "gzip"})
    assert s.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert s.headers.get("content-encoding") == "gzip"
    key = make_key("admin")
    r = web.post("/api/v1/intake/api", headers={**key, "Accept-Encoding": "gzip"},
                 json={"text": "jalan rusak " * 100, "id": "gz-1"})
    assert r.status_code == 202 and "content-encoding" not in r.headers


# --- item 10: demo outbox ---------------------------------------------------------------------

def test_demo_mode_sends_lines_without_credentials_to_the_demo_outbox(sqlite_url, monkeypatch, cfg):
    import asyncio

    from fastapi.testclient import TestClient

    from hub import outbox
    from hub.app import create_app
    from hub.db import session_scope
    from hub.models import DemoMessage, Outbox
    from hub.settings import get_settings, reset_settings
    from hub.wiring import wire
    from tests.web.conftest import seed_known

    for k in ("SIMPUL_TWILIO_ACCOUNT_SID", "SIMPUL_TELEGRAM_BOT_TOKEN", "SIMPUL_SMTP_USERNAME"):
        monkeypatch.delenv(k, raising=False)
    reset_settings()
    assert "demo_outbox" not in [p.name for p in wire(get_settings()).parts]  # never outside demo mode
    monkeypatch.setenv("SIMPUL_DEMO", "true")
    reset_settings()
    seed_known(cfg)
    with TestClient(create_app(workers=False)) as c:
        from hub import replies
        from hub.models import Ticket

        with session_scope() as s:
            t = s.scalars(select(Ticket).where(Ticket.code == "PUPR001")).one()
            replies.queue_text(s, t, "sms", "+6281234500001", "Laporan Anda PUPR001 sedang diproses.")
            outbox.enqueue(s, "notify", "email", {"channel": "email", "to": "kepala@example.go.id",
                                                  "subject": "Eskalasi PUPR001", "text": "Tiket lewat tenggat"})
        asyncio.run(outbox.run_once())
        with session_scope() as s:
            assert not s.scalars(select(Outbox).where(Outbox.state != "done")).all()
            msgs = s.scalars(select(DemoMessage)).all()
        assert {(m.channel, m.to) for m in msgs} >= {("sms", "+6281234500001"), ("email", "kepala@example.go.id")}
        login(c, "admin")
        page = c.get("/admin/kotak-keluar-demo").text
        assert "Kotak keluar demo" in page and "PUPR001 sedang diproses" in page and "Eskalasi PUPR001" in page
        assert 'href="/admin/kotak-keluar-demo"' in c.get("/admin").text
    reset_settings()


def test_demo_data_has_every_status_overdue_escalated_and_reopened(sqlite_url, seeded):
    cfg = seeded
    from sqlalchemy import func

    from hub.db import session_scope
    from hub.demo import load_demo
    from hub.models import Ticket, TicketEvent

    load_demo(session_scope, cfg, password="x" * 12)
    again = load_demo(session_scope, cfg, password="x" * 12)
    assert not any("lifecycle" in line for line in again)  # idempotent
    with session_scope() as s:
        statuses = set(s.scalars(select(Ticket.status).distinct()))
        assert statuses == {"menunggu", "diproses", "selesai", "ditolak", "digabung"}
        kinds = dict(s.execute(select(TicketEvent.kind, func.count()).group_by(TicketEvent.kind)).all())
        assert kinds.get("overdue", 0) >= 2 and kinds.get("escalated", 0) >= 2
        reopened = s.scalars(select(TicketEvent).where(TicketEvent.from_status == "selesai",
                                                       TicketEvent.to_status == "menunggu")).all()
        assert reopened
        incidents = s.execute(select(Ticket.incident_id, func.count()).group_by(Ticket.incident_id)
                              .having(func.count() > 1)).all()
        assert incidents


# --- item 9: serve and logs -----------------------------------------------------------------

def test_serve_on_a_busy_port_says_so_in_one_line_at_once(tmp_path):
    env = {**os.environ, "SIMPUL_DATABASE_URL": f"sqlite:///{tmp_path}/busy.db"}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "hub", "serve", "--port", str(port)], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and time.monotonic() - t0 < 30
    err = r.stderr.strip()
    assert f"port {port}" in err and "already in use" in err and "PORT=" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err


def test_logs_are_json_off_a_terminal_and_readable_lines_on_one_both_masked(capsys, monkeypatch):
    from hub.logging import configure_logging, get_logger

    class Tty(io.StringIO):
        def isatty(self):
            return True

    try:
        configure_logging("INFO", None)  # pytest's stderr is not a terminal: JSON
        get_logger("t").info("web.hello", nik=NIK, text=f"telp 081234567890 nik {NIK}")
        line = capsys.readouterr().err.strip().splitlines()[-1]
        d = json.loads(line)
        assert d["event"] == "web.hello" and NIK not in line and "081234567890" not in line
        tty = Tty()
        monkeypatch.setattr(sys, "stderr", tty)
        configure_logging("INFO", None)
        get_logger("t").info("web.hello", nik=NIK, text=f"telp 081234567890 nik {NIK}")
        out = tty.getvalue()
        assert "web.hello" in out and not out.lstrip().startswith("{")
        assert NIK not in out and "081234567890" not in out
    finally:
        monkeypatch.undo()
        configure_logging("INFO", True)
