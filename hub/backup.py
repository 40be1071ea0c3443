"""`simpul backup` and `simpul restore`: a consistent copy of the store while the hub runs.

SQLite: the online backup API (sqlite3.Connection.backup) copies a consistent snapshot in one
read transaction while writers go on (WAL); the copy is a plain SQLite file. PostgreSQL: `pg_dump
--format=custom` (one consistent snapshot, no lock that stops intake); restored with
`pg_restore` into an empty database. Every message acknowledged before the backup started is
in it (an acknowledgement means committed; tests/core/test_backup.py is the drill).
"""
from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from hub.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    seconds: float
    kind: str  # sqlite | pg_dump


def _pg_tool(name: str) -> str:
    """The newest pg_dump / pg_restore installed (a server newer than the tool is refused)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return found[-1]
    exe = shutil.which(name)
    if not exe:
        raise RuntimeError(f"{name} not found: install the PostgreSQL client tools")
    return exe


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A URL pg_dump understands, and PGPASSWORD in the environment rather than on the command line."""
    u = make_url(url)
    env = {**os.environ}
    if u.password:
        env["PGPASSWORD"] = u.password
    plain = u.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return plain, env


def backup(url: str, out: Path) -> BackupResult:
    """Write a consistent backup of the store at `url` to `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    u = make_url(url)
    tmp = out.with_name(out.name + ".partial")
    if u.get_backend_name() == "sqlite":
        if not u.database or u.database == ":memory:":
            raise RuntimeError("an in-memory SQLite store cannot be backed up")
        src = sqlite3.connect(f"file:{u.database}?mode=ro", uri=True, timeout=30)
        dst = sqlite3.connect(tmp)
        try:
            # one step = one read transaction: in WAL mode a reader never blocks the writers, and
            # a stepwise copy would restart from scratch each time another connection writes
            src.backup(dst, pages=-1)
        finally:
            dst.close()
            src.close()
        kind = "sqlite"
    elif u.get_backend_name() == "postgresql":
        plain, env = _libpq(url)
        p = subprocess.run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(tmp), plain],
                           env=env, capture_output=True, text=True)
        if p.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"pg_dump failed: {p.stderr.strip()[-500:]}")
        kind = "pg_dump"
    else:
        raise RuntimeError(f"no backup for {u.get_backend_name()}")
    os.replace(tmp, out)  # a half-written backup never carries the final name
    result = BackupResult(out, out.stat().st_size, time.monotonic() - started, kind)
    log.info("backup.done", path=str(out), bytes=result.bytes, seconds=round(result.seconds, 2), kind=kind)
    return result


def restore(path: Path, url: str) -> None:
    """Restore a backup into the (new, empty) store at `url`."""
    u = make_url(url)
    path = Path(path)
    if u.get_backend_name() == "sqlite":
        target = Path(u.database)
        if target.exists() and target.stat().st_size > 0:
            raise RuntimeError(f"{target} exists: restore into a new store")
        target.parent.mkdir(parents=True, exist_ok=True)
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
    elif u.get_backend_name() == "postgresql":
        plain, env = _libpq(url)
        p = subprocess.run([_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "--dbname", plain, str(path)],
                           env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"pg_restore failed: {p.stderr.strip()[-500:]}")
    else:
        raise RuntimeError(f"no restore for {u.get_backend_name()}")
    log.info("backup.restored", path=str(path))
