"""API for OPD systems: pull their tickets, report progress back.

Thin routes: an OPD API key (or OPD user) only ever sees its own OPD's tickets; another OPD's
ticket is a 404, never a 403, so codes of other OPDs cannot be probed. Rules live in
hub.tickets (hub.tickets.opd_updates; lists through hub.tickets.TicketFilter).
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AnyHttpUrl, BaseModel, Field
from sqlalchemy import and_, or_, select
from sqlmodel import Session

from hub import tickets as T
from hub.api.deps import db_session, principal, regency_config, write_session
from hub.auth import Principal, require
from hub.config import RegencyConfig
from hub.delivery import ticket_payload
from hub.models import Ticket, TicketEvent

router = APIRouter(prefix="/api/v1/opd", tags=["opd"])


def _opd_scope(who: Principal, opd: str | None) -> str | None:
    require(who, "opd", "admin")
    if who.role == "opd":
        if opd and opd != who.opd_code:
            raise T.Forbidden(f"this key belongs to OPD {who.opd_code}")
        return who.opd_code
    return opd


@router.get("/tickets")
def pull_tickets(
    status: str | None = Query(None, description="comma-separated: menunggu, diproses, selesai, ditolak, digabung"),
    since: datetime | None = Query(None, description="only tickets changed at or after this time (ISO 8601)"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    limit: int = Query(100, ge=1, le=500),
    opd: str | None = Query(None, max_length=32, description="admins only: one OPD"),
    session: Session = Depends(db_session), who: Principal = Depends(principal),
):
    """Tickets of the caller's OPD, oldest change first. Keep the last `next_cursor` and pass it
    next time to get only what changed since (a ticket that changes again comes back)."""
    scope = _opd_scope(who, opd)
    wanted = [s.strip() for s in status.split(",") if s.strip()] if status else []
    bad = sorted(set(wanted) - {"menunggu", "diproses", "selesai", "ditolak", "digabung"})
    if bad:
        raise T.TicketError(f"unknown status {', '.join(bad)}")
    q = T.TicketFilter(statuses=wanted, opd=scope, updated_since=since).query(who)
    if cursor:  # changed later than the last ticket of the previous page (time, then id)
        at, tid = T.decode_cursor(cursor, datetime, int)
        q = q.where(or_(Ticket.updated_at > at, and_(Ticket.updated_at == at, Ticket.id > tid)))
    rows = list(session.scalars(q.order_by(Ticket.updated_at, Ticket.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [ticket_payload(t) for t in rows], "has_more": more,
            "next_cursor": T.encode_cursor(rows[-1].updated_at, rows[-1].id) if rows else cursor}


def _ticket_for(session: Session, code: str, who: Principal) -> Ticket:
    return T.get_visible(session, code, who)


@router.get("/tickets/{code}")
def pull_ticket(code: str, session: Session = Depends(db_session), who: Principal = Depends(principal)):
    _opd_scope(who, None)
    t = _ticket_for(session, code, who)
    out = ticket_payload(t)
    out["history"] = [T.event_dict(e) for e in session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == t.id).order_by(TicketEvent.id))]
    return out


class StatusUpdate(BaseModel):
    model_config = {"extra": "forbid"}
    status: Literal["diterima", "diproses", "selesai", "bukan_kewenangan"] = Field(
        description="diterima: acknowledged (no status change); diproses; selesai; "
                    "bukan_kewenangan: not this OPD's authority, goes back to triage (note required)")
    note: str | None = Field(default=None, max_length=2000, description="shown to the reporter for diproses/selesai")
    photo_url: AnyHttpUrl | None = Field(default=None, description="photo of the work done, http(s) URL")
    external_id: str | None = Field(default=None, max_length=200, description="the OPD system's own reference")


@router.post("/tickets/{code}/status")
def report_status(code: str, body: StatusUpdate, session: Session = Depends(write_session),
                  who: Principal = Depends(principal), cfg: RegencyConfig = Depends(regency_config)):
    require(who, "opd", "admin")
    t = _ticket_for(session, code, who)
    T.apply_opd_update(session, t, body.status, who.actor, cfg, body.note,
                       str(body.photo_url) if body.photo_url else None, body.external_id)
    session.commit()
    session.refresh(t)
    return ticket_payload(t)
