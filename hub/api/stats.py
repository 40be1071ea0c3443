"""GET /api/v1/stats/summary: what the regional head's dashboard counts."""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Depends
from sqlmodel import Session

from hub.api.deps import db_session, principal
from hub.auth import Principal
from hub.stats import summary

router = APIRouter(prefix="/api/v1", tags=["stats"])


@router.get("/stats/summary")
def stats_summary(since: datetime | None = None, until: datetime | None = None,
                  opd: str | None = None, channel: str | None = None, kecamatan: str | None = None,
                  session: Session = Depends(db_session), who: Principal = Depends(principal)):
    if who.role == "opd":
        opd = who.opd_code
    return summary(session, since=since, until=until, opd=opd, channel=channel, kecamatan=kecamatan,
                   now=datetime.now(timezone.utc))
