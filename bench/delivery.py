"""Webhook deliveries per second with 1 and 2 worker processes on PostgreSQL.

Creates its own throwaway database on SIMPUL_BENCH_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test), points one OPD at a local receiver (uvicorn, checks
every Standard Webhooks signature and counts webhook-ids), queues N tickets, runs
`python -m hub.delivery_worker` in 1 and then 2 processes, and prints deliveries/s (first to
last delivery, without process start-up) and whether any id arrived twice or never.
Usage: python bench/delivery.py [--tickets 2000] [--concurrency 8] [--batch 50]
"""
from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECRET = "whsec_" + base64.b64encode(b"bench-secret-0123456789abcdef").decode()
RECEIVER = textwrap.dedent('''
    import collections, os
    from standardwebhooks.webhooks import Webhook
    wh = Webhook(os.environ["BENCH_SECRET"])
    seen = collections.Counter()
    bad = 0
    async def app(scope, receive, send):
        global bad
        if scope["type"] != "http":
            return
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        if scope["method"] == "GET":
            import json
            out = json.dumps({"ids": len(seen), "posts": sum(seen.values()),
                              "dupes": sum(1 for v in seen.values() if v > 1), "bad": bad}).encode()
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": out})
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        try:
            wh.verify(body, headers)
            seen[headers["webhook-id"]] += 1
            status = 204
        except Exception:
            bad += 1
            status = 401
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_receiver(tmp: Path) -> tuple[subprocess.Popen, str]:
    (tmp / "bench_receiver.py").write_text(RECEIVER)
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench_receiver:app", "--port", str(port),
                          "--log-level", "warning", "--no-access-log"], cwd=tmp,
                         env={**os.environ, "BENCH_SECRET": SECRET})
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url, timeout=0.5)
            return p, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("receiver did not start")


def prepare(url: str, n: int, receiver: str) -> None:
    os.environ["SIMPUL_DATABASE_URL"] = url
    from hub.config import regency_config
    from hub.db import reset_engine, session_scope
    from hub.models import Opd
    from hub.seed import sync_opds
    from hub.settings import get_settings, reset_settings

    reset_settings()
    reset_engine()
    with session_scope() as s:
        s.execute(text("TRUNCATE outbox, ticket_events, tickets RESTART IDENTITY CASCADE"))
    with session_scope() as s:
        sync_opds(s, regency_config(str(get_settings().config_dir)))
        opd = s.get(Opd, "PUPR")
        opd.delivery = {"type": "webhook", "url": receiver + "/simpul", "secret_env": "BENCH_WEBHOOK_SECRET",
                        "timeout_s": 10}
    from tests.delivery.helpers import bulk_tickets
    from hub.db import get_engine

    bulk_tickets(get_engine(), n)
    reset_engine()


def run(url: str, workers: int, n: int, args) -> dict:
    env = {**os.environ, "SIMPUL_DATABASE_URL": url, "BENCH_WEBHOOK_SECRET": SECRET, "SIMPUL_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "hub.delivery_worker", "--kinds", "deliver", "--until-empty", "--idle-sleep", "0.1",
           "--batch", str(args.batch), "--concurrency", str(args.concurrency)]
    import resource

    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(workers)]
    for p in procs:
        _out, err = p.communicate(timeout=600)
        if p.returncode:
            raise SystemExit(f"worker failed: {err[-2000:]}")
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    eng = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    with eng.connect() as c:
        done, first, last = c.execute(text(
            "SELECT count(*), min(done_at), max(done_at) FROM outbox WHERE state = 'done'")).one()
    eng.dispose()
    span = (last - first).total_seconds() if done > 1 else float("nan")
    return {"done": done, "rate": done / span if span else float("nan"), "wall": wall,
            "cpu_ms": 1000 * cpu / max(done, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args()
    base = make_url(os.environ.get("SIMPUL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    name = f"simpul_bench_delivery_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    receiver = None
    try:
        from hub.migrate import upgrade

        upgrade(url)
        with tempfile.TemporaryDirectory() as tmp:
            receiver, rurl = start_receiver(Path(tmp))
            print(f"delivery benchmark: {args.tickets} signed webhooks to a local receiver, PostgreSQL, "
                  f"batch {args.batch}, {args.concurrency} concurrent sends per process; "
                  f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (figures mean little when busy)")
            figures = {}
            for workers in (1, 2):
                before = httpx.get(rurl).json()
                prepare(url, args.tickets, rurl)
                r = run(url, workers, args.tickets, args)
                after = httpx.get(rurl).json()
                ids = after["ids"] - before["ids"]
                dupes = after["dupes"] - before["dupes"]
                print(f"  {workers} worker process{'es' if workers > 1 else ''}: {r['rate']:8.0f} deliveries/s "
                      f"({r['done']} delivered, wall {r['wall']:.1f}s incl. start-up, worker CPU {r['cpu_ms']:.1f} ms "
                      f"per delivery incl. start-up); receiver: {ids} ids, "
                      f"{dupes} duplicates, {after['bad'] - before['bad']} bad signatures")
                figures[f"workers_{workers}"] = {**r, "ids": ids, "duplicates": dupes}
            sys.path.insert(0, str(ROOT / "bench"))
            from _common import record_results

            record_results("delivery", {"tickets": args.tickets, "batch": args.batch,
                                        "concurrency": args.concurrency, "load_average": os.getloadavg()[0],
                                        **figures})
    finally:
        if receiver is not None:
            receiver.terminate()
            receiver.wait(5)
        from hub.db import reset_engine

        reset_engine()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
