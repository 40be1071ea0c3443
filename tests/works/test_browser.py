"""Works pages in a real browser at 360 px (Playwright driving Debian's chromium against a hub
served by uvicorn over a fresh SQLite with the works demo): the public project page, the
contractor's progress form, and the regional head's Proyek tab. Skipped without chromium,
a failure under CI=true (as tests/web/test_browser.py)."""
from __future__ import annotations

import pytest

# the browser, the phone context and the checks for Debian's chromium: the web suite's, once
from tests.web.test_browser import ARTIFACTS, CHROMIUM, PHONE, browser, phone, serve_hub, sync_api  # noqa: F401,E402


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The web suite's browser hub (tests.web.test_browser.serve_hub) with the works demo and a
    contractor key for its NPWP."""
    made: dict[str, str] = {}

    def load_works() -> None:
        from hub.config import regency_config
        from hub.db import session_scope
        from hub.settings import get_settings
        from hub.works.api import create_contractor_key
        from hub.works.demo import DEMO_NPWP, load_works_demo

        load_works_demo(session_scope, regency_config(str(get_settings().config_dir)), traffic=False)
        with session_scope() as s:
            made["key"] = create_contractor_key(s, "CV Maju Jaya Trenggalek", DEMO_NPWP)

    for base in serve_hub(tmp_path_factory, before_start=load_works):
        yield base, made["key"]


def _fits(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_public_project_page_on_a_phone(hub, phone):
    base, _ = hub
    phone.goto(base + "/proyek")
    _fits(phone)
    phone.click("a:has-text('Rehabilitasi Jalan Ruas Karangan - Sumberingin')")
    assert phone.url.endswith("/proyek/35030001")
    assert phone.locator("#kurva-s polyline.rencana").count() == 1
    assert phone.locator("#kurva-s").bounding_box()["width"] <= PHONE["width"]
    assert "%" in phone.locator("#aktual").inner_text()
    _fits(phone)
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "works-project-360.png"), full_page=True)


def test_contractor_reports_progress_from_a_phone(hub, phone):
    base, key = hub
    phone.goto(base + "/mitra")
    phone.fill("input[name=kunci]", key)
    phone.click("button:has-text('Masuk')")
    form = phone.locator("section.contract:has-text('Sumberingin') form")
    form.locator("input[name=persen]").fill("33,5")
    form.locator("textarea[name=catatan]").fill("Lapis pondasi atas selesai 60 %")
    form.locator("button:has-text('Kirim progres')").click()
    assert "Progres tersimpan" in phone.locator("p.notice").inner_text()
    _fits(phone)
    phone.goto(base + "/proyek/35030001")
    assert phone.locator("#aktual").inner_text().startswith("33.5")


def test_regents_proyek_tab_on_a_phone(hub, phone):
    base, _ = hub
    phone.goto(base + "/masuk")
    from tests.web.conftest import PASSWORD

    phone.fill("input[name=username]", "bupati")
    phone.fill("input[name=password]", PASSWORD)
    phone.click("button[type=submit]")
    phone.click("header nav a:has-text('Proyek')")
    assert phone.url.endswith("/dasbor/proyek")
    assert int(phone.locator("#bendera-terbuka").inner_text()) >= 6
    assert int(phone.locator("a.stat.w-kritis b").inner_text()) >= 1
    assert "Kontrak kritis" in phone.locator("ul.flags").inner_text()
    _fits(phone)
    phone.screenshot(path=str(ARTIFACTS / "works-proyek-tab-360.png"), full_page=True)


def test_public_map_on_a_phone(hub, phone):
    """/proyek draws a Leaflet map at 360 px without login and without tiles: the kecamatan
    boundaries, a marker per located project (a line for roads), a popup that links to the
    project page; the project page has a small map of its own."""
    base, _ = hub
    phone.goto(base + "/proyek")
    m = phone.locator("#peta-proyek")
    phone.wait_for_selector("#peta-proyek[data-ready='1']")
    box = m.bounding_box()
    assert box["width"] <= PHONE["width"] and box["height"] >= 200
    assert phone.locator("#peta-proyek path.kec-boundary").count() >= 10
    markers = phone.locator("#peta-proyek path.proyek-marker")
    n = int(m.get_attribute("data-markers"))
    assert n >= 5 and markers.count() == n
    assert phone.locator("#peta-proyek path.proyek-line").count() >= 1
    assert phone.locator("#peta-proyek .leaflet-tile").count() == 0  # no SIMPUL_MAP_TILES_URL: boundaries only
    assert phone.locator(".map-fallback").count() == 0
    markers.first.dispatch_event("click")
    pop = phone.locator(".leaflet-popup-content")
    pop.wait_for()
    assert "Rp" in pop.inner_text() and pop.locator("a[href^='/proyek/']").count() == 1
    _fits(phone)
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "works-map-360.png"), full_page=True)
    phone.goto(base + "/proyek/35030001")
    phone.wait_for_selector("#peta-proyek[data-ready='1']")
    assert phone.locator("#peta-proyek path.proyek-marker").count() == 1
    assert phone.locator("#peta-proyek path.proyek-line").count() == 1
    assert phone.locator("#peta-proyek").bounding_box()["width"] <= PHONE["width"]
    _fits(phone)
