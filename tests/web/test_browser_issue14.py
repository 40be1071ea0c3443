"""Issue #14 in a real browser on a 360-px phone (Debian chromium, as tests/web/test_browser.py):
an OPD's progress note keeps the status, an admin reopens with a reason; every open emergency
one tap from the overview badge, most overdue first, reports of one incident grouped; the
citizen sees the public note and answers "belum beres" on /cek, which reopens the ticket."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.web.test_browser import ARTIFACTS, PHONE, browser, hub, login, phone  # noqa: F401  (fixtures)
from tests.web.conftest import KEC_DURENAN



def test_progress_note_keeps_the_status_and_only_an_admin_reopens(hub, phone):  # noqa: F811
    login(phone, hub, "pupr")
    phone.goto(hub + "/tiket/PUPR003")  # diproses
    assert phone.locator("#status-to").input_value() == ""  # "tanpa perubahan"
    assert phone.locator("#status-to option[value=menunggu]").count() == 0
    phone.fill("#status-note", "Material sudah dipesan")
    phone.click("#form-status button[type=submit]")
    phone.wait_for_load_state()
    assert phone.locator("#status").inner_text() == "Diproses"
    assert "Catatan disimpan" in phone.locator("p.notice").inner_text()
    assert "Material sudah dipesan" in phone.locator("#timeline").inner_text()
    # ditolak without a reason: refused, the message next to the note field
    phone.select_option("#status-to", "ditolak")
    phone.click("#form-status button[type=submit]")
    phone.wait_for_load_state()
    assert phone.locator("#status").inner_text() == "Diproses"
    assert "alasan" in phone.locator("#note-err").inner_text()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "ticket-status-360.png"), full_page=True)
    phone.context.clear_cookies()
    login(phone, hub, "admin")
    phone.goto(hub + "/tiket/PUPR004")  # selesai
    phone.select_option("#status-to", "menunggu")
    phone.fill("#status-note", "Warga melapor lubang muncul lagi")
    phone.click("#form-status button[type=submit]")
    phone.wait_for_load_state()
    assert phone.locator("#status").inner_text() == "Menunggu"
    assert "Dibuka kembali (Selesai → Menunggu) oleh admin" in phone.locator("#timeline").inner_text()


def test_every_emergency_one_tap_from_the_badge_most_overdue_first_grouped(hub, phone):  # noqa: F811
    from hub.db import session_scope
    from hub.models import Incident
    from tests.web.conftest import make_ticket

    with session_scope() as s:
        inc = Incident(kecamatan_code=KEC_DURENAN, urgency="darurat", is_open=True, ticket_count=3)
        s.add(inc)
        s.flush()
        for i, ch in enumerate(("sms", "telegram", "bpbd")):
            make_ticket(s, f"BNJB{i:02d}", "BPBD", channel=ch, kecamatan=KEC_DURENAN, urgency="darurat",
                        incident_id=inc.id, text=f"banjir lewat {ch}", due_in=timedelta(hours=2))
        for i in range(12):
            make_ticket(s, f"DRTB{i:03d}", "DINKES", urgency="darurat", due_in=timedelta(hours=6 - i))
        make_ticket(s, "LAHIRB1", "DINKES", urgency="darurat", text="ibu melahirkan, pendarahan",
                    age=timedelta(hours=14), due_in=timedelta(minutes=30))
    login(phone, hub, "bupati")
    n = int(phone.locator("#darurat-open").inner_text().split()[0])
    phone.click("#darurat-link")
    phone.wait_for_load_state()
    assert phone.url.endswith("/darurat")
    codes = phone.locator("#urgent-groups .code").all_inner_texts()
    assert len(codes) == n and n >= 18
    assert codes[0] == "LAHIRB1"
    assert "3 laporan: SMS Dukcapil, Telegram, BPBD Pusdalops" in phone.locator("#urgent-groups").inner_text()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.screenshot(path=str(ARTIFACTS / "darurat-360.png"), full_page=True)


def test_citizen_reads_the_public_note_and_answers_belum_beres(hub, phone, browser):  # noqa: F811
    login(phone, hub, "pupr")
    phone.goto(hub + "/tiket/PUPR001")
    phone.select_option("#status-to", "selesai")
    phone.fill("#status-note", "Lubang sudah ditambal aspal")
    phone.click("#form-status button[type=submit]")
    phone.wait_for_load_state()
    assert phone.locator("#status").inner_text() == "Selesai"
    citizen = browser.new_context(viewport=PHONE, locale="id-ID", is_mobile=True, has_touch=True).new_page()
    try:
        citizen.goto(hub + "/cek?kode=PUPR001")
        assert "Lubang sudah ditambal aspal" in citizen.locator("#cek-steps").inner_text()
        citizen.check("input[name=jawaban][value=belum]")
        citizen.select_option("#nilai", "2")
        citizen.click("#form-feedback button[type=submit]")
        citizen.wait_for_load_state()
        assert "dibuka kembali" in citizen.locator("p.notice").inner_text()
        assert citizen.locator("#status").inner_text() == "Menunggu"
        assert citizen.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        citizen.screenshot(path=str(ARTIFACTS / "cek-jawab-360.png"), full_page=True)
    finally:
        citizen.context.close()
    phone.goto(hub + "/tiket/PUPR001")
    assert phone.locator("#status").inner_text() == "Menunggu"
    assert "Pelapor menjawab belum beres, nilai 2/5" in phone.locator("#timeline").inner_text()
