"""Restore drill (issue #15): back up while messages keep arriving, restore into a new store,
and every message acknowledged before the backup started is there, on SQLite and PostgreSQL;
the restored store is at the current schema and keeps working."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from hub.backup import backup, restore
from hub.db import get_engine, make_engine
from hub.intake import accept
from hub.models import RawMessage
from normalizer.types import InboundMessage
from tests.conftest import PG_URL
from tests.core.test_serve import ROOT


def _load(stop: threading.Event, acked: list[tuple[float, str]], errors: list[BaseException]) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        pid = f"drill-{threading.get_ident()}-{i}"
        try:
            accept(InboundMessage(channel="api", text=f"Laporan drill {i} jalan rusak", provider_id=pid,
                                  received_at=datetime.now(timezone.utc)))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            return
        acked.append((time.monotonic(), pid))


def _new_store(db_url: str, tmp_path) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/restored.db"
    name = f"simpul_restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(db_url).set(database=name).render_as_string(hide_password=False)


def _drop(url: str) -> None:
    if url.startswith("sqlite"):
        return
    admin = create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def test_restore_drill_under_load(db_url, seeded, tmp_path):
    for i in range(200):
        accept(InboundMessage(channel="api", text=f"sebelum {i}", provider_id=f"pre-{i}",
                              received_at=datetime.now(timezone.utc)))
    stop, acked, errors = threading.Event(), [], []
    workers = [threading.Thread(target=_load, args=(stop, acked, errors)) for _ in range(3)]
    for w in workers:
        w.start()
    time.sleep(0.3)
    started = time.monotonic()
    before = {pid for t, pid in list(acked) if t < started}
    try:
        res = backup(db_url, tmp_path / "simpul.backup")
    finally:
        time.sleep(0.2)
        stop.set()
        for w in workers:
            w.join()
    assert not errors, errors[:3]
    assert res.bytes > 0 and len(acked) > len(before) > 0  # messages kept coming during the backup
    target = _new_store(db_url, tmp_path)
    try:
        restore(res.path, target)
        eng = make_engine(target)
        with eng.connect() as c:
            stored = {r[0] for r in c.execute(select(RawMessage.provider_id))}
            version = c.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        with get_engine().connect() as c:
            live_version = c.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert {f"pre-{i}" for i in range(200)} <= stored
        missing = before - stored
        assert not missing, f"{len(missing)} acknowledged messages missing from the backup"
        assert version == live_version
        # the restored store works: a new message becomes a ticket there
        accept(InboundMessage(channel="api", text="setelah pemulihan", provider_id="after-restore",
                              received_at=datetime.now(timezone.utc)), engine=eng)
        eng.dispose()
    finally:
        _drop(target)


def test_backup_command(sqlite_url, tmp_path):
    env = {**os.environ, "SIMPUL_DATABASE_URL": sqlite_url}
    out = tmp_path / "b.db"
    p = subprocess.run([sys.executable, "-m", "hub", "backup", "--out", str(out)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert out.exists() and p.stdout.strip().endswith("b.db")
    target = f"sqlite:///{tmp_path}/r.db"
    p = subprocess.run([sys.executable, "-m", "hub", "restore", str(out), "--into", target], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    again = subprocess.run([sys.executable, "-m", "hub", "restore", str(out), "--into", target], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "new store" in again.stderr
