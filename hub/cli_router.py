"""`simpul triage` (classify JSON lines offline) and `simpul router learn` (teach the router
from labelled history). Bad input lines are reported with their line number and skipped; triage
never needs a database: without one it routes by the rules alone."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, TextIO

import typer

from hub.config import ConfigError

router_app = typer.Typer(help="Teach the router from labelled history.", no_args_is_help=True)


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _lines(stream: TextIO) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, parsed object or None, error or None) for every non-blank line."""
    for no, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield no, None, f"bukan JSON yang sah ({exc.msg}, kolom {exc.colno})"
            continue
        if not isinstance(obj, dict):
            yield no, None, "baris harus berupa objek JSON {...}"
            continue
        yield no, obj, None


def _learned_model() -> dict | None:
    """The newest learned model if a database with one exists; anything else means none."""
    try:
        from sqlalchemy.engine import make_url

        from hub.db import get_engine, session_scope
        from hub.normalizer_loader import newest_model
        from hub.settings import get_settings

        url = make_url(get_settings().database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
                and not Path(url.database).exists():
            return None  # do not create an empty database just to find nothing in it
        with session_scope(get_engine()) as session:
            row = newest_model(session)
            return dict(row.model) if row is not None and row.model else None
    except Exception:  # no database, not migrated, unreachable: rules alone
        return None


def _regency(learned: dict | None):
    from hub.normalizer_loader import load_normalizer_regency
    from hub.settings import get_settings

    try:
        return load_normalizer_regency(get_settings().config_dir, learned=learned,
                                       cache_key=("cli", learned.get("kind"), learned.get("examples"), learned.get("trained_at"),
                                                  len(learned.get("features", {}))) if learned else ("cli", None))
    except ConfigError as exc:
        _err(f"error: konfigurasi rusak: {exc}")
        raise typer.Exit(2) from None


def triage(in_: Path | None = typer.Option(None, "--in", help="JSONL input (default: stdin)"),
           out: Path | None = typer.Option(None, "--out", help="JSONL output (default: stdout)")):
    """One JSON line in ({"text", "channel"?, "id"?}), one out: id, category, opd, kecamatan,
    desa, urgency, confidence."""
    from normalizer import normalize
    from normalizer.types import InboundMessage

    reg = _regency(_learned_model())
    now = datetime.now(timezone.utc)
    src = in_.open(encoding="utf-8") if in_ else sys.stdin
    dst = out.open("w", encoding="utf-8") if out else sys.stdout
    done = bad = 0
    try:
        for no, obj, error in _lines(src):
            if obj is not None and not isinstance(obj.get("text"), str):
                error = "kolom \"text\" (string) wajib ada"
            if error:
                _err(f"baris {no}: {error}")
                bad += 1
                continue
            channel = str(obj.get("channel") or "api")
            fields = obj.get("fields") if isinstance(obj.get("fields"), dict) else {}
            msg = InboundMessage(channel=channel, text=obj["text"], fields=fields)
            d = normalize(msg, reg, now)
            row = {
                "id": obj.get("id", no),
                "category": d.category,
                "opd": d.routing.opd,
                "kecamatan": d.place.kecamatan_name,
                "desa": d.place.desa_name,
                "urgency": d.urgency.value,
                "confidence": d.routing.confidence,
                "needs_triage": d.routing.needs_triage,
            }
            dst.write(json.dumps(row, ensure_ascii=False) + "\n")
            done += 1
    finally:
        if in_:
            src.close()
        if out:
            dst.close()
    if bad:  # the good lines are out; the exit status stays 0 so pipelines keep flowing
        _err(f"{done} baris diproses, {bad} baris dilewati")


TEXT_HEADERS = ("text", "teks", "isi", "isi laporan", "isi pengaduan", "uraian", "laporan", "pengaduan",
                "keluhan", "deskripsi", "description", "pesan", "message", "isi aduan", "aduan", "judul dan isi")
OPD_HEADERS = ("opd", "opd_code", "kode opd", "opd tujuan", "instansi", "instansi tujuan", "disposisi",
               "dinas", "perangkat daerah", "unit kerja", "tujuan", "skpd", "ditangani oleh", "penanggung jawab",
               "label", "kategori opd")


def _header_key(v) -> str:
    return " ".join(str(v or "").lower().replace("_", " ").replace("-", " ").split())


def find_learn_columns(header: list) -> tuple[int | None, int | None]:
    """(text column, OPD column) by header: exact names first, then a header containing one."""
    keys = [_header_key(h) for h in header]

    def pick(names: tuple[str, ...], avoid: int | None = None) -> int | None:
        for n in names:
            for i, k in enumerate(keys):
                if k == n and i != avoid:
                    return i
        for n in names:
            for i, k in enumerate(keys):
                if k and n in k and i != avoid:
                    return i
        return None

    opd = pick(OPD_HEADERS)
    return pick(TEXT_HEADERS, avoid=opd), opd


def _read_learn_rows(file: Path, sheet: str | None) -> tuple[list[tuple[int, str | None, str | None]], int, str]:
    """(row or line number, text, OPD as written) for every data row; the estimated count; a
    description of the columns used. JSONL: {"text", "opd"}; CSV/XLSX: columns by header (the
    first row among the first 20 naming both)."""
    suffix = file.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        out: list[tuple[int, str | None, str | None]] = []
        with file.open(encoding="utf-8") as fh:
            for no, obj, error in _lines(fh):
                if error:
                    out.append((no, None, error))
                    continue
                text, opd = obj.get("text"), obj.get("opd")
                out.append((no, text if isinstance(text, str) else None, opd if isinstance(opd, str) else None))
        return out, len(out), "text, opd"
    from hub.lines.hotline.importer import ImportError_, read_sheet

    try:
        rows, total = read_sheet(file, sheet)
    except ImportError_ as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    text_col = opd_col = None
    header_desc = ""
    out = []
    for n, cells in rows:
        if text_col is None:
            t, o = find_learn_columns(cells)
            if t is not None and o is not None:
                text_col, opd_col = t, o
                header_desc = f"{cells[t]!s} (teks), {cells[o]!s} (OPD), baris judul {n}"
            elif n >= 20:
                _err("error: tidak ada baris judul dengan kolom teks (isi/laporan/text) dan kolom OPD "
                     "(opd/instansi/disposisi) di 20 baris pertama")
                raise typer.Exit(2)
            continue
        if not any(c not in (None, "") for c in cells):
            continue
        text = cells[text_col] if text_col < len(cells) else None
        opd = cells[opd_col] if opd_col < len(cells) else None
        out.append((n, str(text) if text not in (None, "") else None, str(opd) if opd not in (None, "") else None))
    if text_col is None:
        _err("error: berkas kosong atau tanpa baris judul (kolom teks dan kolom OPD)")
        raise typer.Exit(2)
    return out, total, header_desc


@router_app.command("learn")
def learn(file: Path = typer.Argument(..., help='JSONL lines {"text": ..., "opd": ...}, or a CSV/XLSX history '
                                                 "(text and OPD columns found by their header)"),
          sheet: str | None = typer.Option(None, "--sheet", help="XLSX sheet (default: the first)"),
          progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar")):
    """Store labelled examples (history of correct OPDs; OPD codes, names or aliases) and retrain
    the router."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hub.db import session_scope
    from hub.migrate import upgrade
    from hub.models import RoutingExample
    from hub.router_learning import retrain

    if not file.exists():
        _err(f"error: berkas {file} tidak ada")
        raise typer.Exit(2)
    reg = _regency(None)
    rows, total, columns = _read_learn_rows(file, sheet)
    upgrade()
    examples: list[tuple[str, str]] = []
    bad = 0
    unknown: dict[str, list[int]] = {}
    err = Console(stderr=True)
    bar = Progress(TextColumn(f"[bold]router learn[/] {file.name}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=err, disable=not progress, transient=False)
    with bar:
        task = bar.add_task("read", total=len(rows) or None)
        for i, (no, text, opd) in enumerate(rows, 1):
            if text is None and opd is not None and opd.startswith(("bukan JSON", "baris harus")):
                _err(f"baris {no}: {opd}")
                bad += 1
            elif not text or not text.strip():
                _err(f"baris {no}: kolom teks kosong atau tidak ada")
                bad += 1
            else:
                code = reg.opd_for(opd)
                if code is None:
                    unknown.setdefault(str(opd or "(kosong)"), []).append(no)
                    _err(f"baris {no}: OPD {opd!r} tidak dikenal (lihat opds.yaml: code, name, aliases)")
                    bad += 1
                else:
                    examples.append((text, code))
            if i % 200 == 0 or i == len(rows):
                bar.update(task, completed=i)
        with session_scope() as session:
            for text, opd in examples:
                session.add(RoutingExample(text=text, opd_code=opd, source="learn"))
            session.flush()
            t = bar.add_task("melatih ulang", total=None)
            row = retrain(session)
            bar.update(t, total=1, completed=1)
    if columns and file.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        _err(f"kolom: {columns}")
    if unknown:
        _err("OPD tidak dikenal (petakan di opds.yaml aliases, atau perbaiki berkasnya):")
        for name, nos in sorted(unknown.items(), key=lambda kv: -len(kv[1])):
            shown = ", ".join(str(n) for n in nos[:15]) + (" ..." if len(nos) > 15 else "")
            _err(f"  {name!r}: {len(nos)} baris ({shown})")
    if row is None:
        print(f"{len(examples)} contoh baru disimpan ({bad} baris dilewati); belum cukup contoh untuk melatih model")
        return
    m = row.model
    cv = f", akurasi validasi silang {m['cv_accuracy']:.3f}" if m.get("cv_accuracy") is not None else ""
    print(f"{len(examples)} contoh baru dipelajari ({bad} baris dilewati); model dilatih ulang dari "
          f"{row.examples} contoh{cv}, ambang rute otomatis {m.get('threshold', 0):.2f}")
