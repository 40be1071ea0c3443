"""Import throughput of `simpul works import`: generates LKPP-shaped plan, tender and contract
(BAP/BAST) files (tests/works/lkpp.py) for N plans in a temp dir, imports them into a fresh
database through the importer, imports them again (must add nothing), computes the red flags,
and prints rows/s. SQLite by default; PostgreSQL too when SIMPUL_BENCH_POSTGRES_URL is set.
Prints; never asserts. Usage: python bench/works.py [--plans 3000]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(url: str, plans: int, tmp: Path) -> None:
    os.environ["SIMPUL_DATABASE_URL"] = url
    from hub import config as hub_config
    from hub.db import reset_engine, session_scope
    from hub.migrate import upgrade
    from hub.seed import sync_opds
    from hub.settings import get_settings, reset_settings

    reset_settings()
    reset_engine()
    hub_config.regency_config.cache_clear()
    upgrade(url)
    cfg = hub_config.regency_config(str(get_settings().config_dir))
    with session_scope() as s:
        sync_opds(s, cfg)
    from hub.works.importer import import_works
    from tests.works.lkpp import generate, write_csv

    rup, tender, kontrak = generate(plans)
    files = [(write_csv(rup, tmp / "rup.csv"), "rup"), (write_csv(tender, tmp / "tender.csv"), "tender"),
             (write_csv(kontrak, tmp / "kontrak.csv"), "kontrak")]
    db = url.split(":", 1)[0]
    for label in ("first import", "re-import"):
        total = added = 0
        t0 = time.perf_counter()
        for f, kind in files:
            r = import_works(f, kind, cfg)
            total += r.rows
            added += r.added + r.events_added
            print(f"  {db:10} {label:12} {kind:8} {r.rows:6} rows {r.rows / r.seconds:8.0f} rows/s "
                  f"added {r.added} updated {r.updated} events {r.events_added} joined {r.joined} bad {len(r.bad)}")
        dt = time.perf_counter() - t0
        print(f"  {db:10} {label:12} total    {total:6} rows {total / dt:8.0f} rows/s, added {added}")
    from hub.db import get_engine
    from hub.works.service import recompute_all

    t0 = time.perf_counter()
    stats = recompute_all(get_engine(), cfg)
    print(f"  {db:10} red flags over {len(kontrak)} contract rows: {stats} in {time.perf_counter() - t0:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plans", type=int, default=3000)
    args = ap.parse_args()
    os.environ.setdefault("SIMPUL_LOG_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(f"works import: {args.plans} plans")
        run(f"sqlite:///{tmp / 'bench.db'}", args.plans, tmp)
        pg = os.environ.get("SIMPUL_BENCH_POSTGRES_URL")
        if pg:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url

            base = make_url(pg)
            admin = create_engine(base.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
            name = f"simpul_bench_works_{os.getpid()}"
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                run(base.set(database=name).render_as_string(hide_password=False), args.plans, tmp)
            finally:
                from hub.db import reset_engine

                reset_engine()
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
