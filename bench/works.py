"""Import throughput of `simpul works import`: generates LKPP-shaped plan, tender and contract
(BAP/BAST) files (tests/works/lkpp.py) for N plans in a temp dir, imports them into a fresh
database through the importer, imports them again (must add nothing), computes the red flags,
and prints rows/s. SQLite by default; PostgreSQL too when SIMPUL_BENCH_POSTGRES_URL is set.
Prints; never asserts. Usage: python bench/works.py [--plans 3000] [--quick]

Ceiling in the same run, on the same store and files: a plain load (csv.DictReader over the
file, every row inserted as JSON text into a scratch table in one transaction per file, no
parsing of numbers or dates, no joins) -- the fastest a row goes from the file into this store.
Figures go to bench/results/latest.json ("works"); `--quick`: 150 plans (what the test runs).
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


def plain_load(files: list[tuple[Path, str]]) -> tuple[int, float]:
    """The ceiling: (rows, seconds) of loading the files' rows as JSON text into a scratch table."""
    import csv
    import json

    from sqlalchemy import Column, Integer, MetaData, String, Table, Text, insert

    from hub.db import get_engine, writer

    engine = get_engine()
    table = Table("bench_plain_rows", MetaData(), Column("id", Integer, primary_key=True),
                  Column("kind", String(16)), Column("data", Text))
    table.drop(engine, checkfirst=True)
    table.create(engine)
    rows = 0
    t0 = time.perf_counter()
    for path, kind in files:
        with path.open(encoding="utf-8", newline="") as f:
            lines = f.read().splitlines()
        head = next(i for i, line in enumerate(lines) if line.count(";") >= 3)  # below the title block
        batch = [{"kind": kind, "data": json.dumps(r, ensure_ascii=False)}
                 for r in csv.DictReader(lines[head:], delimiter=";")]
        with writer(engine).begin() as conn:
            conn.execute(insert(table), batch)
        rows += len(batch)
    seconds = time.perf_counter() - t0
    table.drop(engine)
    return rows, seconds


def run(url: str, plans: int, tmp: Path) -> dict:
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
    out: dict = {"plans": plans}
    plain_rows, plain_s = plain_load(files)
    out["ceiling_plain_load_rows_per_s"] = round(plain_rows / plain_s)
    print(f"  {db:10} ceiling: plain load of the same files, {plain_rows} rows {plain_rows / plain_s:8.0f} rows/s")
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
        share = (total / dt) / (plain_rows / plain_s)
        print(f"  {db:10} {label:12} total    {total:6} rows {total / dt:8.0f} rows/s, added {added}, "
              f"{share:.0%} of the plain load")
        out[label.replace(" ", "_").replace("-", "")] = {"rows": total, "rows_per_s": round(total / dt), "added": added,
                                         "vs_ceiling": round(share, 3)}
    from hub.db import get_engine
    from hub.works.service import recompute_all

    t0 = time.perf_counter()
    stats = recompute_all(get_engine(), cfg)
    out["red_flags_s"] = round(time.perf_counter() - t0, 2)
    print(f"  {db:10} red flags over {len(kontrak)} contract rows: {stats} in {out['red_flags_s']:.1f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plans", type=int, default=3000)
    ap.add_argument("--quick", action="store_true", help="150 plans")
    args = ap.parse_args()
    if args.quick:
        args.plans = 150
    os.environ.setdefault("SIMPUL_LOG_LEVEL", "WARNING")
    results: dict = {"ceiling": "plain load: the same CSV rows as JSON text into a scratch table of the same "
                                "store, in the same run; vs_ceiling = import rows/s / plain load rows/s",
                     "quick": args.quick, "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(f"works import: {args.plans} plans; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        results["sqlite"] = run(f"sqlite:///{tmp / 'bench.db'}", args.plans, tmp)
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
                results["postgresql"] = run(base.set(database=name).render_as_string(hide_password=False),
                                            args.plans, tmp)
            finally:
                from hub.db import reset_engine

                reset_engine()
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    sys.path.insert(0, str(ROOT / "bench"))
    from _common import record_results

    print(f"figures written to {record_results('works', results)}")


if __name__ == "__main__":
    main()
