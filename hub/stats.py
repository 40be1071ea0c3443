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
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from sqlalchemy import Engine, and_, case, delete, func, insert, literal, or_, select
from sqlmodel import Session

from hub.models import OPEN_STATUSES, Ticket, TicketCount

T = Ticket.__table__
C = TicketCount.__table__
STATUSES = ("menunggu", "diproses", "selesai", "ditolak", "digabung")
NO_PLACE = "-"  # kecamatan key for tickets without a known place
FINISH_WINDOW = timedelta(days=30)  # median time to finish, when no period is chosen
BLOAT_ROWS = 100_000  # a fold this big leaves the PostgreSQL table mostly dead space
COMPACT_MIN_ROWS = 10_000  # the periodic fold waits for this many change rows
MAX_CHANGE_ROWS = 20_000  # more new rollup rows than this since a cached summary: count afresh


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

    def copy(self) -> "_Acc":
        out = _Acc()
        out.by_status = dict(self.by_status)
        out.dims = {dim: {k: dict(v) for k, v in d.items()} for dim, d in self.dims.items()}
        return out

    def prune(self) -> "_Acc":
        """Drop what a fresh count would not show: statuses at 0, keys with nothing left
        (after folded changes, e.g. the last ticket of an OPD moved to another one)."""
        self.by_status = {k: n for k, n in self.by_status.items() if n}
        for dim, d in self.dims.items():
            self.dims[dim] = {k: {s: n for s, n in v.items() if n or s in ("total", "overdue")}
                              for k, v in d.items() if v["total"] or v["overdue"]}
        return self

    @property
    def darurat_open(self) -> int:
        d = self.dims["urgency"].get("darurat", {})
        return sum(d.get(s, 0) for s in OPEN_STATUSES)


def compact_counts(engine: Engine, max_rows: int = 2_000_000, min_rows: int = 0) -> int:
    """Fold the +1/-1 rows the triggers appended into one row per key. Returns rows folded.

    min_rows: do nothing while fewer change rows (created_at set) wait. The periodic job passes
    COMPACT_MIN_ROWS: every fold makes the next summary per cached filter count afresh (see
    summary()), so folding a handful of rows every minute would cost more than it saves.

    Reads the rows in id order (at most max_rows; a bigger backlog is folded over several
    runs), sums them in memory, then deletes exactly those ids and inserts the sums in one
    short write transaction. On PostgreSQL the whole
    thing runs in one REPEATABLE READ snapshot, so a row that another transaction commits
    meanwhile (even with a lower id) is neither deleted nor counted: it stays for next time.
    Two compactions at once: one of them fails to serialize and simply tries again later.
    """
    from hub.db import writer

    if min_rows:
        with engine.connect() as conn:
            waiting = conn.execute(select(func.count()).where(C.c.created_at.is_not(None))).scalar_one()
        if waiting < min_rows:
            return 0
    cols = (C.c.status, C.c.opd_code, C.c.channel, C.c.kecamatan_code, C.c.urgency)

    def fold(conn) -> tuple[int, int, dict, bool]:
        totals: dict[tuple, int] = {}
        n_rows, top, details = 0, 0, False
        for rid, *key, n, created in conn.execute(select(C.c.id, *cols, C.c.n, C.c.created_at)
                                                  .order_by(C.c.id).limit(max_rows)):
            k = tuple(key)
            totals[k] = totals.get(k, 0) + n
            n_rows, top = n_rows + 1, rid
            details = details or created is not None
        return top, n_rows, totals, details

    def write(conn, top: int, totals: dict) -> None:
        conn.execute(delete(C).where(C.c.id <= top))
        keep = [dict(zip(("status", "opd_code", "channel", "kecamatan_code", "urgency"), k), n=n)
                for k, n in totals.items() if n]
        for i in range(0, len(keep), 1000):
            conn.execute(insert(C), keep[i:i + 1000])

    def compact_already(n_rows: int, totals: dict, details: bool) -> bool:
        return not details and n_rows == sum(1 for n in totals.values() if n)

    if engine.dialect.name == "postgresql":
        with engine.execution_options(isolation_level="REPEATABLE READ").begin() as conn:
            top, n_rows, totals, details = fold(conn)
            if compact_already(n_rows, totals, details):
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
        top, n_rows, totals, details = fold(conn)
        conn.rollback()
    if compact_already(n_rows, totals, details):
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


def _overdue(session: Session, acc: _Acc, now: datetime, conds: list, after: datetime | None = None) -> None:
    """Open tickets due before `now` (and at or after `after`): a small slice of the open
    tickets read from ix_tickets_open_dims alone."""
    key = (T.c.status, T.c.opd_code, T.c.channel, T.c.kecamatan_code, T.c.urgency)
    window = [T.c.due_at < now] + ([T.c.due_at >= after] if after is not None else [])
    od = select(*key, func.count()).where(T.c.status.in_(OPEN_STATUSES), *window, *conds).group_by(*key)
    _fold(acc, session.execute(od), overdue=True)


def _from_tickets(session: Session, acc: _Acc, now: datetime, conds: list, sign: int = 1) -> None:
    overdue = case((and_(T.c.status.in_(OPEN_STATUSES), T.c.due_at < now), 1), else_=0)
    # Grouping by `status || ''` instead of the bare column: otherwise SQLite walks all of
    # ix_tickets_status_opd to save a sort instead of reading a range of the created_at index
    # (10 s instead of under 3 at a million tickets, 30 days, on a loaded machine).
    key = ((T.c.status + literal("")).label("status"), T.c.opd_code, T.c.channel, T.c.kecamatan_code, T.c.urgency)
    q = select(*key, func.count(), func.sum(overdue)).where(and_(True, *conds)).group_by(*key)
    rows = session.execute(q).all()
    _fold(acc, ((s, o, c, k, u, sign * n) for s, o, c, k, u, n, _ in rows))
    _fold(acc, ((s, o, c, k, u, sign * int(od or 0)) for s, o, c, k, u, _, od in rows), overdue=True)


def _incidents(session: Session, conds: list) -> dict[str, int]:
    """Incidents counted afresh: {total, open, diproses}. An incident counts when it has a
    (matching) ticket that is not merged: a merge moves the ticket to the other incident, and
    an incident left with merged tickets only is not a happening of its own. It is diproses if
    any of its tickets is in process, else menunggu if any is waiting, else selesai (all its
    tickets finished or rejected): see _incident_status."""
    in_process = case((T.c.status == "diproses", T.c.incident_id), else_=None)
    diproses, open_ = session.execute(  # one pass over the open tickets (index only)
        select(func.count(func.distinct(in_process)), func.count(func.distinct(T.c.incident_id)))
        .where(T.c.status.in_(OPEN_STATUSES), *conds)).one()
    total = session.execute(select(func.count(func.distinct(T.c.incident_id)))
                            .where(T.c.status != "digabung", *conds)).scalar_one()
    return {"total": int(total), "open": int(open_), "diproses": int(diproses)}


def _incident_flags(by_status: dict[str, int]) -> tuple[int, int, int]:
    """(counted, open, diproses) of one incident, from its (matching) tickets per status;
    counted = it has a ticket that is not merged (see _incidents)."""
    has = {st for st, n in by_status.items() if n > 0}
    return int(bool(has - {"digabung"})), int(bool(has & set(OPEN_STATUSES))), int("diproses" in has)


def _incidents_by_status(session: Session, ids, conds: list) -> dict[int, dict[str, int]]:
    """Per incident, its tickets matching conds per status (indexed by incident_id)."""
    out: dict[int, dict[str, int]] = {i: {} for i in ids}
    ids = list(ids)
    for i in range(0, len(ids), 500):
        q = (select(T.c.incident_id, T.c.status, func.count())
             .where(T.c.incident_id.in_(ids[i:i + 500]), *conds).group_by(T.c.incident_id, T.c.status))
        for incident, status, n in session.execute(q):
            out[incident][status] = int(n)
    return out


def _incident_status(inc: dict[str, int]) -> dict[str, int]:
    return {"menunggu": inc["open"] - inc["diproses"], "diproses": inc["diproses"],
            "selesai": inc["total"] - inc["open"], "total": inc["total"]}


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


# Caches, per process. The summary's counts are exact at every call (see summary()); the
# median time to finish is the one figure allowed to lag: recomputed at most once per
# CACHE_TTL_S. _cached also serves the default trend.
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


def data_version(session: Session) -> tuple[int, int, int]:
    """(highest rollup id, rollup rows, table file node). Changes whenever a ticket is inserted,
    deleted, or changes a counted column: each such change appends a rollup row. Ids never
    repeat (AUTOINCREMENT / a sequence); the row count also catches a row with a lower id
    committed after a higher one (PostgreSQL), and a compaction (it deletes rows)."""
    if session.get_bind().dialect.name == "sqlite":  # one writer at a time: ids commit in order
        top, n = session.execute(select(func.coalesce(func.max(C.c.id), 0), func.count())).one()
        return int(top), int(n), 0
    # On PostgreSQL also the table's file node: TRUNCATE ... RESTART IDENTITY (test suites)
    # starts the ids again, but always in a new file.
    top, n, node = session.execute(select(func.coalesce(func.max(C.c.id), 0), func.count(),
                                          func.pg_relation_filenode(literal("ticket_counts")))).one()
    return int(top), int(n), int(node or 0)


def _medians(hours: dict[str, list[float]]) -> dict[str, Any]:
    every = [h for hs in hours.values() for h in hs]
    return {"by_opd": {code: (round(statistics.median(hs), 1), len(hs)) for code, hs in hours.items()},
            "all": round(statistics.median(every), 1) if every else None}


@dataclass(frozen=True)
class _Scope:
    """What one summary counts: a period of created_at and the dimension filters."""

    since: datetime | None
    until: datetime | None
    opd: str | None
    channel: str | None
    kecamatan: str | None

    @property
    def period(self) -> bool:
        return self.since is not None or self.until is not None

    def conds(self) -> list:
        return _ticket_filters(self.since, self.until, self.opd, self.channel, self.kecamatan)

    def matches(self, opd: str, channel: str, kec: str, created: datetime) -> bool:
        """Whether a rollup change row (kecamatan '' = no place) falls in this scope."""
        if (self.opd and opd != self.opd) or (self.channel and channel != self.channel):
            return False
        if self.kecamatan and kec != ("" if self.kecamatan == NO_PLACE else self.kecamatan):
            return False
        return (self.since is None or created >= self.since) and (self.until is None or created < self.until)


@dataclass(frozen=True)
class _Live:
    """A summary's exact counts at one rollup version: marginals (with the overdue count as of
    `at`) and incidents {total, open, diproses}."""

    version: tuple[int, int, int]
    acc: _Acc
    at: datetime
    incidents: dict[str, Any]


_LIVE: "OrderedDict[tuple, _Live]" = OrderedDict()


def _count_afresh(session: Session, scope: _Scope, now: datetime, version: tuple) -> _Live:
    acc = _Acc()
    conds = scope.conds()
    if scope.period:  # the tickets table over its created_at index
        _from_tickets(session, acc, now, conds)
    else:  # the rollup, plus the open tickets past due (index only)
        _from_rollup(session, acc, now, scope.opd, scope.channel, scope.kecamatan)
        _overdue(session, acc, now, conds)
    return _Live(version, acc, now, _incidents(session, conds))


def _changes_since(session: Session, cached: tuple, version: tuple) -> list | None:
    """The rollup rows appended between two versions, in id order: (status, opd, channel,
    kecamatan, urgency, created_at, due_at, incident_id, n). None when the rows up to the cached
    top changed (compaction; a late commit with a lower id on PostgreSQL), the table was
    rewritten (TRUNCATE: new file node), or there are more than MAX_CHANGE_ROWS."""
    top, rows, node = cached
    if version[2] != node or version[0] < top:
        return None
    new = session.execute(select(C.c.status, C.c.opd_code, C.c.channel, C.c.kecamatan_code, C.c.urgency,
                                 C.c.created_at, C.c.due_at, C.c.incident_id, C.c.n)
                          .where(C.c.id > top, C.c.id <= version[0]).order_by(C.c.id)
                          .limit(MAX_CHANGE_ROWS + 1)).all()
    if len(new) > MAX_CHANGE_ROWS or rows + len(new) != version[1]:
        return None
    return new


def _fold_changes(session: Session, scope: _Scope, live: _Live, now: datetime, version: tuple) -> _Live | None:
    """Bring `live` up to `version` by folding only the rollup rows appended since (O(changes)),
    then move its overdue count on to `now`. None when that cannot be exact: the rows up to the
    cached top changed (a compaction folded them, or on PostgreSQL a transaction with a lower
    id committed late: their count differs), the table was rewritten (TRUNCATE), a row has no
    details (folded, or from before migration d9f4b2e6a871), or too many rows came since."""
    new = _changes_since(session, live.version, version)
    if new is None:
        return None
    acc = live.acc.copy()
    touched: dict[int, dict[str, int]] = {}  # incident -> status -> change in matching tickets
    for status, opd, channel, kec, urgency, created, due, incident, n in new:
        if created is None:
            return None
        if not scope.matches(opd, channel, kec, _aware(created)):
            continue
        for dim, key in (("opd", opd), ("channel", channel), ("kecamatan", kec or None), ("urgency", urgency)):
            acc.count(dim, key, status, n)
            # Overdue as of live.at: the ticket was (-1 row) or is (+1 row) open and past due then.
            if status in OPEN_STATUSES and due is not None and _aware(due) < live.at:
                acc.overdue(dim, key, n)
        if incident is not None:
            d = touched.setdefault(incident, {})
            d[status] = d.get(status, 0) + n
    incidents = dict(live.incidents)
    conds = scope.conds()
    if touched:
        # The touched incidents' matching tickets now, and before the changes (now minus what
        # the rows added): each incident's status before and after.
        after = _incidents_by_status(session, touched, conds)
        for incident, change in touched.items():
            now_ = after[incident]
            before = {st: now_.get(st, 0) - change.get(st, 0) for st in set(now_) | set(change)}
            _move_incident(incidents, _incident_flags(before), _incident_flags(now_))
    if now > live.at:  # tickets that passed their due time since live.at
        _overdue(session, acc, now, conds, after=live.at)
    return _Live(version, acc, max(now, live.at), incidents)


def _move_incident(incidents: dict, before: tuple, after: tuple) -> None:
    incidents["open"] += after[1] - before[1]
    incidents["diproses"] += after[2] - before[2]
    incidents["total"] += after[0] - before[0]


MAX_SLIDE = timedelta(days=1)


def _slide(session: Session, old: _Scope, new: _Scope, live: _Live) -> _Live | None:
    """Move an up-to-date cached period to a nearby one with the same filters ("last 7 days"
    asked again a minute later): take out the tickets of the slices that left the period, add
    those that entered (with the overdue count as of live.at), re-derive their incidents under
    both periods. None when the periods are not that close."""
    if (old.opd, old.channel, old.kecamatan) != (new.opd, new.channel, new.kecamatan) \
            or (old.since is None) != (new.since is None) or (old.until is None) != (new.until is None):
        return None
    slices = []  # (lo, hi, +1 entered / -1 left)
    for a, b, later_is_in in ((old.since, new.since, False), (old.until, new.until, True)):
        if a is None or a == b:
            continue
        if abs(b - a) > MAX_SLIDE:
            return None
        entered = (b > a) == later_is_in
        slices.append((min(a, b), max(a, b), 1 if entered else -1))
    acc = live.acc.copy()
    filters = _ticket_filters(None, None, new.opd, new.channel, new.kecamatan)
    touched: set[int] = set()
    for lo, hi, sign in slices:
        conds = [T.c.created_at >= lo, T.c.created_at < hi, *filters]
        _from_tickets(session, acc, live.at, conds, sign=sign)
        touched.update(i for (i,) in session.execute(select(T.c.incident_id).distinct()
                                                     .where(T.c.incident_id.is_not(None), *conds)))
    incidents = dict(live.incidents)
    if touched:
        was, now_ = _incidents_by_status(session, touched, old.conds()), _incidents_by_status(session, touched, new.conds())
        for i in touched:
            _move_incident(incidents, _incident_flags(was[i]), _incident_flags(now_[i]))
    return _Live(live.version, acc, live.at, incidents)


def _nearby_periods(key: tuple, scope: _Scope) -> list[tuple[_Scope, _Live]]:
    """Cached periods of the same store and filters within MAX_SLIDE of this one, nearest first."""
    found = []
    with _CACHE_LOCK:
        for (url, other), live in _LIVE.items():
            if url != key[0] or not other.period or (other.opd, other.channel, other.kecamatan) != \
                    (scope.opd, scope.channel, scope.kecamatan):
                continue
            if (other.since is None) != (scope.since is None) or (other.until is None) != (scope.until is None):
                continue
            gap = max(abs(a - b) for a, b in ((other.since, scope.since), (other.until, scope.until))
                      if a is not None and b is not None)
            if gap <= MAX_SLIDE:
                found.append((gap, other, live))
    return [(other, live) for _, other, live in sorted(found, key=lambda f: f[0])]


def summary(session: Session, since: datetime | None = None, until: datetime | None = None,
            opd: str | None = None, channel: str | None = None, kecamatan: str | None = None,
            now: datetime | None = None, use_cache: bool = True) -> dict[str, Any]:
    """The dashboard's counts. Keys of by_*: {total, overdue, <status>: n}; by_opd also has
    median_finish_h (tickets finished in the period, or in the last 30 days without one).

    Exact at every call. Each process keeps, per scope (period and filters), the counts at one
    rollup version; a call folds only the rollup rows appended since (every counted change of
    a ticket appends rows that carry the ticket's created_at, due_at and incident), re-derives
    the touched incidents, and adds the tickets that passed their due time meanwhile. The first
    call for a scope, and the first after a compaction, count afresh (rollup without a period,
    tickets table with one).
    """
    live_call = now is None  # the cache serves "now" only, never a caller's chosen moment
    now = _aware(now) or datetime.now(timezone.utc)
    since, until = _aware(since), _aware(until)
    scope = _Scope(since, until, opd, channel, kecamatan)
    f_since, f_until = (since or now - FINISH_WINDOW), (until or now)
    use_cache = use_cache and live_call
    key = (str(session.get_bind().url), scope)
    for _ in range(3):
        version = data_version(session)
        with _CACHE_LOCK:
            live = _LIVE.get(key) if use_cache else None
        fresh = None
        if live is not None:
            fresh = live if live.version == version and now <= live.at else \
                _fold_changes(session, scope, live, now, version)
        elif use_cache and scope.period:  # bring a nearby period up to date, then move it here
            for other, near in _nearby_periods(key, scope)[:3]:
                fresh = _fold_changes(session, other, near, now, version)
                fresh = fresh and _slide(session, other, scope, fresh)
                with _CACHE_LOCK:  # moved here, or stale: one entry per moving period
                    _LIVE.pop((key[0], other), None)
                if fresh is not None:
                    break
        if fresh is None:
            fresh = _count_afresh(session, scope, now, version)
        # On PostgreSQL (READ COMMITTED) each statement sees the latest commits: if a change
        # committed while we read, the parts may disagree; read again (it is rare and cheap).
        if session.get_bind().dialect.name == "sqlite" or data_version(session) == version:
            break
    else:
        use_cache = False
    if use_cache:
        with _CACHE_LOCK:
            _LIVE[key] = fresh
            _LIVE.move_to_end(key)
            while len(_LIVE) > 128:
                _LIVE.popitem(last=False)
    acc = fresh.acc.copy().prune()
    incidents = _incident_status(fresh.incidents)
    # A median over 30 days of finished tickets hardly moves with one more: recomputed at
    # most once a minute (CACHE_TTL_S), not at every change; a period moving with the clock
    # shares it within the minute (the window may then be up to a minute behind, like the data).
    median_key = None
    if use_cache:
        minute = lambda d: d and d.replace(second=0, microsecond=0)  # noqa: E731
        median_key = ("medians", key[0], opd, channel, kecamatan) + (
            (minute(since), minute(until)) if scope.period else ())
    finish = _cached(median_key, lambda: _medians(finish_hours(session, f_since, f_until, opd, channel, kecamatan)))
    by_opd = acc.dims["opd"]
    for code, (median, n) in finish["by_opd"].items():
        d = by_opd.setdefault(code, {"total": 0, "overdue": 0})
        d["median_finish_h"], d["finished_in_window"] = median, n
    return {
        "generated_at": now.isoformat(),
        "period": {"since": since.isoformat() if since else None, "until": until.isoformat() if until else None},
        "source": "tickets" if scope.period else "rollup",
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
        return _default_trend(session, opd, channel, kecamatan, tz_offset_h)
    return _trend(session, since, until, opd, channel, kecamatan, now, tz_offset_h)


@dataclass(frozen=True)
class _TrendLive:
    version: tuple[int, int, int]
    since: datetime
    until: datetime
    counts: dict[str, int]  # WIB day -> tickets received


_TRENDS: "OrderedDict[tuple, _TrendLive]" = OrderedDict()


def _default_trend(session: Session, opd, channel, kecamatan, tz_offset_h: int) -> dict[str, Any]:
    """The last 12 weeks, kept per process by hour (so the window moves on) and brought up to
    date like the summary: new rollup rows add or take out their ticket on its day."""
    now = datetime.now(timezone.utc)
    key = (str(session.get_bind().url), opd, channel, kecamatan, tz_offset_h, now.strftime("%Y%m%d%H"))
    scope = _Scope(None, None, opd, channel, kecamatan)
    tz = timezone(timedelta(hours=tz_offset_h))
    version = data_version(session)
    with _CACHE_LOCK:
        live = _TRENDS.get(key)
    fresh = None
    if live is not None and live.version == version:
        fresh = live
    elif live is not None:
        new = _changes_since(session, live.version, version)
        if new is not None and all(created is not None for *_, created, _d, _i, _n in new):
            counts = dict(live.counts)
            for _s, opd_, channel_, kec, _u, created, _due, _inc, n in new:
                created = _aware(created)
                if created >= live.since and scope.matches(opd_, channel_, kec, created):
                    day = created.astimezone(tz).date().isoformat()
                    counts[day] = counts.get(day, 0) + n
            fresh = _TrendLive(version, live.since, live.until, counts)
    if fresh is None:
        since = now - timedelta(weeks=12)
        fresh = _TrendLive(version, since, now, _day_counts(session, since, now, opd, channel, kecamatan, tz_offset_h))
    with _CACHE_LOCK:
        _TRENDS[key] = fresh
        while len(_TRENDS) > 64:
            _TRENDS.popitem(last=False)
    return _buckets(fresh.counts, fresh.since, fresh.until, tz)


def _trend(session: Session, since, until, opd, channel, kecamatan, now, tz_offset_h: int) -> dict[str, Any]:
    now = _aware(now) or datetime.now(timezone.utc)
    until = _aware(until) or now
    since = _aware(since) or (until - timedelta(weeks=12))
    counts = _day_counts(session, since, until, opd, channel, kecamatan, tz_offset_h)
    return _buckets(counts, since, until, timezone(timedelta(hours=tz_offset_h)))


def _day_counts(session: Session, since, until, opd, channel, kecamatan, tz_offset_h: int) -> dict[str, int]:
    """Tickets received per local day (YYYY-MM-DD) in [since, until)."""
    conds = _ticket_filters(since, until, opd, channel, kecamatan)
    # Count per UTC hour-shifted day in Python over a narrow projection (fast on both stores).
    if session.get_bind().dialect.name == "postgresql":
        day = func.to_char(T.c.created_at + timedelta(hours=tz_offset_h), "YYYY-MM-DD")
    else:
        day = func.strftime("%Y-%m-%d", T.c.created_at, f"+{tz_offset_h} hours")
    return {d: int(n) for d, n in session.execute(select(day, func.count()).where(*conds).group_by(day))}


def _buckets(counts: dict[str, int], since: datetime, until: datetime, tz: timezone) -> dict[str, Any]:
    """Per day (periods up to 62 days) or per week from Monday; zeros fill the gaps."""
    weekly = (until - since).total_seconds() / 86400 > 62
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
              kecamatan: str | None = None, limit: int = 20, now: datetime | None = None,
              skip_incidents: Sequence[int] = ()) -> list[Ticket]:
    """Open tickets that need eyes first: darurat, then overdue, most urgent due time first.
    `skip_incidents`: leave out the tickets of these incidents (already shown)."""
    now = _aware(now) or datetime.now(timezone.utc)
    conds = [T.c.status.in_(OPEN_STATUSES), *_ticket_filters(None, None, opd, channel, kecamatan)]
    if skip_incidents:
        conds.append(or_(T.c.incident_id.is_(None), T.c.incident_id.notin_(list(skip_incidents))))
    # the most overdue first (earliest due time; no due time last), then the oldest
    darurat = list(session.scalars(select(Ticket).where(*conds, Ticket.urgency == "darurat")
                                   .order_by(Ticket.due_at.is_(None), Ticket.due_at, Ticket.created_at,
                                             Ticket.id).limit(limit)))
    seen = {t.id for t in darurat}
    overdue = [t for t in session.scalars(select(Ticket).where(*conds, Ticket.due_at < now)
                                          .order_by(Ticket.due_at).limit(limit)) if t.id not in seen]
    return (darurat + overdue)[:limit]


def open_in_incidents(session: Session, incident_ids: Sequence[int], opd: str | None = None,
                      channel: str | None = None, kecamatan: str | None = None) -> dict[int, int]:
    """Open tickets per incident (by the same filters as the page)."""
    if not incident_ids:
        return {}
    q = select(T.c.incident_id, func.count()).where(
        T.c.incident_id.in_(list(incident_ids)), T.c.status.in_(OPEN_STATUSES),
        *_ticket_filters(None, None, opd, channel, kecamatan)).group_by(T.c.incident_id)
    return {int(i): int(n) for i, n in session.execute(q)}


def reopened(session: Session, since: datetime | None = None, opd: str | None = None,
             until: datetime | None = None, channel: str | None = None, kecamatan: str | None = None) -> int:
    """Tickets reopened (selesai/ditolak -> menunggu: an admin's "buka kembali" or the citizen's
    "belum beres") in [since, until): distinct tickets, counted from their history; the other
    filters are the ticket's own (its OPD now, its channel, its kecamatan)."""
    from hub.models import TicketEvent

    q = select(func.count(func.distinct(TicketEvent.ticket_id))).where(
        TicketEvent.kind == "status", TicketEvent.to_status == "menunggu",
        TicketEvent.from_status.in_(("selesai", "ditolak")))
    if since is not None:
        q = q.where(TicketEvent.at >= _aware(since))
    if until is not None:
        q = q.where(TicketEvent.at < _aware(until))
    mine = [c for c in (Ticket.opd_code == opd if opd else None, Ticket.channel == channel if channel else None,
                        Ticket.kecamatan_code == kecamatan if kecamatan else None) if c is not None]
    if mine:
        q = q.where(TicketEvent.ticket_id.in_(select(Ticket.id).where(*mine)))
    return int(session.execute(q).scalar_one())


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
