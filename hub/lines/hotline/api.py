"""Hotline console API for PSC 119 and BPBD Pusdalops call takers: record a call (stored, then
routed at once so the response carries ticket code, OPD and urgency), the incident-type and
place lists, and earlier calls from the same number. Routes stay thin: rules live in
adapters/hotline.py and hub/lines/hotline/calls.py.
"""
from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from adapters.base import InvalidPayload
from hub.unavailable import RETRY_AFTER_S, log_throttled
from hub.api.deps import db_session, principal
from hub.api.errors import invalid
from hub.auth import Principal, require
from hub.lines.hotline.calls import call_outcome, earlier_calls, hotline_adapter
from hub.logging import get_logger
from normalizer.reporter import to_e164

log = get_logger(__name__)
router = APIRouter(prefix="/api/v1/hotline", tags=["hotline"])
WRITERS = ("operator", "admin", "intake")
READERS = ("operator", "admin", "intake", "pimpinan")


class CallIn(BaseModel):
    """What a call taker records. Types are checked here; the lists (incident types, kecamatan,
    desa, triage colours) by the hotline adapter, with every reason in one 422."""

    model_config = {"extra": "forbid"}
    id: str | None = Field(default=None, max_length=200,
                           description="The console's own id for this call: a retry with it never makes a second ticket")
    called_at: datetime | None = Field(default=None, description="Time of the call; without an offset it is local time")
    caller_name: str | None = Field(default=None, max_length=200)
    caller_phone: str | None = Field(default=None, max_length=40)
    kecamatan: str = Field(min_length=1, max_length=100, description="Name or Kemendagri code, e.g. Pogalan or 35.03.12")
    desa: str | None = Field(default=None, max_length=100)
    dusun: str | None = Field(default=None, max_length=100)
    rt_rw: str | None = Field(default=None, max_length=30, description="e.g. 003/002")
    landmark: str | None = Field(default=None, max_length=300)
    incident_type: str = Field(min_length=1, max_length=100, description="See GET /api/v1/hotline/{line}/incident-types")
    people_affected: int | None = Field(default=None, ge=0, le=100000)
    description: str | None = Field(default=None, max_length=4000, description="What the caller said")
    action_taken: str | None = Field(default=None, max_length=1000)
    team: str | None = Field(default=None, max_length=200, description="Team dispatched")
    triage_colour: str | None = Field(default=None, max_length=20, description="PSC 119 only: merah, kuning, hijau, hitam")


def _line_or_404(line: str):
    try:
        return hotline_adapter().line(line)
    except InvalidPayload as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/{line}/calls", status_code=201,
             responses={400: {"description": "malformed JSON"}, 404: {"description": "unknown hotline"},
                        422: {"description": "invalid call, with every reason"},
                        503: {"description": "not stored; retry"}})
async def record_call(line: str, body: CallIn, request: Request, who: Principal = Depends(principal)):
    require(who, *WRITERS)
    _line_or_404(line)
    form = body.model_dump(exclude_none=True)
    try:
        msg = hotline_adapter().from_console(line, form)
    except InvalidPayload as exc:
        raise invalid(str(exc), "body") from None
    try:
        accepted = await request.app.state.intake_writer.submit(msg)
    except ValueError as exc:  # hub.guard.InvalidMessage: refused at the door
        raise HTTPException(422, str(exc)) from None
    except Exception as exc:
        log_throttled("hotline.store_failed", exc, line=line)
        return JSONResponse({"detail": "call not stored, please retry"}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_S)})
    outcome = await asyncio.to_thread(call_outcome, accepted)
    log.info("hotline.call", line=line, code=accepted.ticket_code, duplicate=accepted.duplicate,
             actor=who.actor, urgency=(outcome.get("ticket") or {}).get("urgency"))
    return outcome


@router.get("/{line}/incident-types")
def incident_types(line: str, who: Principal = Depends(principal)):
    require(who, *READERS)
    hl = _line_or_404(line)
    return {"line": hl.name, "label": hl.label, "triage_colours": list(hl.triage_colours),
            "incident_types": [{"key": t.key, "label": t.label, "aliases": list(t.aliases)}
                               for t in hl.incident_types]}


@router.get("/places")
def places(who: Principal = Depends(principal)):
    """Kecamatan and their desa, for the console's pickers."""
    require(who, *READERS)
    p = hotline_adapter().spec.places
    kec = sorted({v for k, v in p.kecamatan.items() if k == v[0]})
    return {"kecamatan": [{"code": code, "name": name,
                           "desa": sorted(({"code": dc, "name": dn} for dc, dn in (p.desa.get(code) or {}).values()),
                                          key=lambda x: x["code"])}
                          for code, name in kec]}


@router.get("/lookup")
def lookup(phone: str = Query(min_length=3, max_length=40, description="Caller number in any usual form"),
           limit: int = Query(20, ge=1, le=100), session: Session = Depends(db_session),
           who: Principal = Depends(principal)):
    """Earlier tickets from the same caller number (anonymous/confidential ones never show).
    People's tickets by phone: not for intake keys, which only submit."""
    require(who, *(r for r in READERS if r != "intake"))
    e164 = to_e164(phone)
    if not e164:
        raise invalid("phone is not a phone number (e.g. 081234567890 or +6281234567890)", "query", "phone")
    return {"phone": e164, "tickets": earlier_calls(session, e164, limit)}
