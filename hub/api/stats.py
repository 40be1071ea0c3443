"""GET /api/v1/stats/summary and /stats/trend: what the regional head's dashboard counts.

Thin: parse, scope OPD callers to their own OPD, call hub.stats. Never counts by itself.
"""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from sqlmodel import Session

from hub.api.deps import db_session, principal
from hub.auth import READ_ROLES, Principal, require
from hub.stats import reopened, summary, trend

router = APIRouter(prefix="/api/v1", tags=["stats"])


@router.get("/stats/summary")
def stats_summary(since: datetime | None = None, until: datetime | None = None,
                  opd: str | None = None, channel: str | None = None, kecamatan: str | None = None,
                  session: Session = Depends(db_session), who: Principal = Depends(principal)):
    """Counts by status, OPD (overdue, median hours to finish), channel, kecamatan, urgency;
    incidents by status; `reopened`: tickets moved back from selesai/ditolak to menunggu in the
    period (by the same filters). Without since/until: all time, from the rollup table."""
    require(who, *READ_ROLES)
    if who.role == "opd":
        opd = who.opd_code
    out = dict(summary(session, since=since, until=until, opd=opd, channel=channel, kecamatan=kecamatan))
    out["reopened"] = reopened(session, since=since, until=until, opd=opd, channel=channel, kecamatan=kecamatan)
    return out


@router.get("/stats/trend")
def stats_trend(since: datetime | None = None, until: datetime | None = None,
                opd: str | None = None, channel: str | None = None, kecamatan: str | None = None,
                session: Session = Depends(db_session), who: Principal = Depends(principal)):
    """Tickets received per day (periods up to 62 days) or per week (WIB); default 12 weeks."""
    require(who, *READ_ROLES)
    if who.role == "opd":
        opd = who.opd_code
    return trend(session, since=since, until=until, opd=opd, channel=channel, kecamatan=kecamatan)
