"""SOTK 2026: PKPP took over Dishub's tasks and opds.yaml keeps DISHUB as PKPP's alias. Open
tickets still on DISHUB move to PKPP (at start-up, `simpul db upgrade`, `simpul db
move-aliases`), each with a `rerouted` event saying why and a delivery to PKPP; closed tickets
keep their history. SQLite and PostgreSQL."""
from __future__ import annotations

from sqlalchemy import select
from typer.testing import CliRunner

from hub.cli import app


def _tickets(engine):
    from sqlmodel import Session

    from hub.models import Outbox, Ticket, TicketEvent

    with Session(engine) as s:
        tickets = {t.code: t.opd_code for t in s.scalars(select(Ticket))}
        events = s.execute(select(Ticket.code, TicketEvent.actor, TicketEvent.from_opd, TicketEvent.to_opd,
                                  TicketEvent.note).join(Ticket, Ticket.id == TicketEvent.ticket_id)
                           .where(TicketEvent.kind == "rerouted")).all()
        outbox = s.execute(select(Outbox.kind, Outbox.payload)).all()
    return tickets, events, outbox


def _old_dishub_row(s) -> None:
    """The OPD row a hub from before SOTK 2026 has (sync_opds keeps it, inactive)."""
    from hub.models import Opd

    if s.get(Opd, "DISHUB") is None:
        s.add(Opd(code="DISHUB", name="Dinas Perhubungan", delivery={}, active=False))
        s.flush()


def test_open_dishub_tickets_move_to_pkpp_on_db_upgrade(engine, seeded):
    from hub.db import session_scope
    from tests.web.conftest import make_ticket

    with session_scope() as s:
        _old_dishub_row(s)
        make_ticket(s, "HUB0001", "DISHUB", "menunggu", text="Lampu PJU mati di depan pasar Pogalan")
        make_ticket(s, "HUB0002", "DISHUB", "diproses", text="Jukir liar di alun-alun")
        make_ticket(s, "HUB0003", "DISHUB", "selesai", text="Rambu roboh, sudah dipasang lagi")
        make_ticket(s, "PUPR0001", "PUPR", "menunggu")
    res = CliRunner().invoke(app, ["db", "upgrade"])
    assert res.exit_code == 0, res.output
    assert "DISHUB->PKPP 2" in res.output
    tickets, events, outbox = _tickets(engine)
    assert tickets == {"HUB0001": "PKPP", "HUB0002": "PKPP", "HUB0003": "DISHUB", "PUPR0001": "PUPR"}
    assert sorted((c, a, f, t) for c, a, f, t, _ in events) == [
        ("HUB0001", "system:opd-alias", "DISHUB", "PKPP"), ("HUB0002", "system:opd-alias", "DISHUB", "PKPP")]
    assert all("DISHUB" in note and "alias" in note for *_, note in events)
    assert outbox == []  # PKPP pulls over the API in the 2026 registry: the tickets are in its list
    # nothing left to move: a second run (or the next start) changes nothing
    again = CliRunner().invoke(app, ["db", "move-aliases"])
    assert again.exit_code == 0 and "none" in again.output
    assert len(_tickets(engine)[1]) == 2


def test_every_start_moves_them_and_a_regency_with_its_own_dishub_keeps_them(engine, seeded, cfg):
    import dataclasses

    from hub.config import OpdConfig
    from hub.db import session_scope
    from hub.seed import sync_opds
    from tests.web.conftest import make_ticket

    # a regency whose opds.yaml lists DISHUB as an OPD of its own: nothing moves
    own = dataclasses.replace(cfg, opds=tuple(dataclasses.replace(o, aliases=()) if o.code == "PKPP" else o
                                              for o in cfg.opds) + (OpdConfig(code="DISHUB", name="Dinas Perhubungan"),))
    with session_scope() as s:
        sync_opds(s, own)
        make_ticket(s, "HUB0009", "DISHUB", "menunggu")
        _old_dishub_row(s)
    with session_scope() as s:
        sync_opds(s, own)
    assert _tickets(engine)[0]["HUB0009"] == "DISHUB"
    # the 2026 registry (DISHUB an alias of PKPP), applied as at every start: it moves, and a
    # PKPP that takes deliveries by e-mail gets this one as a re-routed ticket
    mailed = dataclasses.replace(cfg, opds=tuple(
        dataclasses.replace(o, delivery={"type": "email", "to": ["pengaduan.pkpp@trenggalekkab.go.id"]})
        if o.code == "PKPP" else o for o in cfg.opds))
    with session_scope() as s:
        sync_opds(s, mailed)
    tickets, events, outbox = _tickets(engine)
    assert tickets["HUB0009"] == "PKPP" and len(events) == 1
    assert [(kind, p["event"], p["code"]) for kind, p in outbox] == [("deliver", "ticket.rerouted", "HUB0009")]
