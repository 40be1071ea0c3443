"""Ticket API: list with filters and cursor pagination, one ticket with history, changes."""
from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import or_, select
from sqlmodel import Session

from hub import tickets as T
from hub.api.deps import db_session, principal, regency_config, write_session
from hub.auth import Principal, require
from hub.config import RegencyConfig
from hub.models import OPEN_STATUSES, RawMessage, Ticket, TicketEvent

router = APIRouter(prefix="/api/v1", tags=["tickets"])


def _cursor_encode(ticket_id: int) -> str:
    return base64.urlsafe_b64encode(str(ticket_id).encode()).decode().rstrip("=")


def _cursor_decode(cursor: str) -> int:
    try:
        value = int(base64.urlsafe_b64decode(cursor[:64] + "=" * (-len(cursor) % 4)).decode())
    except Exception:
        value = 0
    if len(cursor) > 64 or not 0 < value < 2 ** 63:  # a ticket id: positive, a 64-bit integer
        raise HTTPException(400, "invalid cursor: pass next_cursor of the previous page unchanged")
    return value


def visible(q, who: Principal):
    """OPD staff and OPD keys see only their own OPD's tickets."""
    if who.role == "opd":
        return q.where(Ticket.opd_code == who.opd_code)
    return q


def get_visible_ticket(session: Session, code: str, who: Principal) -> Ticket:
    t = T.resolve_code(session, code)
    if t is None or (who.role == "opd" and t.opd_code != who.opd_code):
        raise HTTPException(404, f"ticket {code} not found")
    return t


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
    stmt = visible(select(Ticket), who)
    if status:
        stmt = stmt.where(Ticket.status.in_([s.strip() for s in status.split(",")]))
    if opd:
        stmt = stmt.where(Ticket.opd_code == opd)
    if channel:
        stmt = stmt.where(Ticket.channel == channel)
    if kecamatan:
        stmt = stmt.where(Ticket.kecamatan_code == kecamatan)
    if urgency:
        stmt = stmt.where(Ticket.urgency == urgency)
    if q:
        like = f"%{q.strip()}%"
        stmt = stmt.where(or_(Ticket.text_original.ilike(like), Ticket.code == q.strip().upper()))
    if since:
        stmt = stmt.where(Ticket.created_at >= _aware(since))
    if until:
        stmt = stmt.where(Ticket.created_at < _aware(until))
    if overdue is not None:
        now = datetime.now(timezone.utc)
        cond = (Ticket.status.in_(OPEN_STATUSES)) & (Ticket.due_at < now)
        stmt = stmt.where(cond if overdue else ~cond)
    if needs_triage is not None:
        stmt = stmt.where(Ticket.needs_triage.is_(needs_triage))
    if cursor:
        stmt = stmt.where(Ticket.id < _cursor_decode(cursor))
    rows = list(session.scalars(stmt.order_by(Ticket.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [T.ticket_dict(t, include_reporter=who.role != "opd") for t in rows],
            "next_cursor": _cursor_encode(rows[-1].id) if more and rows else None}


def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


@router.get("/tickets/{code}")
def get_ticket(code: str, session: Session = Depends(db_session), who: Principal = Depends(principal)):
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
    if t.incident_id:
        out["incident_tickets"] = list(session.scalars(
            select(Ticket.code).where(Ticket.incident_id == t.incident_id, Ticket.id != t.id)))
    return out


class TicketPatch(BaseModel):
    model_config = {"extra": "forbid"}
    status: Literal["menunggu", "diproses", "selesai", "ditolak"] | None = None
    opd: str | None = Field(default=None, max_length=32)
    merge_into: str | None = Field(default=None, max_length=10)
    note: str | None = Field(default=None, max_length=2000, description="why (shown in history)")


@router.patch("/tickets/{code}")
def patch_ticket(code: str, body: TicketPatch, session: Session = Depends(write_session),
                 who: Principal = Depends(principal), cfg: RegencyConfig = Depends(regency_config)):
    require(who, "admin", "operator", "opd")
    if body.status is None and body.opd is None and body.merge_into is None:
        raise HTTPException(400, "nothing to change: give status, opd or merge_into")
    t = get_visible_ticket(session, code, who)
    try:
        if body.opd is not None:
            if who.role == "opd":
                raise HTTPException(403, "OPD users hand a ticket back with status 'ditolak'; re-routing is for admins")
            T.reroute(session, t, body.opd, who.actor, cfg, body.note)
        if body.merge_into is not None:
            into = T.resolve_code(session, body.merge_into)
            if into is None:
                raise HTTPException(404, f"ticket {body.merge_into} not found")
            T.merge(session, t, into, who.actor, cfg, body.note)
        if body.status is not None:
            T.change_status(session, t, body.status, who.actor, cfg, body.note)
        session.commit()
    except T.TicketError as exc:
        session.rollback()
        raise HTTPException(exc.status_code, str(exc)) from None
    return get_ticket(t.code, session, who)
