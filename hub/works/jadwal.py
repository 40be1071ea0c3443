"""`simpul works import jadwal F --kontrak N`: a contract's time schedule (kurva S rencana) as
PPK and consultant offices lay it out, into the contract's weighted schedule.

The sheet: a title block; a header "NO | URAIAN PEKERJAAN | BOBOT (%)" then period columns,
often two header rows ("BULAN I" merged over "Minggu ke 1 2 3 4", or "M1 M2 ...", or real
dates); per item row the percentage planned per week (of the whole job or of the item);
section rows ("I. PEKERJAAN PERSIAPAN") without weight or as subtotals; "JUMLAH"/"TOTAL" and
"RENCANA KUMULATIF"/"REALISASI" rows at the bottom, which are not items.

An item row becomes one schedule item from the start of its first planned week to the end of
its last. A row whose weekly values are not even (2 | 3 | 3 | 2) or have a gap becomes one
item per run of equal values ("Galian Tanah (1/3)", ...), so the planned curve, which spreads
an item evenly between its dates, passes through the sheet's cumulative figure at the end of
every week. Dates are moments on the curve, as elsewhere in the register: an item of weeks 1-4
starts on the SPMK day and ends at SPMK + 28 days (the end of the 28th day, where week 5's
item starts). `read_schedule` is pure; `import_schedule` stores through
`hub.works.service.set_schedule`, the same path as `PUT /api/v1/works/contracts/{no}/schedule`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import Engine, select
from sqlmodel import Session

from adapters.hotline import canon
from hub.config import RegencyConfig
from hub.db import get_engine, writer
from hub.lines.hotline.importer import ImportError_, read_sheet
from hub.logging import get_logger
from hub.works import parse as P
from hub.works.models import WorksContract

log = get_logger(__name__)
TOTAL_TOLERANCE = 0.5  # percentage points the weights may miss 100 by
HEADER_ROWS = 25  # the header is looked for in this many first rows

ROMAN = re.compile(r"^(?=[ivxl]+$)(x{0,3}|xl|l)?(ix|iv|v?i{0,3})$")
GRAND_TOTALS = {"jumlah", "total", "jumlah total", "grand total", "total keseluruhan", "jumlah keseluruhan",
                "jumlah bobot", "total bobot", "jumlah seluruhnya", "total pekerjaan", "jumlah pekerjaan"}
FOOTER = re.compile(r"^(rencana kumulatif|kumulatif|komulatif|rencana komulatif|realisasi|deviasi|rencana mingguan"
                    r"|rencana progres|progres|prosentase kumulatif|persentase kumulatif|bobot kumulatif"
                    r"|kumulatif rencana|rencana)\b")
PLAN_CUMULATIVE = re.compile(r"^(rencana (kumulatif|komulatif)|kumulatif( rencana)?|komulatif( rencana)?"
                             r"|(prosentase|persentase|bobot) kumulatif( rencana)?)$")
WEEK_LABEL = re.compile(r"^(?:m|mg|minggu|minggu ke|mgg|w|week|ke)?\s*(\d{1,3})$")


class ScheduleRejected(ImportError_):
    """The file is not imported at all; `problems` are (sheet row or 0, message)."""

    def __init__(self, problems: list[tuple[int, str]]):
        self.problems = problems
        super().__init__("; ".join(_where(n, m) for n, m in problems[:5])
                         + (f" (dan {len(problems) - 5} lagi)" if len(problems) > 5 else ""))


def _where(n: int, msg: str) -> str:
    return f"baris {n}: {msg}" if n else msg


@dataclass
class Period:
    label: str
    start: date
    end: date  # the moment it ends: the start of the next period


@dataclass
class Schedule:
    items: list[dict[str, Any]]
    periods: list[Period]
    rows: int  # item rows read
    split: list[str] = field(default_factory=list)  # items split into runs of equal weekly values
    of_item: list[str] = field(default_factory=list)  # rows whose weekly values are % of the item
    notes: list[str] = field(default_factory=list)
    sheet_cumulative: list[tuple[int, float]] = field(default_factory=list)  # (period index, %) from the sheet
    dated: bool = False  # the period columns are real dates
    columns: dict[str, str] = field(default_factory=dict)


def col_letter(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def pct(v: Any, what: str) -> float | None:
    """A percentage as offices write it: 12,5 | 12.5% | '12,50 %' | 12.5 | '-' (blank). A single
    separator is always the decimal one (no percentage has thousands)."""
    if P.blank(v):
        return None
    if isinstance(v, bool):
        raise P.CellError(f"{what}: {v!r} bukan angka")
    if isinstance(v, (int, float)):
        return float(v)
    s = str(v).strip().replace("%", "").replace("\u00a0", "").replace(" ", "")
    if not s or s in ("-", "--"):
        return None
    if "," in s and "." in s:
        s = s.replace(".", "").replace(",", ".") if s.rfind(",") > s.rfind(".") else s.replace(",", "")
    else:
        s = s.replace(",", ".")
    if not re.fullmatch(r"-?\d+(\.\d+)?|-?\.\d+", s):
        raise P.CellError(f"{what}: {str(v)[:40]!r} bukan angka")
    return float(s)


def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".").replace(".", ",")


def _is_name_header(c: str) -> bool:
    words = c.split()
    if c in ("uraian", "uraian pekerjaan", "jenis pekerjaan", "item pekerjaan", "nama pekerjaan", "pekerjaan",
             "uraian kegiatan", "jenis kegiatan", "kegiatan", "uraian item pekerjaan", "item", "nama item"):
        return True
    return bool(words) and words[0] in ("uraian", "jenis", "item") and "pekerjaan" in words


def _is_weight_header(c: str) -> bool:
    return "bobot" in c.split() and "kumulatif" not in c


def _find_header(rows: list[tuple[int, list[Any]]]) -> tuple[int, int, int, int | None]:
    """(index in rows, name column, weight column, number column) of the header row."""
    for k, (_n, cells) in enumerate(rows):
        names = [canon(c) if isinstance(c, str) else "" for c in cells]
        name_col = next((i for i, c in enumerate(names) if _is_name_header(c)), None)
        weight_col = next((i for i, c in enumerate(names) if _is_weight_header(c)), None)
        if name_col is not None and weight_col is not None:
            no_col = next((i for i, c in enumerate(names) if c in ("no", "nomor", "no urut", "nomor urut", "no item")),
                          None)
            return k, name_col, weight_col, no_col
    raise ScheduleRejected([(0, "header jadwal tidak ditemukan: perlu kolom 'URAIAN PEKERJAAN' (atau 'Jenis "
                                f"Pekerjaan', 'Item Pekerjaan') dan 'BOBOT (%)' dalam {HEADER_ROWS} baris pertama")])


def _date_label(v: Any) -> date | None:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    if isinstance(v, str) and re.search(r"\d{4}", v):
        try:
            return P.day(v)
        except P.CellError:
            return None
    return None


def _week_label(v: Any) -> int | None:
    if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 200:
        return v
    if isinstance(v, float) and v.is_integer() and 0 < v < 200:
        return int(v)
    if isinstance(v, str):
        m = WEEK_LABEL.match(canon(v))
        if m:
            return int(m[1])
    return None


def _column_numbers(cells: list[Any], name_col: int) -> bool:
    """The row under some headers that numbers the columns: (1) (2) (3) ..."""
    v = cells[name_col] if name_col < len(cells) else None
    return v is not None and bool(re.fullmatch(r"\(?\d{1,2}\)?", str(v).strip()))


def _periods(header_rows: list[list[Any]], skip: set[int], start: date | None) -> tuple[list[int], list[Period], bool]:
    """The period columns and their dates: from real dates in the header, else week n of the SPMK."""
    width = max(len(r) for r in header_rows)
    dated: dict[int, date] = {}
    weeks: dict[int, str] = {}
    for j in range(width):
        if j in skip:
            continue
        for r in header_rows:
            v = r[j] if j < len(r) else None
            d = _date_label(v)
            if d is not None:
                dated[j] = d
            w = _week_label(v)
            if w is not None and j not in weeks:
                weeks[j] = str(v).strip() if not isinstance(v, (int, float)) else f"minggu {w}"
    cols = sorted(set(weeks) | set(dated))
    if not cols:
        raise ScheduleRejected([(0, "kolom periode tidak ditemukan: di kanan BOBOT harus ada 'Minggu ke 1 2 3 ...', "
                                    "'M1 M2 ...' atau tanggal")])
    if dated and set(dated) >= set(cols):
        days = [dated[j] for j in cols]
        for a, b, j in zip(days, days[1:], cols[1:]):
            if b <= a:
                raise ScheduleRejected([(0, f"kolom {col_letter(j)}: tanggal {b.isoformat()} tidak sesudah "
                                            f"kolom sebelumnya ({a.isoformat()})")])
        step = (days[-1] - days[-2]) if len(days) > 1 else timedelta(days=7)
        ends = days[1:] + [days[-1] + step]
        return cols, [Period(d.isoformat(), d, e) for d, e in zip(days, ends)], True
    if start is None:
        raise ScheduleRejected([(0, "kontrak belum punya tanggal mulai (SPMK): impor kontrak dengan tgl_spmk, "
                                    "atau beri --mulai TANGGAL")])
    cols = sorted(weeks)
    return cols, [Period(f"minggu {k + 1}", start + timedelta(days=7 * k), start + timedelta(days=7 * (k + 1)))
                  for k in range(len(cols))], False


def _label(cells: list[Any], name_col: int, no_col: int | None) -> str:
    name = cells[name_col] if name_col < len(cells) else None
    if P.blank(name) and no_col is not None and no_col < len(cells):
        name = cells[no_col]
    if P.blank(name):  # "JUMLAH" may sit in any merged cell left of the weights
        name = next((c for c in cells[:max(name_col, no_col or 0) + 1] if isinstance(c, str) and c.strip()), None)
    return canon(name) if isinstance(name, str) else ""


def _is_section(no: Any, name: str) -> bool:
    """'I', 'II.', 'A' in the number column, or 'I. PEKERJAAN PERSIAPAN' / 'A. PEKERJAAN TANAH' as
    the name: a section heading or its subtotal, not an item."""
    if isinstance(no, str):
        t = no.strip().rstrip(".)").strip()
        if t and (ROMAN.match(t.lower()) and t.isupper() or re.fullmatch(r"[A-H]", t)):
            return True
    return bool(re.match(r"^\s*([IVXL]+|[A-H])\s*[.)]\s+\S", name or "")) and (name or "").upper() == (name or "")


def _runs(values: list[float]) -> list[tuple[int, int, float]]:
    """Runs of consecutive equal non-zero values: (first, last, value)."""
    out: list[tuple[int, int, float]] = []
    for k, v in enumerate(values):
        if v and out and out[-1][1] == k - 1 and abs(out[-1][2] - v) < 1e-9:
            out[-1] = (out[-1][0], k, v)
        elif v:
            out.append((k, k, v))
    return out


def read_schedule(rows: Iterable[tuple[int, list[Any]]], start: date | None, relative: bool = False) -> Schedule:
    """The schedule items of a sheet's rows (row number, cells). Raises ScheduleRejected with every
    problem found (row, and column where it helps); nothing is half read."""
    rows = iter(rows)
    head: list[tuple[int, list[Any]]] = []
    for r in rows:
        head.append(r)
        if len(head) >= HEADER_ROWS:
            break
    if not head:
        raise ScheduleRejected([(0, "berkas kosong")])
    k, name_col, weight_col, no_col = _find_header(head)
    header_n, header = head[k]
    # the header's second (and third) row: where the name column is empty (merged from above)
    body = head[k + 1:]
    sub: list[list[Any]] = []
    while body and len(sub) < 3 and (P.blank(body[0][1][name_col] if name_col < len(body[0][1]) else None)
                                     or _column_numbers(body[0][1], name_col)):
        if _column_numbers(body[0][1], name_col):  # (1) (2) (3): numbers the columns, no labels
            body.pop(0)
            continue
        sub.append(body.pop(0)[1])
    skip = {name_col, weight_col} | ({no_col} if no_col is not None else set())
    skip |= {j for j in range(min(name_col, weight_col) + 1)}  # periods are right of the name
    cols, periods, dated = _periods([header, *sub], skip, start)
    sched = Schedule(items=[], periods=periods, rows=0, dated=dated,
                     columns={"uraian": str(header[name_col]), "bobot": str(header[weight_col]),
                              "periode": f"{col_letter(cols[0])}-{col_letter(cols[-1])} ({len(cols)} kolom)"})
    problems: list[tuple[int, str]] = []
    raw: list[tuple[int, str, float, list[float]]] = []  # (row, name, weight, weekly values)
    grand: tuple[int, float | None] | None = None
    unread = 0.0  # weights of rows whose weeks could not be read
    weight_unknown = False  # an item row's weight could not be read: no total to check
    ended = False

    def cell(cells: list[Any], j: int) -> Any:
        return cells[j] if j < len(cells) else None

    for n, cells in [*body, *rows]:
        if all(P.blank(c) for c in cells):
            continue
        label = _label(cells, name_col, no_col)
        if label.replace(" ", "") in ("jumlah", "total"):  # "J U M L A H"
            label = label.replace(" ", "")
        words = set(label.split())
        if PLAN_CUMULATIVE.match(label) or (words & {"kumulatif", "komulatif"} and words <= {
                "rencana", "progres", "progress", "prosentase", "persentase", "bobot", "kumulatif", "komulatif",
                "fisik"}):
            vals = []
            for i, j in enumerate(cols):
                try:
                    v = pct(cell(cells, j), "kumulatif")
                except P.CellError:
                    v = None
                if v is not None:
                    vals.append((i, v))
            if vals:
                sched.sheet_cumulative = vals
            ended = True
            continue
        if ended:
            continue
        if FOOTER.match(label):
            ended = True
            continue
        if label in GRAND_TOTALS or label.startswith(("jumlah total", "grand total", "total keseluruhan")):
            try:
                grand = (n, pct(cell(cells, weight_col), "bobot"))
            except P.CellError:
                grand = (n, None)
            ended = True
            continue
        if label.startswith(("jumlah", "sub total", "subtotal", "total")):
            continue  # a section's subtotal
        if _column_numbers(cells, name_col) and all(P.blank(c) or re.fullmatch(r"\(?\d{1,3}\)?", str(c).strip())
                                                    for c in cells):
            continue
        name = P.text(cell(cells, name_col), 200)
        no = cell(cells, no_col) if no_col is not None else None
        if _is_section(no, name or ""):
            continue  # a section heading ("I. PEKERJAAN PERSIAPAN"), or its subtotal
        try:
            weight = pct(cell(cells, weight_col), f"kolom {col_letter(weight_col)} (bobot)")
        except P.CellError as exc:
            problems.append((n, str(exc)))
            weight_unknown = True
            continue
        values: list[float] = []
        bad = False
        for j in cols:
            try:
                v = pct(cell(cells, j), f"kolom {col_letter(j)} ({periods[cols.index(j)].label})")
            except P.CellError as exc:
                problems.append((n, str(exc)))
                bad = True
                continue
            if v is not None and v < 0:
                problems.append((n, f"kolom {col_letter(j)}: nilai negatif {_fmt(v)}"))
                bad = True
            values.append(v or 0.0)
        if bad:
            if weight:
                unread += weight  # its weight still counts towards the total
            continue
        if weight is None and not any(values):
            continue  # a heading without a number, or a note
        if not name:
            problems.append((n, f"kolom {col_letter(name_col)}: uraian pekerjaan kosong"))
            continue
        if weight is None or weight == 0:
            if any(values):
                problems.append((n, f"{name!r}: bobot kosong (kolom {col_letter(weight_col)}) tetapi ada rencana "
                                    "mingguan"))
                weight_unknown = True
            continue
        if weight < 0:
            problems.append((n, f"{name!r}: bobot negatif"))
            continue
        if not any(values):
            problems.append((n, f"{name!r}: bobot {_fmt(weight)} % tanpa rencana mingguan (kolom "
                                f"{col_letter(cols[0])}-{col_letter(cols[-1])} kosong)"))
            unread += weight
            continue
        raw.append((n, name, weight, values))
    if not raw and not problems:
        problems.append((0, "tidak ada item pekerjaan berbobot di bawah header (baris "
                            f"{header_n})"))
    total = sum(w for _, _, w, _ in raw) + unread
    fraction = bool(raw) and abs(total - 1) <= 0.005 and all(w <= 1 for _, _, w, _ in raw)  # Excel 0.125 = 12.5 %
    scale = 100.0 if fraction else 1.0
    if raw and not relative and not weight_unknown and abs(total * scale - 100) > TOTAL_TOLERANCE:
        first, last = raw[0][0], raw[-1][0]
        msg = (f"jumlah bobot item (baris {first}-{last}) {_fmt(total * scale)} %, bukan 100 % "
               f"(toleransi {_fmt(TOTAL_TOLERANCE)}); bila bobotnya relatif, pakai --relatif")
        if grand is not None and grand[1] is not None:
            msg += f"; baris {grand[0]} (JUMLAH) menulis {_fmt(grand[1] * scale)} %"
        problems.append((0, msg))
    for n, name, weight, values in raw:
        s = sum(values)
        targets = [(weight, "job"), (100.0, "item")] + ([(1.0, "item")] if fraction else [])
        kind = next((t for target, t in targets if abs(s - target) <= max(0.05, 0.02 * target)), None)
        if kind is None and (relative or fraction):
            kind = next((t for target, t in [(weight * 100 / total, "job")] if abs(s - target) <= max(0.05, 0.02 * target)),
                        None)
        if kind is None:
            problems.append((n, f"{name!r}: rencana mingguan berjumlah {_fmt(s)} %, tidak sama dengan bobotnya "
                                f"{_fmt(weight * scale)} % (atau 100 % dari item)"))
            continue
        if kind == "item" and abs(weight - s) > 1e-9:
            sched.of_item.append(name)
        share = weight * 100.0 / total if relative else weight * scale
        runs = _runs(values)
        if len(runs) > 1:
            sched.split.append(name)
        for r_i, (a, b, v) in enumerate(runs):
            part = share * v * (b - a + 1) / s
            label = name if len(runs) == 1 else f"{name} ({r_i + 1}/{len(runs)})"
            sched.items.append({"name": label[:200], "weight": round(part, 6), "start": periods[a].start.isoformat(),
                                "end": periods[b].end.isoformat()})
    if problems:
        raise ScheduleRejected(sorted(problems, key=lambda p: p[0]))
    sched.rows = len(raw)
    if sched.sheet_cumulative:
        from hub.works import curve

        its = curve.items_from(sched.items)
        for i, said in sched.sheet_cumulative:
            ours = curve.planned_pct(periods[i].end, None, None, its) or 0.0
            said = said * 100 if fraction and said <= 1 else said
            if abs(ours - said) > TOTAL_TOLERANCE:
                sched.notes.append(f"kolom {col_letter(cols[i])}: RENCANA KUMULATIF menulis {_fmt(said)} %, "
                                   f"dari item {_fmt(ours)} %")
                break
    return sched


@dataclass
class ScheduleImport:
    contract: str
    schedule: Schedule
    changed: bool
    start: date | None
    end: date | None


def import_schedule(path: Path, number: str, cfg: RegencyConfig, sheet: str | None = None,
                    engine: Engine | None = None, actor: str = "cli", start: date | None = None,
                    relative: bool = False) -> ScheduleImport:
    """Read the file and set it as the contract's schedule (history, flags) in one transaction;
    a rejected file writes nothing."""
    from hub.works import service as W

    engine = engine or get_engine()
    number = (P.code(number) or "").strip()
    with Session(engine) as s:
        c = s.scalars(select(WorksContract).where(WorksContract.number == number)).first()
        if c is None:
            raise ScheduleRejected([(0, f"kontrak {number!r} tidak ditemukan; impor dulu dengan "
                                        "'simpul works import kontrak'")])
        begin = start or c.start_on
    rows, _total = read_sheet(Path(path), sheet)
    sched = read_schedule(rows, begin, relative)
    fname = Path(path).name
    with Session(writer(engine), expire_on_commit=False) as s:
        c = s.scalars(select(WorksContract).where(WorksContract.number == number)).one()
        changed = W.set_schedule(s, c, sched.items, actor, source=f"import:{fname}")
        if changed:
            W.recompute_flags(s, cfg, contract_ids=[c.id])
        s.commit()
        end = c.planned_end
    first = min(date.fromisoformat(i["start"]) for i in sched.items)
    last = max(date.fromisoformat(i["end"]) for i in sched.items)
    if end is not None and last > end + timedelta(days=1):
        sched.notes.append(f"jadwal berakhir {last.isoformat()}, sesudah akhir kontrak {end.isoformat()}")
    log.info("works.schedule.import", contract=number, file=fname, items=len(sched.items), changed=changed)
    return ScheduleImport(number, sched, changed, first, last)
