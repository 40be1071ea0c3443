"""Ticket API: list with filters and cursor pagination, one ticket with history, changes."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import Session

from hub import tickets as T
from hub.api.deps import db_session, principal, regency_config, write_session
from hub.auth import READ_ROLES, Principal, require
from hub.config import RegencyConfig
from hub.models import RawMessage, Ticket, TicketEvent

router = APIRouter(prefix="/api/v1", tags=["tickets"])


def visible(q, who: Principal):
    """OPD staff and OPD keys see only their own OPD's tickets (hub.tickets.visible_to)."""
    return T.visible_to(q, who)


def get_visible_ticket(session: Session, code: str, who: Principal) -> Ticket:
    return T.get_visible(session, code, who)


@router.get("/tickets")
def list_tickets(
    status: str | None = Query(None, description="menunggu, diproses, selesai, ditolak, digabung; comma-separated"),
    opd: str | None = None, channel: str | None = None, kecamatan: str | None = None,
    urgency: str | None = None, q: str | None = Query(None, max_length=200, description="text search"),
    since: datetime | None = None, until: datetime | None = None,
    overdue: bool | None = None, needs_triage: bool | None = None,
    limit: int = Query(50, ge=1, le=500), cursor: str | None = None,
    session: Session = Depends(db_session), who: Principal = Depends(principal),
):
    require(who, *READ_ROLES)
    stmt = T.TicketFilter(
        statuses=[s.strip() for s in status.split(",")] if status else (), opd=opd, channel=channel,
        kecamatan=kecamatan, urgency=urgency, text=q, created_since=since, created_until=until,
        overdue=overdue, needs_triage=needs_triage).query(who)
    if cursor:
        (before,) = T.decode_cursor(cursor, int)
        stmt = stmt.where(Ticket.id < before)
    rows = list(session.scalars(stmt.order_by(Ticket.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [T.ticket_dict(t, include_reporter=who.role != "opd") for t in rows],
            "next_cursor": T.encode_cursor(rows[-1].id) if more and rows else None}


@router.get("/tickets/{code}")
def get_ticket(code: str, session: Session = Depends(db_session), who: Principal = Depends(principal),
               cfg: RegencyConfig = Depends(regency_config)):
    require(who, *READ_ROLES)
    t = T.resolve_code(session, code) if who.role != "opd" else None
    if t is None and who.role != "opd":
        raw = session.scalars(select(RawMessage).where(RawMessage.ticket_code == code.strip().upper())).first()
        if raw is not None and raw.state == "pending":
            return JSONResponse({"code": raw.ticket_code, "status": "diterima",
                                 "detail": "received; being normalized and routed"}, status_code=202)
    t = get_visible_ticket(session, code, who)
    events = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id).order_by(TicketEvent.id))
    out = T.ticket_dict(t, include_reporter=who.role != "opd")
    out["history"] = [T.event_dict(e) for e in events]
    # the router's top three guesses (stored on the "routed" event); a triage ticket is accepted
    # with one PATCH {"opd": <one of them>}, which also teaches the router
    routed = next((h for h in out["history"] if h.get("kind") == "routed"), None)
    cands = ((routed or {}).get("data") or {}).get("candidates") or []
    out["suggested_opds"] = [{"opd": c[0], "confidence": c[1]} for c in cands[:3]
                             if isinstance(c, (list, tuple)) and len(c) == 2 and c[0] in cfg.opd_codes()]
    if t.incident_id:
        # only the incident's tickets the caller may see: another OPD's codes are not revealed
        out["incident_tickets"] = [o.code for o in session.scalars(T.visible_to(
            select(Ticket).where(Ticket.incident_id == t.incident_id, Ticket.id != t.id), who).order_by(Ticket.id))]
    return out


class TicketPatch(BaseModel):
    model_config = {"extra": "forbid"}
    status: Literal["menunggu", "diproses", "selesai", "ditolak"] | None = None
    opd: str | None = Field(default=None, max_length=32)
    merge_into: str | None = Field(default=None, max_length=10)
    note: str | None = Field(default=None, max_length=2000, description="why (shown in history); alone: a note "
                             "without a status change")
    public: bool = Field(default=True, description="the note is shown to the reporter (status message, /cek); "
                         "false keeps it internal. A reason for ditolak is always public.")


@router.patch("/tickets/{code}")
def patch_ticket(code: str, body: TicketPatch, session: Session = Depends(write_session),
                 who: Principal = Depends(principal), cfg: RegencyConfig = Depends(regency_config)):
    require(who, "admin", "operator", "opd")
    if body.status is None and body.opd is None and body.merge_into is None and not (body.note or "").strip():
        raise HTTPException(400, "nothing to change: give status, opd, merge_into or note")
    t = get_visible_ticket(session, code, who)
    # hub.tickets errors become 4xx in hub.api.errors; the session is rolled back on the way out
    if body.opd is not None:
        if who.role == "opd":
            raise T.Forbidden("OPD users hand a ticket back with status 'ditolak'; re-routing is for admins")
        T.reroute(session, t, body.opd, who.actor, cfg, body.note)
    if body.merge_into is not None:
        # the same lookup (and the same 404) as the ticket itself: an OPD cannot merge into,
        # nor learn the existence of, another OPD's ticket
        into = get_visible_ticket(session, body.merge_into, who)
        T.merge(session, t, into, who.actor, cfg, body.note)
    if body.status is not None:
        # the safe-change rules (reopening is an admin's, with a reason; ditolak needs a reason)
        T.change_status(session, t, body.status, who.actor, cfg, body.note, role=who.role, public=body.public)
    elif body.opd is None and body.merge_into is None:  # only a note: no status change
        T.add_note(session, t, who.actor, body.note, public=body.public)
    session.commit()
    return get_ticket(t.code, session, who, cfg)
