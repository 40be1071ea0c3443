"""Puts the regency config (OPD registry) into the database at start-up."""
from __future__ import annotations

from sqlmodel import Session

from hub.config import RegencyConfig
from hub.models import Opd


def sync_opds(session: Session, cfg: RegencyConfig, move_aliases: bool = True) -> int:
    """Insert or update every configured OPD; OPDs no longer configured are marked inactive, and
    open tickets on a code that is now another OPD's alias move to that OPD (hub.tickets.aliases)."""
    configured = {o.code: o for o in cfg.opds}
    for code, o in configured.items():
        row = session.get(Opd, code) or Opd(code=code, name=o.name)
        row.name, row.kind, row.head_contact, row.delivery, row.active = o.name, o.kind, o.head_contact, dict(o.delivery), True
        session.add(row)
    for row in session.query(Opd).all():
        if row.code not in configured:
            row.active = False
            session.add(row)
    if move_aliases:
        from hub.tickets.aliases import move_alias_tickets

        session.flush()
        move_alias_tickets(session, cfg)
    return len(configured)


def prepare_database(cfg: RegencyConfig) -> None:
    """Migrate to head and put the OPDs in place: what a CLI command that writes needs first."""
    from hub.db import session_scope
    from hub.migrate import upgrade

    upgrade()
    with session_scope() as s:
        sync_opds(s, cfg)
