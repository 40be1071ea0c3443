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
