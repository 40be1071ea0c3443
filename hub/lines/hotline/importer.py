"""Import of old PSC 119 / BPBD call logs (CSV or XLSX) as closed historic tickets.

Finds the columns by their Indonesian names (or a mapping file), turns each row into an
InboundMessage through adapters/hotline.py, stores them through hub.intake.accept_many in
chunks and processes them. A bad row is reported with its spreadsheet row number and skipped;
the rest is imported. Re-importing adds nothing. Never texts a caller about an old call.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import Engine

from adapters.base import InvalidPayload
from adapters.hotline import canon
from hub.config import ConfigError, load_yaml
from hub.db import get_engine
from hub.guard import InvalidMessage, check_message
from hub.intake import accept_many
from hub.lines.hotline.calls import hotline_adapter
from hub.logging import get_logger

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
    seconds: float = 0.0


# --- reading the sheet ----------------------------------------------------------------------

def _read_csv(path: Path) -> tuple[Iterator[tuple[int, list[Any]]], int]:
    raw = path.read_bytes()
    for enc in ("utf-8-sig", "cp1252"):
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


def _read_xlsx(path: Path, sheet: str | None) -> tuple[Iterator[tuple[int, list[Any]]], int]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise ImportError_(f"{path}: not a readable .xlsx file ({type(exc).__name__}: {exc})") from None
    if sheet is not None and sheet not in wb.sheetnames:
        raise ImportError_(f"{path}: no sheet {sheet!r}; sheets: {', '.join(wb.sheetnames)}")
    ws = wb[sheet] if sheet else wb.worksheets[0]

    def rows() -> Iterator[tuple[int, list[Any]]]:
        try:
            for i, rec in enumerate(ws.iter_rows(values_only=True), start=1):
                yield i, list(rec)
        finally:
            wb.close()

    return rows(), ws.max_row or 0


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


def _header_score(cells: list[Any]) -> int:
    names = {canon(c) for c in cells if c not in (None, "")}
    return sum(1 for aliases in COLUMNS.values() if names & set(aliases))


def find_columns(header: list[Any], mapping: dict[str, str], id_column: str | None) -> tuple[dict[str, int], list[str]]:
    """Our column -> index in the row; also the sheet's columns nobody uses."""
    names = [canon(c) for c in header]
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
            idx = next((i for i, n in enumerate(names) if n == alias and i not in found.values()), None)
            if idx is not None:
                found[ours] = idx
                break
    if not ({"time", "date"} & found.keys()):
        raise ImportError_("no date column found (looked for: waktu, tanggal, tgl, ...); name it with --mapping, "
                           "e.g. 'time: Tgl Lapor'")
    if not ({"incident", "description"} & found.keys()):
        raise ImportError_("no kejadian/keterangan column found; name it with --mapping, e.g. 'incident: Jenis Kasus'")
    used = set(found.values())
    ignored = [str(h) for i, h in enumerate(header) if i not in used and h not in (None, "")]
    return found, ignored


# --- the import ------------------------------------------------------------------------------

def _drain(engine: Engine) -> None:
    from hub.processing import process_pending

    while process_pending(engine, 500) == 500:
        pass


def import_file(path: Path, line: str, mapping: dict[str, str] | None = None, sheet: str | None = None,
                id_column: str | None = None, chunk: int = 1000, engine: Engine | None = None,
                on_progress: Callable[[int, int], None] | None = None,
                on_bad_row: Callable[[int, str], None] | None = None) -> ImportReport:
    """Import one log file of `line` (psc119 | bpbd). Bad rows are reported and skipped."""
    engine = engine or get_engine()
    adapter = hotline_adapter()
    try:
        adapter.line(line)
    except InvalidPayload as exc:
        raise ImportError_(str(exc)) from None
    started = time.perf_counter()
    rows, total = read_sheet(path, sheet)
    report = ImportReport()
    header: list[Any] | None = None
    cols: dict[str, int] = {}
    pending: list[Any] = []
    scanned: list[tuple[int, list[Any]]] = []

    def flush() -> None:
        if not pending:
            return
        accepted = accept_many(pending, engine)
        report.imported += sum(not a.duplicate for a in accepted)
        report.already += sum(a.duplicate for a in accepted)
        _drain(engine)
        pending.clear()

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
        """The best-scoring of the scanned rows is the header; the rows under it are data."""
        nonlocal header, cols, scanned
        best = max(scanned, key=lambda r: _header_score(r[1]))
        header = best[1]
        cols, report.ignored_columns = find_columns(header, mapping or {}, id_column)
        report.columns = {k: str(header[i]) for k, i in cols.items()}
        for m, c in scanned:
            if m > best[0]:
                handle(m, c)
        scanned = []

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
    flush()
    if on_progress:
        on_progress(total, total)
    report.seconds = time.perf_counter() - started
    log.info("import.done", line=line, file=Path(path).name, rows=report.rows, imported=report.imported,
             already=report.already, bad=len(report.bad), seconds=round(report.seconds, 2))
    return report
