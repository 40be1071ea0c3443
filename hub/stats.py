"""Counts for the dashboard: tickets and incidents by status, OPD (overdue, median time to
finish), channel, kecamatan and urgency; the trend; the open emergencies and overdue tickets.

Read-only. Without a period the counts come from the ticket_counts rollup (kept by database
triggers, folded by compact_counts) so the summary stays fast at millions of tickets; with a
period they come from the tickets table over its created_at index. Never writes tickets.
"""
from __future__ import annotations

import statistics
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, and_, case, delete, func, insert, literal, select
from sqlmodel import Session

from hub.models import OPEN_STATUSES, Incident, Ticket, TicketCount

T = Ticket.__table__
C = TicketCount.__table__
STATUSES = ("menunggu", "diproses", "selesai", "ditolak", "digabung")
NO_PLACE = "-"  # kecamatan key for tickets without a known place
FINISH_WINDOW = timedelta(days=30)  # median time to finish, when no period is chosen


def _aware(d: datetime | None) -> datetime | None:
    if d is None:
        return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def _ticket_filters(since, until, opd, channel, kecamatan) -> list:
    conds = []
    if since is not None:
        conds.append(T.c.created_at >= since)
    if until is not None:
        conds.append(T.c.created_at < until)
    if opd:
        conds.append(T.c.opd_code == opd)
    if channel:
        conds.append(T.c.channel == channel)
    if kecamatan:
        conds.append(T.c.kecamatan_code.is_(None) if kecamatan == NO_PLACE else T.c.kecamatan_code == kecamatan)
    return conds


DIMS = ("opd", "channel", "kecamatan", "urgency")


class _Acc:
    """Holds the marginal counts: per dimension, per key: {total, overdue, <status>: n}."""

    def __init__(self) -> None:
        self.by_status: dict[str, int] = {}
        self.dims: dict[str, dict[str, dict[str, int]]] = {d: {} for d in DIMS}

    def count(self, dim: str, key: str | None, status: str, n: int) -> None:
        d = self.dims[dim].setdefault(key or NO_PLACE, {"total": 0, "overdue": 0})
        d[status] = d.get(status, 0) + n
        d["total"] += n
        if dim == "urgency":
            self.by_status[status] = self.by_status.get(status, 0) + n

    def overdue(self, dim: str, key: str | None, n: int) -> None:
        d = self.dims[dim].setdefault(key or NO_PLACE, {"total": 0, "overdue": 0})
        d["overdue"] += n

    @property
    def darurat_open(self) -> int:
        d = self.dims["urgency"].get("darurat", {})
        return sum(d.get(s, 0) for s in OPEN_STATUSES)


def _marginals(src, n_col, extra=()) -> Any:
    """One query: GROUP BY (status, <dim>) for each dimension over a CTE, as UNION ALL."""
    cols = {"opd": src.c.opd_code, "channel": src.c.channel, "kecamatan": src.c.kecamatan_code,
            "urgency": src.c.urgency}
    parts = [select(literal(dim).label("dim"), src.c.status, col.label("k"), (func.sum(n_col(src)) if n_col else func.count()).label("n"),
                    *[func.sum(e(src)).label(f"x{i}") for i, e in enumerate(extra)])
             .group_by(src.c.status, col) for dim, col in cols.items()]
    return parts[0].union_all(*parts[1:])


def compact_counts(engine: Engine) -> int:
    """Fold the +1/-1 rows the triggers appended into one row per key. Returns rows folded.

    DELETE ... RETURNING takes exactly the rows it removes in one statement, so a row that a
    concurrent transaction commits meanwhile is either folded or left alone, never lost.
    """
    from hub.db import writer

    with writer(engine).begin() as conn:
        rows = conn.execute(delete(C).returning(C.c.status, C.c.opd_code, C.c.channel, C.c.kecamatan_code,
                                                C.c.urgency, C.c.n)).all()
        totals: dict[tuple, int] = {}
        for *key, n in rows:
            totals[tuple(key)] = totals.get(tuple(key), 0) + n
        keep = [dict(zip(("status", "opd_code", "channel", "kecamatan_code", "urgency"), k), n=n)
                for k, n in totals.items() if n]
        for i in range(0, len(keep), 1000):
            conn.execute(insert(C), keep[i:i + 1000])
    return len(rows)


def _fold(acc: _Acc, rows, overdue: bool = False) -> None:
    """Fold (status, opd, channel, kecamatan, urgency, n) rows into the four marginals.

    Plain tuple-keyed dict updates: at a million tickets the rollup has a few tens of
    thousands of keys and this loop is the cheapest place to do the four GROUP BYs.
    """
    cnt: dict[tuple, int] = {}
    get = cnt.get
    for s, o, c, k, u, n in rows:
        for key in (("opd", s, o), ("channel", s, c), ("kecamatan", s, k or None), ("urgency", s, u)):
            cnt[key] = get(key, 0) + n
    for (dim, status, key), n in cnt.items():
        if overdue:
            acc.overdue(dim, key, n)
        elif n:
            acc.count(dim, key, status, n)


def _from_rollup(session: Session, acc: _Acc, now: datetime, opd, channel, kecamatan) -> None:
    conds = []
    if opd:
        conds.append(C.c.opd_code == opd)
    if channel:
        conds.append(C.c.channel == channel)
    if kecamatan:
        conds.append(C.c.kecamatan_code == ("" if kecamatan == NO_PLACE else kecamatan))
    _fold(acc, session.execute(select(C.c.status, C.c.opd_code, C.c.channel, C.c.kecamatan_code, C.c.urgency,
                                      C.c.n).where(and_(True, *conds))))
    # Overdue can only be open tickets, a small slice read from ix_tickets_open_dims alone.
    od = select(T.c.status, T.c.opd_code, T.c.channel, T.c.kecamatan_code, T.c.urgency, literal(1)) \
        .where(T.c.status.in_(OPEN_STATUSES), T.c.due_at < now, *_ticket_filters(None, None, opd, channel, kecamatan))
    _fold(acc, session.execute(od), overdue=True)


def _from_tickets(session: Session, acc: _Acc, now: datetime, conds: list) -> None:
    overdue = case((and_(T.c.status.in_(OPEN_STATUSES), T.c.due_at < now), 1), else_=0)
    src = select(T.c.status, T.c.opd_code, T.c.channel, T.c.kecamatan_code, T.c.urgency,
                 overdue.label("od")).where(and_(True, *conds)).cte("f")
    for dim, status, key, n, od in session.execute(_marginals(src, None, (lambda s: s.c.od,))):
        acc.count(dim, key, status, int(n))
        if od:
            acc.overdue(dim, key, int(od))


def _incidents(session: Session, conds: list, filtered: bool) -> dict[str, int]:
    """Incident status: diproses if any of its tickets is in process, else menunggu if any is
    waiting, else selesai (all its tickets finished, rejected or merged)."""
    def distinct(*where) -> int:
        return int(session.execute(select(func.count(func.distinct(T.c.incident_id)))
                                   .where(*where, *conds)).scalar_one())

    diproses = distinct(T.c.status == "diproses")
    open_ = distinct(T.c.status.in_(OPEN_STATUSES))
    if filtered:
        total = distinct(T.c.status != "digabung")
    else:
        total = int(session.execute(select(func.count()).select_from(Incident.__table__)).scalar_one())
    return {"menunggu": open_ - diproses, "diproses": diproses, "selesai": max(0, total - open_), "total": total}


def finish_hours(session: Session, since: datetime, until: datetime, opd=None, channel=None,
                 kecamatan=None) -> dict[str, list[float]]:
    """Hours from report to `selesai` for tickets finished in [since, until), per OPD."""
    if session.get_bind().dialect.name == "postgresql":
        hours = func.extract("epoch", T.c.closed_at - T.c.created_at) / 3600.0
    else:
        hours = (func.julianday(T.c.closed_at) - func.julianday(T.c.created_at)) * 24.0
    conds = [T.c.closed_at >= since, T.c.closed_at < until, T.c.status == "selesai",
             *_ticket_filters(None, None, opd, channel, kecamatan)]
    out: dict[str, list[float]] = {}
    for code, h in session.execute(select(T.c.opd_code, hours).where(*conds)):
        if h is not None:
            out.setdefault(code, []).append(float(h))
    return out


def summary(session: Session, since: datetime | None = None, until: datetime | None = None,
            opd: str | None = None, channel: str | None = None, kecamatan: str | None = None,
            now: datetime | None = None) -> dict[str, Any]:
    """The dashboard's counts. Keys of by_*: {total, overdue, <status>: n}; by_opd also has
    median_finish_h (tickets finished in the period, or in the last 30 days without one)."""
    now = _aware(now) or datetime.now(timezone.utc)
    since, until = _aware(since), _aware(until)
    acc = _Acc()
    period = since is not None or until is not None
    conds = _ticket_filters(since, until, opd, channel, kecamatan)
    if period:
        _from_tickets(session, acc, now, conds)
    else:
        _from_rollup(session, acc, now, opd, channel, kecamatan)
    incidents = _incidents(session, conds, filtered=period or bool(opd or channel or kecamatan))
    f_since, f_until = (since or now - FINISH_WINDOW), (until or now)
    finish = finish_hours(session, f_since, f_until, opd, channel, kecamatan)
    by_opd = acc.dims["opd"]
    for code, hours in finish.items():
        d = by_opd.setdefault(code, {"total": 0, "overdue": 0})
        d["median_finish_h"] = round(statistics.median(hours), 1)
        d["finished_in_window"] = len(hours)
    all_hours = [h for hs in finish.values() for h in hs]
    return {
        "generated_at": now.isoformat(),
        "period": {"since": since.isoformat() if since else None, "until": until.isoformat() if until else None},
        "source": "tickets" if period else "rollup",
        "total": sum(acc.by_status.values()),
        "incidents": incidents["total"],
        "incidents_by_status": {k: v for k, v in incidents.items() if k != "total"},
        "overdue": sum(d["overdue"] for d in by_opd.values()),
        "darurat_open": acc.darurat_open,
        "by_status": acc.by_status,
        "by_opd": by_opd,
        "by_channel": acc.dims["channel"],
        "by_kecamatan": acc.dims["kecamatan"],
        "by_urgency": acc.dims["urgency"],
        "median_finish_h": round(statistics.median(all_hours), 1) if all_hours else None,
        "finish_window": {"since": f_since.isoformat(), "until": f_until.isoformat()},
    }


def trend(session: Session, since: datetime | None = None, until: datetime | None = None,
          opd: str | None = None, channel: str | None = None, kecamatan: str | None = None,
          now: datetime | None = None, tz_offset_h: int = 7) -> dict[str, Any]:
    """Tickets received per day (periods up to 62 days) or per week, in local time (WIB).

    Without a period: the last 12 weeks. Buckets are filled with zeros so the chart has no gaps.
    """
    now = _aware(now) or datetime.now(timezone.utc)
    until = _aware(until) or now
    since = _aware(since) or (until - timedelta(weeks=12))
    tz = timezone(timedelta(hours=tz_offset_h))
    days = (until - since).total_seconds() / 86400
    weekly = days > 62
    conds = _ticket_filters(since, until, opd, channel, kecamatan)
    counts: dict[str, int] = {}
    # Count per UTC hour-shifted day in Python over a narrow projection (fast on both stores).
    if session.get_bind().dialect.name == "postgresql":
        day = func.to_char(T.c.created_at + timedelta(hours=tz_offset_h), "YYYY-MM-DD")
    else:
        day = func.strftime("%Y-%m-%d", T.c.created_at, f"+{tz_offset_h} hours")
    for d, n in session.execute(select(day, func.count()).where(*conds).group_by(day)):
        counts[d] = int(n)
    start = since.astimezone(tz).date()
    end = (until - timedelta(microseconds=1)).astimezone(tz).date()
    buckets: list[dict[str, Any]] = []
    if weekly:
        start = start - timedelta(days=start.weekday())
        cur = start
        while cur <= end:
            n = sum(counts.get((cur + timedelta(days=i)).isoformat(), 0) for i in range(7))
            buckets.append({"start": cur.isoformat(), "n": n})
            cur += timedelta(days=7)
    else:
        cur = start
        while cur <= end:
            buckets.append({"start": cur.isoformat(), "n": counts.get(cur.isoformat(), 0)})
            cur += timedelta(days=1)
    return {"bucket": "week" if weekly else "day", "points": buckets}


def attention(session: Session, opd: str | None = None, channel: str | None = None,
              kecamatan: str | None = None, limit: int = 20, now: datetime | None = None) -> list[Ticket]:
    """Open tickets that need eyes first: darurat, then overdue, most urgent due time first."""
    now = _aware(now) or datetime.now(timezone.utc)
    conds = [T.c.status.in_(OPEN_STATUSES), *_ticket_filters(None, None, opd, channel, kecamatan)]
    darurat = list(session.scalars(select(Ticket).where(*conds, Ticket.urgency == "darurat")
                                   .order_by(Ticket.created_at.desc()).limit(limit)))
    seen = {t.id for t in darurat}
    overdue = [t for t in session.scalars(select(Ticket).where(*conds, Ticket.due_at < now)
                                          .order_by(Ticket.due_at).limit(limit)) if t.id not in seen]
    return (darurat + overdue)[:limit]


def latest_darurat(session: Session, after_id: int = 0, opd: str | None = None, limit: int = 20) -> list[Ticket]:
    """Emergencies that arrived after ticket id `after_id` (the dashboard's live poll)."""
    q = select(Ticket).where(Ticket.id > after_id, Ticket.urgency == "darurat")
    if opd:
        q = q.where(Ticket.opd_code == opd)
    return list(session.scalars(q.order_by(Ticket.id.desc()).limit(limit)))


def max_ticket_id(session: Session) -> int:
    return int(session.execute(select(func.coalesce(func.max(T.c.id), 0))).scalar_one())


def rollup_matches(session: Session) -> bool:
    """True when the rollup equals a fresh count of the tickets table (tests, `bench`)."""
    key = (T.c.status, T.c.opd_code, T.c.channel, func.coalesce(T.c.kecamatan_code, literal("")), T.c.urgency)
    fresh = {tuple(r[:5]): int(r[5]) for r in session.execute(select(*key, func.count()).group_by(*key))}
    ckey = (C.c.status, C.c.opd_code, C.c.channel, C.c.kecamatan_code, C.c.urgency)
    rolled = {tuple(r[:5]): int(r[5]) for r in session.execute(select(*ckey, func.sum(C.c.n)).group_by(*ckey))}
    return fresh == {k: v for k, v in rolled.items() if v}
