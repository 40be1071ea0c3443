"""The hub is wired from one list (hub/wiring.py): each line and feature says what it adds, and
the app gets exactly the configured ones. Importing a module registers nothing."""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import hub
import hub.lines
from hub.parts import Line
from hub.settings import get_settings
from hub.wiring import FEATURES, LINES, wire

LINE_PACKAGES = sorted(m.name for m in pkgutil.iter_modules(hub.lines.__path__) if m.ispkg)


def test_every_line_package_is_in_the_list_once():
    listed = sorted(make.__module__.rsplit(".", 1)[-1] for make in LINES)
    assert listed == LINE_PACKAGES == ["gammu", "hotline", "lapor", "telegram", "twilio"]
    for make in (*LINES, *FEATURES):
        assert isinstance(make(get_settings()), Line)


def test_app_gets_only_the_lines_it_is_given(sqlite_url, seeded):
    from fastapi.testclient import TestClient

    from hub.app import create_app
    from hub.lines import twilio

    app = create_app(workers=False, lines=[twilio.line], features=[])
    assert sorted(app.state.wiring.reply_senders) == sorted(
        ["whatsapp"] + (["sms"] if get_settings().sms_provider == "twilio" else []))
    with TestClient(app) as c:
        assert c.post(twilio.PATH, data={}).status_code != 404
        assert c.post("/webhooks/telegram", json={}).status_code == 404
        assert c.get("/konsol", follow_redirects=False).status_code == 404
    with TestClient(create_app(workers=False), follow_redirects=False) as c:
        assert c.get("/konsol").status_code != 404


def test_sms_replies_follow_the_configured_provider(monkeypatch):
    from hub.settings import reset_settings

    for provider, line in (("gammu", "hub.lines.gammu"), ("twilio", "hub.lines.twilio")):
        monkeypatch.setenv("SIMPUL_SMS_PROVIDER", provider)
        reset_settings()
        assert wire(get_settings()).reply_senders["sms"].__module__ == line


def test_importing_registers_nothing():
    """No module-level registries: importing every hub module leaves nothing to restore."""
    from hub import app, auth, outbox, replies, workers

    for path in sorted(Path(hub.__file__).parent.rglob("*.py")):
        rel = path.relative_to(Path(hub.__file__).parent.parent).with_suffix("")
        if "migrations" in rel.parts or rel.name == "__main__":
            continue
        importlib.import_module(".".join(rel.parts).removesuffix(".__init__"))
    for module, names in ((app, ("ROUTER_HOOKS", "STARTUP_HOOKS", "SHUTDOWN_HOOKS", "BODY_LIMITS")),
                          (auth, ("SESSION_RESOLVERS",)), (replies, ("REPLY_SENDERS", "register_reply_sender")),
                          (outbox, ("SENDERS", "register_sender")), (workers, ("PERIODIC", "register_periodic"))):
        for name in names:
            assert not hasattr(module, name), f"{module.__name__}.{name} is back"
