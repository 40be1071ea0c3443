"""The web front in a real browser: Playwright driving Debian's chromium (headless) against a
hub served by uvicorn on a free port, workers on, over a fresh SQLite database with known
tickets. Screenshots of the overview on a 360x740 phone go to test-artifacts/.

Needs the Debian package `chromium` (never `playwright install`). Without it: skipped, but
under CI=true a failure.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.web.conftest import KEC_DURENAN, PASSWORD

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PHONE = {"width": 360, "height": 740}
PNG_1PX = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install -y chromium)",
                allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A real hub process (uvicorn, workers on) over a fresh SQLite file with the known tickets."""
    yield from serve_hub(tmp_path_factory)


def serve_hub(tmp_path_factory, extra_env: dict[str, str] | None = None, before_start=None):
    """The `hub` fixture's body; other browser modules start their own with more settings
    (`extra_env`) and data (`before_start()`, after the known tickets are in)."""
    from hub import config as hub_config
    from hub.db import reset_engine
    from hub.migrate import upgrade
    from hub.settings import reset_settings
    from tests.web.conftest import seed_known

    d = tmp_path_factory.mktemp("browser-hub")
    url = f"sqlite:///{d}/simpul.db"
    env_keys = {"SIMPUL_DATABASE_URL": url, "SIMPUL_DATA_DIR": str(d), **(extra_env or {})}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env_keys.items():
            mp.setenv(k, v)
        reset_settings()
        reset_engine()
        hub_config.regency_config.cache_clear()
        upgrade(url)
        from hub.config import regency_config
        from hub.settings import get_settings

        seed_known(regency_config(str(get_settings().config_dir)))
        if before_start is not None:
            before_start()
        port = _free_port()
        env = dict(os.environ, **env_keys, SIMPUL_WORKERS="true", SIMPUL_LOG_LEVEL="WARNING",
                   SIMPUL_PROCESS_INTERVAL_S="0.2")
        log = open(d / "server.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "hub.app:app_factory", "--factory",
                                 "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            import httpx

            for _ in range(150):
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError((d / "server.log").read_text()[-3000:])
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()
            reset_engine()
    reset_settings()
    reset_engine()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def phone(browser):
    ctx = browser.new_context(viewport=PHONE, locale="id-ID", is_mobile=True, has_touch=True)
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    yield page
    ctx.close()


def login(page, base: str, username: str) -> None:
    page.goto(base + "/masuk")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def codes_on(page) -> set[str]:
    return set(page.locator("ul.tickets .code").all_inner_texts())


def stat(page, label: str) -> int:
    return int(page.locator(f"a.stat:has-text('{label}') b").first.inner_text())


def test_bupati_sees_the_numbers_on_a_phone_and_clicks_through(hub, phone):
    login(phone, hub, "bupati")
    assert phone.url == hub + "/"
    assert (stat(phone, "Menunggu"), stat(phone, "Diproses"), stat(phone, "Selesai"), stat(phone, "Lewat tenggat")) \
        == (4, 2, 2, 2)
    assert {"BPBD001", "BPBD002", "PUPR002"} <= set(phone.locator("#urgent-list .code").all_inner_texts())
    # Nothing is wider than the phone.
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "overview-360x740.png"))
    phone.screenshot(path=str(ARTIFACTS / "overview-360-full.png"), full_page=True)
    phone.click("a.stat:has-text('Menunggu')")
    assert "status=menunggu" in phone.url
    assert codes_on(phone) == {"PUPR001", "PUPR002", "DUKC001", "BPBD001"}
    phone.go_back()
    phone.click("ol.bars a.name:has-text('Durenan')")
    assert f"kecamatan={KEC_DURENAN}" in phone.url
    assert codes_on(phone) == {"PUPR003", "PUPR004", "BPBD001", "BPBD002"}
    phone.go_back()
    phone.locator("table.grid tr:has(a:text-is('PUPR')) td").first.locator("a").click()  # PUPR, menunggu
    assert codes_on(phone) == {"PUPR001", "PUPR002"}


def test_new_emergency_shows_up_without_reloading(hub, phone):
    from hub.db import session_scope
    from tests.web.conftest import make_ticket

    phone.clock.install()
    login(phone, hub, "bupati")
    with session_scope() as s:
        make_ticket(s, "LIVE001", "BPBD", urgency="darurat", channel="bpbd", kecamatan=KEC_DURENAN,
                    text="Banjir bandang di Durenan, warga terjebak", due_in=timedelta(minutes=30))
    phone.clock.run_for(16_000)  # the overview polls every 15 s
    phone.wait_for_selector("#urgent-list .code:text-is('LIVE001')")
    assert phone.locator("#urgent-list li").first.locator(".code").inner_text() == "LIVE001"


def test_operator_reroutes_a_ticket_then_takes_a_call_with_the_keyboard(hub, phone, browser):
    login(phone, hub, "operator")
    phone.goto(hub + "/tiket/DUKC001")
    phone.click("summary:has-text('Alihkan ke OPD lain')")
    phone.select_option("#route-to", "DINSOS")
    phone.fill("#form-route input[name=note]", "bantuan sosial, bukan kependudukan")
    phone.click("#form-route button[type=submit]")
    assert "Dinas Sosial" in phone.locator("#opd").inner_text()
    assert "Dialihkan" in phone.locator("#timeline").inner_text()

    desk = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    login(desk, hub, "operator")
    desk.goto(hub + "/konsol/psc119")
    assert desk.evaluate("document.activeElement.id") == "caller_phone"
    desk.keyboard.type("0812-3450-0001")  # PUPR001 came from this number
    desk.wait_for_selector("#history:not([hidden]) >> text=PUPR001")
    desk.keyboard.press("Tab")
    desk.keyboard.type("Bu Sumi")
    desk.keyboard.press("Tab")
    desk.keyboard.type("kecelakaan")
    desk.keyboard.press("Tab")
    desk.keyboard.press("ArrowDown")  # triage: merah
    desk.keyboard.press("Tab")
    desk.keyboard.type("Pogalan")
    desk.keyboard.press("Tab")
    desk.keyboard.type("Ngetal")
    desk.keyboard.press("Tab")
    desk.keyboard.type("depan pasar")
    desk.keyboard.press("Tab")
    desk.keyboard.type("Motor menabrak pejalan kaki, korban tidak sadar")
    desk.keyboard.press("Control+Enter")
    saved = desk.wait_for_selector("#saved .notice a.code")
    code = saved.inner_text()
    assert re.fullmatch(r"[A-Z0-9]{5,10}", code)
    assert desk.evaluate("document.activeElement.id") == "caller_phone"  # ready for the next call
    assert desk.input_value("#caller_phone") == ""
    desk.goto(hub + f"/tiket/{code}")
    text = desk.locator("main").inner_text()
    assert "Motor menabrak" in text and "Pogalan" in text and "PSC 119" in text
    desk.context.close()


def test_opd_user_cannot_see_another_opds_ticket(hub, phone):
    login(phone, hub, "pupr")
    assert phone.url == hub + "/opd"
    assert "PUPR001" in codes_on(phone)
    resp = phone.goto(hub + "/tiket/BPBD001")
    assert resp.status == 404 and "tidak ditemukan" in phone.inner_text("main")
    phone.goto(hub + "/tiket")
    assert codes_on(phone) and all(c.startswith("PUPR") for c in codes_on(phone))


def test_admin_page_shows_users_keys_and_channels(hub, phone):
    login(phone, hub, "admin")
    phone.goto(hub + "/admin")
    for section in ("#pengguna", "#kunci", "#gagal", "#saluran", "#opd"):
        assert phone.locator(section).is_visible()
    assert phone.locator("#user-dukcapil").is_visible()


def test_citizen_reports_with_a_photo_and_follows_it_by_code(hub, phone, tmp_path):
    photo = tmp_path / "jalan.png"
    photo.write_bytes(PNG_1PX)
    phone.goto(hub + "/lapor")
    phone.fill("textarea[name=text]", "Jembatan bambu di dusun kami putus, anak sekolah tidak bisa lewat")
    phone.select_option("#kec-select", label="Pogalan")
    phone.select_option("#desa-select", label="Ngetal")
    phone.set_input_files("#foto", str(photo))
    phone.check("input[name=anonim]")
    phone.screenshot(path=str(ARTIFACTS / "lapor-360.png"), full_page=True)
    phone.click("#lapor-form button[type=submit]")
    code = phone.inner_text("#new-code")
    for _ in range(50):  # the hub's worker routes it within a fraction of a second
        if phone.locator("#status").count():
            break
        time.sleep(0.2)
        phone.goto(hub + f"/cek?kode={code}")
    assert phone.inner_text("#status") == "Menunggu"
    assert "Diteruskan ke" in phone.inner_text("main")
    phone.screenshot(path=str(ARTIFACTS / "cek-360.png"), full_page=True)
    # Follow it later, from a fresh browser, by typing the code.
    phone.context.clear_cookies()
    phone.goto(hub + "/cek")
    phone.fill("input[name=kode]", code.lower())
    phone.press("input[name=kode]", "Enter")
    assert phone.inner_text("#status") == "Menunggu"
