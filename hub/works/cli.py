"""`simpul works ...`: import the LKPP shapes, compute red flags, contractor API keys.
The work is in hub/works/importer.py and hub/works/service.py; this only talks to the terminal."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

works_app = typer.Typer(help="Public works register: LKPP import, red flags, contractor keys (docs/works.md).",
                        no_args_is_help=True)
import_app = typer.Typer(help="Import LKPP exports (CSV/XLSX): rup, tender, kontrak; a contract's time schedule: jadwal.",
                         no_args_is_help=True)
works_app.add_typer(import_app, name="import")
err = Console(stderr=True)


def _prepared():
    """The regency's configuration, with the database migrated and the OPDs in place."""
    from hub.config import regency_config
    from hub.seed import prepare_database
    from hub.settings import get_settings

    cfg = regency_config(str(get_settings().config_dir))
    prepare_database(cfg)
    return cfg


def _run_import(kind: str, file: Path, sheet: Optional[str]) -> None:
    from hub.lines.hotline.importer import ImportError_
    from hub.works.importer import import_works

    cfg = _prepared()
    shown = 0

    def bad_row(n: int, reason: str) -> None:
        nonlocal shown
        shown += 1
        if shown <= 200:
            err.print(f"[yellow]baris {n}:[/] {reason}", highlight=False)

    try:
        r = import_works(file, kind, cfg, sheet=sheet, on_bad_row=bad_row, actor=f"import:{file.name}")
    except ImportError_ as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2)
    err.print("columns: " + ", ".join(f"{k} <- {v!r}" for k, v in r.columns.items()), highlight=False)
    if r.dropped_personal:
        err.print(f"personal columns dropped, not stored: {', '.join(r.dropped_personal)}", highlight=False)
    if r.ignored_columns:
        err.print(f"ignored columns: {', '.join(r.ignored_columns)}", highlight=False)
    rate = r.rows / r.seconds if r.seconds else 0.0
    extra = f", {r.events_added} progress/payment reports added" if kind == "kontrak" else ""
    err.print(f"{r.rows} rows read: {r.added} added, {r.updated} updated (history kept), {r.unchanged} unchanged"
              f"{extra}, {len(r.bad)} bad ({r.seconds:.1f} s, {rate:.0f} rows/s)")
    if kind in ("tender", "kontrak"):
        what = "tenders joined to their plan (kd_rup)" if kind == "tender" else "contracts joined to a tender/plan"
        err.print(f"{r.joined} {what}; not joined: {', '.join(r.unjoined[:10]) or '-'}", highlight=False)
    if r.bad:
        raise typer.Exit(1)


def _cmd(kind: str, label: str):
    def command(file: Path = typer.Argument(..., help="The export: .csv or .xlsx"),
                sheet: Optional[str] = typer.Option(None, help="Sheet of an .xlsx (default: the first)")):
        _run_import(kind, file, sheet)

    command.__doc__ = f"Import {label}. Re-importing adds nothing; changes are updated with history."
    return command


import_app.command("rup")(_cmd("rup", "the SiRUP plan (kd_rup, nama_paket, pagu, ...)"))
import_app.command("tender")(_cmd("tender", "SPSE tender results (kd_tender, kd_rup_paket, hps, pemenang, ...)"))
import_app.command("kontrak")(_cmd("kontrak", "e-kontrak / BAP-BAST rows (no_kontrak, progres, pembayaran, ...)"))


@import_app.command("jadwal")
def jadwal_cmd(file: Path = typer.Argument(..., help="The time schedule (kurva S rencana): .xlsx or .csv"),
               kontrak: str = typer.Option(..., "--kontrak", help="The contract number (no_kontrak)"),
               sheet: Optional[str] = typer.Option(None, help="Sheet of an .xlsx (default: the first)"),
               mulai: Optional[str] = typer.Option(None, "--mulai",
                                                   help="Week 1 starts on this day (default: the contract's SPMK)"),
               relatif: bool = typer.Option(False, "--relatif",
                                            help="The weights are relative (need not add up to 100 %)")):
    """Import a contract's time schedule as PPK offices lay it out (NO | URAIAN PEKERJAAN | BOBOT (%) |
    Minggu ke 1 2 3 ...): its weighted items make the planned S-curve. A re-import changes nothing."""
    from hub.works.jadwal import ScheduleRejected, import_schedule
    from hub.works.parse import CellError, day
    from hub.lines.hotline.importer import ImportError_

    cfg = _prepared()
    try:
        start = day(mulai, "--mulai") if mulai else None
        r = import_schedule(file, kontrak, cfg, sheet=sheet, actor="cli", start=start, relative=relatif)
    except ScheduleRejected as exc:
        for n, msg in exc.problems[:200]:
            err.print(f"[yellow]baris {n}:[/] {msg}" if n else f"[yellow]{msg}[/]", highlight=False)
        err.print("[bold red]error:[/] jadwal ditolak, tidak ada yang disimpan")
        raise typer.Exit(2)
    except (ImportError_, CellError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2)
    sc = r.schedule
    err.print("columns: " + ", ".join(f"{k} <- {v!r}" for k, v in sc.columns.items()), highlight=False)
    what = "dates in the header" if sc.dated else f"weeks from {r.start.isoformat()}"
    err.print(f"{sc.rows} items, {len(sc.periods)} periods ({what}) -> {len(sc.items)} schedule items",
              highlight=False)
    err.print(f"planned from {r.start.isoformat()} to {r.end.isoformat()}", highlight=False)
    if sc.split:
        err.print(f"uneven weekly plan, split into runs: {', '.join(sc.split[:10])}", highlight=False)
    if sc.of_item:
        err.print(f"weekly values read as % of the item: {', '.join(sc.of_item[:10])}", highlight=False)
    for note in sc.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    err.print(f"contract {r.contract}: " + ("schedule updated (history kept)" if r.changed else "unchanged"),
              highlight=False)


@works_app.command("flags")
def flags_cmd():
    """Compute the red flags now (the server does it every 15 minutes)."""
    from hub.db import get_engine
    from hub.works.service import recompute_all

    stats = recompute_all(get_engine(), _prepared())
    err.print(f"flags: {stats['opened']} opened, {stats['refreshed']} still open, {stats['cleared']} cleared")


@works_app.command("key")
def key_cmd(name: str = typer.Argument(..., help="Who uses the key, e.g. 'CV Maju Jaya'"),
            npwp: str = typer.Option(..., help="The contractor's NPWP: the key sees only contracts won by it")):
    """Create a contractor API key (role contractor): printed once, stored only hashed."""
    from hub.db import session_scope
    from hub.works.api import create_contractor_key
    from hub.works.parse import CellError

    _prepared()
    scope = session_scope
    try:
        with scope() as s:
            key = create_contractor_key(s, name, npwp)
    except (ValueError, CellError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2)
    err.print("API key (shown once, keep it secret):")
    typer.echo(key)
