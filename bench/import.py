"""Import throughput of `simpul import` against its ceiling, the normalizer, in the same run.

Generates a 100,000-row PSC 119 CSV log (and a smaller XLSX BPBD log) with realistic Indonesian
columns and ~1% bad rows in a temp dir. For each file: normalizes its good rows with the pure
normalizer in this process (one core: the ceiling), then times `simpul import` end to end through
the real CLI into a fresh database, imports it again (must add nothing), and prints rows/s and the
ratio to the ceiling, by CPU time (the machine is shared) and by wall clock, with the load average.
SQLite by default; PostgreSQL too when SIMPUL_BENCH_POSTGRES_URL is set (a throwaway database).
Writes its figures into bench/results/latest.json. Prints; never asserts.
Usage: python bench/import.py [--rows 100000] [--xlsx-rows 10000]
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import CONFIG, ROOT, record_results  # noqa: E402
MONTHS = ["Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
          "November", "Desember"]
NAMES = ["Slamet", "Sri Wahyuni", "Budi", "Siti Aminah", "Joko", "Dewi", "Pak RT 03", "Kades", "Agus", "Wulan",
         "Bu Bidan", "Warga", "Tono", "Yanti", "Suparmi"]
PSC_KEJADIAN = ["Laka lantas", "kecelakaan", "KLL motor vs truk", "serangan jantung", "ibu melahirkan", "partus",
                "stroke", "sesak napas", "asma kambuh", "keracunan makanan", "pingsan", "kejang", "ODGJ mengamuk",
                "rujukan", "transport pasien", "demam tinggi", "jatuh dari pohon kelapa"]
BPBD_KEJADIAN = ["banjir", "tanah longsor", "puting beliung", "pohon tumbang", "kebakaran rumah", "gelombang tinggi",
                 "kekeringan", "gempa", "orang hanyut"]


def places() -> list[tuple[str, str]]:
    rows = list(csv.reader((CONFIG / "wilayah.csv").open(encoding="utf-8")))[1:]
    kec = {r[0]: r[1] for r in rows if r[2] == "kecamatan"}
    return [(kec[r[0].rsplit(".", 1)[0]], r[1]) for r in rows if r[2].startswith("desa")]


def when(rnd: random.Random) -> datetime:
    return datetime(2019, 1, 1) + timedelta(minutes=rnd.randrange(5 * 365 * 24 * 60))


def fmt(d: datetime, rnd: random.Random) -> str:
    style = rnd.randrange(3)
    if style == 0:
        return f"{d.day} {MONTHS[d.month - 1]} {d.year} {d:%H:%M}"
    if style == 1:
        return f"{d:%d/%m/%Y %H.%M}"
    return f"{d:%Y-%m-%d %H:%M}"


def write_csv(path: Path, n: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    pl = places()
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(["REKAP PANGGILAN PSC 119 KABUPATEN TRENGGALEK 2019-2023"])
        w.writerow([])
        w.writerow(["No", "Waktu", "Pelapor", "No. Telp", "Kecamatan", "Desa", "Lokasi", "Kejadian", "Keterangan",
                    "Tindakan", "Korban", "Triase"])
        for i in range(1, n + 1):
            kec, desa = rnd.choice(pl)
            d = when(rnd)
            t = fmt(d, rnd)
            if rnd.random() < 0.005:
                t = "31/02/2021 07.00"  # a bad row
            if rnd.random() < 0.005:
                kec = "Tulungagung"  # a bad row
            w.writerow([i, t, rnd.choice(NAMES), f"08{rnd.randrange(10**9, 10**10)}", kec, desa,
                        f"RT {rnd.randrange(1, 9):02d} dekat {rnd.choice(['masjid', 'pasar', 'SD', 'balai desa'])}",
                        rnd.choice(PSC_KEJADIAN), f"laporan ke-{i} dari warga", rnd.choice(["ambulans", "rujuk RSUD", "edukasi"]),
                        rnd.randrange(0, 4), rnd.choice(["merah", "kuning", "hijau", ""])])


def write_xlsx(path: Path, n: int, seed: int = 11) -> None:
    import openpyxl

    rnd = random.Random(seed)
    pl = places()
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Log")
    ws.append(["Rekap Pusdalops BPBD"])
    ws.append(["Tanggal", "Jam", "Pelapor", "No HP", "Kecamatan", "Desa", "Jenis Kejadian", "Keterangan", "Tindakan",
               "Jumlah Korban", "Tim"])
    for i in range(n):
        kec, desa = rnd.choice(pl)
        d = when(rnd)
        ws.append([d.replace(hour=0, minute=0), f"{d:%H.%M}", rnd.choice(NAMES), 81000000000 + rnd.randrange(10**9),
                   kec, desa, rnd.choice(BPBD_KEJADIAN), f"kejadian ke-{i}", "assessment", f"{rnd.randrange(0, 30)} KK", "TRC"])
    wb.save(path)


def ceiling(line: str, path: Path) -> dict:
    """The normalizer alone on the same rows, in this process, one core: the messages the
    importer makes of the file's good rows (built untimed), each normalized once."""
    from datetime import datetime, timezone

    from hub.lines.hotline.calls import hotline_adapter
    from hub.lines.hotline.importer import find_columns, pick_header, read_sheet
    from hub.normalizer_loader import load_normalizer_regency
    from normalizer import normalize

    rows = list(read_sheet(path)[0])
    last, header = pick_header(rows[:10])
    cols, _ = find_columns(header, {}, None)
    adapter, msgs = hotline_adapter(), []
    for n, cells in rows:
        if n <= last:
            continue
        row = {k: (cells[i] if i < len(cells) else None) for k, i in cols.items()}
        if row.get("address"):
            row["landmark"] = ", ".join(str(x) for x in (row.get("landmark"), row["address"]) if x)
        try:
            msgs.append(adapter.from_row(line, row))
        except Exception:
            continue
    reg = load_normalizer_regency(CONFIG)
    now = datetime.now(timezone.utc)
    for m in msgs[:200]:  # warm the vocabulary caches, as the import's first rows do
        normalize(m, reg, now)
    c0, w0 = time.process_time(), time.perf_counter()
    for m in msgs:
        normalize(m, reg, now)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {"messages": len(msgs), "cpu_msgs_s": len(msgs) / cpu, "wall_msgs_s": len(msgs) / wall}


def cli_env(db_url: str, pycache: Path) -> dict:
    env = {**os.environ, "SIMPUL_DATABASE_URL": db_url, "SIMPUL_LOG_LEVEL": "WARNING", "COLUMNS": "200",
           "SIMPUL_CONFIG_DIR": str(CONFIG), "PYTHONPYCACHEPREFIX": str(pycache)}
    # An installed hub has its bytecode compiled; this machine sets PYTHONDONTWRITEBYTECODE,
    # which made every CLI start compile the whole hub from source (~5 s CPU here).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_import(env: dict, line: str, path: Path) -> tuple[float, float, str]:
    """One `simpul import` run: (wall seconds, CPU seconds of the CLI process, its summary)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "hub", "import", line, str(path), "--no-progress"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = next((ln for ln in res.stderr.splitlines() if "rows read" in ln), res.stderr[-500:])
    return took, cpu, f"exit {res.returncode}: {summary.strip()}"


def bench(label: str, db_url: str, files: list[tuple[str, Path, int]], pycache: Path) -> dict:
    env = cli_env(db_url, pycache)
    subprocess.run([sys.executable, "-m", "hub", "db", "upgrade"], check=True, capture_output=True, cwd=ROOT, env=env)
    subprocess.run([sys.executable, "-c", "import hub.cli, hub.wiring"], check=True, capture_output=True, cwd=ROOT,
                   env=env)  # compiles the bytecode once (see cli_env)
    out = {}
    for line, path, n in files:
        ceil = ceiling(line, path)
        load0 = os.getloadavg()[0]
        took, cpu, summary = run_import(env, line, path)
        load1 = os.getloadavg()[0]
        again, again_cpu, again_summary = run_import(env, line, path)
        fig = {"rows": n, "ceiling_cpu_msgs_s": round(ceil["cpu_msgs_s"]), "ceiling_wall_msgs_s": round(ceil["wall_msgs_s"]),
               "import_wall_s": round(took, 1), "import_cpu_s": round(cpu, 1),
               "import_wall_rows_s": round(n / took), "import_cpu_rows_s": round(n / cpu),
               "ratio_cpu": round(n / cpu / ceil["cpu_msgs_s"], 3), "ratio_wall": round(n / took / ceil["wall_msgs_s"], 3),
               "reimport_wall_rows_s": round(n / again), "load_1min": [round(load0, 1), round(load1, 1)],
               "summary": summary, "reimport_summary": again_summary}
        print(f"[{label}] {line} {path.suffix[1:]}: {n} rows; normalizer alone on the same rows: "
              f"{ceil['cpu_msgs_s']:,.0f} msgs/s CPU ({ceil['wall_msgs_s']:,.0f} wall-clock)")
        print(f"    simpul import (whole CLI run, fresh database): {took:.1f} s wall = {n / took:,.0f} rows/s, "
              f"{cpu:.1f} s CPU of its process = {n / cpu:,.0f} rows/s")
        print(f"    ratio to the normalizer: {fig['ratio_cpu']:.2f} by CPU, {fig['ratio_wall']:.2f} by wall clock "
              f"(load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} cores)")
        print(f"    {summary}")
        print(f"[{label}] {line} re-import: {n / again:,.0f} rows/s wall; {again_summary}")
        out[line] = fig
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--xlsx-rows", type=int, default=10_000)
    args = ap.parse_args()
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="simpul-import-bench-") as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        write_csv(d / "psc119.csv", args.rows)
        write_xlsx(d / "bpbd.xlsx", args.xlsx_rows)
        print(f"generated {args.rows} CSV rows and {args.xlsx_rows} XLSX rows in {time.perf_counter() - t0:.1f} s")
        files = [("psc119", d / "psc119.csv", args.rows), ("bpbd", d / "bpbd.xlsx", args.xlsx_rows)]
        figures["sqlite"] = bench("sqlite", f"sqlite:///{d / 'simpul.db'}", files, d / "pycache")
        pg = os.environ.get("SIMPUL_BENCH_POSTGRES_URL")
        if pg:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url

            base = make_url(pg).set(drivername="postgresql+psycopg")
            name = f"simpul_import_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(base, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = base.set(database=name).render_as_string(hide_password=False)
                figures["postgresql"] = bench("postgresql", url, files, d / "pycache")
            finally:
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
            print("PostgreSQL: CPU figures count the CLI process only (the server's work is in its own "
                  "processes); the wall-clock ratio is the one to read there")
        else:
            print("PostgreSQL: set SIMPUL_BENCH_POSTGRES_URL to measure it too")
    print(f"results: {record_results('import', figures)}")


if __name__ == "__main__":
    main()
