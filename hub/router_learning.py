"""The router learns from what the regency already decides:
- staff re-routes and `simpul router learn` (stored as RoutingExample rows);
- LAPOR! dispositions: a LAPOR! ticket whose admin disposed it to an instansi that maps to one
  OPD (lapor.yaml `instansi_opd:`, or an OPD's code, name or alias in opds.yaml);
- tickets an OPD closed `selesai` without ever being re-routed (the routing was right).
The model (normalizer.learn: TF-IDF + linear, calibrated) is retrained from all of them and stored
as JSON in router_models: plain numbers and words with a version, never a pickle. Retraining runs
in the background (`router_retrain_job`, every 30 s: a re-route counts within a minute; new
confirmations and dispositions at most every CONFIRMED_EVERY_S) in one hub process at a time
(a lease in the database, `retrain_shared`). Never changes tickets; live
routing picks the newest model up via hub.normalizer_loader."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from hub.logging import get_logger
from hub.models import RouterModel, RoutingExample, Ticket, TicketEvent
from hub.normalizer_loader import load_normalizer_regency, newest_model
from hub.parts import Line, Periodic

log = get_logger(__name__)

MIN_EXAMPLES_FOR_MODEL = 20
MAX_EXAMPLES = 30_000  # newest re-routes / learned examples per training (bounds training time)
MAX_CONFIRMED = 20_000  # newest selesai tickets / LAPOR! dispositions used per training
CONFIRMED_EVERY_S = 900
RETRAIN_INTERVAL_S = 30
RETRAIN_LEASE = "router_retrain"
LEASE_S = 900  # longest a training may hold the lease before others take the holder for dead
_fruitless: dict | None = None  # the signature of the last try that found too little to train on


def record_example(session, text: str, opd_code: str, source: str) -> RoutingExample:
    """Store one correct (text, OPD) pair; the background job retrains within a minute."""
    ex = RoutingExample(text=text, opd_code=opd_code.strip().upper(), source=source)
    session.add(ex)
    session.flush()
    return ex


def _rules_regency():
    from hub.settings import get_settings

    return load_normalizer_regency(get_settings().config_dir)


def _lapor_instansi_map() -> dict[str, str]:
    """lapor.yaml `instansi_opd:` (instansi name as LAPOR! writes it -> OPD code), keys folded."""
    from hub.config import load_yaml
    from hub.settings import get_settings
    from normalizer.knowledge import alias_key

    path = get_settings().config_dir / "lapor.yaml"
    try:
        data = load_yaml(path) if path.exists() else {}
    except Exception:  # a broken lapor.yaml is reported by the LAPOR! line itself
        return {}
    table = (data or {}).get("instansi_opd") or {}
    return {alias_key(k): str(v).strip().upper() for k, v in table.items() if v} if isinstance(table, dict) else {}


def decided_examples(session, reg=None) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(text, OPD) pairs from every source, newest first per source, duplicates dropped, OPD
    names/aliases resolved (DISHUB -> PKPP); and how many came from each source."""
    from normalizer.knowledge import alias_key

    reg = reg or _rules_regency()
    codes = set(reg.opd_codes)
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str]] = []
    counts = {"learn": 0, "reroute": 0, "lapor": 0, "selesai": 0}

    def add(text: str | None, opd: str | None, source: str) -> None:
        code = reg.opd_for(opd) if opd else None
        if not text or not text.strip() or code not in codes or (code == reg.triage_opd and source == "selesai"):
            return  # a triage ticket closed as is says nothing about where it belonged
        key = (text.strip(), code)
        if key in seen:
            return
        seen.add(key)
        out.append(key)
        src = source if source in counts else "learn"
        counts[src] += 1

    for text, opd, source in session.execute(
            select(RoutingExample.text, RoutingExample.opd_code, RoutingExample.source)
            .order_by(RoutingExample.id.desc()).limit(MAX_EXAMPLES)):
        add(text, opd, source)

    instansi = _lapor_instansi_map()
    for text, fields in session.execute(
            select(Ticket.text_original, Ticket.fields).where(Ticket.channel == "lapor")
            .order_by(Ticket.id.desc()).limit(MAX_CONFIRMED)):
        disp = (fields or {}).get("disposition") if isinstance(fields, dict) else None
        if disp:
            add(text, instansi.get(alias_key(disp)) or disp, "lapor")

    # closed selesai by a person or an OPD system (not an imported hotline log closed on arrival,
    # not the system), and never re-routed: the OPD accepted the routing by doing the work
    rerouted = select(TicketEvent.ticket_id).where(TicketEvent.kind == "rerouted")
    closed_by_people = select(TicketEvent.ticket_id).where(
        TicketEvent.kind == "status", TicketEvent.to_status == "selesai",
        TicketEvent.actor.like("user:%") | TicketEvent.actor.like("key:%"))
    for text, opd in session.execute(
            select(Ticket.text_original, Ticket.opd_code)
            .where(Ticket.status == "selesai", Ticket.id.not_in(rerouted), Ticket.id.in_(closed_by_people))
            .order_by(Ticket.id.desc()).limit(MAX_CONFIRMED)):
        add(text, opd, "selesai")
    return out, counts


def _signature(session) -> dict[str, int]:
    """Cheap numbers that change when there is something new to learn."""
    return {
        "last_example_id": int(session.scalar(select(func.max(RoutingExample.id))) or 0),
        "selesai": int(session.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "selesai")) or 0),
        "lapor": int(session.scalar(select(func.count()).select_from(Ticket).where(Ticket.channel == "lapor")) or 0),
    }


def retrain(session, into=None) -> RouterModel | None:
    """Train on everything the regency decided and insert a new RouterModel row; None when
    there is too little (fewer than MIN_EXAMPLES_FOR_MODEL examples or one OPD only). Reads
    through `session`; the row goes into `into` (default: the same session), so a caller can
    read and train without holding SQLite's write lock and write the model in a short one."""
    from normalizer.learn import train_linear

    sig = _signature(session)
    reg = _rules_regency()
    pairs, counts = decided_examples(session, reg)
    if len(pairs) < MIN_EXAMPLES_FOR_MODEL:
        return None
    model = train_linear(pairs, reg, trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if model is None:
        return None
    model["sources"] = counts
    model["signature"] = sig
    row = RouterModel(examples=int(model["examples"]), model=model)
    into = into if into is not None else session
    into.add(row)
    into.flush()
    log.info("router.retrained", examples=row.examples, cv_accuracy=model.get("cv_accuracy"),
             threshold=model.get("threshold"), sources=counts)
    return row


def retrain_if_stale(session, into=None) -> RouterModel | None:
    """Retrain when a re-route or a learned example came in since the newest model (at once), or
    when tickets were closed or disposed (at most every CONFIRMED_EVERY_S). `into` as in retrain."""
    global _fruitless
    sig = _signature(session)
    row = newest_model(session)
    old = (row.model or {}).get("signature") if row is not None else None
    if row is None or not isinstance(old, dict):
        n = sig["last_example_id"] + sig["selesai"] + sig["lapor"]
        if n < MIN_EXAMPLES_FOR_MODEL or sig == _fruitless:
            return None  # nothing to learn yet, or nothing new since a try that found too little
        new = retrain(session, into)
        _fruitless = None if new is not None else sig
        return new
    if sig["last_example_id"] != old.get("last_example_id"):
        return retrain(session, into)
    if (sig["selesai"], sig["lapor"]) != (old.get("selesai"), old.get("lapor")):
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=timezone.utc)
        if datetime.now(timezone.utc) - created >= timedelta(seconds=CONFIRMED_EVERY_S):
            return retrain(session, into)
    return None


def retrain_shared(engine=None, owner: str | None = None) -> tuple[bool, RouterModel | None]:
    """`retrain_if_stale` for one of several processes: it runs only in the process that takes
    the `router_retrain` lease (hub.leases); the others skip this round. The lease is held
    while training (at most LEASE_S, in case the holder dies) and then kept RETRAIN_INTERVAL_S
    more, so one process retrains per interval and the next one sees its model's signature.
    Returns (this process ran it, the new model or None)."""
    from sqlmodel import Session

    from hub import leases
    from hub.db import get_engine, session_scope

    engine = engine or get_engine()
    owner = owner or leases.PROCESS_ID
    if not leases.acquire(engine, RETRAIN_LEASE, LEASE_S, owner):
        return False, None
    try:
        # Read and train in a plain session (on SQLite a deferred BEGIN: in WAL mode it never
        # blocks a writer); only the new model's INSERT takes the write lock, for a moment, so
        # intake does not wait behind seconds of training.
        with Session(engine) as reading, session_scope(engine) as writing:
            return True, retrain_if_stale(reading, into=writing)
    finally:
        leases.release(engine, RETRAIN_LEASE, owner, hold_s=RETRAIN_INTERVAL_S - 1)


async def router_retrain_job() -> None:
    """Periodic job (hub.workers): retrain in a thread so the event loop keeps serving."""
    await asyncio.to_thread(retrain_shared)


def router_status(session) -> dict:
    """What the admin page shows: examples per OPD, cross-validated accuracy, last training."""
    row = newest_model(session)
    m = (row.model or {}) if row is not None else {}
    return {
        "trained_at": m.get("trained_at") or (row.created_at.isoformat(timespec="seconds") if row else None),
        "kind": m.get("kind"),
        "examples": int(m.get("examples", row.examples if row else 0) or 0),
        "cv_accuracy": m.get("cv_accuracy"),
        "threshold": m.get("threshold"),
        "per_opd": dict(sorted((m.get("class_examples") or m.get("class_docs") or {}).items(),
                               key=lambda kv: -int(kv[1]))),
        "sources": m.get("sources") or {},
    }


def feature(settings) -> Line:
    """The router's background retraining, wired like any other part (hub.wiring)."""
    return Line("router_learning", periodic=[Periodic("router_retrain", RETRAIN_INTERVAL_S, router_retrain_job)])
