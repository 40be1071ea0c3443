"""hub.stats on SQLite and PostgreSQL: the trigger-kept rollup always equals a fresh count of
the tickets table, through creates, status changes, re-routes, merges, deletes and compaction;
and the all-time (rollup) summary equals the same summary counted from the tickets table."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, func, select

from tests.web.conftest import KEC_DURENAN, KEC_POGALAN, KNOWN, make_ticket

FAR_PAST = datetime(2000, 1, 1, tzinfo=timezone.utc)


def _comparable(summary: dict, medians: bool = True) -> dict:
    out = {k: v for k, v in summary.items() if k not in ("generated_at", "period", "source", "finish_window",
                                                          "incidents", "incidents_by_status")}
    if not medians:  # the one figure allowed to lag by up to a minute (hub.stats.CACHE_TTL_S)
        out.pop("median_finish_h")
        out["by_opd"] = {c: {k: v for k, v in d.items() if k not in ("median_finish_h", "finished_in_window")}
                         for c, d in out["by_opd"].items()}
    return out


def count_calls(monkeypatch, module, name: str) -> dict[str, int]:
    """Wrap module.name so calls are counted (it still runs): {"n": calls so far}."""
    calls = {"n": 0}
    real = getattr(module, name)

    def counting(*args, **kw):
        calls["n"] += 1
        return real(*args, **kw)

    monkeypatch.setattr(module, name, counting)
    return calls


@pytest.fixture
def known(engine, seeded):
    from hub.db import session_scope

    with session_scope() as s:
        for code, opd, status, channel, kec, urgency, due_in in KNOWN:
            make_ticket(s, code, opd, status, channel, kec, urgency, due_in=due_in)
    return seeded


def test_rollup_follows_every_change_and_compaction(known, engine):
    from hub import stats
    from hub import tickets as T
    from hub.db import session_scope
    from hub.models import Ticket, TicketCount, TicketEvent

    cfg = known
    with session_scope() as s:
        assert stats.rollup_matches(s)
    with session_scope() as s:
        t = T.resolve_code(s, "PUPR001")
        T.change_status(s, t, "diproses", "user:uji", cfg, "dikerjakan")
        T.reroute(s, T.resolve_code(s, "PUPR002"), "DLH", "user:uji", cfg, learn=False)
        T.merge(s, T.resolve_code(s, "BPBD002"), T.resolve_code(s, "BPBD001"), "user:uji", cfg)
        T.change_status(s, T.resolve_code(s, "DUKC002"), "menunggu", "user:uji", cfg)  # reopened
        s.get(Ticket, T.resolve_code(s, "PUPR004").id).kecamatan_code = None  # place corrected
    with session_scope() as s:
        assert stats.rollup_matches(s)
        gone = T.resolve_code(s, "DUKC001")
        s.execute(delete(TicketEvent).where(TicketEvent.ticket_id == gone.id))
        s.delete(gone)
    with session_scope() as s:
        assert stats.rollup_matches(s)
        rows_before = s.execute(select(func.count()).select_from(TicketCount)).scalar_one()
    folded = stats.compact_counts(engine)
    assert folded == rows_before
    with session_scope() as s:
        assert stats.rollup_matches(s)
        keys = s.execute(select(func.count()).select_from(TicketCount)).scalar_one()
        fresh = s.execute(select(func.count()).select_from(
            select(Ticket.status, Ticket.opd_code, Ticket.channel, Ticket.kecamatan_code, Ticket.urgency)
            .group_by(Ticket.status, Ticket.opd_code, Ticket.channel, Ticket.kecamatan_code, Ticket.urgency)
            .subquery())).scalar_one()
        assert keys == fresh  # one row per key after folding
    assert stats.compact_counts(engine) == 0  # already one row per key: nothing rewritten


@pytest.mark.parametrize("filters", [{}, {"opd": "PUPR"}, {"channel": "bpbd"}, {"kecamatan": KEC_DURENAN},
                                     {"kecamatan": "-"}, {"opd": "BPBD", "kecamatan": KEC_DURENAN}])
def test_rollup_summary_equals_counting_the_tickets(known, engine, filters):
    from hub import stats
    from hub.db import session_scope

    now = datetime.now(timezone.utc)
    with session_scope() as s:
        fast = stats.summary(s, now=now, **filters)
        slow = stats.summary(s, since=FAR_PAST, now=now, **filters)
    assert fast["source"] == "rollup" and slow["source"] == "tickets"
    assert _comparable(fast) == _comparable(slow)


def test_summary_counts_of_the_known_set(known, engine):
    from hub import stats
    from hub.db import session_scope

    with session_scope() as s:
        out = stats.summary(s)
    assert out["total"] == 8
    assert out["by_status"] == {"menunggu": 4, "diproses": 2, "selesai": 2}
    assert out["overdue"] == 2 and out["darurat_open"] == 2
    assert out["by_opd"]["PUPR"]["overdue"] == 1 and out["by_opd"]["BPBD"]["overdue"] == 1
    assert out["by_kecamatan"][KEC_POGALAN]["menunggu"] == 2 and out["by_kecamatan"]["-"]["total"] == 1
    assert out["by_channel"]["lapor"] == {"total": 2, "overdue": 0, "diproses": 1, "selesai": 1}
    assert out["incidents_by_status"] == {"menunggu": 4, "diproses": 2, "selesai": 2}  # one incident each
    # PUPR004 and DUKC002 finished 5 hours after they came in.
    assert out["by_opd"]["PUPR"]["median_finish_h"] == pytest.approx(5.0, abs=0.01)
    assert out["median_finish_h"] == pytest.approx(5.0, abs=0.01)


def test_trend_buckets_by_local_day_and_week(known, engine):
    from hub import stats
    from hub.db import session_scope

    now = datetime.now(timezone.utc)
    with session_scope() as s:
        make_ticket(s, "OLD0001", "PUPR", age=timedelta(days=3))
        daily = stats.trend(s, since=now - timedelta(days=7), now=now)
        weekly = stats.trend(s, now=now)
    assert daily["bucket"] == "day" and len(daily["points"]) in (7, 8)
    assert sum(p["n"] for p in daily["points"]) == 9
    assert weekly["bucket"] == "week" and sum(p["n"] for p in weekly["points"]) == 9
    assert all(datetime.fromisoformat(p["start"]).weekday() == 0 for p in weekly["points"])


def test_attention_lists_darurat_then_overdue(known, engine):
    from hub import stats
    from hub.db import session_scope

    with session_scope() as s:
        codes = [t.code for t in stats.attention(s)]
        assert set(codes) == {"BPBD001", "BPBD002", "PUPR002"}
        assert codes[-1] == "PUPR002"
        assert [t.code for t in stats.attention(s, opd="PUPR")] == ["PUPR002"]


def test_cached_summary_follows_every_change_at_once(known, engine):
    from hub import stats
    from hub import tickets as T
    from hub.db import session_scope

    with session_scope() as s:
        before = stats.summary(s)
        assert _comparable(stats.summary(s)) == _comparable(before)  # served from the cache
    with session_scope() as s:
        T.change_status(s, T.resolve_code(s, "PUPR001"), "selesai", "user:uji", known, "beres")
    with session_scope() as s:
        after = stats.summary(s)
    assert after["by_status"]["menunggu"] == before["by_status"]["menunggu"] - 1
    assert after["by_status"]["selesai"] == before["by_status"]["selesai"] + 1
    assert after["incidents_by_status"]["selesai"] == before["incidents_by_status"]["selesai"] + 1
    stats.compact_counts(engine)
    with session_scope() as s:
        assert _comparable(stats.summary(s)) == _comparable(after)
        assert _comparable(stats.summary(s, use_cache=False), False) == _comparable(after, False)


def test_cached_overdue_turns_over_when_a_ticket_passes_its_due_time(sqlite_url, seeded):
    import time

    from hub import stats
    from hub.db import session_scope

    with session_scope() as s:
        make_ticket(s, "SOON001", "PUPR", age=timedelta(0), due_in=timedelta(seconds=1.5))
    with session_scope() as s:
        assert stats.summary(s)["overdue"] == 0
        assert stats.summary(s)["overdue"] == 0  # from the cache
    time.sleep(2.0)
    with session_scope() as s:
        assert stats.summary(s)["overdue"] == 1  # no data changed, only the clock


def test_cache_never_serves_another_dataset_after_truncate(db_url, seeded, request):
    """Test suites empty PostgreSQL with TRUNCATE ... RESTART IDENTITY between tests: the same
    ids come back with different data, and the cache must notice."""
    from sqlalchemy import text

    from hub import stats
    from hub.db import get_engine, session_scope

    with session_scope() as s:
        make_ticket(s, "AAA0001", "PUPR", status="menunggu")
    with session_scope() as s:
        assert stats.summary(s)["by_status"] == {"menunggu": 1}
    with get_engine().begin() as conn:
        if get_engine().dialect.name == "postgresql":
            conn.execute(text("TRUNCATE ticket_events, tickets, incidents, ticket_counts RESTART IDENTITY CASCADE"))
        else:
            conn.execute(text("DELETE FROM ticket_events"))
            conn.execute(text("DELETE FROM tickets"))
            conn.execute(text("DELETE FROM ticket_counts"))
    with session_scope() as s:
        make_ticket(s, "BBB0001", "DLH", status="diproses")
    with session_scope() as s:
        assert stats.summary(s)["by_status"] == {"diproses": 1}


def test_cached_default_trend_counts_a_new_ticket_at_once(known, engine):
    from hub import stats
    from hub.db import session_scope

    with session_scope() as s:
        before = sum(p["n"] for p in stats.trend(s)["points"])
        assert sum(p["n"] for p in stats.trend(s)["points"]) == before
        make_ticket(s, "NEW0001", "DLH")
    with session_scope() as s:
        assert sum(p["n"] for p in stats.trend(s)["points"]) == before + 1


def test_two_compactions_racing_on_sqlite_never_count_twice(sqlite_url, seeded, monkeypatch):
    """The SQLite fold reads without the write lock; if another compaction slips in between,
    the second write must notice and leave the rows alone."""
    from hub import stats
    from hub.db import get_engine, session_scope

    with session_scope() as s:
        for i in range(3):
            make_ticket(s, f"RACE00{i}", "PUPR")
    engine = get_engine()
    import hub.db

    real_writer = hub.db.writer
    raced = {}

    def writer_after_a_race(e=None):
        if not raced:  # the other process compacts between our read and our write
            raced["done"] = True
            monkeypatch.setattr(hub.db, "writer", real_writer)
            assert stats.compact_counts(engine) == 3
        return real_writer(e)

    monkeypatch.setattr(hub.db, "writer", writer_after_a_race)
    assert stats.compact_counts(engine) == 0  # noticed, left the rows alone
    assert raced
    with session_scope() as s:
        assert stats.rollup_matches(s)
        assert stats.summary(s, use_cache=False)["total"] == 3


_SCOPES = [
    {}, {"opd": "PUPR"}, {"channel": "bpbd"}, {"kecamatan": KEC_DURENAN}, {"kecamatan": "-"},
    {"opd": "BPBD", "kecamatan": KEC_DURENAN},
    # Periods with partial edges: tickets of the known set are 2 h old (finished ones 8 h).
    {"period": (timedelta(hours=5), timedelta(minutes=30))},
    {"period": (timedelta(hours=3), None), "opd": "PUPR"},
    {"period": (timedelta(days=7), None)},
]


def _scoped(s, now: datetime | None = None, use_cache: bool = True, period=None, **filters) -> dict:
    from hub import stats

    since = until = None
    if period is not None:
        base = datetime.now(timezone.utc) if now is None else now
        since = base - period[0]
        until = base - period[1] if period[1] is not None else None
    out = stats.summary(s, since=since, until=until, use_cache=use_cache, **filters)
    return {**_comparable(out, medians=False), "incidents": out["incidents"],
            "incidents_by_status": out["incidents_by_status"]}


def test_incremental_summary_equals_a_fresh_count_after_every_kind_of_change(known, engine, monkeypatch):
    """Every cached scope is brought up to date by folding only the new rollup rows; after
    each kind of change it must equal a summary counted afresh, and it must not have counted
    afresh itself (except right after a compaction, which folds rows it already had)."""
    from sqlalchemy import update

    from hub import stats
    from hub import tickets as T
    from hub.db import session_scope
    from hub.models import Ticket, TicketEvent

    cfg = known
    # Fixed period bounds for the whole test: a scope's cache key is its exact since/until.
    at = datetime.now(timezone.utc)
    periods = [dict(sc, period=None) if "period" not in sc else sc for sc in _SCOPES]
    afresh = count_calls(monkeypatch, stats, "_count_afresh")

    def check(step: str, expect_afresh: bool = False) -> None:
        afresh["n"] = 0
        with session_scope() as s:
            for sc in periods:
                sc = dict(sc)
                period = sc.pop("period")
                cached = _scoped(s, period=period, now=at, **sc)
                if period is not None:
                    since, until = at - period[0], (at - period[1] if period[1] is not None else None)
                    fresh = stats.summary(s, since=since, until=until, use_cache=False, **sc)
                else:
                    fresh = stats.summary(s, use_cache=False, **sc)
                fresh = {**_comparable(fresh, medians=False), "incidents": fresh["incidents"],
                         "incidents_by_status": fresh["incidents_by_status"]}
                assert cached == fresh, (step, sc, period)
        used = afresh["n"] - len(periods)  # the use_cache=False summaries count afresh by design
        assert (used > 0) if expect_afresh else (used == 0), (step, used)

    def step(name: str, change, expect_afresh: bool = False) -> None:
        with session_scope() as s:
            change(s)
        check(name, expect_afresh)

    afresh["n"] = 0
    with session_scope() as s:  # first call per scope: counted afresh, then cached
        for sc in periods:
            sc = dict(sc)
            _scoped(s, period=sc.pop("period"), now=at, **sc)
    check("unchanged")
    step("insert in the period", lambda s: make_ticket(s, "NEW0001", "PUPR", channel="bpbd", kecamatan=KEC_DURENAN,
                                                        age=timedelta(hours=1)))
    step("insert before the period", lambda s: make_ticket(s, "OLD0001", "BPBD", kecamatan=KEC_DURENAN,
                                                            age=timedelta(days=2), due_in=timedelta(hours=1)))
    step("status", lambda s: T.change_status(s, T.resolve_code(s, "PUPR001"), "diproses", "user:uji", cfg))
    step("overdue one finishes", lambda s: T.change_status(s, T.resolve_code(s, "PUPR002"), "selesai", "user:uji",
                                                            cfg, "beres"))
    step("reroute", lambda s: T.reroute(s, T.resolve_code(s, "BPBD002"), "PUPR", "user:uji", cfg, learn=False))
    step("merge into another incident", lambda s: T.merge(s, T.resolve_code(s, "NEW0001"),
                                                          T.resolve_code(s, "PUPR003"), "user:uji", cfg))
    step("place corrected", lambda s: s.execute(update(Ticket).where(Ticket.code == "PUPR003")
                                                .values(kecamatan_code=None)))
    step("due time moved into the past", lambda s: s.execute(
        update(Ticket).where(Ticket.code == "DUKC001").values(due_at=datetime.now(timezone.utc) - timedelta(hours=1))))
    step("created time corrected out of the period", lambda s: s.execute(
        update(Ticket).where(Ticket.code == "PUPR001").values(created_at=at - timedelta(hours=4))))

    def gone(s) -> None:
        t = T.resolve_code(s, "DUKC001")
        s.execute(delete(TicketEvent).where(TicketEvent.ticket_id == t.id))
        s.delete(t)

    step("delete", gone)
    assert stats.compact_counts(engine) > 0
    check("after compaction", expect_afresh=True)
    step("status after compaction", lambda s: T.change_status(s, T.resolve_code(s, "BPBD001"), "diproses",
                                                              "user:uji", cfg))
    with session_scope() as s:
        assert stats.rollup_matches(s)


def test_periodic_compaction_waits_for_enough_change_rows(known, engine):
    from hub import stats
    from hub.db import session_scope

    assert stats.compact_counts(engine, min_rows=1_000) == 0  # 8 tickets: not worth folding
    with session_scope() as s:
        assert stats.rollup_matches(s)
    assert stats.compact_counts(engine, min_rows=8) > 0
    assert stats.compact_counts(engine, min_rows=1) == 0  # folded rows carry no details


def test_migration_d9f4b2e6a871_keeps_counts_of_existing_tickets_and_counts_new_changes(known, db_url):
    """A regency upgrading with tickets: down to the previous revision and up again; the rollup
    still equals a fresh count, and changes after the upgrade carry their details."""
    from alembic import command

    from hub import stats
    from hub import tickets as T
    from hub.db import reset_engine, session_scope
    from hub.migrate import alembic_config
    from hub.models import TicketCount

    reset_engine()
    command.downgrade(alembic_config(db_url), "c3e8a1f4b6d2")
    try:
        with session_scope() as s:
            make_ticket(s, "MIG0001", "PUPR")  # counted by the old triggers
    finally:
        command.upgrade(alembic_config(db_url), "head")
        reset_engine()
    with session_scope() as s:
        assert stats.rollup_matches(s)
        before = _scoped(s)
        T.change_status(s, T.resolve_code(s, "MIG0001"), "diproses", "user:uji", known)
    with session_scope() as s:
        assert stats.rollup_matches(s)
        assert _scoped(s) == _scoped(s, use_cache=False)
        assert _scoped(s)["by_status"]["diproses"] == before["by_status"]["diproses"] + 1
        rows = s.execute(select(TicketCount.created_at, TicketCount.incident_id)
                         .order_by(TicketCount.id.desc()).limit(2)).all()
        assert all(r.created_at is not None and r.incident_id is not None for r in rows)


def test_a_moving_period_slides_the_cached_counts_exactly(known, engine, monkeypatch):
    """"Last 7 days" asked again later: the cached period is moved (tickets that left or
    entered at both edges, their incidents under both periods), never counted afresh."""
    from hub import stats
    from hub.db import session_scope

    with session_scope() as s:
        a = make_ticket(s, "EDGE001", "PUPR", age=timedelta(hours=4, minutes=30), due_in=timedelta(hours=1))
        make_ticket(s, "EDGE002", "PUPR", status="diproses", age=timedelta(hours=1), incident_id=a.incident_id)
        make_ticket(s, "EDGE003", "DLH", age=timedelta(minutes=50), due_in=timedelta(minutes=10))
    at = datetime.now(timezone.utc)
    afresh = count_calls(monkeypatch, stats, "_count_afresh")
    windows = [(5, None), (4, None), (4.6, None), (5, 0.7), (4, 0.9), (3, 0.5)]  # hours ago
    for filters in ({}, {"opd": "PUPR"}):
        for since_h, until_h in windows:
            since = at - timedelta(hours=since_h)
            until = at - timedelta(hours=until_h) if until_h is not None else None
            afresh["n"] = 0
            with session_scope() as s:
                cached = stats.summary(s, since=since, until=until, **filters)
                fresh = stats.summary(s, since=since, until=until, use_cache=False, **filters)
            for out in (cached, fresh):
                out.pop("generated_at")
                out.pop("finish_window")
            assert _comparable(cached, False) == _comparable(fresh, False), (filters, since_h, until_h)
            assert cached["incidents_by_status"] == fresh["incidents_by_status"], (filters, since_h, until_h)
            assert cached["incidents"] == fresh["incidents"]
            first_of_kind = (since_h, until_h) in ((5, None), (5, 0.7))
            assert afresh["n"] == (2 if first_of_kind else 1), (filters, since_h, until_h)


@pytest.mark.parametrize("filters", [{}, {"opd": "PUPR"}, {"kecamatan": KEC_DURENAN}])
def test_cached_default_trend_folds_each_change_exactly(known, engine, filters, monkeypatch):
    from sqlalchemy import update

    from hub import stats
    from hub import tickets as T
    from hub.db import session_scope
    from hub.models import Ticket, TicketEvent

    recounts = count_calls(monkeypatch, stats, "_day_counts")

    def check(expect_recount: bool = False) -> None:
        recounts["n"] = 0
        hour = datetime.now(timezone.utc).hour
        with session_scope() as s:
            cached = stats.trend(s, **filters)
        if datetime.now(timezone.utc).hour == hour:  # a new hour starts a new window: recounted
            assert recounts["n"] == int(expect_recount)
        with session_scope() as s:
            assert cached == stats._trend(s, None, None, filters.get("opd"), None, filters.get("kecamatan"), None, 7)

    check(expect_recount=True)
    with session_scope() as s:
        make_ticket(s, "TRD0001", "PUPR", kecamatan=KEC_DURENAN, age=timedelta(days=3))
    check()
    with session_scope() as s:
        T.reroute(s, T.resolve_code(s, "PUPR003"), "DLH", "user:uji", known, learn=False)
        s.execute(update(Ticket).where(Ticket.code == "PUPR001").values(kecamatan_code=KEC_DURENAN))
    check()
    with session_scope() as s:
        t = T.resolve_code(s, "TRD0001")
        s.execute(delete(TicketEvent).where(TicketEvent.ticket_id == t.id))
        s.delete(t)
    check()
    stats.compact_counts(engine)
    check(expect_recount=True)


def test_an_incident_left_empty_by_a_merge_is_not_counted_with_or_without_filters(known, engine):
    from hub import stats
    from hub import tickets as T
    from hub.db import session_scope

    with session_scope() as s:
        assert stats.summary(s)["incidents"] == 8
    with session_scope() as s:
        T.merge(s, T.resolve_code(s, "BPBD002"), T.resolve_code(s, "BPBD001"), "user:uji", known)
    with session_scope() as s:
        cached, fresh = stats.summary(s), stats.summary(s, use_cache=False)
        by_table = stats.summary(s, since=FAR_PAST)
    for out in (cached, fresh, by_table):
        assert out["incidents"] == 7
        assert out["incidents_by_status"] == {"menunggu": 4, "diproses": 1, "selesai": 2}


def test_priming_the_overview_leaves_nothing_to_count_afresh(known, engine, monkeypatch):
    """hub.web.warm asks for every overview period in the background of `simpul serve`: the
    regional head's own request then finds the counts ready (no fresh count of the store)."""
    from hub import stats
    from hub.db import session_scope
    from hub.web.pages import PERIODS, period_range
    from hub.web.warm import prime_overview

    afresh = count_calls(monkeypatch, stats, "_count_afresh")
    assert prime_overview() == len(PERIODS)
    primed = afresh["n"]
    assert primed >= len(PERIODS)
    with session_scope() as s:
        for key in PERIODS:
            since, _ = period_range(key)  # a moment later: moving periods slide, never recount
            got, fresh = stats.summary(s, since=since), stats.summary(s, since=since, use_cache=False)
            assert _comparable(got, medians=False) == _comparable(fresh, medians=False), key
            assert (got["incidents"], got["incidents_by_status"]) == \
                (fresh["incidents"], fresh["incidents_by_status"]), key
    assert afresh["n"] - primed == len(PERIODS)  # only the use_cache=False comparisons
