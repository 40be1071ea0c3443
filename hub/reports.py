"""The monthly report per OPD for the regional head's meeting: per OPD, tickets received in the
month, finished in the month, median time to finish, share finished within the SLA, reopened.

Read-only; `visible` is the ticket list's visibility rule (hub.tickets.query.visible_to), so an
OPD user's report holds its own OPD only.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from hub.models import Ticket, TicketEvent
from hub.tickets.query import Viewer, visible_to

WIB = timezone(timedelta(hours=7))


def month_range(month: str | None, now: datetime | None = None) -> tuple[str, datetime, datetime]:
    """'2026-11' -> ('2026-11', start, end) in WIB; a bad or missing value is this month."""
    now = (now or datetime.now(timezone.utc)).astimezone(WIB)
    try:
        y, m = (int(x) for x in (month or "").split("-"))
        start = datetime(y, m, 1, tzinfo=WIB)
    except (ValueError, TypeError):
        start = datetime(now.year, now.month, 1, tzinfo=WIB)
    end = datetime(start.year + (start.month == 12), start.month % 12 + 1, 1, tzinfo=WIB)
    return start.strftime("%Y-%m"), start.astimezone(timezone.utc), end.astimezone(timezone.utc)


@dataclass
class OpdMonth:
    opd: str
    received: int = 0
    done: int = 0
    rejected: int = 0
    median_finish_h: float | None = None
    within_sla_pct: float | None = None
    reopened: int = 0
    open_now: int = 0


def _aware(d: datetime | None) -> datetime | None:
    return d if d is None or d.tzinfo else d.replace(tzinfo=timezone.utc)


def monthly(s: Session, who: Viewer, start: datetime, end: datetime, opd: str | None = None) -> list[OpdMonth]:
    """One row per OPD with tickets in the month (received, finished or reopened), busiest first."""
    def scoped(stmt):
        stmt = visible_to(stmt, who)
        return stmt.where(Ticket.opd_code == opd) if opd else stmt

    rows: dict[str, OpdMonth] = {}

    def row(code: str) -> OpdMonth:
        return rows.setdefault(code, OpdMonth(code))

    for code, n in s.execute(scoped(select(Ticket.opd_code, func.count()).where(
            Ticket.created_at >= start, Ticket.created_at < end)).group_by(Ticket.opd_code)):
        row(code).received = n
    finish: dict[str, list[float]] = {}
    in_sla: dict[str, list[bool]] = {}
    for code, status, created, closed, due in s.execute(scoped(select(
            Ticket.opd_code, Ticket.status, Ticket.created_at, Ticket.closed_at, Ticket.due_at).where(
            Ticket.closed_at >= start, Ticket.closed_at < end, Ticket.status.in_(("selesai", "ditolak"))))):
        r = row(code)
        if status == "ditolak":
            r.rejected += 1
            continue
        r.done += 1
        created, closed, due = _aware(created), _aware(closed), _aware(due)
        finish.setdefault(code, []).append((closed - created).total_seconds() / 3600)
        if due is not None:
            in_sla.setdefault(code, []).append(closed <= due)
    reopen = scoped(select(Ticket.opd_code, func.count(func.distinct(TicketEvent.ticket_id)))
                    .join(Ticket, Ticket.id == TicketEvent.ticket_id)
                    .where(TicketEvent.kind == "status", TicketEvent.from_status.in_(("selesai", "ditolak")),
                           TicketEvent.to_status.in_(("menunggu", "diproses")),
                           TicketEvent.at >= start, TicketEvent.at < end)).group_by(Ticket.opd_code)
    for code, n in s.execute(reopen):
        row(code).reopened = n
    for code, n in s.execute(scoped(select(Ticket.opd_code, func.count()).where(
            Ticket.status.in_(("menunggu", "diproses")), Ticket.created_at < end)).group_by(Ticket.opd_code)):
        if code in rows:
            rows[code].open_now = n
    for code, hs in finish.items():
        rows[code].median_finish_h = round(statistics.median(hs), 1)
    for code, ok in in_sla.items():
        rows[code].within_sla_pct = round(100 * sum(ok) / len(ok), 1)
    return sorted(rows.values(), key=lambda r: (-r.received, r.opd))


def totals(rows: list[OpdMonth]) -> dict[str, Any]:
    return {"received": sum(r.received for r in rows), "done": sum(r.done for r in rows),
            "rejected": sum(r.rejected for r in rows), "reopened": sum(r.reopened for r in rows),
            "open_now": sum(r.open_now for r in rows)}
