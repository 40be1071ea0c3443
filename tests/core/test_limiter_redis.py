"""The rate limiter's Redis counts (SIMPUL_REDIS_URL, hub.limiter_redis) against a real Redis:
the same windows and answers as the database counts, one count for several processes, and
Redis going away mid-use -> the database counts, one warning, never an error for the caller.

Needs Redis at SIMPUL_TEST_REDIS_URL (default redis://127.0.0.1:6379/0); under CI=true an
unreachable Redis is a failure, otherwise these tests are skipped. Each test uses its own key
prefix and deletes its keys afterwards.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from structlog.testing import capture_logs

REDIS_URL = os.environ.get("SIMPUL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_prefix():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but Redis at {REDIS_URL} is unreachable: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    prefix = f"simpul-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def _db_rows() -> int:
    from sqlalchemy import func, select

    from hub.db import get_engine
    from hub.models import RateCounter

    with get_engine().connect() as c:
        return c.execute(select(func.count()).select_from(RateCounter)).scalar_one()


def test_same_windows_and_answers_as_the_database(sqlite_url, redis_prefix):
    from hub.limiter import HOLD, MUTE, Limiter, Rule

    lim, now = Limiter(redis_url=REDIS_URL, redis_prefix=redis_prefix), datetime.now(timezone.utc)
    rule = Rule(2, 60, MUTE)
    verdicts = [lim.hit("k", rule, now) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, False, False]
    assert [v.first_over for v in verdicts] == [False, False, True, False]
    assert [v.action for v in verdicts] == ["pass", "pass", "mute", "mute"]
    assert 0 < verdicts[-1].retry_after <= 60
    assert lim.peek("k", rule, now).count == 4 and not lim.peek("k", rule, now).allowed
    assert lim.hit("k", rule, now + timedelta(seconds=61)).count == 1  # a new window
    assert lim.hit("k", rule, now + timedelta(seconds=61), cost=-1).count == 0  # a retry taken back
    assert lim.hit("other", Rule(1, 60, HOLD), now).allowed
    assert [(k, n) for k, n, _ in lim.active("", 1, now)] == [("other", 1)]
    assert lim.peek("missing", rule, now).count == 0
    assert _db_rows() == 0  # all of it in Redis

    import redis

    ttl = redis.Redis.from_url(REDIS_URL).ttl(f"{redis_prefix}rl:other")
    assert 55 <= ttl <= 66  # the key goes when its window ends: nothing to prune


def test_lockouts_listed_and_lifted_through_redis(sqlite_url, redis_prefix, monkeypatch):
    """The login limiter's keys (lockouts per source and name; lifting by name with a suffix
    match) behave in Redis as in the database, names with glob characters included."""
    from hub.limiter import Limiter, Rule
    from hub.settings import reset_settings
    from hub.web import security

    monkeypatch.setenv("SIMPUL_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("SIMPUL_REDIS_KEY_PREFIX", redis_prefix)
    reset_settings()
    now = datetime.now(timezone.utc)
    lim = Limiter()
    lim.hit("login:lock:10.0.0.1|bupati", security.LOCK_RULE, now)
    lim.hit("login:lock:10.0.0.2|bupati", security.LOCK_RULE, now)
    lim.hit("login:lock:10.0.0.3|a*b[1]", security.LOCK_RULE, now)
    lim.hit("login:fail:10.0.0.1|bupati", Rule(5, 900), now)
    shown = {(r["source"], r["username"]) for r in security.lockouts(now)}
    assert shown == {("10.0.0.1", "bupati"), ("10.0.0.2", "bupati"), ("10.0.0.3", "a*b[1]")}
    assert security.unlock("bupati") == 3  # two locks and the failure count
    assert {r["username"] for r in security.lockouts(now)} == {"a*b[1]"}
    assert security.unlock("a*b[1]") == 1
    assert security.lockouts(now) == [] and _db_rows() == 0


def test_a_remembered_refusal_sends_nothing_to_redis(sqlite_url, redis_prefix):
    """Logins' remembered refusals (hub.limiter, remember=True) work the same with Redis: past
    the limit the key's count in Redis stops growing, and a clear forgets at once."""
    import redis

    from hub.limiter import Limiter, Rule

    lim, now, rule = Limiter(redis_url=REDIS_URL, redis_prefix=redis_prefix), datetime.now(timezone.utc), Rule(2, 600)
    assert [lim.hit("login:src:x", rule, now, remember=True).allowed for _ in range(6)] == [True, True] + [False] * 4
    stored = lambda: redis.Redis.from_url(REDIS_URL).hget(f"{redis_prefix}rl:login:src:x", "hits")  # noqa: E731
    assert stored() == b"3"  # one hit past the limit, then memory
    assert lim.clear(["login:src:x"]) == 1
    assert lim.hit("login:src:x", rule, now, remember=True).allowed and stored() == b"1"
    assert _db_rows() == 0


HIT_SCRIPT = """
import sys
from hub.limiter import Limiter, Rule
from hub.db import make_engine
lim = Limiter(make_engine(sys.argv[1]), redis_url=sys.argv[2], redis_prefix=sys.argv[3])
print(sum(lim.hit("proc:shared", Rule(20, 600)).allowed for _ in range(int(sys.argv[4]))))
"""


def test_two_processes_share_one_count_in_redis(sqlite_url, redis_prefix):
    from hub.limiter import Limiter, Rule

    procs = [subprocess.Popen([sys.executable, "-c", HIT_SCRIPT, sqlite_url, REDIS_URL, redis_prefix, "15"],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    allowed = [int(p.communicate(timeout=120)[0].strip() or -1) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(allowed) == 20  # 30 hits, one limit of 20, however they interleaved
    # and a third limiter object (another process's) sees the same count
    assert Limiter(redis_url=REDIS_URL, redis_prefix=redis_prefix).peek("proc:shared", Rule(20, 600)).count == 30
    assert _db_rows() == 0
    print(f"two processes via Redis: 30 hits, {sum(allowed)} allowed ({allowed})")


def test_unreachable_redis_falls_back_to_the_database_with_one_warning(sqlite_url):
    from hub.limiter import Limiter, Rule

    closed = f"redis://127.0.0.1:{_free_port()}/0"
    lim, other = Limiter(redis_url=closed, redis_prefix="x:"), Limiter(redis_url=closed, redis_prefix="x:")
    with capture_logs() as logs:
        verdicts = [lim.hit("k", Rule(3, 60)) for _ in range(3)] + [other.hit("k", Rule(3, 60))]
        assert lim.active("", 1)[0][:2] == ("k", 4) and other.clear(["k"]) == 1
    assert [v.allowed for v in verdicts] == [True, True, True, False]  # counted, in the database
    warnings = [e for e in logs if e["event"] == "limiter.redis_unreachable"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"


@pytest.mark.skipif(shutil.which("redis-server") is None and os.environ.get("CI") != "true",
                    reason="redis-server is not installed")
def test_redis_stopping_mid_use_falls_back_and_comes_back(sqlite_url, tmp_path):
    """A Redis of the test's own (never the machine's shared one) is stopped while the limiter
    counts: the next hits are counted in the database; when Redis answers again (after
    RETRY_S), the limiter uses it again."""
    from hub import limiter_redis
    from hub.limiter import Limiter, Rule

    port = _free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
           "--dir", str(tmp_path)]

    def start():
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                return proc
            except OSError:
                time.sleep(0.05)
        proc.kill()
        pytest.fail("redis-server did not start")

    proc = start()
    try:
        lim, rule = Limiter(redis_url=f"redis://127.0.0.1:{port}/0", redis_prefix="t:"), Rule(100, 600)
        assert [lim.hit("k", rule).count for _ in range(3)] == [1, 2, 3]
        assert _db_rows() == 0
        proc.terminate()
        proc.wait(10)
        with capture_logs() as logs:
            after = [lim.hit("k", rule) for _ in range(5)]
        assert all(v.allowed for v in after) and [v.count for v in after] == [1, 2, 3, 4, 5]  # the database's
        assert _db_rows() == 1
        assert [e["event"] for e in logs].count("limiter.redis_unreachable") == 1
        proc = start()  # back (empty: it keeps nothing on disk)
        lim.hit("other", rule)  # still inside the old retry time: the database
        store = limiter_redis.redis_counts(f"redis://127.0.0.1:{port}/0", "t:")
        store._down_until = 0.0  # the retry time has passed
        with capture_logs() as logs:
            assert lim.hit("k", rule).count == 1  # Redis again (its count started afresh)
        assert [e["event"] for e in logs] == ["limiter.redis_back"]
    finally:
        proc.kill()
        proc.wait(10)


def test_login_and_intake_work_while_the_configured_redis_is_down(sqlite_client, seeded, monkeypatch):
    """SIMPUL_REDIS_URL points at a port where nothing listens: logins are still checked and
    limited (in the database), and SMS intake still stores and rate-limits messages."""
    from hub.db import session_scope
    from hub.lines.ratelimit import admit
    from hub.models import User
    from hub.settings import reset_settings
    from normalizer.types import InboundMessage
    from tests.web.conftest import PASSWORD, login, password_hash

    monkeypatch.setenv("SIMPUL_REDIS_URL", f"redis://127.0.0.1:{_free_port()}/0")
    monkeypatch.setenv("SIMPUL_REDIS_KEY_PREFIX", f"down-{uuid.uuid4().hex[:6]}:")
    reset_settings()
    with session_scope() as s:
        s.add(User(username="admin1", password_hash=password_hash(), role="admin"))
    with capture_logs() as logs:
        wrong = login(sqlite_client, "admin1", "salah-sekali")
        right = login(sqlite_client, "admin1", PASSWORD)
        msgs = [InboundMessage(channel="sms", text=f"Jalan rusak di Pogalan {i}", sender="+6281234567890",
                               provider_id=f"redis-down-{i}", received_at=datetime.now(timezone.utc))
                for i in range(4)]
        admitted = admit(msgs, limit=2)
    assert wrong.status_code == 401 and "salah" in wrong.text  # refused, not a 500
    assert right.status_code in (302, 303)
    assert [a.held for a in admitted] == [False, False, True, True]  # limited all the same
    assert _db_rows() >= 2
    assert [e["event"] for e in logs].count("limiter.redis_unreachable") == 1
