"""A PostgreSQL cluster of the test's own: initdb into a temp dir, pg_ctl on a free port on
127.0.0.1, stopped and started by the test (never the machine's shared server)."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("pg_ctl")
    return Path(exe).parent if exe else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self, root: Path | None = None, port: int | None = None):
        self.bin = pg_bin()
        if self.bin is None:
            raise RuntimeError("pg_ctl not found")
        # its own directory right under /tmp: pytest's tmp dirs are private to root, and the
        # server runs as the postgres user when the tests run as root
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="simpul-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.port = port or free_port()
        self.log = self.root / "pg.log"

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = list(args)
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)

    def init(self) -> "PgCluster":
        self.root.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sock, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        return self

    def start(self, wait_s: float = 30) -> None:
        opts = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=100 -c shared_buffers=32MB")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w",
                  "-t", str(int(wait_s)), "start", timeout=wait_s + 10)

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        from sqlalchemy import create_engine, text

        eng = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres",
                            isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        eng.dispose()
        return self.url(name)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def wait_until(fn, timeout: float, every: float = 0.1):
    end = time.monotonic() + timeout
    while True:
        try:
            result = fn()
            if result:
                return result
        except Exception:
            if time.monotonic() > end:
                raise
        if time.monotonic() > end:
            return None
        time.sleep(every)
