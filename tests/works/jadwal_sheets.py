"""Time schedules (kurva S rencana) laid out as PPK and consultant offices in Indonesia do: a
title block, a two-row header (NO | URAIAN PEKERJAAN | JUMLAH HARGA | BOBOT (%) | BULAN I ...
merged over Minggu ke 1 2 3 4), roman-numbered sections (with or without a subtotal),
decimal commas, and JUMLAH / RENCANA KUMULATIF / REALISASI / DEVIASI rows and a signature
block at the bottom. Used by tests/works/test_jadwal.py."""
from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path
from typing import Any

# (section, [(item, weight, {week: % of the whole job})]); weights add up to 100.00
JOB: list[tuple[str, list[tuple[str, float, dict[int, float]]]]] = [
    ("PEKERJAAN PERSIAPAN", [
        ("Mobilisasi dan Demobilisasi", 1.50, {1: 1.00, 12: 0.50}),
        ("Papan Nama Proyek", 0.25, {1: 0.25}),
        ("Penyelenggaraan SMKK (Keselamatan Konstruksi)", 2.25, {w: 0.25 for w in range(1, 10)}),
    ]),
    ("PEKERJAAN TANAH DAN DRAINASE", [
        ("Galian Tanah Biasa", 6.40, {w: 1.60 for w in range(2, 6)}),
        ("Timbunan Pilihan dari Sumber Galian", 5.60, {w: 1.40 for w in range(3, 7)}),
        ("Saluran Drainase Beton Pracetak (U-Ditch)", 2.40, {w: 0.60 for w in range(6, 10)}),
    ]),
    ("PERKERASAN BERBUTIR", [
        ("Lapis Pondasi Agregat Kelas A", 22.75, {w: 4.55 for w in range(4, 9)}),
        ("Lapis Pondasi Agregat Kelas B", 14.00, {3: 2.00, 4: 4.00, 5: 4.00, 6: 4.00}),
    ]),
    ("PERKERASAN ASPAL", [
        ("Lapis Resap Pengikat - Aspal Cair (Prime Coat)", 2.10, {8: 2.10}),
        ("Lapis Perekat - Aspal Cair (Tack Coat)", 0.90, {9: 0.90}),
        ("Laston Lapis Antara (AC-BC)", 18.00, {8: 6.00, 9: 6.00, 10: 6.00}),
        ("Laston Lapis Aus (AC-WC)", 19.50, {9: 6.50, 10: 6.50, 11: 6.50}),
    ]),
    ("PEKERJAAN PELENGKAP", [
        ("Marka Jalan Termoplastik", 2.30, {11: 1.15, 12: 1.15}),
        ("Rambu Jalan Tunggal dengan Permukaan Pemantul", 1.20, {12: 1.20}),
        ("Patok Kilometer dan Patok Hektometer", 0.85, {12: 0.85}),
    ]),
]
WEEKS = 12
ROMAN = ["I", "II", "III", "IV", "V", "VI"]
VALUE_SEN = 1_000_000_000 * 100  # the contract's value, for the JUMLAH HARGA column


def koma(x: float, places: int = 2) -> str:
    """12.5 -> '12,50' (Indonesian decimal comma, as typed into a cell formatted as text)."""
    return f"{x:.{places}f}".replace(".", ",")


def weekly_totals(job=JOB) -> list[float]:
    return [round(sum(v.get(w, 0.0) for _, items in job for _, _, v in items), 6) for w in range(1, WEEKS + 1)]


def cumulative(job=JOB) -> list[float]:
    out, acc = [], 0.0
    for x in weekly_totals(job):
        acc += x
        out.append(round(acc, 4))
    return out


def rows(job=JOB, style: str = "bulan", of_item: bool = False, start: date | None = None,
         subtotal_sections: tuple[int, ...] = (0, 2)) -> tuple[list[list[Any]], list[list[int]]]:
    """The sheet as rows of cells, and the merges (row0, col0, row1, col1; 0-based, inclusive).
    style: 'bulan' (BULAN I over Minggu ke 1 2 3 4), 'm' (M1 M2 ... in one header row),
    'tanggal' (the weeks' first days under BULAN). of_item: weekly values as % of the item."""
    width = 4 + WEEKS + 1
    blank = [None] * width
    out: list[list[Any]] = []
    merges: list[list[int]] = []
    title = ["TIME SCHEDULE / KURVA S RENCANA", "Pekerjaan : Rehabilitasi Jalan Ruas Ngadirejo - Sumberingin",
             "Lokasi : Kec. Pogalan, Kabupaten Trenggalek", "Nomor Kontrak : 027/1/406.011/2026",
             "Tahun Anggaran : 2026"]
    for t in title:
        out.append([t] + [None] * (width - 1))
        merges.append([len(out) - 1, 0, len(out) - 1, width - 1])
    out.append(list(blank))
    h = len(out)
    if style == "m":
        out.append(["NO", "URAIAN PEKERJAAN", "JUMLAH HARGA (Rp)", "BOBOT (%)"] + [f"M{w}" for w in range(1, WEEKS + 1)]
                   + ["KET"])
    else:
        top = ["NO", "URAIAN PEKERJAAN", "JUMLAH HARGA (Rp)", "BOBOT (%)"] + [None] * WEEKS + ["KETERANGAN"]
        sub = [None] * 4 + [None] * WEEKS + [None]
        for m in range(WEEKS // 4):
            top[4 + 4 * m] = f"BULAN {ROMAN[m]}"
            merges.append([h, 4 + 4 * m, h, 7 + 4 * m])
        for w in range(WEEKS):
            sub[4 + w] = (start + timedelta(days=7 * w)) if style == "tanggal" else w + 1
        out.append(top)
        out.append(sub)
        for c in (0, 1, 2, 3, width - 1):
            merges.append([h, c, h + 1, c])
    for s_i, (section, items) in enumerate(job):
        sw = sum(w for _, w, _ in items)
        sec = [ROMAN[s_i], section] + [None] * (width - 2)
        if s_i in subtotal_sections:  # some offices write the section's subtotal on its row
            sec[2] = f"{round(VALUE_SEN * sw / 100 / 100):,}".replace(",", ".")
            sec[3] = koma(sw)
        out.append(sec)
        for i_i, (name, weight, plan) in enumerate(items):
            no = sum(len(it) for _, it in job[:s_i]) + i_i + 1
            row = [no, name, f"{round(VALUE_SEN * weight / 100 / 100):,}".replace(",", "."),
                   koma(weight) if no % 2 else weight]
            for w in range(1, WEEKS + 1):
                v = plan.get(w)
                if v is None:
                    row.append(None)
                    continue
                v = 100.0 * v / weight if of_item else v
                # typed three ways, as in real sheets: '1,60', 1.6 (a number cell), '1.60%'
                row.append([koma(v, 4 if of_item else 2), round(v, 4), f"{v:.4f}%"][no % 3])
            row.append(None)
            out.append(row)
    weekly = weekly_totals(job)
    out.append(["JUMLAH", None, f"{VALUE_SEN // 100:,}".replace(",", "."), "100,00"] + [koma(x) for x in weekly]
               + [None])
    merges.append([len(out) - 1, 0, len(out) - 1, 1])
    out.append(["RENCANA KUMULATIF (%)", None, None, None] + [koma(x) for x in cumulative(job)] + [None])
    merges.append([len(out) - 1, 0, len(out) - 1, 3])
    out.append(["REALISASI KUMULATIF (%)", None, None, None] + ["1,10", "3,95", "8,20"] + [None] * (WEEKS - 3)
               + [None])
    merges.append([len(out) - 1, 0, len(out) - 1, 3])
    out.append(["DEVIASI (%)", None, None, None] + ["-0,15", "-0,30", "-1,25"] + [None] * (WEEKS - 3) + [None])
    out.append(list(blank))
    for left, right in [("Mengetahui,", "Trenggalek, 23 Februari 2026"),
                        ("Pejabat Pembuat Komitmen", "CV Maju Jaya Trenggalek"),
                        (None, None), ("Ir. BAMBANG SUTRISNO, M.T.", "SUTOYO"), (None, "Direktur")]:
        r = list(blank)
        r[1], r[10] = left, right
        out.append(r)
    return out, merges


def write_xlsx(path: Path, **kw) -> Path:
    return _save(path, *rows(**kw), title="Time Schedule")


def _save(path: Path, cells: list, merges: list, title: str | None = None) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    if title:
        ws.title = title
    for r in cells:
        ws.append(r)
    for r0, c0, r1, c1 in merges:
        ws.merge_cells(start_row=r0 + 1, start_column=c0 + 1, end_row=r1 + 1, end_column=c1 + 1)
    wb.save(path)
    return Path(path)


def write_csv(path: Path, **kw) -> Path:
    cells, _ = rows(**kw)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";")
        for r in cells:
            w.writerow(["" if c is None else (c.strftime("%d/%m/%Y") if isinstance(c, date) else c) for c in r])
    return Path(path)


def with_rows(path: Path, edit, **kw) -> Path:
    """An .xlsx of the schedule after edit(cells) changed some cells (for the error cases)."""
    cells, merges = rows(**kw)
    edit(cells)
    return _save(path, cells, merges)
