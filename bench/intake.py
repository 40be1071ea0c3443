"""Intake throughput over real HTTP on loopback, against an empty FastAPI endpoint as ceiling.

Starts `simpul serve` (workers on) on a fresh database, loads POST /api/v1/intake/api with wrk
(bounded in time and connections, unique message ids), then an empty FastAPI endpoint under the
same uvicorn settings, and prints messages/s, p50/p99 latency and the ratio, and the CPU time the
server process spent per accepted message (its utime+stime from /proc over the wrk run). That
figure says what a message costs rather than how much CPU the server got, but a crowded machine
inflates it too (at a load average of 10 on 2 cores the empty endpoint took ~0.6 ms of CPU per
request): compare runs made under similar load, or count instructions (docs/architecture.md).
Afterwards it waits until every
accepted message is a ticket and says so. SQLite always; PostgreSQL when
SIMPUL_BENCH_POSTGRES_URL is set (or the local default answers).
Usage: python bench/intake.py [--seconds 10] [--connections 32]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
# One wrk thread: it drives the empty endpoint to ~8,000 req/s here (two threads: ~4% more), and
# a second thread only takes the cores the server and its database need (2 cores in all).
WRK_THREADS = 1
EMPTY_APP = textwrap.dedent("""
    from fastapi import FastAPI, Request
    app = FastAPI()
    @app.post("/api/v1/intake/{channel}", status_code=202)
    async def empty(channel: str, request: Request):
        await request.body()
        return {"code": "XXXXXXX", "duplicate": False}
""")
WRK_LUA = textwrap.dedent("""
    local counter = 0
    tid = 0
    setup = function(thread) tid = tid + 1; thread:set("tid", tid) end
    request = function()
      counter = counter + 1
      local body = string.format('{"text":"jalan rusak parah di desa Ngadirenggo kec Pogalan no %d","id":"%s-%d-%d","sender":"0812%08d"}', counter, run, tid, counter, counter)
      return wrk.format("POST", "/api/v1/intake/api", {["Content-Type"]="application/json", ["Authorization"]="Bearer " .. key}, body)
    end
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not come up")


def run_wrk(url: str, seconds: int, connections: int, key: str, run: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(f'key = "{key}"\nrun = "{run}"\n' + WRK_LUA)
    out = subprocess.run(["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency",
                          "-s", f.name, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    os.unlink(f.name)

    def lat(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"total": total, "non2xx": int(non2xx.group(1)) if non2xx else 0, "rps": rps,
            "p50": lat("50"), "p99": lat("99"), "socket_errors": errors.group(1) if errors else "", "raw": out}


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads, not its children), from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk_cpu(pid: int, url: str, seconds: int, connections: int, key: str, run: str) -> dict:
    """run_wrk, plus the server's CPU microseconds per accepted message over that run."""
    before = cpu_seconds(pid)
    res = run_wrk(url, seconds, connections, key, run)
    after = cpu_seconds(pid)
    accepted = res["total"] - res["non2xx"]
    res["cpu_s"] = round(after - before, 2) if before is not None and after is not None else None
    res["cpu_us_per_msg"] = round(res["cpu_s"] / accepted * 1e6) if res["cpu_s"] is not None and accepted else None
    return res


def start(cmd: list[str], env: dict, port: int) -> subprocess.Popen:
    # stderr goes to a file: an unread pipe fills up and stalls the server mid-benchmark
    log = open(Path(tempfile.gettempdir()) / f"simpul-bench-{port}.log", "w")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    try:  # start-up takes a while on a crowded machine; a server that never came up is stopped
        wait_up(f"http://127.0.0.1:{port}/healthz" if "serve" in cmd else f"http://127.0.0.1:{port}/docs", timeout=120)
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def pull_only_config(workdir: Path) -> Path:
    """The demo config with every OPD on pull delivery: this measures intake and processing,
    not an SMTP server (the demo sends PUPR's tickets by e-mail to a catcher that is not running
    here, and bench/delivery.py measures delivery)."""
    import yaml

    from config import DEFAULT_CONFIG_DIR

    target = workdir / "config"
    if not target.exists():
        shutil.copytree(DEFAULT_CONFIG_DIR, target)
        data = yaml.safe_load((target / "opds.yaml").read_text())
        for opd in data["opds"]:
            opd["delivery"] = {"type": "pull"}
        (target / "opds.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return target


def bench_db(label: str, url: str, seconds: int, connections: int, workdir: Path, workers: bool = True) -> dict:
    env = {**os.environ, "SIMPUL_DATABASE_URL": url, "SIMPUL_LOG_LEVEL": "WARNING",
           "SIMPUL_MAX_BODY_BYTES": "65536", "SIMPUL_WORKERS": "true" if workers else "false",
           "SIMPUL_CONFIG_DIR": str(pull_only_config(workdir))}
    subprocess.run([PY, "-m", "hub", "db", "upgrade"], env=env, check=True, cwd=ROOT, capture_output=True)
    key = subprocess.run([PY, "-m", "hub", "opd", "key", "create", "bench", "--role", "intake"], env=env,
                         check=True, cwd=ROOT, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    port = free_port()
    proc = start([PY, "-m", "hub", "serve", "--port", str(port)] + ([] if workers else ["--no-workers"]), env, port)
    try:
        res = run_wrk_cpu(proc.pid, f"http://127.0.0.1:{port}", seconds, connections, key, uuid.uuid4().hex[:8])
        accepted = res["total"] - res["non2xx"]
        engine = create_engine(make_url(url).set(drivername="postgresql+psycopg") if url.startswith("postgresql")
                               else url)
        t0 = time.time()
        tickets = raw = 0
        while workers and time.time() - t0 < 300:
            with engine.connect() as c:
                raw = c.execute(text("SELECT count(*) FROM raw_messages")).scalar_one()
                tickets = c.execute(text("SELECT count(*) FROM tickets")).scalar_one()
            if tickets >= raw:
                break
            time.sleep(0.5)
        res.update(label=label, accepted=accepted, raw=raw, tickets=tickets, drain_s=round(time.time() - t0, 1))
        engine.dispose()
        return res
    finally:
        stop(proc)


def bench_empty(seconds: int, connections: int, workdir: Path) -> dict:
    (workdir / "empty_app.py").write_text(EMPTY_APP)
    port = free_port()
    proc = start([PY, "-m", "uvicorn", "empty_app:app", "--port", str(port), "--log-level", "warning",
                  "--no-access-log", "--app-dir", str(workdir)], dict(os.environ), port)
    try:
        res = run_wrk_cpu(proc.pid, f"http://127.0.0.1:{port}", seconds, connections, "none", "empty")
        res.update(label="empty FastAPI endpoint", accepted=res["total"] - res["non2xx"])
        return res
    finally:
        stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--no-workers", action="store_true", help="intake only (diagnosis): no processing")
    ap.add_argument("--only", choices=["sqlite", "postgres"], help="one store only (the empty endpoint always runs)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench/intake.py needs wrk (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="simpul-bench-"))
    targets = [] if args.only == "postgres" else [("SQLite", f"sqlite:///{work}/bench.db")]
    pg_base = os.environ.get("SIMPUL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    pg_name = f"simpul_bench_{uuid.uuid4().hex[:6]}"
    admin = None
    try:
        if args.only == "sqlite":
            raise LookupError("--only sqlite")
        admin = create_engine(make_url(pg_base).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{pg_name}"'))
        targets.append(("PostgreSQL", make_url(pg_base).set(database=pg_name).render_as_string(hide_password=False)))
    except Exception as exc:
        print(f"(PostgreSQL skipped: {type(exc).__name__})")
        admin = None
    try:
        empty = bench_empty(args.seconds, args.connections, work)
        results = [bench_db(label, url, args.seconds, args.connections, work,
                            not args.no_workers) for label, url in targets]
    finally:
        if admin is not None:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nintake benchmark: wrk -t{WRK_THREADS} -c{args.connections} -d{args.seconds}s on loopback, one uvicorn process, "
          f"{os.cpu_count()} cores")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(load average at the end: {load:.1f}; CPU us/msg = server process utime+stime / accepted messages;"
          f" on SQLite the serve process also turns messages into tickets meanwhile)")

    def cpu(r: dict) -> str:
        return f"{r['cpu_us_per_msg']:>9}" if r.get("cpu_us_per_msg") is not None else f"{'-':>9}"

    print(f"{'target':<24}{'msgs/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs empty':>10}{'CPU us':>9}{'non-2xx':>9}"
          "  every accepted a ticket?")
    print(f"{empty['label']:<24}{empty['rps']:>10.0f}{empty['p50']:>9.2f}{empty['p99']:>9.2f}{'100%':>10}{cpu(empty)}"
          f"{empty['non2xx']:>9}")
    for r in results:
        # wrk does not count requests still in flight when it stops; those were stored too
        ok = r["tickets"] == r["raw"] >= r["accepted"]
        print(f"{'intake ' + r['label']:<24}{r['rps']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}"
              f"{r['rps'] / empty['rps']:>10.0%}{cpu(r)}{r['non2xx']:>9}  {'yes' if ok else 'NO'} "
              f"(accepted {r['accepted']}, stored {r['raw']}, tickets {r['tickets']}, drained in {r['drain_s']} s)")
    print("targets: >= 2000 msgs/s, >= 40% of the empty endpoint, p99 < 100 ms")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import record_results

    record_results("intake", {"ceiling_empty_endpoint": empty, "targets": results, "load_average": load,
                              "connections": args.connections, "seconds": args.seconds})


if __name__ == "__main__":
    main()
