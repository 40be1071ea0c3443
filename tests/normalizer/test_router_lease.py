"""Several `simpul serve` processes retrain the router at the same moment: only the one that
takes the `router_retrain` lease (hub.leases) trains and writes a model; the others skip that
round. SQLite and PostgreSQL, two engines as two processes would hold."""
from __future__ import annotations

import threading

from sqlalchemy import func, select, update


def _models(engine) -> int:
    from hub.models import RouterModel

    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(RouterModel)).scalar_one()


def test_two_processes_retraining_at_once_train_once(db_url, engine):
    from hub import leases
    from hub.db import make_engine, session_scope
    from hub.models import Lease
    from hub.router_learning import RETRAIN_LEASE, record_example, retrain_shared

    with session_scope() as s:
        for i in range(30):
            record_example(s, f"lampu PJU mati di gang {i}" if i % 2 else f"jalan berlubang di desa {i}",
                           "PKPP" if i % 2 else "PUPR", "learn")
    engines = [make_engine(db_url) for _ in range(2)]
    barrier, results = threading.Barrier(2), [None, None]

    def run(i: int) -> None:
        barrier.wait()
        results[i] = retrain_shared(engines[i], owner=f"proc-{i}")

    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        ran = [r[0] for r in results]
        assert sorted(ran) == [False, True], results
        assert _models(engine) == 1 and next(r[1] for r in results if r[0]) is not None
        # a re-route comes in: within the interval nobody retrains, not even the one that did
        with session_scope() as s:
            record_example(s, "kucing hilang di kebun", "SATPOLPP", "reroute")
        assert retrain_shared(engines[0], owner="proc-0") == (False, None)
        assert retrain_shared(engines[1], owner="proc-1") == (False, None)
        # the interval is over (as if 30 s passed): the next process in retrains, once
        with engine.begin() as c:
            c.execute(update(Lease.__table__).where(Lease.__table__.c.name == RETRAIN_LEASE).values(until=0))
        ran, row = retrain_shared(engines[1], owner="proc-1")
        assert ran and row is not None and _models(engine) == 2
    finally:
        for e in engines:
            e.dispose()
    assert leases.PROCESS_ID  # the default owner: host, pid and a random part


def test_a_lease_of_a_dead_holder_expires(engine):
    from hub import leases

    assert leases.acquire(engine, "job", 60, "a", now=1000.0)
    assert not leases.acquire(engine, "job", 60, "b", now=1030.0)  # a holds it
    assert leases.acquire(engine, "job", 60, "b", now=1061.0)  # a died: expired, b takes it
    leases.release(engine, "job", "a", now=1062.0)  # a's late release changes nothing
    assert not leases.acquire(engine, "job", 60, "c", now=1063.0)
    leases.release(engine, "job", "b", now=1064.0)
    assert leases.acquire(engine, "job", 60, "c", now=1064.0)


def test_training_does_not_hold_sqlites_write_lock(sqlite_url, sqlite_engine):
    """The retrain reads every decided example and trains for seconds on a big regency: only
    the new model's INSERT may run inside the BEGIN IMMEDIATE (the write lock intake needs).
    The statements the store sees, in order, tell."""
    from sqlalchemy import event

    from hub.db import make_engine, session_scope
    from hub.router_learning import record_example, retrain_shared

    with session_scope() as s:
        for i in range(30):
            record_example(s, f"lampu PJU mati di gang {i}" if i % 2 else f"jalan berlubang di desa {i}",
                           "PKPP" if i % 2 else "PUPR", "learn")
    eng = make_engine(sqlite_url)
    seen: list[tuple[int, str]] = []
    event.listen(eng, "before_cursor_execute",
                 lambda conn, cur, stmt, *a: seen.append((id(conn), " ".join(stmt.split())[:60])))
    try:
        ran, row = retrain_shared(eng, owner="solo")
    finally:
        eng.dispose()
    assert ran and row is not None
    locked, inside = None, []
    for conn, stmt in seen:
        if stmt.startswith("BEGIN IMMEDIATE"):
            locked = conn
        elif conn == locked and stmt.startswith(("COMMIT", "ROLLBACK")):
            locked = None
        elif conn == locked:
            inside.append(stmt)
    reads = [s for s in inside if "routing_examples" in s or "FROM tickets" in s]
    assert any(s.startswith("INSERT INTO router_models") for s in inside)
    assert reads == [], inside
