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
                                       cache_key=("cli", len(learned.get("features", {})) if learned else 0))
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


@router_app.command("learn")
def learn(file: Path = typer.Argument(..., help='JSONL lines {"text": ..., "opd": ...}')):
    """Store labelled examples (history of correct OPDs) and retrain the router."""
    from hub.db import session_scope
    from hub.migrate import upgrade
    from hub.router_learning import retrain
    from hub.models import RoutingExample

    if not file.exists():
        _err(f"error: berkas {file} tidak ada")
        raise typer.Exit(2)
    try:
        reg = _regency(None)
        codes = set(reg.opd_codes)
    except typer.Exit:
        raise
    upgrade()
    examples: list[tuple[str, str]] = []
    bad = 0
    with file.open(encoding="utf-8") as fh:
        for no, obj, error in _lines(fh):
            if obj is not None:
                text, opd = obj.get("text"), obj.get("opd")
                if not isinstance(text, str) or not text.strip():
                    error = "kolom \"text\" kosong atau tidak ada"
                elif not isinstance(opd, str) or opd.strip().upper() not in codes:
                    error = f"OPD {opd!r} tidak dikenal (lihat opds.yaml)"
            if error:
                _err(f"baris {no}: {error}")
                bad += 1
                continue
            examples.append((obj["text"], obj["opd"].strip().upper()))
    with session_scope() as session:
        for text, opd in examples:
            session.add(RoutingExample(text=text, opd_code=opd, source="learn"))
        session.flush()
        row = retrain(session)
        total = row.examples
    print(f"{len(examples)} contoh baru dipelajari ({bad} baris dilewati); model dilatih ulang dari {total} contoh")
