"""Import of old PSC 119 / BPBD call logs (CSV or XLSX) as closed historic tickets.

Finds the columns by their Indonesian names (or a mapping file), turns each row into an
InboundMessage through adapters/hotline.py, stores them through hub.intake.accept_many in
chunks and processes them. A bad row is reported with its spreadsheet row number and skipped;
the rest is imported. Re-importing adds nothing. Never texts a caller about an old call.
"""
from __future__ import annotations

import csv
import io
import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import date, datetime, time as clock, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import Engine
from sqlmodel import Session

from adapters.base import InvalidPayload
from adapters.hotline import canon, parse_clock
from hub.config import ConfigError, load_yaml, regency_config
from hub.db import get_engine
from hub.guard import InvalidMessage, check_message
from hub.intake import accept_many
from hub.lines.hotline.calls import hotline_adapter
from hub.logging import get_logger
from hub.normalizer_loader import current_regency
from hub.processing import normalize_imported, process_imported
from hub.settings import get_settings

log = get_logger(__name__)

# Our column -> the names offices give it (compared after canon(): lower case, no punctuation).
COLUMNS: dict[str, tuple[str, ...]] = {
    "time": ("waktu", "tanggal waktu", "tanggal dan waktu", "tanggal jam", "tgl jam", "waktu kejadian",
             "waktu panggilan", "waktu lapor", "tanggal dan jam", "datetime"),
    "date": ("tanggal", "tgl", "tanggal kejadian", "tanggal panggilan", "tanggal lapor", "hari tanggal", "hari tgl"),
    "clock": ("jam", "pukul", "jam kejadian", "jam panggilan", "jam lapor"),
    "caller_name": ("pelapor", "nama pelapor", "nama", "penelepon", "nama penelepon", "penelpon",
                    "nama penelpon", "pemanggil"),
    "caller_phone": ("no telp", "no telepon", "no tlp", "no hp", "nomor telepon", "nomor hp", "telepon", "telp",
                     "hp", "no handphone", "kontak", "no telp pelapor", "no hp pelapor"),
    "address": ("lokasi", "alamat", "lokasi kejadian", "alamat kejadian", "tempat kejadian", "tkp"),
    "kecamatan": ("kecamatan", "kec"),
    "desa": ("desa", "kelurahan", "desa kelurahan", "desa kel", "ds"),
    "dusun": ("dusun", "dsn"),
    "rt_rw": ("rt rw", "rtrw"),
    "landmark": ("patokan", "landmark", "keterangan lokasi", "ancer ancer"),
    "incident": ("kejadian", "jenis kejadian", "jenis", "jenis bencana", "kasus", "jenis kasus", "kategori",
                 "jenis panggilan"),
    "description": ("keterangan", "uraian", "kronologi", "kronologis", "deskripsi", "isi laporan", "catatan",
                    "uraian kejadian"),
    "action_taken": ("tindakan", "tindak lanjut", "penanganan", "respon", "respons", "tindakan yang dilakukan"),
    "people_affected": ("korban", "jumlah korban", "terdampak", "jumlah terdampak", "jiwa", "jml korban"),
    "team": ("tim", "petugas", "unit", "armada", "tim yang diterjunkan", "tim diterjunkan"),
    "triage_colour": ("triase", "warna triase", "triage", "kode warna"),
}
# Headers that are not one of the names above are read by meaning: the words they contain.
# The first column kind (in this order) one of whose words is in the header wins, so
# "Tgl Kejadian" is a date, "Lokasi Kejadian" an address, "No. HP/WA" a phone, "Jam Lapor" the
# time of day, "Waktu Terima" the time, "Nama Pelapor" the caller and "Jenis Kejadian" the incident.
WORDS: tuple[tuple[str, frozenset[str]], ...] = tuple((k, frozenset(v.split())) for k, v in (
    ("time", "waktu datetime timestamp"),
    ("date", "tanggal tgl tangal tanggl date hari"),
    ("clock", "jam pukul pkl"),
    ("caller_phone", "telp telepon telpon tlp tlpn hp wa whatsapp handphone ponsel kontak phone"),
    ("triage_colour", "triase triage"),
    ("people_affected", "korban terdampak jiwa"),
    ("rt_rw", "rt rw rtrw"),
    ("dusun", "dusun dsn"),
    ("desa", "desa kelurahan ds kel"),
    ("kecamatan", "kecamatan kec"),
    ("landmark", "patokan landmark ancer"),
    ("address", "lokasi alamat tempat tkp"),
    ("team", "tim petugas unit armada"),
    ("action_taken", "tindakan penanganan respon respons"),
    ("description", "keterangan uraian kronologi kronologis deskripsi catatan isi"),
    ("caller_name", "pelapor nama penelepon penelpon pemanggil"),
    ("incident", "kejadian jenis kasus kategori bencana"),
))
NEEDED = {"date or time": ("time", "date"), "what happened": ("incident", "description")}
# Indonesian names accepted as keys in a mapping file too.
KEY_ALIASES = {"waktu": "time", "tanggal": "date", "jam": "clock", "pelapor": "caller_name", "no_telp": "caller_phone",
               "no_hp": "caller_phone", "lokasi": "address", "alamat": "address", "patokan": "landmark",
               "kejadian": "incident", "jenis_kejadian": "incident", "keterangan": "description",
               "tindakan": "action_taken", "korban": "people_affected", "tim": "team", "triase": "triage_colour",
               "nomor": "row_id", "no": "row_id"}


class ImportError_(Exception):
    """The file cannot be imported at all (missing, unreadable, no date column, bad mapping)."""


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    already: int = 0
    empty: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # ours -> the sheet's
    ignored_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the summary must say (e.g. no time of day)
    seconds: float = 0.0
    processes: int = 1  # 2 when a second process normalized while this one stored


# --- reading the sheet ----------------------------------------------------------------------

def _read_csv(path: Path) -> tuple[Iterator[tuple[int, list[Any]]], int]:
    raw = path.read_bytes()
    # Excel's "Unicode Text" and many Windows tools write UTF-16 with a byte order mark
    encodings = ("utf-16",) if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig", "cp1252")
    for enc in encodings:
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    # Excel in Indonesia saves CSV with ';'. csv.Sniffer trips over title rows, so: the delimiter
    # that occurs most in the first lines wins.
    head = text[:20000].splitlines()[:30]
    delimiter = max(",;\t|", key=lambda d: sum(line.count(d) for line in head))
    total = text.count("\n") + 1

    def rows() -> Iterator[tuple[int, list[Any]]]:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        start = 1
        for rec in reader:
            yield start, rec
            start = reader.line_num + 1

    return rows(), total


def _xlsx_value(v: Any) -> Any:
    """A cell as the importer reads it: empty is None, a whole number an int, a date a
    datetime (python-calamine gives '', floats and dates where openpyxl gave None, ints and
    datetimes; the adapter's checks were written for the latter)."""
    if v == "":
        return None
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
        return int(v)
    if isinstance(v, date) and not isinstance(v, datetime):
        return datetime.combine(v, clock())
    return v


def _read_xlsx(path: Path, sheet: str | None) -> tuple[Iterator[tuple[int, list[Any]]], int]:
    """The sheet's rows through python-calamine (Rust; ~10x faster than openpyxl's reader,
    which took half as long as the normalizer itself). Row numbers are the sheet's own, and
    columns start at A, wherever the sheet's table starts."""
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(str(path))
    except Exception as exc:
        raise ImportError_(f"{path}: not a readable .xlsx file ({type(exc).__name__}: {exc})") from None
    if sheet is not None and sheet not in wb.sheet_names:
        raise ImportError_(f"{path}: no sheet {sheet!r}; sheets: {', '.join(wb.sheet_names)}")
    try:
        ws = wb.get_sheet_by_name(sheet) if sheet else wb.get_sheet_by_index(0)
    except Exception as exc:
        raise ImportError_(f"{path}: sheet not readable ({type(exc).__name__}: {exc})") from None
    # iter_rows starts at the sheet's first row but at the used range's first column
    # (tests/lines/hotline/test_import.py: a table at C4)
    pad = [None] * (ws.start or (0, 0))[1]

    def rows() -> Iterator[tuple[int, list[Any]]]:
        try:
            for i, rec in enumerate(ws.iter_rows(), start=1):
                yield i, pad + [_xlsx_value(v) for v in rec]
        finally:
            wb.close()

    return rows(), (ws.end or (-1, 0))[0] + 1


def read_sheet(path: Path, sheet: str | None = None) -> tuple[Iterator[tuple[int, list[Any]]], int]:
    """(row number as the office sees it, cells) for every row, and an estimate of the count."""
    path = Path(path)
    if not path.is_file():
        raise ImportError_(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path, sheet)
    raise ImportError_(f"{path}: use a .csv or .xlsx file (an old .xls: save it as .xlsx first)")


# --- finding the columns ----------------------------------------------------------------------

def load_mapping(path: Path | None) -> dict[str, str]:
    """A YAML mapping of our column names (or their Indonesian names) to the sheet's headers."""
    if path is None:
        return {}
    data = load_yaml(Path(path))
    if isinstance(data, dict) and isinstance(data.get("columns"), dict):
        data = data["columns"]
    if not isinstance(data, dict):
        raise ConfigError(Path(path), 1, "expected a mapping like 'columns: {time: Tgl Lapor, caller_name: Penelpon}'")
    out: dict[str, str] = {}
    for k, v in data.items():
        key = KEY_ALIASES.get(str(k).strip().lower(), str(k).strip().lower())
        if key not in COLUMNS and key != "row_id":
            raise ConfigError(Path(path), None, f"unknown column {k!r}; use one of {', '.join([*COLUMNS, 'row_id'])}")
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(Path(path), None, f"{k}: the sheet's column name must be a text")
        out[key] = v
    return out


def _kind_of(name: str) -> str | None:
    """The column kind a header means, by its exact name or its words."""
    for ours, aliases in COLUMNS.items():
        if name in aliases:
            return ours
    words = set(name.split())
    return next((ours for ours, vocab in WORDS if words & vocab), None)


def _header_score(cells: list[Any]) -> int:
    kinds = {_kind_of(canon(c)) for c in cells if isinstance(c, str) and c.strip()}
    return len(kinds - {None})


def _looks_like_data(cells: list[Any]) -> bool:
    """A row with a number, a date or a clock in it is data, not a header row."""
    from datetime import date, time as clock

    for c in cells:
        if isinstance(c, (int, float, date, clock)) and not isinstance(c, bool):
            return True
        if isinstance(c, str) and re.search(r"\d{1,2}[:./-]\d{1,2}|\d{4,}", c):
            return True
    return False


def _filled(v: Any) -> bool:
    return v is not None and not (isinstance(v, str) and not v.strip())


def pick_header(scanned: list[tuple[int, list[Any]]]) -> tuple[int, list[Any]]:
    """The header among the first rows: (number of its last row, its cells). Headers spanning
    two rows (merged cells: "Waktu" over "Tanggal" | "Jam") are read as one: each column takes
    its lower label, or the upper one (carried across the merged cells) where it has none."""
    best_i = max(range(len(scanned)), key=lambda i: _header_score(scanned[i][1]))
    top_i = best_i
    if best_i > 0 and _header_score(scanned[best_i - 1][1]) > 0 and not _looks_like_data(scanned[best_i - 1][1]):
        top_i = best_i - 1
    elif best_i + 1 < len(scanned) and _header_score(scanned[best_i + 1][1]) > 0 \
            and not _looks_like_data(scanned[best_i + 1][1]):
        best_i += 1
    if top_i == best_i:
        return scanned[best_i]
    top, sub = scanned[top_i][1], scanned[best_i][1]
    cells: list[Any] = []
    carried: Any = None  # the upper label of a merged block, carried to the right
    for i in range(max(len(top), len(sub))):
        t = top[i] if i < len(top) else None
        b = sub[i] if i < len(sub) else None
        if _filled(t):
            carried = t
        elif not _filled(b):
            carried = None  # a merged block ends where neither row says anything
        upper = t if _filled(t) else carried
        if _filled(b):
            cells.append(f"{upper} / {b}" if upper is not None else b)
        else:
            cells.append(t if _filled(t) else None)
    return scanned[best_i][0], cells


def find_columns(header: list[Any], mapping: dict[str, str], id_column: str | None) -> tuple[dict[str, int], list[str]]:
    """Our column -> index in the row; also the sheet's columns nobody uses."""
    names = [canon(c) for c in header]
    # "Waktu / Tanggal" (a two-row header): the lower label says what the column is
    labels = [canon(str(c).rsplit(" / ", 1)[-1]) if isinstance(c, str) and " / " in c else n
              for c, n in zip(header, names)]
    found: dict[str, int] = {}
    for ours, theirs in mapping.items():
        try:
            found[ours] = names.index(canon(theirs))
        except ValueError:
            shown = ", ".join(str(c) for c in header if c not in (None, ""))
            raise ImportError_(f"mapping: column {theirs!r} (for {ours}) is not in the sheet; columns: {shown}") from None
    if id_column:
        try:
            found["row_id"] = names.index(canon(id_column))
        except ValueError:
            raise ImportError_(f"--id-column {id_column!r} is not in the sheet") from None
    for ours, aliases in COLUMNS.items():
        if ours in found:
            continue
        for alias in aliases:  # the first alias that names a free column wins
            idx = next((i for i, n in enumerate(labels) if n == alias and i not in found.values()), None)
            if idx is not None:
                found[ours] = idx
                break
    for i, n in enumerate(labels):  # the rest by meaning: the words in the header
        if i in found.values() or not n:
            continue
        kind = _kind_of(n)
        if kind is not None and kind not in found:
            found[kind] = i
    shown = ", ".join(repr(str(c)) for c in header if c not in (None, "")) or "(none)"
    for what, kinds in NEEDED.items():
        if not (set(kinds) & found.keys()):
            looked = "; ".join(f"{k}: " + ", ".join(sorted(dict(WORDS)[k])) for k in kinds)
            raise ImportError_(f"no {what} column found. Looked for headers with these words ({looked}) or "
                               f"the names {', '.join(a for k in kinds for a in COLUMNS[k][:4])}; the sheet's "
                               f"columns are {shown}. Name it with --mapping, e.g. "
                               f"'{kinds[0]}: <the column's header>'")
    used = set(found.values())
    ignored = [str(h) for i, h in enumerate(header) if i not in used and h not in (None, "")]
    return found, ignored


def _notes(cols: dict[str, int]) -> list[str]:
    if "date" in cols and not ({"time", "clock"} & cols.keys()):
        return ["no time-of-day column found (looked for: jam, pukul, waktu): calls are dated at 00:00"]
    return []


# --- the import ------------------------------------------------------------------------------

def _drain(engine: Engine) -> None:
    from hub.processing import process_pending

    while process_pending(engine, 500) == 500:
        pass


# The regency a second process normalizes with: set before it is forked, so it is never pickled.
_FORK_REGENCY: Any = None


def _normalize_in_child(messages: list[Any], now: datetime) -> list[Any]:
    return normalize_imported(messages, _FORK_REGENCY, now)


def _child_start() -> None:
    os.nice(5)  # a live hub on the same machine comes first


class _Normalizer:
    """Normalizes chunks in a second process while this one reads rows and writes the chunk
    before (`jobs` 2), or here, in order (`jobs` 1). The normalizer is pure, so only messages
    go out and drafts come back. If the second process dies, its chunk and the rest are
    normalized here."""

    def __init__(self, engine: Engine, jobs: int) -> None:
        with Session(engine) as session:
            self.reg = current_regency(session)
        self.now = datetime.now(timezone.utc)
        self.jobs = jobs
        self.started = False
        self.pool: ProcessPoolExecutor | None = None

    def submit(self, messages: list[Any], last: bool) -> Callable[[], list[Any]]:
        """Start normalizing `messages`; the returned call gives their drafts. The second
        process starts with the first chunk that is not also the `last` (a file of one chunk
        has nothing to overlap)."""
        global _FORK_REGENCY
        if self.pool is None and self.jobs > 1 and not last:
            self.started = True
            _FORK_REGENCY = self.reg
            self.pool = ProcessPoolExecutor(max_workers=self.jobs - 1, initializer=_child_start,
                                            mp_context=multiprocessing.get_context("fork"))
        if self.pool is None:
            return lambda: normalize_imported(messages, self.reg, self.now)
        try:
            future = self.pool.submit(_normalize_in_child, messages, self.now)
        except BrokenProcessPool:  # it died with an earlier chunk: the rest is drafted here
            log.warning("import.second_process_died", rows=len(messages))
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool, self.jobs = None, 1
            return lambda: normalize_imported(messages, self.reg, self.now)

        def result() -> list[Any]:
            try:
                return future.result()
            except BrokenProcessPool:
                log.warning("import.second_process_died", rows=len(messages))
                return normalize_imported(messages, self.reg, self.now)
        return result

    @property
    def processes(self) -> int:
        """2 once a second process drafted (or tried to), else 1."""
        return 2 if self.started else 1

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def default_jobs() -> int:
    """Two processes (read and write here, normalize there) where the machine has two cores."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def import_file(path: Path, line: str, mapping: dict[str, str] | None = None, sheet: str | None = None,
                id_column: str | None = None, chunk: int = 1000, engine: Engine | None = None,
                on_progress: Callable[[int, int], None] | None = None,
                on_bad_row: Callable[[int, str], None] | None = None, jobs: int | None = None) -> ImportReport:
    """Import one log file of `line` (psc119 | bpbd). Bad rows are reported and skipped.
    `jobs` 2 normalizes in a second process (default where there are two cores and more than
    one chunk of rows); 1 keeps everything in this process."""
    engine = engine or get_engine()
    adapter = hotline_adapter()
    try:
        adapter.line(line)
    except InvalidPayload as exc:
        raise ImportError_(str(exc)) from None
    started = time.perf_counter()
    cfg = regency_config(str(get_settings().config_dir))
    rows, total = read_sheet(path, sheet)
    report = ImportReport()
    header: list[Any] | None = None
    cols: dict[str, int] = {}
    pending: list[Any] = []
    scanned: list[tuple[int, list[Any]]] = []

    normalizer = _Normalizer(engine, jobs if jobs is not None else default_jobs())
    waiting: list[Callable[[], None]] = []  # the chunk stored, its tickets not yet written

    def flush(last: bool = False) -> None:
        """Store the chunk (one transaction; rows stored before count as already there) while
        its new rows are normalized, then write the previous chunk's tickets from the messages
        in hand (a second transaction). A crash between the two leaves raw rows pending: the
        next run finds them stored and its _drain makes their tickets, so nothing is lost or
        made twice."""
        if not pending:
            return
        messages = list(pending)
        pending.clear()
        accepted = accept_many(messages, engine, checked=True)
        report.imported += sum(not a.duplicate for a in accepted)
        report.already += sum(a.duplicate for a in accepted)
        new = [(a.raw_id, a.ticket_code, m) for a, m in zip(accepted, messages) if not a.duplicate]
        drafts = normalizer.submit([m for _, _, m in new], last) if new else (lambda: [])
        finish()
        waiting.append(lambda: process_imported(engine, new, cfg, drafts(), normalizer.now))

    def finish() -> None:
        while waiting:
            waiting.pop(0)()

    def bad(n: int, reason: str) -> None:
        report.bad.append((n, reason))
        if on_bad_row:
            on_bad_row(n, reason)

    def handle(n: int, cells: list[Any]) -> None:
        if all(c in (None, "") or (isinstance(c, str) and not c.strip()) for c in cells):
            report.empty += 1
            return
        report.rows += 1
        row = {ours: (cells[i] if i < len(cells) else None) for ours, i in cols.items()}
        if row.get("date") not in (None, "") and row.get("time") not in (None, "") and "clock" not in row:
            try:  # "Waktu Terima" holding only the time of day, next to a date column
                parse_clock(row["time"])
                row["clock"] = row.pop("time")
            except ValueError:
                pass
        if row.get("address"):  # the log's free-text place goes where the normalizer looks for it
            row["landmark"] = ", ".join(str(x) for x in (row.get("landmark"), row["address"]) if x)
        rid = row.pop("row_id", None)
        rid = str(int(rid)) if isinstance(rid, float) and rid.is_integer() else (str(rid).strip() if rid else None)
        if "row_id" in cols and not rid:
            return bad(n, "empty id column")
        try:  # hub.guard: a time the store must refuse is this row's error, not the whole import's
            pending.append(check_message(adapter.from_row(line, row, row_id=rid)))
        except (InvalidPayload, InvalidMessage) as exc:
            return bad(n, str(exc))
        if len(pending) >= chunk:
            flush()

    def take_header() -> None:
        """The header among the scanned rows (pick_header: one row, or two read as one); the
        rows under it are data."""
        nonlocal header, cols, scanned
        best = pick_header(scanned)
        header = best[1]
        cols, report.ignored_columns = find_columns(header, mapping or {}, id_column)
        report.columns = {k: str(header[i]) for k, i in cols.items()}
        report.notes = _notes(cols)
        for m, c in scanned:
            if m > best[0]:
                handle(m, c)
        scanned = []

    try:
        for n, cells in rows:
            if header is None:  # the header may sit under a title block: take the best row of the first 10
                scanned.append((n, cells))
                if len(scanned) < 10:
                    continue
                take_header()
            else:
                handle(n, cells)
            if on_progress and n % 500 == 0:
                on_progress(n, total)
        if header is None:  # a short file: fewer than 10 rows
            if not scanned:
                raise ImportError_(f"{path}: the file is empty")
            take_header()
        flush(last=True)
        finish()
    finally:
        normalizer.close()
    report.processes = normalizer.processes
    _drain(engine)  # what process_imported left pending, and any earlier run's leftovers
    if on_progress:
        on_progress(total, total)
    report.seconds = time.perf_counter() - started
    log.info("import.done", line=line, file=Path(path).name, rows=report.rows, imported=report.imported,
             already=report.already, bad=len(report.bad), seconds=round(report.seconds, 2))
    return report
