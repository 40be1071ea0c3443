"""Admin API over the outbox: list rows (dead letters first of all) and replay a dead letter.

Thin routes over hub.outbox; admin only. The dashboard's outbox page is built on these.
"""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlmodel import Session

from hub import outbox
from hub.api.deps import db_session, principal, write_session
from hub.auth import Principal, require

router = APIRouter(prefix="/api/v1/admin/outbox", tags=["admin"])


@router.get("")
def list_outbox(state: Literal["pending", "done", "dead"] | None = Query(None, description="pending, done or dead"),
                kind: str | None = Query(None, max_length=20, description="deliver, reply, lapor_push, notify"),
                target: str | None = Query(None, max_length=200), limit: int = Query(50, ge=1, le=500),
                cursor: int | None = Query(None, ge=1, description="next_cursor of the previous page"),
                session: Session = Depends(db_session), who: Principal = Depends(principal)):
    require(who, "admin")
    page = outbox.list_rows(session, state=state, kind=kind, target=target, limit=limit, before_id=cursor)
    return {"items": [outbox.row_dict(r) for r in page.rows], "next_cursor": page.next_cursor,
            "counts": outbox.counts(session)}


@router.post("/replay")
def replay_dead_letters(kind: str | None = Query(None, max_length=20), target: str | None = Query(None, max_length=200),
                        session: Session = Depends(write_session), who: Principal = Depends(principal)):
    """Replay every dead letter of a kind and/or target (at most 1000 per call): after an OPD
    fixed its server. Give at least one filter."""
    require(who, "admin")
    if not kind and not target:
        raise HTTPException(400, "give kind and/or target: replaying every dead letter at once is rarely meant")
    ids = outbox.replay_many(session, kind=kind, target=target)
    session.commit()
    return {"replayed": len(ids), "ids": ids}


@router.get("/{outbox_id}")
def get_outbox_row(outbox_id: int, session: Session = Depends(db_session), who: Principal = Depends(principal)):
    require(who, "admin")
    from hub.models import Outbox

    row = session.get(Outbox, outbox_id)
    if row is None:
        raise HTTPException(404, f"outbox row {outbox_id} not found")
    return outbox.row_dict(row)


@router.post("/{outbox_id}/replay")
def replay_outbox_row(outbox_id: int, session: Session = Depends(write_session),
                      who: Principal = Depends(principal)):
    require(who, "admin")
    try:
        row = outbox.replay(session, outbox_id)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    session.commit()
    return outbox.row_dict(row)
