"""Open tickets still on an OPD code that the configuration now lists as another OPD's alias
(SOTK 2026: DISHUB's tasks went to PKPP, opds.yaml keeps DISHUB as PKPP's alias) move to that
OPD, each with a `rerouted` event saying why and a delivery to the new OPD.

Driven by the configuration, not by a fixed mapping: a regency that keeps its own DISHUB lists
it as an OPD (not an alias) and nothing moves. Runs at every start (next to the OPD sync, which
makes such a code inactive), at `simpul db upgrade` and as `simpul db move-aliases`; moving is
idempotent (a moved ticket is no longer on the alias). Closed tickets keep their history.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from hub.config import RegencyConfig
from hub.logging import get_logger
from hub.models import OPEN_STATUSES, Ticket

log = get_logger(__name__)
ACTOR = "system:opd-alias"


def alias_codes(cfg: RegencyConfig) -> dict[str, str]:
    """{former code -> the OPD that took it over}: code-like aliases that are no OPD of their own."""
    codes = cfg.opd_codes()
    out: dict[str, str] = {}
    for o in cfg.opds:
        for alias in o.aliases:
            a = str(alias).strip().upper()
            if a and a not in codes and " " not in a:
                out[a] = o.code
    return out


def move_alias_tickets(session: Session, cfg: RegencyConfig) -> dict[str, int]:
    """Re-route every open ticket on an alias code to its OPD (the caller commits).
    Returns {"DISHUB->PKPP": n, ...}."""
    from hub.tickets import reroute

    mapping = alias_codes(cfg)
    if not mapping:
        return {}
    q = (select(Ticket).where(Ticket.opd_code.in_(list(mapping)), Ticket.status.in_(OPEN_STATUSES))
         .order_by(Ticket.id))
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)  # several processes starting at once: each ticket once
    moved: dict[str, int] = {}
    for ticket in session.scalars(q):
        old, new = ticket.opd_code, mapping[ticket.opd_code]
        note = (f"Dipindahkan otomatis dari {old} ke {new}: tugas {old} kini dijalankan {new} "
                f"({old} tercatat sebagai alias {new} di opds.yaml).")
        reroute(session, ticket, new, ACTOR, cfg, note=note, learn=False)
        moved[f"{old}->{new}"] = moved.get(f"{old}->{new}", 0) + 1
    if moved:
        log.info("tickets.moved_from_alias", moved=moved)
    return moved
