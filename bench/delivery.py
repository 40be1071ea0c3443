"""Webhook deliveries per second with 1 and 2 worker processes on PostgreSQL, and what limits them.

Creates its own throwaway database on SIMPUL_BENCH_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test), points one OPD at a local receiver, queues N tickets,
runs `python -m hub.delivery_worker` in 1 and then 2 processes, and prints deliveries/s (first
to last delivery, without process start-up), the x2/x1 ratio and whether any webhook-id arrived
twice (duplicate) or never (gap).

The receiver is a raw asyncio HTTP/1.1 server in its own process (much cheaper per request than
an ASGI stack, so it is not what is measured): it verifies every Standard Webhooks signature
with the reference `standardwebhooks` library and counts webhook-ids. Two OPD behaviours:

- "opd": the receiver answers after --latency-ms (default 30 ms, how a real OPD system that
  writes to its own database behaves). The hub is limited by how many sends it keeps in flight
  and by its own per-delivery cost, not by the receiver. The x1.6 figure of issue #15 is this one.
- "instant": answers at once. On a 2-core machine the workers, the receiver and PostgreSQL then
  share two cores, so CPU is the ceiling; the per-process CPU columns show who uses it.

Ceilings measured in the same run: the receiver's own maximum (a trivial pre-signed client on
16 keep-alive connections, no hub) and, per run, the CPU each process used while delivering
(workers, receiver, PostgreSQL backends of this database, everything else on the machine).
Usage: python bench/delivery.py [--tickets 2000] [--latency-ms 30] [--concurrency 8] [--batch 50]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECRET = "whsec_" + base64.b64encode(b"bench-secret-0123456789abcdef").decode()
TICK = os.sysconf("SC_CLK_TCK")

# A raw asyncio HTTP/1.1 server (keep-alive, Content-Length bodies). POST verifies the signature
# and counts the id, answering after ?latency_ms=N; GET returns the counts as JSON.
RECEIVER = textwrap.dedent('''
    import asyncio, collections, json, os, sys
    from urllib.parse import urlsplit, parse_qs
    from standardwebhooks.webhooks import Webhook
    wh = Webhook(os.environ["BENCH_SECRET"])
    seen = collections.Counter()
    bad = 0

    async def handle(reader, writer):
        global bad
        try:
            while True:
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                lines = head.decode("latin-1").split("\\r\\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                if method == "GET":
                    out = json.dumps({"ids": len(seen), "posts": sum(seen.values()),
                                      "dupes": sum(1 for v in seen.values() if v > 1), "bad": bad}).encode()
                    status = b"200 OK"
                else:
                    q = parse_qs(urlsplit(target).query)
                    delay = float(q.get("latency_ms", ["0"])[0]) / 1000
                    if delay:
                        await asyncio.sleep(delay)
                    try:
                        wh.verify(body, headers)
                        seen[headers["webhook-id"]] += 1
                        status = b"204 No Content"
                    except Exception:
                        bad += 1
                        status = b"401 Unauthorized"
                    out = b""
                writer.write(b"HTTP/1.1 " + status + b"\\r\\ncontent-length: " + str(len(out)).encode()
                             + b"\\r\\n\\r\\n" + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=512)
        async with server:
            await server.serve_forever()

    asyncio.run(main())
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_receiver(tmp: Path) -> tuple[subprocess.Popen, str]:
    (tmp / "bench_receiver.py").write_text(RECEIVER)
    port = free_port()
    p = subprocess.Popen([sys.executable, "bench_receiver.py", str(port)], cwd=tmp,
                         env={**os.environ, "BENCH_SECRET": SECRET})
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url, timeout=0.5)
            return p, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("receiver did not start")


def proc_cpu(pid: int) -> float | None:
    """utime + stime of one process in seconds (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError):
        return None


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (all cores)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / TICK  # minus idle and iowait


class Sampler(threading.Thread):
    """Samples, every 0.1 s, the CPU time of the workers, the receiver, PostgreSQL's backends of
    the bench database and the whole machine, so the CPU used while deliveries flowed (first to
    last done_at) can be cut out of the run without process start-up and shut-down."""

    def __init__(self, pids: dict[str, int], db_url: str, db_name: str):
        super().__init__(daemon=True)
        self.pids, self.db_name = dict(pids), db_name
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.stop = threading.Event()
        self.eng = create_engine(make_url(db_url).set(drivername="postgresql+psycopg", database="postgres"),
                                 pool_size=1)
        self.pg: set[int] = set()

    def run(self) -> None:
        last_pg = 0.0
        while not self.stop.is_set():
            now = time.time()
            if now - last_pg > 0.3:
                try:
                    with self.eng.connect() as c:
                        self.pg |= {r[0] for r in c.execute(text(
                            "SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"),
                            {"d": self.db_name})}
                except Exception:
                    pass
                last_pg = now
            snap = {name: cpu for name, pid in self.pids.items() if (cpu := proc_cpu(pid)) is not None}
            for pid in self.pg:
                if (cpu := proc_cpu(pid)) is not None:
                    snap[f"pg{pid}"] = cpu
            snap["machine"] = machine_busy()
            self.samples.append((now, snap))
            self.stop.wait(0.1)

    def finish(self) -> None:
        self.stop.set()
        self.join()
        self.eng.dispose()

    def window(self, t0: float, t1: float) -> dict[str, float]:
        """CPU seconds per process between the samples nearest to t0 and t1 (postgres summed)."""
        a = min(self.samples, key=lambda s: abs(s[0] - t0))
        b = min(self.samples, key=lambda s: abs(s[0] - t1))
        out: dict[str, float] = {"seconds": b[0] - a[0]}
        for name, end in b[1].items():
            start = a[1].get(name, 0.0 if name.startswith("pg") else end)
            key = "postgres" if name.startswith("pg") else name
            out[key] = out.get(key, 0.0) + max(0.0, end - start)
        return out


async def _ceiling_client(url: str, n: int, conns: int) -> float:
    """A trivial client: pre-signed requests over `conns` keep-alive connections, no hub."""
    from adapters.opd_webhook import headers_for

    u = httpx.URL(url)
    body = json.dumps({"type": "ticket.created", "timestamp": "2026-01-01T00:00:00+00:00",
                       "data": {"code": "X" * 8, "text": "Jalan berlubang " * 30}}).encode()
    per = n // conns

    async def one(c: int) -> None:
        reader, writer = await asyncio.open_connection(u.host, u.port)
        for i in range(per):
            h = headers_for(SECRET, f"ceil_{c}_{i}_{uuid.uuid4().hex[:6]}", body)
            head = "".join(f"{k}: {v}\r\n" for k, v in h.items())
            writer.write(f"POST {u.raw_path.decode()} HTTP/1.1\r\nhost: x\r\n{head}content-length: {len(body)}\r\n\r\n"
                         .encode() + body)
            await writer.drain()
            resp = await reader.readuntil(b"\r\n\r\n")
            if b" 204 " not in resp.split(b"\r\n", 1)[0]:
                raise SystemExit(f"ceiling client: receiver answered {resp[:40]!r}")
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(c) for c in range(conns)))
    return per * conns / (time.perf_counter() - t0)


def receiver_ceiling(url: str, receiver_pid: int, n: int) -> dict:
    """The receiver's own maximum rate and CPU per request (client in a thread of this process)."""
    c0, m0 = proc_cpu(receiver_pid), machine_busy()
    t0 = time.perf_counter()
    rate = asyncio.run(_ceiling_client(url + "/ceiling", n, 16))
    wall = time.perf_counter() - t0
    cpu = proc_cpu(receiver_pid) - c0
    return {"rate": rate, "receiver_cpu_ms": 1000 * cpu / n, "receiver_cores": cpu / wall,
            "machine_cores": (machine_busy() - m0) / wall}


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
        opd.delivery = {"type": "webhook", "url": receiver, "secret_env": "BENCH_WEBHOOK_SECRET",
                        "timeout_s": 10}
    from tests.delivery.helpers import bulk_tickets
    from hub.db import get_engine

    bulk_tickets(get_engine(), n)
    reset_engine()
    eng = create_engine(make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text("VACUUM ANALYZE outbox"))
        c.execute(text("CHECKPOINT"))
    eng.dispose()


def run(url: str, db_name: str, workers: int, args, receiver_pid: int) -> dict:
    env = {**os.environ, "SIMPUL_DATABASE_URL": url, "BENCH_WEBHOOK_SECRET": SECRET, "SIMPUL_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "hub.delivery_worker", "--kinds", "deliver", "--until-empty", "--idle-sleep", "0.1",
           "--batch", str(args.batch), "--concurrency", str(args.concurrency)]
    t0 = time.perf_counter()
    errs = [tempfile.TemporaryFile() for _ in range(workers)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=e) for e in errs]
    sampler = Sampler({**{f"worker{i}": p.pid for i, p in enumerate(procs)}, "receiver": receiver_pid},
                      url, db_name)
    sampler.start()
    try:
        for p, e in zip(procs, errs):
            if p.wait(timeout=600):
                e.seek(0)
                raise SystemExit(f"worker failed: {e.read()[-2000:].decode(errors='replace')}")
    finally:
        sampler.finish()
    wall = time.perf_counter() - t0
    eng = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    with eng.connect() as c:
        done, first, last = c.execute(text(
            "SELECT count(*), min(done_at), max(done_at) FROM outbox WHERE state = 'done'")).one()
    eng.dispose()
    span = (last - first).total_seconds() if done > 1 else float("nan")
    cpu = sampler.window(first.timestamp(), last.timestamp())
    secs = max(cpu.pop("seconds"), 1e-9)
    worker_s = sum(v for k, v in cpu.items() if k.startswith("worker"))
    ours = worker_s + cpu.get("receiver", 0.0) + cpu.get("postgres", 0.0)
    return {"done": done, "rate": done / span if span else float("nan"), "wall": wall,
            "cores": {k: round(v / secs, 2) for k, v in cpu.items()},
            "other_cores": round(max(0.0, cpu.get("machine", 0.0) - ours) / secs, 2),
            "cpu_ms_per_delivery": {"workers": round(1000 * worker_s / max(done, 1), 2),
                                    "receiver": round(1000 * cpu.get("receiver", 0) / max(done, 1), 2),
                                    "postgres": round(1000 * cpu.get("postgres", 0) / max(done, 1), 2)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--latency-ms", type=float, default=30.0, help="how long the OPD takes to answer")
    ap.add_argument("--only", choices=("opd", "instant"), default=None, help="run one OPD behaviour only")
    args = ap.parse_args()
    base = make_url(os.environ.get("SIMPUL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    name = f"simpul_bench_delivery_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    receiver = None
    load0 = os.getloadavg()[0]
    try:
        from hub.migrate import upgrade

        upgrade(url)
        with tempfile.TemporaryDirectory() as tmp:
            receiver, rurl = start_receiver(Path(tmp))
            print(f"delivery benchmark: {args.tickets} signed webhooks per run, PostgreSQL, batch {args.batch}, "
                  f"{args.concurrency} concurrent sends per process; {os.cpu_count()} CPUs, "
                  f"load average {load0:.1f} at start (absolute rates mean little when busy)")
            ceiling = receiver_ceiling(rurl, receiver.pid, 4000)
            print(f"  ceiling: receiver alone (trivial pre-signed client, 16 connections): {ceiling['rate']:.0f} req/s, "
                  f"{ceiling['receiver_cpu_ms']:.2f} ms receiver CPU per request")
            figures: dict = {"receiver_ceiling": ceiling}
            configs = [("opd", args.latency_ms), ("instant", 0.0)]
            for label, latency in configs:
                if args.only and label != args.only:
                    continue
                inflight = 2 * args.concurrency
                bound = f"; at most {1000 * inflight / latency:.0f}/s with 2 x {args.concurrency} in flight" if latency else ""
                print(f"  OPD answers {'after %.0f ms' % latency if latency else 'at once'} ({label}){bound}:")
                res = {}
                for workers in (1, 2):
                    before = httpx.get(rurl).json()
                    prepare(url, args.tickets, f"{rurl}/simpul?latency_ms={latency:g}")
                    r = run(url, name, workers, args, receiver.pid)
                    after = httpx.get(rurl).json()
                    ids = after["ids"] - before["ids"]
                    dupes = after["dupes"] - before["dupes"]
                    r.update(ids=ids, duplicates=dupes, gaps=args.tickets - ids, bad=after["bad"] - before["bad"])
                    cores = ", ".join(f"{k} {v:.2f}" for k, v in r["cores"].items() if k != "machine")
                    print(f"    {workers} worker process{'es' if workers > 1 else ''}: {r['rate']:6.0f} deliveries/s; "
                          f"{ids} ids, {dupes} duplicates, {r['gaps']} gaps, {r['bad']} bad signatures; "
                          f"CPU cores used while delivering: {cores}, rest of machine {r['other_cores']:.2f} "
                          f"(of {os.cpu_count()}); CPU ms per delivery {r['cpu_ms_per_delivery']}")
                    res[f"workers_{workers}"] = r
                res["ratio"] = res["workers_2"]["rate"] / res["workers_1"]["rate"]
                res["latency_ms"] = latency
                busy = max(res["workers_1"]["other_cores"], res["workers_2"]["other_cores"])
                res["machine_busy"] = busy > 0.3
                print(f"    x{res['ratio']:.2f} from 1 to 2 processes" + (
                    f" (NOT meaningful: other processes used up to {busy:.2f} of the {os.cpu_count()} cores)"
                    if res["machine_busy"] else ""))
                figures[label] = res
            sys.path.insert(0, str(ROOT / "bench"))
            from _common import record_results

            record_results("delivery", {"tickets": args.tickets, "batch": args.batch,
                                        "concurrency": args.concurrency, "load_average_start": load0,
                                        "load_average_end": os.getloadavg()[0], **figures})
            print(f"  load average {os.getloadavg()[0]:.1f} at end; written to bench/results/latest.json")
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
