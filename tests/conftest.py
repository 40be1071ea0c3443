"""Shared fixtures: a migrated database per test (SQLite always; PostgreSQL when
SIMPUL_TEST_POSTGRES_URL is set), a hub app client, and API keys.

Fixtures:
- `db_url` / `engine`: parametrized over sqlite and postgres (postgres only when configured;
  under CI=true a missing PostgreSQL is a failure, not a skip).
- `sqlite_url`: SQLite only, for tests that are about behaviour rather than storage.
- `client`: a TestClient on a fresh app (workers off), `admin_headers`, `make_key(role, opd)`.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

PG_URL = os.environ.get("SIMPUL_TEST_POSTGRES_URL")
IN_CI = os.environ.get("CI") == "true"


def _use_url(url: str, monkeypatch, data_dir: Path | None = None) -> None:
    from hub import config as hub_config
    from hub.db import reset_engine
    from hub.settings import reset_settings

    monkeypatch.setenv("SIMPUL_DATABASE_URL", url)
    if data_dir is not None:  # uploads and fetched files: the test's own, never the checkout's ./data
        monkeypatch.setenv("SIMPUL_DATA_DIR", str(data_dir))
    reset_settings()
    reset_engine()
    hub_config.regency_config.cache_clear()


@pytest.fixture(autouse=True)
def wired_process():
    """Like `simpul serve`, the test process sends outbox rows through every wired line's and
    feature's senders (hub.wiring). A test that creates an app or wires other settings (another
    SMS provider) installs its own wiring; the next test starts from the default again."""
    from hub.settings import get_settings
    from hub.wiring import install, wire

    install(wire(get_settings()))
    yield


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    from hub.migrate import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _pg_database():
    """One migrated PostgreSQL database for the session; tables are emptied per test."""
    if not PG_URL:
        return None
    from hub.migrate import upgrade

    base = make_url(PG_URL)
    name = f"simpul_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(base.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    from hub.db import reset_engine

    reset_engine()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


_TRUNCATE_ENGINES: dict = {}
# Tables whose file node the hub reads (hub.stats.data_version: the dashboard cache notices a
# TRUNCATE by it): emptied with TRUNCATE as before, the others with DELETE.
_TRUNCATED = {"ticket_counts"}

# Every id sequence of a public table that has been used (an insert that was rolled back leaves
# its table empty but its sequence moved), with its table.
_USED_SEQUENCES = text("""
    SELECT tbl.relname, quote_ident(n.nspname) || '.' || quote_ident(seq.relname)
    FROM pg_class seq
    JOIN pg_depend d ON d.objid = seq.oid AND d.classid = 'pg_class'::regclass
        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    JOIN pg_class tbl ON tbl.oid = d.refobjid
    JOIN pg_namespace n ON n.oid = tbl.relnamespace
    JOIN pg_sequences ps ON ps.schemaname = n.nspname AND ps.sequencename = seq.relname
    WHERE seq.relkind = 'S' AND n.nspname = 'public' AND tbl.relname <> 'alembic_version'
        AND ps.last_value IS NOT NULL""")


def _truncate_pg(url: str) -> None:
    """Back to the state of a freshly migrated and emptied database, as TRUNCATE ... RESTART
    IDENTITY CASCADE of every table leaves it: every table empty, every id sequence at its start,
    and a new file for ticket_counts. Truncating all ~25 tables cost 0.2-0.5 s per test even
    when they were empty (new files for each table, each time); instead the rows of the tables
    that hold any are deleted (foreign key triggers off for this transaction: every table left
    holds no rows), ticket_counts truncated, and only the used sequences restarted, ~10-30 ms."""
    eng = _TRUNCATE_ENGINES.get(url)
    if eng is None:
        eng = _TRUNCATE_ENGINES[url] = create_engine(make_url(url).set(drivername="postgresql+psycopg"),
                                                     poolclass=NullPool)
    with eng.begin() as c:
        tables = [r[0] for r in c.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'"))]
        if not tables:
            return
        q = " UNION ALL ".join(f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM \"{t}\")" for t in tables)
        full = [r[0] for r in c.execute(text(q))]
        used_rows = c.execute(_USED_SEQUENCES).all()
        used = [r[1] for r in used_rows]
        if c.execute(text("SELECT current_setting('is_superuser')")).scalar() != "on":
            # session_replication_role needs a superuser: TRUNCATE what differs from fresh instead
            dirty = sorted(set(full) | {r[0] for r in used_rows})
            if dirty:
                c.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in dirty) + " RESTART IDENTITY CASCADE"))
            return
        if full:
            c.execute(text("SET LOCAL session_replication_role = replica"))  # no FK checks or cascades
            for t in full:
                if t not in _TRUNCATED:
                    c.execute(text(f'DELETE FROM "{t}"'))
            rewrite = [t for t in full if t in _TRUNCATED]
            if rewrite:
                c.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in rewrite)))
        for seq in used:
            c.execute(text(f"ALTER SEQUENCE {seq} RESTART"))
        left = c.execute(text(q)).all()
        assert not left, f"tables still holding rows after the reset: {left}"


def _fresh_sqlite(template: Path, tmp_path: Path) -> str:
    path = tmp_path / "simpul.db"
    shutil.copy(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_url(_sqlite_template, tmp_path, monkeypatch) -> str:
    url = _fresh_sqlite(_sqlite_template, tmp_path)
    _use_url(url, monkeypatch, tmp_path / "data")
    yield url
    from hub.db import reset_engine

    reset_engine()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, _sqlite_template, tmp_path, monkeypatch) -> str:
    if request.param == "sqlite":
        url = _fresh_sqlite(_sqlite_template, tmp_path)
    else:
        if not PG_URL:
            if IN_CI:
                pytest.fail("CI=true but SIMPUL_TEST_POSTGRES_URL is not set")
            pytest.skip("PostgreSQL tests need SIMPUL_TEST_POSTGRES_URL")
        url = request.getfixturevalue("_pg_database")
        _truncate_pg(url)
    _use_url(url, monkeypatch, tmp_path / "data")
    yield url
    from hub.db import reset_engine

    reset_engine()


@pytest.fixture
def engine(db_url):
    from hub.db import get_engine

    return get_engine()


@pytest.fixture
def sqlite_engine(sqlite_url):
    from hub.db import get_engine

    return get_engine()


@pytest.fixture
def cfg():
    from hub.config import regency_config
    from hub.settings import get_settings

    return regency_config(str(get_settings().config_dir))


@pytest.fixture
def seeded(cfg):
    """OPDs from the default config in the current test database."""
    from hub.db import session_scope
    from hub.seed import sync_opds

    with session_scope() as s:
        sync_opds(s, cfg)
    return cfg


@pytest.fixture
def make_key():
    from hub.auth import create_api_key
    from hub.db import session_scope

    def make(role: str = "admin", opd: str | None = None, name: str = "test") -> dict[str, str]:
        with session_scope() as s:
            key = create_api_key(s, name, role, opd)
        return {"Authorization": f"Bearer {key}"}

    return make


def _client(url_fixture_value):
    from fastapi.testclient import TestClient

    from hub.app import create_app

    return TestClient(create_app(workers=False))


@pytest.fixture
def client(db_url):
    with _client(db_url) as c:
        yield c


@pytest.fixture
def sqlite_client(sqlite_url):
    with _client(sqlite_url) as c:
        yield c


@pytest.fixture
def admin_headers(make_key, seeded):
    return make_key("admin")
