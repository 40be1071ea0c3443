"""Dashboard speed: seeds 1,000,000 tickets into a fresh SQLite file and a throwaway PostgreSQL
database, then times GET /api/v1/stats/summary over real HTTP against a uvicorn server.

Prints figures only; never asserts on timing. Target: median < 100 ms on both stores, for every
summary case (all time, one OPD, last 7 / 30 days, an odd since/until, a since moving with the
clock), warm (nothing changed since the previous call) and cold (one ticket changed before
every call). The first call of a case counts afresh and is printed too.

    .venv/bin/python bench/dashboard.py [--tickets 1000000] [--calls 30] [--only sqlite|postgres]
    .venv/bin/python bench/dashboard.py --only sqlite --keep-sqlite /tmp/bench.db     # seed once, reuse
    .venv/bin/python bench/dashboard.py --only postgres --keep-postgres simpul_bench  # seed, keep
    .venv/bin/python bench/dashboard.py --only postgres --reuse-postgres simpul_bench # reuse

A reused database is first brought to the newest migration (their backfills are timed) and its
rollup folded, as a running hub would have it.

PostgreSQL base URL: SIMPUL_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test);
the script creates its own database next to it and drops it at the end.

Ceiling in the same run: GET /healthz (no query) through the same client and server; the figures
(per store, each case's median and p95, the slowest summary against the ceiling) go to
bench/results/latest.json ("dashboard"). `--quick`: 2,000 tickets, 5 calls per case.
"""
from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OPDS = {"PUPR": 18, "DUKCAPIL": 15, "DINSOS": 10, "DINKES": 8, "DLH": 7, "BPBD": 6, "PDAM": 5,
        "SATPOLPP": 4, "DINDIK": 4, "PKPP": 7, "RSUD": 3, "DISKOMINFO": 3, "DISPERTA": 2, "DISNAKER": 2,
        "DISPERINDAG": 2, "BPKPD": 1, "DPMPTSP": 1, "BKPSDM": 0.5, "INSPEKTORAT": 0.5, "SETDA": 0.5, "KECAMATAN": 1}
CHANNELS = {"lapor": 30, "sms": 20, "whatsapp": 20, "telegram": 15, "psc119": 6, "bpbd": 4, "web": 4, "api": 1}
URGENCY = {"normal": 80, "tinggi": 15, "darurat": 5}
TEXTS = ["jalan rusak berlubang mohon diperbaiki", "lampu PJU mati sudah seminggu", "KTP el belum jadi",
         "sampah menumpuk tidak diangkut", "air PDAM mati sejak pagi", "banjir masuk rumah warga",
         "bantuan PKH belum cair", "pohon tumbang menutup jalan", "pelayanan puskesmas lambat"]


def kecamatan_codes() -> list[str]:
    import csv

    with open(ROOT / "config/trenggalek/wilayah.csv", encoding="utf-8") as f:
        return [r["kode"] for r in csv.DictReader(f) if r["level"] == "kecamatan"]


def _pick(rng: random.Random, table: dict[str, float], n: int) -> list[str]:
    return rng.choices(list(table), weights=list(table.values()), k=n)


def seed(url: str, n: int, batch: int = 20_000, seed_value: int = 7) -> float:
    """Bulk insert n tickets (and their incidents) over two years with SQLAlchemy Core."""
    from hub.db import make_engine
    from hub.migrate import upgrade
    from hub.models import Incident, Opd, Ticket

    upgrade(url)
    engine = make_engine(url)
    rng = random.Random(seed_value)
    kec = kecamatan_codes()
    kec_weights = [3 if i == 0 else 1 for i in range(len(kec))]
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=730)
    n_incidents = int(n * 0.85)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(insert(Opd.__table__), [{"code": c, "name": c, "kind": "dinas", "delivery": {"type": "pull"},
                                              "active": True} for c in OPDS])
    inc_rows, rows, inc_id = [], [], 0
    # Draw every column at once (C loops), then build the rows.
    urgencies, opds, channels = _pick(rng, URGENCY, n), _pick(rng, OPDS, n), _pick(rng, CHANNELS, n)
    places = rng.choices(kec, weights=kec_weights, k=n)
    for i in range(n):
        # Two years, growing traffic: more recent days get more tickets.
        created = start + timedelta(seconds=730 * 86400 * (rng.random() ** 0.8))
        age_d = (now - created).total_seconds() / 86400
        urgency, opd, channel = urgencies[i], opds[i], channels[i]
        k = places[i] if rng.random() > 0.05 else None
        r = rng.random()
        if age_d > 30:
            status = ("selesai" if r < 0.85 else "ditolak" if r < 0.93 else "digabung" if r < 0.97
                      else "menunggu" if r < 0.98 else "diproses")
        else:
            status = "selesai" if r < 0.45 else "menunggu" if r < 0.7 else "diproses" if r < 0.95 else "ditolak"
        due = created + (timedelta(minutes=30) if urgency == "darurat" else
                         timedelta(days=1 if urgency == "tinggi" else 7))
        closed = None
        if status in ("selesai", "ditolak", "digabung"):
            closed = min(now, created + timedelta(hours=rng.lognormvariate(3.0, 1.2)))
        if i * n_incidents // n >= inc_id:
            inc_id += 1
            inc_rows.append({"id": inc_id, "key": None, "category": None, "kecamatan_code": k, "urgency": urgency,
                             "is_open": status in ("menunggu", "diproses"), "first_at": created,
                             "last_at": created, "ticket_count": 1})
        rows.append({"code": f"B{i:08d}", "channel": channel, "text_original": TEXTS[i % len(TEXTS)],
                     "text_clean": TEXTS[i % len(TEXTS)], "attachments": [], "fields": {},
                     "reporter_phone": f"+62812{rng.randrange(10**7):07d}" if channel in ("sms", "psc119", "bpbd") else None,
                     "anonymous": False, "confidential": False,
                     "kecamatan_code": k, "urgency": urgency, "opd_code": opd, "routing_confidence": 0.8,
                     "needs_triage": False, "status": status, "incident_id": inc_id, "due_at": due,
                     "escalation_level": 0, "created_at": created, "updated_at": closed or created,
                     "closed_at": closed})
        if len(rows) >= batch:
            with engine.begin() as conn:
                conn.execute(insert(Incident.__table__), inc_rows)
                conn.execute(insert(Ticket.__table__), rows)
            rows, inc_rows = [], []
            print(f"\r  seeded {i + 1:,}/{n:,}", end="", flush=True)
    if rows:
        with engine.begin() as conn:
            if inc_rows:
                conn.execute(insert(Incident.__table__), inc_rows)
            conn.execute(insert(Ticket.__table__), rows)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ALTER SEQUENCE incidents_id_seq RESTART WITH %d" % (inc_id + 1)))
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    elapsed = time.perf_counter() - t0
    print(f"\r  seeded {n:,} tickets, {inc_id:,} incidents in {elapsed:.0f} s")
    from hub.stats import compact_counts

    t1 = time.perf_counter()
    folded = compact_counts(engine)
    print(f"  compact_counts folded {folded:,} rollup rows in {(time.perf_counter() - t1) * 1000:.0f} ms "
          f"(the running hub does this every minute)")
    engine.dispose()
    return elapsed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _admin_key(url: str) -> str:
    from hub.auth import create_api_key
    from hub.db import make_engine, writer
    from sqlmodel import Session

    engine = make_engine(url)
    with Session(writer(engine)) as s:
        key = create_api_key(s, "bench", "admin")
        s.commit()
    engine.dispose()
    return key


def time_http(url: str, calls: int, label: str) -> dict[str, dict[str, float]]:
    key = _admin_key(url)
    port = _free_port()
    env = dict(os.environ, SIMPUL_DATABASE_URL=url, SIMPUL_WORKERS="false", SIMPUL_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "hub.app:app_factory", "--factory",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    out = {}
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        now = datetime.now(timezone.utc)
        iso = lambda d: d.isoformat()  # noqa: E731
        # An arbitrary period: neither bound on a WIB midnight.
        odd_since = (now - timedelta(days=45)).replace(hour=3, minute=17, second=23)
        odd_until = (now - timedelta(days=10)).replace(hour=8, minute=41, second=7)
        cases = {  # name: (path, params or a function giving them, the created_at before which a "cold" change lands)
            "summary (all time)": ("/api/v1/stats/summary", {}, None),
            "summary (PUPR, all time)": ("/api/v1/stats/summary", {"opd": "PUPR"}, None),
            "summary (last 7 days)": ("/api/v1/stats/summary", {"since": iso(now - timedelta(days=7))}, None),
            "summary (last 30 days)": ("/api/v1/stats/summary", {"since": iso(now - timedelta(days=30))}, None),
            "summary (PUPR, last 30 days)": ("/api/v1/stats/summary",
                                             {"opd": "PUPR", "since": iso(now - timedelta(days=30))}, None),
            "summary (since/until, odd)": ("/api/v1/stats/summary", {"since": iso(odd_since), "until": iso(odd_until)},
                                           odd_until),
            # What the overview page sends: since = now - 30 days, moving with the clock.
            "summary (30 days, moving since)": ("/api/v1/stats/summary",
                                                lambda: {"since": iso(datetime.now(timezone.utc) - timedelta(days=30))},
                                                None),
            "trend (12 weeks)": ("/api/v1/stats/trend", {}, None),
        }
        from hub.db import make_engine

        flipper = make_engine(url)

        def flip(before: datetime | None) -> None:
            """Change one ticket's status (the newest open one, or the newest before `before`,
            so the change lands inside the period): the next summary cannot be the cached one."""
            cond = "" if before is None else "AND created_at < :before "
            with flipper.begin() as conn:
                conn.execute(text("UPDATE tickets SET status = CASE status WHEN 'menunggu' THEN 'diproses' "
                                  "ELSE 'menunggu' END WHERE id = (SELECT id FROM tickets "
                                  f"WHERE status IN ('menunggu', 'diproses') {cond}"
                                  "ORDER BY created_at DESC LIMIT 1)"),
                             {} if before is None else {"before": before.replace(tzinfo=None)})

        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
            # The ceiling, measured the same way in the same run: GET /healthz (no database
            # query) -- what one HTTP round trip through this uvicorn process costs at best.
            for _ in range(5):
                client.get("/healthz").raise_for_status()
            floor = []
            for _ in range(max(calls, 10)):
                t = time.perf_counter()
                client.get("/healthz").raise_for_status()
                floor.append((time.perf_counter() - t) * 1000)
            floor.sort()
            out["ceiling: GET /healthz"] = {"median": statistics.median(floor),
                                            "p95": floor[max(0, int(len(floor) * 0.95) - 1)], "total": None}
            print(f"  {label:9s} {'ceiling: GET /healthz (no query)':36s} median {statistics.median(floor):7.1f} ms")
            for name, (path, params_, before) in cases.items():
                params = params_() if callable(params_) else params_
                t = time.perf_counter()
                client.get(path, params=params).raise_for_status()
                first = (time.perf_counter() - t) * 1000
                print(f"  {label:9s} {name:36s} first call of the case {first:7.1f} ms")
                for mode in ("warm", "cold"):
                    for _ in range(2):  # warm-up: connection pool, page cache
                        client.get(path, params=params_() if callable(params_) else params_).raise_for_status()
                    ms = []
                    for _ in range(calls):
                        if mode == "cold":
                            flip(before)
                        params = params_() if callable(params_) else params_
                        t = time.perf_counter()
                        r = client.get(path, params=params)
                        ms.append((time.perf_counter() - t) * 1000)
                        r.raise_for_status()
                    ms.sort()
                    label_ = f"{name} [{mode}]"
                    out[label_] = {"median": statistics.median(ms), "p95": ms[max(0, int(len(ms) * 0.95) - 1)],
                                   "total": r.json().get("total")}
                    print(f"  {label:9s} {label_:36s} median {out[label_]['median']:7.1f} ms   "
                          f"p95 {out[label_]['p95']:7.1f} ms   (n={calls}, total={out[label_]['total']})")
        flipper.dispose()
    finally:
        proc.terminate()
        proc.wait(10)
    worst = max((v["median"], k) for k, v in out.items() if k.startswith("summary"))
    ceiling = out["ceiling: GET /healthz"]["median"]
    print(f"  {label}: TARGET median < 100 ms for every summary case, warm and cold: "
          f"{'MET' if worst[0] < 100 else 'NOT MET'} (slowest median {worst[0]:.1f} ms, {worst[1]}, "
          f"x{worst[0] / ceiling:.1f} the /healthz round trip); "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    RESULTS[label] = {"tickets": TICKETS[0], "calls": calls, "ceiling_healthz_median_ms": round(ceiling, 2),
                      "slowest_summary_median_ms": round(worst[0], 2), "slowest_case": worst[1],
                      "slowest_vs_ceiling": round(worst[0] / ceiling, 2), "target_median_ms": 100,
                      "cases": {k: {m: (round(v, 2) if isinstance(v, float) else v) for m, v in f.items()}
                                for k, f in out.items()},
                      "loadavg": [round(x, 2) for x in os.getloadavg()]}
    return out


RESULTS: dict = {}  # per store, written to bench/results/latest.json at the end
TICKETS = [0]


def run_sqlite(n: int, calls: int, keep: str | None = None) -> None:
    if keep:  # seed once into this file, reuse it on the next run
        url = f"sqlite:///{Path(keep).resolve()}"
        print(f"SQLite {url}" + (" (reused)" if Path(keep).exists() else ""))
        if not Path(keep).exists():
            seed(url, n)
        else:
            migrate_reused(url)
        time_http(url, calls, "sqlite")
        return
    with tempfile.TemporaryDirectory(prefix="simpul-bench-") as d:
        url = f"sqlite:///{d}/bench.db"
        print(f"SQLite {url}")
        seed(url, n)
        time_http(url, calls, "sqlite")


def migrate_reused(url: str) -> None:
    """A kept database seeded by an older revision: apply newer migrations (their backfills
    are what a regency upgrading with a million tickets would run), and say how long it took."""
    from hub.migrate import upgrade

    from hub.db import make_engine
    from hub.stats import compact_counts

    t = time.perf_counter()
    upgrade(url)
    print(f"  migrations up to date in {time.perf_counter() - t:.1f} s")
    engine = make_engine(url)
    t = time.perf_counter()
    folded = compact_counts(engine)
    print(f"  compact_counts folded {folded:,} rollup rows in {(time.perf_counter() - t) * 1000:.0f} ms")
    engine.dispose()


def run_postgres(n: int, calls: int, keep: str | None = None, seed_into: str | None = None) -> None:
    base = make_url(os.environ.get("SIMPUL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    if keep:  # an existing, already seeded database: time only, never drop it
        url = base.set(database=keep).render_as_string(hide_password=False)
        print(f"PostgreSQL database {keep} (reused)")
        migrate_reused(url)
        time_http(url, calls, "postgres")
        return
    if seed_into:  # seed a new database of that name and keep it (reuse with --reuse-postgres)
        admin = create_engine(base.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{seed_into}"'))
        admin.dispose()
        url = base.set(database=seed_into).render_as_string(hide_password=False)
        print(f"PostgreSQL database {seed_into} (kept)")
        seed(url, n)
        time_http(url, calls, "postgres")
        return
    name = f"simpul_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    print(f"PostgreSQL database {name}")
    try:
        seed(url, n)
        time_http(url, calls, "postgres")
    finally:
        from hub.db import reset_engine

        reset_engine()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--only", choices=["sqlite", "postgres"])
    ap.add_argument("--keep-sqlite", metavar="FILE", help="seed into FILE once and reuse it (default: a temp file)")
    ap.add_argument("--reuse-postgres", metavar="DB", help="time an already seeded database DB instead of seeding")
    ap.add_argument("--keep-postgres", metavar="DB", help="seed into a new database DB and keep it (for --reuse-postgres)")
    ap.add_argument("--quick", action="store_true", help="2,000 tickets, 5 calls (what the test runs)")
    args = ap.parse_args()
    if args.quick:
        args.tickets, args.calls = 2000, 5
    TICKETS[0] = args.tickets
    print(f"GET /api/v1/stats/summary over HTTP (uvicorn, 1 process, workers off), {args.tickets:,} tickets.\n"
          f"warm: no ticket changed since the previous call; cold: one ticket changed status before every call.\n"
          f"TARGET: median < 100 ms for every summary case, warm and cold, on SQLite and PostgreSQL.\n"
          f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.only != "postgres":
        run_sqlite(args.tickets, args.calls, args.keep_sqlite)
    if args.only != "sqlite":
        run_postgres(args.tickets, args.calls, args.reuse_postgres, args.keep_postgres)
    sys.path.insert(0, str(ROOT / "bench"))
    from _common import record_results

    RESULTS["ceiling"] = ("GET /healthz over the same HTTP client and uvicorn process in the same run "
                          "(a round trip without a query); slowest_vs_ceiling = slowest summary median / it")
    RESULTS["quick"] = args.quick
    print(f"figures written to {record_results('dashboard', RESULTS)}")


if __name__ == "__main__":
    main()
