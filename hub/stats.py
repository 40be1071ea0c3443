"""Counts for the dashboard: by status, OPD (with overdue), channel, kecamatan; incidents."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlmodel import Session

from hub.models import OPEN_STATUSES, Ticket

T = Ticket.__table__


def _filters(since, until, opd, channel, kecamatan) -> list:
    conds = []
    if since is not None:
        conds.append(T.c.created_at >= (since if since.tzinfo else since.replace(tzinfo=timezone.utc)))
    if until is not None:
        conds.append(T.c.created_at < (until if until.tzinfo else until.replace(tzinfo=timezone.utc)))
    if opd:
        conds.append(T.c.opd_code == opd)
    if channel:
        conds.append(T.c.channel == channel)
    if kecamatan:
        conds.append(T.c.kecamatan_code == kecamatan)
    return conds


def summary(session: Session, since: datetime | None = None, until: datetime | None = None,
            opd: str | None = None, channel: str | None = None, kecamatan: str | None = None,
            now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(timezone.utc)
    conds = _filters(since, until, opd, channel, kecamatan)
    where = and_(True, *conds)
    overdue = case((and_(T.c.status.in_(OPEN_STATUSES), T.c.due_at < now), 1), else_=0)

    def grouped(col) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        rows = session.execute(select(col, T.c.status, func.count(), func.sum(overdue))
                               .where(where).group_by(col, T.c.status))
        for key, status, n, od in rows:
            d = out.setdefault(key or "-", {"total": 0, "overdue": 0})
            d[status] = d.get(status, 0) + n
            d["total"] += n
            d["overdue"] += int(od or 0)
        return out

    by_opd = grouped(T.c.opd_code)
    by_status: dict[str, int] = {}
    for d in by_opd.values():
        for k, v in d.items():
            if k not in ("total", "overdue"):
                by_status[k] = by_status.get(k, 0) + v
    total = sum(by_status.values())
    incidents = session.execute(select(func.count(func.distinct(T.c.incident_id)))
                                .where(where, T.c.status != "digabung")).scalar_one()
    return {
        "generated_at": now.isoformat(),
        "total": total,
        "incidents": incidents,
        "overdue": sum(d["overdue"] for d in by_opd.values()),
        "by_status": by_status,
        "by_opd": by_opd,
        "by_channel": grouped(T.c.channel),
        "by_kecamatan": grouped(T.c.kecamatan_code),
        "by_urgency": grouped(T.c.urgency),
    }
