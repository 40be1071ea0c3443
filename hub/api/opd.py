"""API for OPD systems: pull their tickets, report progress back.

Thin routes: an OPD API key (or OPD user) only ever sees its own OPD's tickets; another OPD's
ticket is a 404, never a 403, so codes of other OPDs cannot be probed. Rules live in
hub.delivery.apply_opd_update and hub.tickets.
"""
from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import AnyHttpUrl, BaseModel, Field
from sqlalchemy import and_, or_, select
from sqlmodel import Session

from hub import tickets as T
from hub.api.deps import db_session, principal, regency_config, write_session
from hub.app import ROUTER_HOOKS
from hub.auth import Principal, require
from hub.config import RegencyConfig
from hub.delivery import apply_opd_update, ticket_payload
from hub.models import Ticket, TicketEvent

router = APIRouter(prefix="/api/v1/opd", tags=["opd"])


def _encode(t: Ticket) -> str:
    raw = f"{t.updated_at.astimezone(timezone.utc).isoformat()}|{t.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int]:
    try:
        at, tid = base64.urlsafe_b64decode(cursor[:128] + "=" * (-len(cursor) % 4)).decode().split("|")
        when, tid = datetime.fromisoformat(at), int(tid)
        if len(cursor) > 128 or not 0 < tid < 2 ** 63:  # a ticket id: a positive 64-bit integer
            raise ValueError(tid)
        return when, tid
    except Exception:
        raise HTTPException(400, "invalid cursor: pass next_cursor of the previous page unchanged") from None


def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def _opd_scope(who: Principal, opd: str | None) -> str | None:
    require(who, "opd", "admin")
    if who.role == "opd":
        if opd and opd != who.opd_code:
            raise HTTPException(403, f"this key belongs to OPD {who.opd_code}")
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
    q = select(Ticket)
    if scope:
        q = q.where(Ticket.opd_code == scope)
    if status:
        wanted = [s.strip() for s in status.split(",") if s.strip()]
        bad = sorted(set(wanted) - {"menunggu", "diproses", "selesai", "ditolak", "digabung"})
        if bad:
            raise HTTPException(400, f"unknown status {', '.join(bad)}")
        q = q.where(Ticket.status.in_(wanted))
    if since:
        q = q.where(Ticket.updated_at >= _aware(since))
    if cursor:
        at, tid = _decode(cursor)
        q = q.where(or_(Ticket.updated_at > at, and_(Ticket.updated_at == at, Ticket.id > tid)))
    rows = list(session.scalars(q.order_by(Ticket.updated_at, Ticket.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [ticket_payload(t) for t in rows], "has_more": more,
            "next_cursor": _encode(rows[-1]) if rows else cursor}


def _ticket_for(session: Session, code: str, who: Principal) -> Ticket:
    t = T.resolve_code(session, code)
    if t is None or (who.role == "opd" and t.opd_code != who.opd_code):
        raise HTTPException(404, f"ticket {code} not found")
    return t


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
    try:
        apply_opd_update(session, t, body.status, who.actor, cfg, body.note,
                         str(body.photo_url) if body.photo_url else None, body.external_id)
        session.commit()
    except T.TicketError as exc:
        session.rollback()
        raise HTTPException(exc.status_code, str(exc)) from None
    session.refresh(t)
    return ticket_payload(t)


ROUTER_HOOKS.append(lambda app: app.include_router(router))
