"""The `simpul` command line: db upgrade, users, API keys, demo (idempotent)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlmodel import Session
from typer.testing import CliRunner

from hub.cli import app
from hub.models import ApiKey, Ticket, User

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_users_add_and_errors(sqlite_engine):
    ok = invoke("users", "add", "sari", "--role", "opd", "--opd", "PUPR", "--password", "rahasia-123")
    assert ok.exit_code == 0, ok.output
    with Session(sqlite_engine) as s:
        u = s.scalars(select(User)).one()
        assert (u.username, u.role, u.opd_code) == ("sari", "opd", "PUPR")
        assert "rahasia-123" not in u.password_hash and u.password_hash.startswith("$argon2")
    for args, message in [
        (("users", "add", "sari", "--role", "admin", "--password", "rahasia-123"), "already exists"),
        (("users", "add", "budi", "--role", "raja", "--password", "rahasia-123"), "role must be one of"),
        (("users", "add", "budi", "--role", "opd", "--password", "rahasia-123"), "needs --opd"),
        (("users", "add", "budi", "--role", "opd", "--opd", "XYZ", "--password", "rahasia-123"), "unknown OPD"),
        (("users", "add", "budi", "--role", "admin", "--password", "pendek"), "at least 8"),
    ]:
        r = invoke(*args)
        assert r.exit_code == 2 and message in r.output, (args, r.output)


def test_opd_key_create_and_revoke(sqlite_engine, sqlite_client):
    r = invoke("opd", "key", "create", "SIMDA PUPR", "--opd", "PUPR")
    assert r.exit_code == 0
    key = r.stdout.strip().splitlines()[-1]
    assert key.startswith("sk_")
    h = {"Authorization": f"Bearer {key}"}
    assert sqlite_client.get("/api/v1/tickets", headers=h).status_code == 200
    with Session(sqlite_engine) as s:
        row = s.scalars(select(ApiKey)).one()
        assert row.opd_code == "PUPR" and key not in row.key_hash
    prefix = key.split("_")[1]
    assert invoke("opd", "key", "revoke", prefix).exit_code == 0
    from hub.auth import _key_cache

    _key_cache.clear()  # the CLI is another process in real life
    assert sqlite_client.get("/api/v1/tickets", headers=h).status_code == 401
    assert invoke("opd", "key", "revoke", "nope").exit_code == 2
    assert "unknown OPD" in invoke("opd", "key", "create", "x", "--opd", "NOPE").output


def test_demo_loads_users_and_traffic_once(sqlite_engine):
    first = invoke("demo")
    assert first.exit_code == 0, first.output
    with Session(sqlite_engine) as s:
        tickets = s.scalar(select(func.count()).select_from(Ticket))
        users = s.scalar(select(func.count()).select_from(User))
        channels = set(s.scalars(select(Ticket.channel)))
    assert tickets >= 25 and users == 6
    assert {"sms", "telegram", "whatsapp", "lapor", "psc119", "bpbd"} <= channels
    again = invoke("demo")
    assert again.exit_code == 0 and "0 new messages" in again.output
    with Session(sqlite_engine) as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == tickets


def test_db_upgrade_on_a_new_database(tmp_path, monkeypatch):
    from hub.settings import reset_settings
    from hub.db import reset_engine

    monkeypatch.setenv("SIMPUL_DATABASE_URL", f"sqlite:///{tmp_path}/new/fresh.db")
    reset_settings()
    reset_engine()
    r = invoke("db", "upgrade")
    assert r.exit_code == 0 and "up to date" in r.output
    assert (tmp_path / "new" / "fresh.db").exists()
    reset_settings()
    reset_engine()
