"""Engine and sessions for the central store: SQLite (WAL) by default, PostgreSQL in production."""
from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

from hub.settings import get_settings


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - exercised by every test
    # Let SQLAlchemy's pysqlite driver not issue BEGIN itself, so BEGIN IMMEDIATE works.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn) -> None:  # pragma: no cover
    # Writers take the lock up front (BEGIN IMMEDIATE): no failed lock upgrade under load, and
    # the outbox lease on SQLite is exactly this lock. Readers use a plain (deferred) BEGIN,
    # which in WAL mode never blocks a writer.
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str | None = None, **kwargs) -> Engine:
    url = url or get_settings().database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


@lru_cache
def get_engine() -> Engine:
    return make_engine()


def reset_engine() -> None:
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()


def writer(engine: Engine | None = None) -> Engine:
    """The engine for a transaction that will write: BEGIN IMMEDIATE on SQLite."""
    engine = engine or get_engine()
    return engine.execution_options(sqlite_immediate=True) if is_sqlite(engine) else engine


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """One unit of work that writes: commit on success, roll back on any error."""
    with Session(writer(engine), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def insert_rows(conn, table, rows: list[dict], ready: tuple[str, ...] = ()) -> None:
    """INSERT many rows of `table` (a Core Table) in one driver executemany, in `conn`'s
    transaction. Every row has the same keys. Each column's own bind processor converts the
    values (the JSON and DateTime types as the ORM stores them), looked up once per column
    instead of once per value: for the bulk paths (the log import), where SQLAlchemy's per-row
    parameter building cost more than the database's own insert. Columns named in `ready` hold
    values already in the driver's form (JSON as its text) and pass unchanged."""
    if not rows:
        return
    dialect = conn.dialect
    # positional markers of the two drivers the hub runs on: sqlite3 (qmark), psycopg (pyformat)
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
    if mark is None:
        raise ValueError(f"insert_rows: the {dialect.name} driver's paramstyle {dialect.paramstyle!r} is not supported")
    cols = list(rows[0])
    procs = [None if c in ready else table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in cols]
    pairs = list(zip(cols, procs))
    params = [tuple(p(r[c]) if p is not None else r[c] for c, p in pairs) for r in rows]
    names = ", ".join(dialect.identifier_preparer.quote(c) for c in cols)
    conn.exec_driver_sql(f"INSERT INTO {dialect.identifier_preparer.quote(table.name)} ({names}) "
                         f"VALUES ({', '.join([mark] * len(cols))})", params)
