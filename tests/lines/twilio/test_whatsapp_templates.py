"""WhatsApp templates (issue #13 item 8): `simpul whatsapp templates create|status` against a
local fake of Twilio's Content API through the real twilio Client, the ContentSids written into
the regency's whatsapp_templates.yaml (comments kept), and the hub saying at start-up, on
/readyz and on the admin page when templates are missing or not approved."""
from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fakes.twilio_content import FakeContentApi
from tests.lines.runner import app_client, use_env

ACCOUNT = "AC" + "0" * 32
TOKEN = "test-auth-token"
SHIPPED = Path(__file__).resolve().parents[3] / "config" / "trenggalek"


@pytest.fixture
def content():
    fake = FakeContentApi(account_sid=ACCOUNT, auth_token=TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture
def regency(tmp_path, engine, seeded, content, monkeypatch):
    """A copy of the shipped Trenggalek config, the Twilio account pointed at the fake."""
    cfg_dir = tmp_path / "trenggalek"
    shutil.copytree(SHIPPED, cfg_dir)
    use_env(monkeypatch, {"SIMPUL_CONFIG_DIR": str(cfg_dir), "SIMPUL_TWILIO_ACCOUNT_SID": ACCOUNT,
                          "SIMPUL_TWILIO_AUTH_TOKEN": TOKEN, "SIMPUL_TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
                          "SIMPUL_TWILIO_CONTENT_BASE_URL": content.url, "SIMPUL_GAMMU_DATABASE_URL": ""})
    from hub import whatsapp

    whatsapp.templates.cache_clear()
    yield cfg_dir
    whatsapp.templates.cache_clear()


def simpul(*args: str):
    from hub.cli import app

    return CliRunner().invoke(app, list(args))


def test_create_makes_one_template_per_reply_kind_and_writes_the_sids(regency, content, cfg):
    from hub import whatsapp
    from hub.lines.twilio.templates import KINDS

    before = (regency / "whatsapp_templates.yaml").read_text()
    r = simpul("whatsapp", "templates", "create")
    assert r.exit_code == 0, r.output
    assert len(content.contents) == len(KINDS) == 8
    by_name = {c["friendly_name"]: c for c in content.contents.values()}
    for kind, (body, variables) in KINDS.items():
        c = by_name[f"simpul_trenggalek_{kind}"]
        assert c["language"] == "id" and c["types"]["twilio/text"]["body"] == body
        assert set(c["variables"]) == set(re.findall(r"\{\{(\d+)\}\}", body)) == set(variables)
        assert "Laporan" in body or "laporan" in body  # Bahasa Indonesia, as the citizen reads it
        assert content.approvals[c["sid"]] == {**content.approvals[c["sid"]], "name": f"simpul_trenggalek_{kind}",
                                               "category": "UTILITY", "status": "received"}
    # the file: every comment kept, the sids in place, read back by the hub as it sends
    after = (regency / "whatsapp_templates.yaml").read_text()
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert [line for line in after.splitlines() if line.lstrip().startswith("#")] == comments
    got = whatsapp.templates(str(regency))["templates"]
    assert {k: t["content_sid"] for k, t in got.items()} == {k: by_name[f"simpul_trenggalek_{k}"]["sid"] for k in KINDS}
    # each template's variables name values hub/replies.py puts on the reply (or code / text)
    sent = {"code", "text", "opd_name", "note", "merged_into"}
    assert all(set(t["variables"].values()) <= sent for t in got.values())
    assert set(got) >= {f"status_{s}" for s in ("diproses", "selesai", "ditolak", "menunggu", "digabung")}
    # again: nothing to create
    r = simpul("whatsapp", "templates", "create")
    assert r.exit_code == 0 and "nothing to create" in r.output and len(content.contents) == 8
    r = simpul("whatsapp", "templates", "create", "--kind", "status_baru")
    assert r.exit_code == 2 and "unknown reply kind 'status_baru'" in r.output
    r = simpul("whatsapp", "templates", "create", "--kind", "status_selesai")  # again, e.g. after a rejection
    assert r.exit_code == 0 and len(content.contents) == 9
    assert whatsapp.templates(str(regency))["templates"]["status_selesai"]["content_sid"] == list(content.contents)[-1]


def test_a_reply_after_24_hours_uses_the_created_template(regency, content, cfg):
    from adapters.base import OutboundMessage
    from hub import whatsapp

    assert simpul("whatsapp", "templates", "create").exit_code == 0
    msg = OutboundMessage("whatsapp", "whatsapp:+6281234567891", "Laporan K7X2M9P sedang diproses ...",
                          ticket_code="K7X2M9P", extra={"template": "status_digabung",
                                                         "values": {"opd_name": "Dinas PUPR", "note": "-",
                                                                    "merged_into": "K7X2M9Q"}})
    out = whatsapp.prepare(msg, str(regency))  # no message from this number: outside the window
    sid = whatsapp.templates(str(regency))["templates"]["status_digabung"]["content_sid"]
    assert out.extra["content_sid"] == sid and out.extra["content_variables"] == {"1": "K7X2M9P", "2": "K7X2M9Q"}


def test_a_failure_half_way_keeps_what_was_created(regency, content):
    from hub import whatsapp

    content.fail_after = 3
    r = simpul("whatsapp", "templates", "create")
    assert r.exit_code == 1 and "already in" in r.output
    assert len(whatsapp.templates(str(regency))["templates"]) == 3
    content.fail_after = None
    assert simpul("whatsapp", "templates", "create").exit_code == 0
    assert len(whatsapp.templates(str(regency))["templates"]) == 8 and len(content.contents) == 8


def test_status_follows_approval_and_the_line_is_degraded_until_all_are_approved(regency, content):
    from hub import readiness
    from hub.lines.twilio import templates
    from hub.settings import get_settings

    check = templates.check(get_settings())
    st = check()
    assert st.state == "degraded" and "belum ada template untuk receipt" in st.page
    assert simpul("whatsapp", "templates", "create").exit_code == 0
    r = simpul("whatsapp", "templates", "status")
    assert r.exit_code == 1 and r.output.count(" received") == 8
    assert check().state == "degraded" and "belum disetujui" in check().page
    sids = {c["friendly_name"].removeprefix("simpul_trenggalek_"): c["sid"] for c in content.contents.values()}
    for kind, sid in sids.items():
        content.approve(sid)
    content.reject(sids["default"], "Template terlalu umum")
    r = simpul("whatsapp", "templates", "status")
    assert r.exit_code == 1 and "default: " in r.output and "rejected — Template terlalu umum" in r.output
    assert check().state == "degraded" and "default" in check().detail and "receipt" not in check().detail
    content.approve(sids["default"])
    r = simpul("whatsapp", "templates", "status")
    assert r.exit_code == 0 and "All templates approved" in r.output
    assert check() == readiness.Status(readiness.RUNNING, "ok")


def test_missing_templates_show_at_start_up_readyz_and_the_admin_page(regency, content, cfg, capfd):
    from tests.web.conftest import login, seed_known

    seed_known(cfg)
    with app_client() as c:
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json()["degraded"] == ["whatsapp"], r.text
        assert r.json()["lines"]["whatsapp"]["running"] is True  # not a failure: replies in the window go
        assert 'simpul_line_degraded{line="whatsapp"} 1.0' in c.get("/metrics").text
        login(c, "admin")
        page = c.get("/admin").text
        assert "TERGANGGU" in page and "Template WhatsApp: belum ada template untuk receipt" in page
    logs = "".join(capfd.readouterr())
    assert logs.count("whatsapp.templates_incomplete") == 1
