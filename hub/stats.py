"""Counts for the dashboard: tickets and incidents by status, OPD (overdue, median time to
finish), channel, kecamatan and urgency; the trend; the open emergencies and overdue tickets.

Read-only. Without a period the counts come from the ticket_counts rollup (kept by database
triggers, folded by compact_counts) so the summary stays fast at millions of tickets; with a
period they come from the tickets table over its created_at index. Never writes tickets.
"""
from __future__ import annotations

import statistics
import threading
import time
from collections import OrderedDict
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
BLOAT_ROWS = 100_000  # a fold this big leaves the PostgreSQL table mostly dead space


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


def compact_counts(engine: Engine, max_rows: int = 2_000_000) -> int:
    """Fold the +1/-1 rows the triggers appended into one row per key. Returns rows folded.

    Reads the rows in id order (at most max_rows; a bigger backlog is folded over several
    runs), sums them in memory, then deletes exactly those ids and inserts the sums in one
    short write transaction. On PostgreSQL the whole
    thing runs in one REPEATABLE READ snapshot, so a row that another transaction commits
    meanwhile (even with a lower id) is neither deleted nor counted: it stays for next time.
    Two compactions at once: one of them fails to serialize and simply tries again later.
    """
    from hub.db import writer

    cols = (C.c.status, C.c.opd_code, C.c.channel, C.c.kecamatan_code, C.c.urgency)

    def fold(conn) -> tuple[int, int, dict]:
        totals: dict[tuple, int] = {}
        n_rows, top = 0, 0
        for rid, *key, n in conn.execute(select(C.c.id, *cols, C.c.n).order_by(C.c.id).limit(max_rows)):
            k = tuple(key)
            totals[k] = totals.get(k, 0) + n
            n_rows, top = n_rows + 1, rid
        return top, n_rows, totals

    def write(conn, top: int, totals: dict) -> None:
        conn.execute(delete(C).where(C.c.id <= top))
        keep = [dict(zip(("status", "opd_code", "channel", "kecamatan_code", "urgency"), k), n=n)
                for k, n in totals.items() if n]
        for i in range(0, len(keep), 1000):
            conn.execute(insert(C), keep[i:i + 1000])

    def compact_already(n_rows: int, totals: dict) -> bool:
        return n_rows == sum(1 for n in totals.values() if n)

    if engine.dialect.name == "postgresql":
        with engine.execution_options(isolation_level="REPEATABLE READ").begin() as conn:
            top, n_rows, totals = fold(conn)
            if compact_already(n_rows, totals):
                return 0
            write(conn, top, totals)
        if n_rows >= BLOAT_ROWS:
            # After a bulk import the table file keeps its size (mostly dead space) and every
            # full read of the rollup pays for it; rewrite it now (a small table: brief lock).
            from sqlalchemy import text

            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM FULL ANALYZE ticket_counts"))
        return n_rows
    with engine.connect() as conn:  # SQLite: read from a WAL snapshot, without the write lock
        top, n_rows, totals = fold(conn)
        conn.rollback()
    if compact_already(n_rows, totals):
        return 0
    with writer(engine).begin() as conn:
        # Ids only grow, so rows <= top are those read, unless another process compacted in
        # between (then it already folded them: leave it, or they would count twice).
        still = conn.execute(select(func.count()).where(C.c.id <= top)).scalar_one()
        if still != n_rows:
            return 0
        write(conn, top, totals)
    return n_rows


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


def _overdue(session: Session, acc: _Acc, now: datetime, opd, channel, kecamatan) -> None:
    """Overdue can only be open tickets: a small slice read from ix_tickets_open_dims alone.
    Never cached: it changes with the clock, not only with the data."""
    key = (T.c.status, T.c.opd_code, T.c.channel, T.c.kecamatan_code, T.c.urgency)
    od = select(*key, func.count()).where(T.c.status.in_(OPEN_STATUSES), T.c.due_at < now,
                                          *_ticket_filters(None, None, opd, channel, kecamatan)).group_by(*key)
    _fold(acc, session.execute(od), overdue=True)


def _from_tickets(session: Session, acc: _Acc, now: datetime, conds: list) -> None:
    overdue = case((and_(T.c.status.in_(OPEN_STATUSES), T.c.due_at < now), 1), else_=0)
    # Grouping by `status || ''` instead of the bare column: otherwise SQLite walks all of
    # ix_tickets_status_opd to save a sort instead of reading a range of the created_at index
    # (10 s instead of under 3 at a million tickets, 30 days, on a loaded machine).
    key = ((T.c.status + literal("")).label("status"), T.c.opd_code, T.c.channel, T.c.kecamatan_code, T.c.urgency)
    q = select(*key, func.count(), func.sum(overdue)).where(and_(True, *conds)).group_by(*key)
    rows = session.execute(q).all()
    _fold(acc, ((s, o, c, k, u, n) for s, o, c, k, u, n, _ in rows))
    _fold(acc, ((s, o, c, k, u, int(od or 0)) for s, o, c, k, u, _, od in rows), overdue=True)


def _incidents(session: Session, conds: list, filtered: bool) -> dict[str, int]:
    """Incident status: diproses if any of its tickets is in process, else menunggu if any is
    waiting, else selesai (all its tickets finished, rejected or merged)."""
    in_process = case((T.c.status == "diproses", T.c.incident_id), else_=None)
    diproses, open_ = session.execute(  # one pass over the open tickets (index only)
        select(func.count(func.distinct(in_process)), func.count(func.distinct(T.c.incident_id)))
        .where(T.c.status.in_(OPEN_STATUSES), *conds)).one()
    diproses, open_ = int(diproses), int(open_)
    if filtered:
        total = int(session.execute(select(func.count(func.distinct(T.c.incident_id)))
                                    .where(T.c.status != "digabung", *conds)).scalar_one())
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


# Parts of the summary that only change when a ticket changes are kept per process, keyed by
# the rollup's highest id: every insert, status/OPD/place change, merge or delete of a ticket
# appends a rollup row (trigger), so an unchanged key means unchanged counts. The overdue set
# is kept until the next open ticket reaches its due time. The median time to finish is the
# one figure allowed to lag: recomputed at most once per CACHE_TTL_S.
CACHE_TTL_S = 60.0
_CACHE: "OrderedDict[tuple, tuple[float, Any]]" = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _cached(key: tuple | None, compute, valid_s: float = CACHE_TTL_S):
    if key is None:
        return compute()
    now = time.monotonic()
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] > now:
            _CACHE.move_to_end(key)
            return hit[1]
    value = compute()
    with _CACHE_LOCK:
        _CACHE[key] = (now + min(valid_s, CACHE_TTL_S), value)
        while len(_CACHE) > 128:
            _CACHE.popitem(last=False)
    return value


def data_version(session: Session) -> tuple[int, ...]:
    """Changes whenever a ticket is inserted, changes status/OPD/place/urgency, or is deleted:
    each such change appends a rollup row. Ids never repeat (AUTOINCREMENT / a sequence); the
    row count also catches a row with a lower id committed after a higher one (PostgreSQL)."""
    if session.get_bind().dialect.name == "sqlite":  # one writer at a time: ids commit in order
        return (int(session.execute(select(func.coalesce(func.max(C.c.id), 0))).scalar_one()),)
    # On PostgreSQL also the table's file node: TRUNCATE ... RESTART IDENTITY (test suites)
    # starts the ids again, but always in a new file.
    top, n, node = session.execute(select(func.coalesce(func.max(C.c.id), 0), func.count(),
                                          func.pg_relation_filenode(literal("ticket_counts")))).one()
    return int(top), int(n), int(node or 0)


def _medians(hours: dict[str, list[float]]) -> dict[str, Any]:
    every = [h for hs in hours.values() for h in hs]
    return {"by_opd": {code: (round(statistics.median(hs), 1), len(hs)) for code, hs in hours.items()},
            "all": round(statistics.median(every), 1) if every else None}


def summary(session: Session, since: datetime | None = None, until: datetime | None = None,
            opd: str | None = None, channel: str | None = None, kecamatan: str | None = None,
            now: datetime | None = None, use_cache: bool = True) -> dict[str, Any]:
    """The dashboard's counts. Keys of by_*: {total, overdue, <status>: n}; by_opd also has
    median_finish_h (tickets finished in the period, or in the last 30 days without one)."""
    live = now is None  # the cache serves "now" only, never a caller's chosen moment
    now = _aware(now) or datetime.now(timezone.utc)
    since, until = _aware(since), _aware(until)
    period = since is not None or until is not None
    conds = _ticket_filters(since, until, opd, channel, kecamatan)
    filtered = period or bool(opd or channel or kecamatan)
    f_since, f_until = (since or now - FINISH_WINDOW), (until or now)
    cache_key = None
    if use_cache and live and not period:
        cache_key = (str(session.get_bind().url), opd, channel, kecamatan, data_version(session))

    def counts() -> dict:
        acc = _Acc()
        _from_rollup(session, acc, now, opd, channel, kecamatan)
        return {"by_status": acc.by_status, "dims": acc.dims,
                "incidents": _incidents(session, conds, filtered=filtered)}

    def medians() -> dict:
        return _medians(finish_hours(session, f_since, f_until, opd, channel, kecamatan))

    acc = _Acc()
    if period:
        _from_tickets(session, acc, now, conds)
        incidents = _incidents(session, conds, filtered=filtered)
        finish = _medians(finish_hours(session, f_since, f_until, opd, channel, kecamatan))
    else:
        base = _cached(cache_key and ("counts",) + cache_key, counts)
        acc.by_status = dict(base["by_status"])
        acc.dims = {dim: {k: dict(v) for k, v in d.items()} for dim, d in base["dims"].items()}
        incidents = base["incidents"]
        # A median over 30 days of finished tickets hardly moves with one more: recomputed at
        # most once a minute (CACHE_TTL_S), not at every change.
        finish = _cached(cache_key and ("medians",) + cache_key[:-1], medians)

        def overdue() -> dict:
            o = _Acc()
            _overdue(session, o, now, opd, channel, kecamatan)
            return o.dims

        # The overdue set only changes with the data or when the next open ticket passes its
        # due time: cached until then (exact), never longer than the TTL.
        nxt = session.execute(select(func.min(T.c.due_at)).where(T.c.status.in_(OPEN_STATUSES),
                                                                   T.c.due_at >= now)).scalar()
        valid = (_aware(nxt) - now).total_seconds() if nxt is not None else CACHE_TTL_S
        od = _cached(cache_key and ("overdue",) + cache_key, overdue, valid_s=valid)
        for dim, d in od.items():
            for k, v in d.items():
                if v["overdue"]:
                    acc.overdue(dim, k, v["overdue"])
    by_opd = acc.dims["opd"]
    for code, (median, n) in finish["by_opd"].items():
        d = by_opd.setdefault(code, {"total": 0, "overdue": 0})
        d["median_finish_h"], d["finished_in_window"] = median, n
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
        "median_finish_h": finish["all"],
        "finish_window": {"since": f_since.isoformat(), "until": f_until.isoformat()},
    }


def trend(session: Session, since: datetime | None = None, until: datetime | None = None,
          opd: str | None = None, channel: str | None = None, kecamatan: str | None = None,
          now: datetime | None = None, tz_offset_h: int = 7) -> dict[str, Any]:
    """Tickets received per day (periods up to 62 days) or per week, in local time (WIB).

    Without a period: the last 12 weeks (cached like the summary: by the data version, and
    per hour so the window moves on). Buckets are filled with zeros so the chart has no gaps.
    """
    if since is None and until is None and now is None:
        hour = datetime.now(timezone.utc).strftime("%Y%m%d%H")
        key = ("trend", str(session.get_bind().url), opd, channel, kecamatan, tz_offset_h, hour,
               data_version(session))
        return _cached(key, lambda: _trend(session, None, None, opd, channel, kecamatan, None, tz_offset_h))
    return _trend(session, since, until, opd, channel, kecamatan, now, tz_offset_h)


def _trend(session: Session, since, until, opd, channel, kecamatan, now, tz_offset_h: int) -> dict[str, Any]:
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
