"""`simpul import psc119|bpbd F.csv|F.xlsx`: old hotline call logs into the hub, with a progress
bar, every bad row named by its row number on stderr, and a summary. Re-importing adds nothing.
The import itself is hub/lines/hotline/importer.py; this file only talks to the person at the terminal.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hub.config import ConfigError

import_app = typer.Typer(help="Import old hotline call logs (CSV/XLSX) as closed historic tickets.",
                         no_args_is_help=True)
err = Console(stderr=True)

MAPPING_HELP = "YAML file naming the sheet's columns, e.g. 'columns: {time: Tgl Lapor, caller_name: Penelpon}'"


def _run(line: str, file: Path, mapping: Optional[Path], sheet: Optional[str], id_column: Optional[str],
         chunk: int, progress: bool, jobs: Optional[int] = None) -> None:
    from hub.config import regency_config
    from hub.lines.hotline.importer import ImportError_, import_file, load_mapping
    from hub.seed import prepare_database
    from hub.settings import get_settings

    try:
        cols = load_mapping(mapping)
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] mapping file: {exc}")
        raise typer.Exit(2)
    prepare_database(regency_config(str(get_settings().config_dir)))  # database migrated and OPDs in place before the first row
    shown = 0

    def bad_row(n: int, reason: str) -> None:
        nonlocal shown
        shown += 1
        if shown <= 200:
            err.print(f"[yellow]row {n}:[/] {reason}", markup=True, highlight=False)
        elif shown == 201:
            err.print("[yellow]... more bad rows; see the summary[/]")

    bar = Progress(TextColumn(f"[bold]{line}[/] {file.name}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=err, disable=not progress, transient=False)
    try:
        with bar:
            task = bar.add_task("import", total=None)

            def on_progress(done: int, total: int) -> None:
                bar.update(task, completed=min(done, total) if total else done, total=total or None)

            report = import_file(file, line, cols, sheet=sheet, id_column=id_column, chunk=chunk,
                                 on_progress=on_progress, on_bad_row=bad_row, jobs=jobs)
    except ImportError_ as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2)
    err.print("columns: " + ", ".join(f"{k} <- {v!r}" for k, v in report.columns.items()), highlight=False)
    err.print(f"ignored columns: {', '.join(repr(c) for c in report.ignored_columns) or '(none)'}", highlight=False)
    for note in report.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    rate = report.rows / report.seconds if report.seconds else 0.0
    err.print(f"{report.rows} rows read: [green]{report.imported} imported[/], {report.already} already there, "
              f"[{'red' if report.bad else 'green'}]{len(report.bad)} bad[/] "
              f"({report.seconds:.1f} s, {rate:.0f} rows/s, {report.processes} process"
              f"{'es' if report.processes > 1 else ''})")
    if report.bad:
        first = ", ".join(str(n) for n, _ in report.bad[:20])
        err.print(f"bad rows: {first}{' ...' if len(report.bad) > 20 else ''} - fix them and import the file again "
                  "(rows already imported are not added twice)")
        raise typer.Exit(1)


def _command(line: str, label: str):
    def command(file: Path = typer.Argument(..., help="The log: .csv or .xlsx", exists=False),
                mapping: Optional[Path] = typer.Option(None, "--mapping", help=MAPPING_HELP),
                sheet: Optional[str] = typer.Option(None, help="Sheet name in an .xlsx (default: the first)"),
                id_column: Optional[str] = typer.Option(
                    None, "--id-column", help="The sheet's own unique number column (default: a hash of the row)"),
                chunk: int = typer.Option(1000, min=1, max=10000, help="Rows per transaction"),
                progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar"),
                jobs: Optional[int] = typer.Option(
                    None, min=1, max=2, help="2: normalize in a second process while this one reads and writes "
                    "(the default on a machine with two cores or more); 1: one process, e.g. beside a busy hub")):
        _run(line, file, mapping, sheet, id_column, chunk, progress, jobs)

    command.__doc__ = f"Import a {label} call log. Exit 1 if some rows were bad (the rest is imported)."
    return command


import_app.command("psc119")(_command("psc119", "PSC 119"))
import_app.command("bpbd")(_command("bpbd", "BPBD Pusdalops"))
