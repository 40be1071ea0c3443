"""Soak: Simpul under faults (issue #15). Each scenario prints a tally and writes its figures to
bench/results/latest.json. Everything runs on 127.0.0.1: its own hub processes, its own OPD
receivers, a SQLite file in a temp dir, and PostgreSQL either a throwaway database on
SIMPUL_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test) or, for the stop
scenario, a cluster of its own (initdb + pg_ctl on a free port, never the shared server).

Scenarios (all by default; name some to run only those):
  crash     N messages from 16 clients that retry until 2xx; the hub is killed (kill -9) twice
            mid-way and restarted: every 2xx a ticket exactly once, every retry the same code
  pgstop    the hub's own PostgreSQL stopped for S seconds under load: answers during the stop
            (503 with Retry-After, no 500, no reset), first 2xx after it is back, 0 acked lost
  opdfail   an OPD that answers 500 for F seconds, then 200: every ticket delivered once
  slowopd   an OPD that answers 200 just inside its timeout, two worker processes: 0 extra
  twoproc   two worker processes deliver D tickets (default 2,000) to a quick OPD: 0 duplicates, 0 gaps
  poison    a poison message among 1,000 good ones, SQLite and PostgreSQL: 1,000 tickets, 1 parked
  loginflood  intake alone for 10 s, then with 4 clients spraying wrong passwords at /masuk:
            intake keeps >= half its rate, no 5xx

Usage: python bench/soak.py [scenario ...] [--messages 2000] [--stop-s 8] [--fail-s 8] [--deliveries 2000]
       [--quick]  (small sizes: what tests/core/test_soak.py runs inside `make test`)
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "latest.json"
PG_URL = os.environ.get("SIMPUL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def record(name: str, figures: dict) -> None:
    """Merge one benchmark's figures into bench/results/latest.json (one key per benchmark)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from _common import record_results

    record_results(name, figures)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_throwaway() -> tuple[str, callable]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(PG_URL)
    name = f"simpul_soak_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


def hub_env(url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "SIMPUL_DATABASE_URL": url, "SIMPUL_LOG_LEVEL": "WARNING", "SIMPUL_LOG_JSON": "true", **extra}


def cli(env: dict, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "hub", *args], env=env, cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout


class Hub:
    """`simpul serve` in its own process group (so kill -9 takes its worker child too)."""

    def __init__(self, env: dict, log: Path, in_process: bool):
        self.env, self.log, self.in_process = env, log, in_process
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_s: float = 90) -> None:
        import httpx

        mode = "--in-process" if self.in_process else "--worker-process"
        self.proc = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--port", str(self.port), mode],
                                     env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("a"), start_new_session=True)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"hub did not start: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


async def send_with_retries(base: str, key: str, ids: list[str], clients: int, tally: Counter,
                            codes: dict[str, set], on_ack=None, deadline_s: float = 600) -> None:
    """Each id is sent until it gets a 2xx (as a channel or system client retries)."""
    import httpx

    queue: asyncio.Queue[str] = asyncio.Queue()
    for i in ids:
        queue.put_nowait(i)
    end = time.monotonic() + deadline_s

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=10, headers={"Authorization": f"Bearer {key}"}) as c:
            while not queue.empty() and time.monotonic() < end:
                pid = queue.get_nowait()
                while time.monotonic() < end:
                    try:
                        r = await c.post("/api/v1/intake/api", json={
                            "text": f"Jalan berlubang nomor {pid} di desa Ngadirenggo kec. Pogalan", "id": pid})
                    except httpx.HTTPError as exc:
                        tally[f"error:{type(exc).__name__}"] += 1
                        await asyncio.sleep(0.2)
                        continue
                    tally[f"http:{r.status_code}"] += 1
                    if r.status_code == 202:
                        codes.setdefault(pid, set()).add(r.json()["code"])
                        tally["acked"] += 1
                        if on_ack:
                            on_ack()
                        break
                    await asyncio.sleep(0.2)

    await asyncio.gather(*(client() for _ in range(clients)))


def wait_for_tickets(url: str, expected: int, timeout_s: float) -> int:
    from sqlalchemy import func, select

    from hub.db import make_engine
    from hub.models import RawMessage

    eng = make_engine(url)
    end = time.monotonic() + timeout_s
    try:
        while True:
            with eng.connect() as c:
                pending = c.execute(select(func.count()).select_from(RawMessage)
                                    .where(RawMessage.state == "pending")).scalar_one()
                total = c.execute(select(func.count()).select_from(RawMessage)).scalar_one()
            if (pending == 0 and total >= expected) or time.monotonic() > end:
                return pending
            time.sleep(0.5)
    finally:
        eng.dispose()


def ticket_tally(url: str, ids: list[str]) -> dict:
    from sqlalchemy import func, select

    from hub.db import make_engine
    from hub.models import RawMessage, Ticket

    eng = make_engine(url)
    with eng.connect() as c:
        raws = {r[0]: (r[1], r[2]) for r in c.execute(select(RawMessage.provider_id, RawMessage.ticket_code,
                                                             RawMessage.state))}
        tickets = Counter(r[0] for r in c.execute(select(Ticket.code)))
        n_tickets = c.execute(select(func.count()).select_from(Ticket)).scalar_one()
    eng.dispose()
    return {"raws": raws, "tickets": tickets, "n_tickets": n_tickets}


# ------------------------------------------------------------------------------ scenarios
def scenario_crash(store: str, messages: int, workdir: Path, kills: int = 2) -> dict:
    """kill -9 of the hub (and its worker) `kills` times while clients send; they retry until 2xx."""
    drop = None
    if store == "sqlite":
        url = f"sqlite:///{workdir}/crash.db"
    else:
        url, drop = pg_throwaway()
    env = hub_env(url)
    try:
        cli(env, "db", "upgrade")
        key = cli(env, "opd", "key", "create", "soak", "--role", "intake").strip().splitlines()[-1]
        hub = Hub(env, workdir / f"crash-{store}.log", in_process=store == "sqlite")
        hub.start()
        ids = [f"crash-{i}" for i in range(messages)]
        tally, codes = Counter(), {}
        kills = {"n": 0, "at": [messages * (k + 1) // (kills + 1) for k in range(kills)]}
        kill_times: list[float] = []

        def on_ack() -> None:
            if kills["at"] and tally["acked"] >= kills["at"][0]:
                kills["at"].pop(0)
                kills["n"] += 1
                hub.kill9()
                kill_times.append(time.monotonic())
                hub.start()

        started = time.monotonic()
        asyncio.run(send_with_retries(hub.base, key, ids, 16, tally, codes, on_ack, deadline_s=max(600, messages / 10)))
        elapsed = time.monotonic() - started
        # the worker catches up after the load stops: on a busy machine 10,000 messages take minutes
        pending = wait_for_tickets(url, messages, 120 + messages / 20)
        hub.stop()
        t = ticket_tally(url, ids)
        acked = set(codes)
        lost = [i for i in acked if i not in t["raws"]]  # acknowledged, never stored
        not_ticket = [i for i in acked if i in t["raws"] and t["raws"][i][0] not in t["tickets"]]
        changed_code = [i for i, cs in codes.items() if len(cs) > 1]
        dup = sum(n - 1 for n in t["tickets"].values() if n > 1)
        return {"store": store, "messages": messages, "acked": len(acked), "kills": kills["n"],
                "requests": sum(v for k, v in tally.items() if k.startswith(("http:", "error:"))),
                "answers": {k: v for k, v in tally.items() if k != "acked"},
                "lost": len(lost), "stored_not_ticket": len(not_ticket), "duplicate_tickets": dup,
                "code_changed_on_retry": len(changed_code), "tickets": t["n_tickets"], "pending_left": pending,
                "seconds": round(elapsed, 1),
                "ok": len(acked) == messages and not lost and not not_ticket and dup == 0 and not changed_code
                and pending == 0}
    finally:
        if drop:
            drop()


def scenario_pgstop(stop_s: float, workdir: Path, rate_clients: int = 4) -> dict:
    """The hub's own PostgreSQL stops for stop_s seconds while clients send."""
    import httpx

    from tests.pgcluster import PgCluster

    cluster = PgCluster().init()
    cluster.start()
    try:
        url = cluster.create_database("simpul")
        env = hub_env(url)
        cli(env, "db", "upgrade")
        key = cli(env, "opd", "key", "create", "soak", "--role", "intake").strip().splitlines()[-1]
        log = workdir / "pgstop.log"
        hub = Hub(env, log, in_process=False)
        hub.start()
        phase = {"v": "before"}
        answers: Counter = Counter()
        acked: dict[str, str] = {}
        retry_after_missing = Counter()
        first_ok_after: list[float] = []
        back_at: list[float] = []
        log_size_before = log.stat().st_size

        async def client(n: int, end: float) -> None:
            async with httpx.AsyncClient(base_url=hub.base, timeout=5, headers={"Authorization": f"Bearer {key}"}) as c:
                i = 0
                while time.monotonic() < end:
                    i += 1
                    pid = f"pg-{n}-{i}"
                    while time.monotonic() < end:
                        p = phase["v"]
                        try:
                            r = await c.post("/api/v1/intake/api", json={"text": f"Banjir {pid} di Pogalan", "id": pid})
                            answers[f"{p}:http:{r.status_code}"] += 1
                            if r.status_code == 503 and "retry-after" not in r.headers:
                                retry_after_missing[p] += 1
                        except httpx.HTTPError as exc:
                            answers[f"{p}:error:{type(exc).__name__}"] += 1
                            await asyncio.sleep(0.2)
                            continue
                        if r.status_code == 202:
                            acked[pid] = r.json()["code"]
                            if p == "after" and not first_ok_after:
                                first_ok_after.append(time.monotonic() - back_at[0])
                            await asyncio.sleep(0.05)
                            break
                        await asyncio.sleep(0.2)

        async def run() -> None:
            end = time.monotonic() + 3 + stop_s + 8
            tasks = [asyncio.create_task(client(n, end)) for n in range(rate_clients)]
            await asyncio.sleep(3)
            phase["v"] = "stopped"
            await asyncio.to_thread(cluster.stop, "fast")
            await asyncio.sleep(stop_s)
            await asyncio.to_thread(cluster.start)
            back_at.append(time.monotonic())
            phase["v"] = "after"
            await asyncio.gather(*tasks)

        asyncio.run(run())
        pending = wait_for_tickets(url, len(acked), 300)
        hub.stop()
        t = ticket_tally(url, list(acked))
        lost = [i for i in acked if i not in t["raws"]]  # acknowledged, never stored
        not_ticket = [i for i in acked if i in t["raws"] and t["raws"][i][0] not in t["tickets"]]
        outage_lines = log.read_text()[log_size_before:].count("\n")
        stopped = {k.split(":", 1)[1]: v for k, v in answers.items() if k.startswith("stopped:")}
        bad = sum(v for k, v in stopped.items() if k.startswith("error") or k in ("http:500", "http:502"))
        return {"stop_s": stop_s, "acked": len(acked), "lost": len(lost), "stored_not_ticket": len(not_ticket),
                "answers": dict(answers),
                "during_stop": stopped, "non_503_failures_during_stop": bad,
                "503_without_retry_after": sum(retry_after_missing.values()),
                "first_2xx_after_restart_s": round(first_ok_after[0], 2) if first_ok_after else None,
                "log_lines_during_run": outage_lines, "pending_left": pending,
                "ok": not lost and not not_ticket and bad == 0 and bool(first_ok_after)
                and not sum(retry_after_missing.values())}
    finally:
        cluster.destroy()


def _outbox_db(workdir: Path, name: str) -> str:
    from hub.migrate import upgrade

    url = f"sqlite:///{workdir}/{name}.db"
    upgrade(url)
    return url


def _use(url: str) -> None:
    from hub import config as hub_config
    from hub.db import reset_engine
    from hub.settings import reset_settings

    os.environ["SIMPUL_DATABASE_URL"] = url
    reset_settings()
    reset_engine()
    hub_config.regency_config.cache_clear()


def _seed_webhook(url: str, rx_url: str, n: int, timeout_s: float) -> list[str]:
    from hub.config import regency_config as regency
    from hub.db import get_engine, session_scope
    from hub.seed import sync_opds
    from hub.settings import get_settings
    from tests.delivery.helpers import bulk_tickets, use_webhook

    with session_scope() as s:
        sync_opds(s, regency(str(get_settings().config_dir)))
    with session_scope() as s:
        use_webhook(s, "PUPR", rx_url, timeout_s=timeout_s)
    return bulk_tickets(get_engine(), n)


def _outbox_states(url: str) -> Counter:
    from sqlalchemy import select

    from hub.db import make_engine
    from hub.models import Outbox

    eng = make_engine(url)
    with eng.connect() as c:
        out = Counter(r[0] for r in c.execute(select(Outbox.state).where(Outbox.kind == "deliver")))
    eng.dispose()
    return out


def scenario_opdfail(n: int, fail_s: float, workdir: Path) -> dict:
    """The OPD answers 500 for fail_s seconds, then 200. One in-process worker delivers."""
    from tests.delivery.helpers import SECRET, SECRET_ENV, Act, Receiver

    os.environ[SECRET_ENV] = SECRET
    url = _outbox_db(workdir, "opdfail")
    _use(url)
    t0 = time.monotonic()
    plan = lambda mid, k, doc: Act(status=500) if time.monotonic() - t0 < fail_s else Act()  # noqa: E731
    from hub import outbox
    from hub.settings import get_settings
    from hub.wiring import install, wire

    install(wire(get_settings()))  # this process delivers: the outbox's senders, as the worker has them
    with Receiver(plan) as rx:
        _seed_webhook(url, rx.url, n, 2.0)
        t0 = time.monotonic()

        async def work() -> None:
            end = time.monotonic() + fail_s + 90
            while time.monotonic() < end:
                got = await outbox.run_once(limit=50, lease_s=30, max_attempts=12, kinds=["deliver"], max_send_s=2)
                states = _outbox_states(url)
                if states.get("pending", 0) == 0:
                    return
                if got == 0:
                    await asyncio.sleep(0.25)

        asyncio.run(work())
        elapsed = time.monotonic() - t0
        ok2xx = rx.answered_2xx()
        attempts = sum(rx.attempts.values())
    states = _outbox_states(url)
    extra = sum(v - 1 for v in ok2xx.values() if v > 1)
    return {"tickets": n, "fail_s": fail_s, "posts": attempts, "failed_posts": attempts - sum(ok2xx.values()),
            "delivered_ids": len(ok2xx), "extra_2xx": extra, "states": dict(states),
            "seconds_to_all_delivered": round(elapsed, 1),
            "ok": len(ok2xx) == n and extra == 0 and states.get("done", 0) == n}


def scenario_slowopd(n: int, workdir: Path, store: str = "postgres") -> dict:
    """The OPD answers 200 after 1.5 s (timeout 2 s); two `hub.delivery_worker` processes with a
    6 s lease and 4 sends at a time (a claim of 50 would take ~19 s: 3 leases)."""
    return _two_workers(n, workdir, store, "slowopd", sleep_s=1.5,
                        args=["--lease", "6", "--concurrency", "4", "--batch", "50", "--max-send", "2"])


def scenario_twoproc(n: int, workdir: Path, store: str = "postgres") -> dict:
    """Two `hub.delivery_worker` processes deliver n tickets to an OPD that answers at once (the
    workers' default lease, batch and concurrency): every webhook-id once, none missing."""
    return _two_workers(n, workdir, store, "twoproc", sleep_s=0.0, args=[])


def _two_workers(n: int, workdir: Path, store: str, label: str, sleep_s: float, args: list[str]) -> dict:
    from tests.delivery.helpers import SECRET, SECRET_ENV, Act, Receiver

    drop = None
    if store == "sqlite":
        url = _outbox_db(workdir, label)
    else:
        from hub.migrate import upgrade

        url, drop = pg_throwaway()
        upgrade(url)
    _use(url)
    try:
        with Receiver(lambda mid, k, doc: Act(sleep_s=sleep_s)) as rx:
            _seed_webhook(url, rx.url, n, 2.0)
            env = {**os.environ, "SIMPUL_DATABASE_URL": url, SECRET_ENV: SECRET, "SIMPUL_LOG_LEVEL": "WARNING"}
            started = time.monotonic()
            procs = [subprocess.Popen([sys.executable, "-m", "hub.delivery_worker", "--kinds", "deliver",
                                       "--idle-sleep", "0.2", *args, "--until-empty", "--max-seconds", "240"],
                                      env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(2)]
            for p in procs:
                p.communicate(timeout=300)
            elapsed = time.monotonic() - started
            posts = sum(rx.attempts.values())
            ids = len(rx.attempts)
            ok2xx = rx.answered_2xx()
        states = _outbox_states(url)
        extra_2xx = sum(v - 1 for v in ok2xx.values() if v > 1)
        return {"store": store, "tickets": n, "posts": posts, "distinct_ids": ids, "extra_posts": posts - ids,
                "duplicates_2xx": extra_2xx, "gaps": n - len(ok2xx), "states": dict(states),
                "seconds": round(elapsed, 1),
                "ok": ids == n and posts == n and extra_2xx == 0 and states.get("done", 0) == n}
    finally:
        if drop:
            drop()


def scenario_loginflood(workdir: Path, seconds: float = 10, flooders: int = 4, senders: int = 8) -> dict:
    """Intake from `senders` clients for `seconds`, first alone, then while `flooders` clients post
    wrong passwords to /masuk (known and unknown usernames, as a password sprayer does). The hub
    hashes passwords off the event loop and limits logins per source and username, so intake
    must keep at least half its rate and answer no 5xx."""
    import re

    import httpx

    url = f"sqlite:///{workdir}/loginflood.db"
    env = hub_env(url)
    cli(env, "db", "upgrade")
    key = cli(env, "opd", "key", "create", "soak", "--role", "intake").strip().splitlines()[-1]
    cli(env, "users", "add", "bupati", "--role", "pimpinan", "--password", "Benar-sekali-2026")
    hub = Hub(env, workdir / "loginflood.log", in_process=True)
    hub.start()

    async def intake(tag: str, stop_at: float, lat: list[float], tally: Counter) -> None:
        async with httpx.AsyncClient(base_url=hub.base, timeout=10, headers={"Authorization": f"Bearer {key}"}) as c:
            i = 0
            while time.monotonic() < stop_at:
                i += 1
                t = time.monotonic()
                r = await c.post("/api/v1/intake/api", json={
                    "text": f"Lampu jalan mati nomor {tag}-{i} di desa Ngadirenggo kec. Pogalan", "id": f"{tag}-{i}"})
                lat.append(time.monotonic() - t)
                tally[f"intake:{r.status_code}"] += 1

    async def flood(n: int, stop_at: float, tally: Counter) -> None:
        async with httpx.AsyncClient(base_url=hub.base, timeout=10) as c:
            page = await c.get("/masuk")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            i = 0
            while time.monotonic() < stop_at:
                i += 1
                user = "bupati" if i % 3 == 0 else f"staf{n}{i}"
                r = await c.post("/masuk", data={"csrf": token, "username": user, "password": f"salah{i}",
                                                 "lanjut": "/"})
                tally[f"login:{r.status_code}"] += 1

    async def phase(tag: str, with_flood: bool) -> dict:
        lat: list[float] = []
        tally: Counter = Counter()
        stop_at = time.monotonic() + seconds
        jobs = [intake(f"{tag}{k}", stop_at, lat, tally) for k in range(senders)]
        if with_flood:
            jobs += [flood(k, stop_at, tally) for k in range(flooders)]
        await asyncio.gather(*jobs)
        lat.sort()
        return {"intake_202": tally["intake:202"], "p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
                "answers": dict(tally)}

    try:
        base = asyncio.run(phase("alone", False))
        during = asyncio.run(phase("flood", True))
    finally:
        hub.stop()
    ratio = during["intake_202"] / base["intake_202"] if base["intake_202"] else 0.0
    fives = sum(v for k, v in {**base["answers"], **during["answers"]}.items() if k.split(":")[1].startswith("5"))
    return {"seconds_per_phase": seconds, "flooders": flooders, "senders": senders, "alone": base,
            "during_flood": during, "intake_ratio": round(ratio, 2), "answers_5xx": fives,
            "ok": ratio >= 0.5 and fives == 0}


def scenario_poison(store: str, good: int, workdir: Path) -> dict:
    from datetime import datetime, timezone

    from sqlalchemy import func, select, text

    from hub.config import regency_config as regency
    from hub.db import get_engine, session_scope
    from hub.guard import MAX_ATTEMPTS
    from hub.intake import accept_many
    from hub.migrate import upgrade
    from hub.models import RawMessage, Ticket
    from hub.processing import process_pending
    from hub.seed import sync_opds
    from hub.settings import get_settings
    from normalizer.types import InboundMessage

    drop = None
    if store == "sqlite":
        url = f"sqlite:///{workdir}/poison.db"
    else:
        url, drop = pg_throwaway()
    try:
        upgrade(url)
        _use(url)
        with session_scope() as s:
            sync_opds(s, regency(str(get_settings().config_dir)))
        now = datetime.now(timezone.utc)
        msgs = [InboundMessage(channel="api", text=f"Jalan berlubang nomor {i} di desa Ngadirenggo kec. Pogalan",
                               provider_id=f"good-{i}", received_at=now) for i in range(good)]
        accept_many(msgs[: good // 2])
        eng = get_engine()
        bad_time = "10000-01-01 04:59:59+00" if store == "postgres" else "not a time"
        with eng.begin() as c:
            c.execute(text("INSERT INTO raw_messages (idempotency_key, ticket_code, channel, provider_id, text, message,"
                           " received_at, stored_at, state) VALUES ('api:poison', 'RACUN01', 'api', 'poison', 'racun',"
                           " :m, :r, :s, 'pending')"),
                      {"m": json.dumps({"channel": "api", "text": "racun", "received_at": "9999-12-31T23:59:59-05:00"}),
                       "r": bad_time, "s": now})
        accept_many(msgs[good // 2:])
        started = time.monotonic()
        rounds = 0
        while rounds < 200:
            rounds += 1
            if process_pending(eng, 500) == 0:
                break
        elapsed = time.monotonic() - started
        with eng.connect() as c:
            tickets = c.execute(select(func.count()).select_from(Ticket)).scalar_one()
            states = Counter(r[0] for r in c.execute(select(RawMessage.state)))
        return {"store": store, "good": good, "tickets": tickets, "raw_states": dict(states),
                "attempts_before_parked": MAX_ATTEMPTS, "seconds": round(elapsed, 2), "rounds": rounds,
                "ok": tickets == good and states.get("failed", 0) == 1 and states.get("pending", 0) == 0}
    finally:
        from hub.db import reset_engine

        reset_engine()
        if drop:
            drop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", default=["crash", "pgstop", "opdfail", "slowopd", "twoproc", "poison",
                                                     "loginflood"])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--stop-s", type=float, default=8)
    ap.add_argument("--fail-s", type=float, default=8)
    ap.add_argument("--tickets", type=int, default=100)
    ap.add_argument("--deliveries", type=int, default=2000)
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.messages, a.stop_s, a.fail_s, a.tickets, a.deliveries = 150, 3, 3, 24, 100
    stores = [s for s in a.stores.split(",") if s]
    os.environ.setdefault("SIMPUL_LOG_LEVEL", "WARNING")
    from hub.logging import configure_logging

    configure_logging("WARNING", True)
    figures: dict[str, dict] = {}
    all_ok = True
    with tempfile.TemporaryDirectory(prefix="simpul-soak-") as tmp:
        work = Path(tmp)
        for name in a.scenarios:
            runs: list[tuple[str, callable]] = []
            if name == "crash":
                runs = [(f"crash_{s}", lambda s=s: scenario_crash(s, a.messages, work)) for s in stores]
            elif name == "pgstop":
                runs = [("pgstop", lambda: scenario_pgstop(a.stop_s, work))]
            elif name == "opdfail":
                runs = [("opdfail", lambda: scenario_opdfail(a.tickets, a.fail_s, work))]
            elif name == "slowopd":
                runs = [(f"slowopd_{s}", lambda s=s: scenario_slowopd(a.tickets, work, s)) for s in stores]
            elif name == "twoproc":
                runs = [(f"twoproc_{s}", lambda s=s: scenario_twoproc(a.deliveries, work, s)) for s in stores]
            elif name == "loginflood":
                runs = [("loginflood", lambda: scenario_loginflood(work, 3 if a.quick else 10))]
            elif name == "poison":
                runs = [(f"poison_{s}", lambda s=s: scenario_poison(s, 1000 if not a.quick else 200, work))
                        for s in stores]
            else:
                ap.error(f"unknown scenario {name}")
            for label, fn in runs:
                t = time.monotonic()
                try:
                    res = fn()
                except Exception as exc:  # a scenario that cannot run is a failed tally, not a crash
                    res = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
                res["wall_s"] = round(time.monotonic() - t, 1)
                figures[label] = res
                all_ok &= bool(res.get("ok"))
                print(f"{label:16} {'OK  ' if res.get('ok') else 'FAIL'} " +
                      json.dumps({k: v for k, v in res.items() if k != "ok"}, default=str), flush=True)
    record("soak", {"quick": a.quick, "scenarios": figures, "all_ok": all_ok})
    print(f"soak: {'all OK' if all_ok else 'FAILURES'}; figures in {RESULTS.relative_to(ROOT)}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
