"""Hub side of the PSC 119 / BPBD hotlines: the incident-type and place lists from config, and
processing one call at once so the call taker sees ticket code, OPD and urgency immediately.

Reads config/<regency>/hotlines.yaml and wilayah.csv; checks every incident type's `routing`
against routing.yaml at load. Never sends anything itself; replies go through hub.replies.
"""
from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from adapters.hotline import HotlineAdapter, HotlineLine, HotlineSpec, IncidentType, Places, canon
from hub.config import ConfigError, _node_lines, load_yaml, regency_config
from hub.db import get_engine, writer
from hub.intake import Accepted
from hub.logging import get_logger
from hub.models import Opd, RawMessage, Ticket
from hub.settings import get_settings

log = get_logger(__name__)


def _fail(path: Path, at: tuple, problem: str) -> None:
    lines = _node_lines(path)
    probe = at
    while probe and probe not in lines:
        probe = probe[:-1]
    raise ConfigError(path, lines.get(probe), problem)


@lru_cache(maxsize=4)
def hotline_spec(config_dir: str) -> HotlineSpec:
    """hotlines.yaml + wilayah.csv, validated; a broken file stops with its file and line."""
    d = Path(config_dir)
    path = d / "hotlines.yaml"
    data = load_yaml(path) or {}
    routing = load_yaml(d / "routing.yaml") or {}
    known_routing = {" ".join(str(k).lower().replace("_", " ").split()) for k in (routing.get("incident_types") or {})}
    if not isinstance(data, dict) or not isinstance(data.get("lines"), dict) or not data["lines"]:
        _fail(path, (), "expected 'lines:' with psc119 / bpbd")
    channels = set(((regency_config(config_dir).channels or {}).get("channels") or {}).keys())
    lines: dict[str, HotlineLine] = {}
    for name, spec in data["lines"].items():
        at = ("lines", name)
        if name not in channels:
            _fail(path, at, f"line {name!r} is not a channel in channels.yaml")
        if not isinstance(spec, dict) or not isinstance(spec.get("incident_types"), dict) or not spec["incident_types"]:
            _fail(path, at, f"line {name}: needs a non-empty 'incident_types' mapping")
        types, seen = [], set()
        for key, it in spec["incident_types"].items():
            it = it or {}
            where = at + ("incident_types", key)
            if not isinstance(it, dict):
                _fail(path, where, f"{name}.{key}: expected a mapping (label, routing, aliases)")
            r = it.get("routing")
            if canon(r or key) not in {canon(k) for k in known_routing}:
                _fail(path, where, f"{name}.{key}: {'routing ' + repr(r) if r else 'the type'} is not an incident "
                                   "type in routing.yaml, so the normalizer would not know its urgency")
            aliases = tuple(str(a) for a in (it.get("aliases") or []))
            for n in (key, *aliases):
                if canon(n) in seen:
                    _fail(path, where, f"{name}.{key}: {n!r} is used twice in line {name}")
                seen.add(canon(n))
            types.append(IncidentType(key=str(key), label=str(it.get("label") or str(key).capitalize()),
                                      routing=str(r) if r else None, aliases=aliases))
        colours = tuple(str(c).lower() for c in (spec.get("triage_colours") or []))
        lines[name] = HotlineLine(name=name, label=str(spec.get("label") or name), incident_types=tuple(types),
                                  triage_colours=colours)
    places = Places.from_rows(regency_config(config_dir).places)  # wilayah.csv, parsed once by the config
    sla = load_yaml(d / "sla.yaml") or {}
    return HotlineSpec(lines=lines, places=places, timezone=str(sla.get("timezone") or "Asia/Jakarta"))


def hotline_adapter(config_dir: str | None = None) -> HotlineAdapter:
    return HotlineAdapter(hotline_spec(str(config_dir or get_settings().config_dir)))


def process_one(raw_id: int, engine: Engine | None = None) -> None:
    """Normalize and route one stored message now (the processing job would do it within
    a fraction of a second; an emergency call should not wait even that, nor behind a backlog).
    Same steps as hub.processing.process_pending, for one row."""
    from datetime import datetime, timezone

    from hub.processing import _normalize_all, _write_all

    engine = engine or get_engine()
    cfg = regency_config(str(get_settings().config_dir))
    with Session(writer(engine), expire_on_commit=False) as s:
        q = select(RawMessage).where(RawMessage.id == raw_id, RawMessage.state == "pending")
        if engine.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        raws = list(s.scalars(q))
        if not raws:  # done already, or a worker holds it right now
            s.rollback()
            return
        now = datetime.now(timezone.utc)
        _write_all(s, raws, _normalize_all(s, raws, cfg, now), cfg, now)
        s.commit()


def call_outcome(accepted: Accepted, engine: Engine | None = None, wait_s: float = 5.0) -> dict[str, Any]:
    """What the call taker sees after saving a call: the ticket, its OPD and urgency."""
    from hub.tickets import resolve_code

    engine = engine or get_engine()
    deadline = time.monotonic() + wait_s
    while True:
        process_one(accepted.raw_id, engine)
        with Session(engine) as s:
            raw = s.get(RawMessage, accepted.raw_id)
            t = resolve_code(s, accepted.ticket_code)
            if t is not None or raw is None or raw.state not in ("pending",) or time.monotonic() > deadline:
                out: dict[str, Any] = {"code": accepted.ticket_code, "duplicate": accepted.duplicate,
                                       "processed": t is not None,
                                       "status_url": f"/api/v1/tickets/{accepted.ticket_code}"}
                if t is not None:
                    opd = s.get(Opd, t.opd_code)
                    out.update(ticket=summary(t, opd.name if opd else t.opd_code))
                    if t.code != accepted.ticket_code:
                        out["repeat_of"] = t.code
                elif raw is not None:
                    out["state"], out["error"] = raw.state, raw.error
                return out
        time.sleep(0.05)  # a worker in another process holds the row: it is about to finish


def summary(t: Ticket, opd_name: str | None = None) -> dict[str, Any]:
    f = t.fields or {}
    return {"code": t.code, "channel": t.channel, "status": t.status, "urgency": t.urgency,
            "opd": t.opd_code, "opd_name": opd_name, "category": t.category, "subcategory": t.subcategory,
            "incident_type": f.get("hotline_type") or f.get("incident_type"), "incident_label": f.get("incident_label"),
            "kecamatan_code": t.kecamatan_code, "desa_code": t.desa_code, "address": t.address,
            "needs_triage": t.needs_triage, "incident_id": t.incident_id,
            "due_at": t.due_at.isoformat() if t.due_at else None, "created_at": t.created_at.isoformat(),
            "imported": bool(f.get("imported")), "text": t.text_clean[:300]}


def earlier_calls(session: Session, phone_e164: str, limit: int = 20) -> list[dict[str, Any]]:
    """Earlier tickets from one caller number, newest first. Anonymous and confidential reports
    are left out: a phone lookup must not reveal who filed them."""
    q = (select(Ticket).where(Ticket.reporter_phone == phone_e164, Ticket.anonymous.is_(False),
                              Ticket.confidential.is_(False))
         .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit))
    names = {o.code: o.name for o in session.scalars(select(Opd))}
    return [summary(t, names.get(t.opd_code)) for t in session.scalars(q)]
