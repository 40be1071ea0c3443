"""Import throughput of `simpul import`: generates a 100,000-row PSC 119 CSV log (and a smaller
XLSX BPBD log) with realistic Indonesian columns and ~1% bad rows in a temp dir, imports them with
the real CLI into a fresh database, imports them again (must add nothing), and prints rows/s.
SQLite by default; PostgreSQL too when SIMPUL_BENCH_POSTGRES_URL is set. Prints; never asserts.
Usage: python bench/import.py [--rows 100000] [--xlsx-rows 10000]
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "trenggalek"
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


def run_import(db_url: str, line: str, path: Path) -> tuple[float, str]:
    env = {**os.environ, "SIMPUL_DATABASE_URL": db_url, "SIMPUL_LOG_LEVEL": "WARNING", "COLUMNS": "200"}
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "hub", "import", line, str(path), "--no-progress"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    took = time.perf_counter() - start
    summary = next((ln for ln in res.stderr.splitlines() if "rows read" in ln), res.stderr[-500:])
    return took, f"exit {res.returncode}: {summary.strip()}"


def bench(label: str, db_url: str, csv_path: Path, xlsx_path: Path, rows: int, xrows: int) -> None:
    subprocess.run([sys.executable, "-m", "hub", "db", "upgrade"], check=True, capture_output=True, cwd=ROOT,
                   env={**os.environ, "SIMPUL_DATABASE_URL": db_url})
    for line, path, n in (("psc119", csv_path, rows), ("bpbd", xlsx_path, xrows)):
        took, summary = run_import(db_url, line, path)
        print(f"[{label}] {line} {path.suffix[1:]}: {n} rows in {took:.1f} s = {n / took:,.0f} rows/s (whole CLI run)")
        print(f"    {summary}")
        took, summary = run_import(db_url, line, path)
        print(f"[{label}] {line} re-import: {n / took:,.0f} rows/s; {summary}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--xlsx-rows", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="simpul-import-bench-") as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        write_csv(d / "psc119.csv", args.rows)
        write_xlsx(d / "bpbd.xlsx", args.xlsx_rows)
        print(f"generated {args.rows} CSV rows and {args.xlsx_rows} XLSX rows in {time.perf_counter() - t0:.1f} s")
        bench("sqlite", f"sqlite:///{d / 'simpul.db'}", d / "psc119.csv", d / "bpbd.xlsx", args.rows, args.xlsx_rows)
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
                bench("postgresql", url, d / "psc119.csv", d / "bpbd.xlsx", args.rows, args.xlsx_rows)
            finally:
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
        else:
            print("PostgreSQL: set SIMPUL_BENCH_POSTGRES_URL to measure it too")


if __name__ == "__main__":
    main()
