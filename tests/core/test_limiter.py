"""The hub's one rate limiter (hub.limiter) on SQLite and PostgreSQL: counts shared by several
processes, windows that end, policies chosen by the caller; and logins that hash off the event
loop."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

HIT_SCRIPT = """
import sys
from hub.limiter import Limiter, Rule
from hub.db import make_engine
lim = Limiter(make_engine(sys.argv[1]))
ok = sum(lim.hit("proc:shared", Rule(20, 600)).allowed for _ in range(int(sys.argv[2])))
print(ok)
"""


def test_two_processes_share_one_count(db_url):
    from hub.limiter import Limiter, Rule

    procs = [subprocess.Popen([sys.executable, "-c", HIT_SCRIPT, db_url, "15"], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    allowed = [int(p.communicate(timeout=120)[0].strip() or -1) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(allowed) == 20  # 30 hits, one limit of 20, however they interleaved
    v = Limiter().peek("proc:shared", Rule(20, 600))
    assert v.count == 30 and not v.allowed
    print(f"two processes: 30 hits, {sum(allowed)} allowed ({allowed})")


def test_window_ends_first_over_once_and_policies(db_url):
    from hub.limiter import HOLD, MUTE, Limiter, Rule

    lim, now = Limiter(), datetime.now(timezone.utc)
    rule = Rule(2, 60, MUTE)
    verdicts = [lim.hit("k", rule, now) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, False, False]
    assert [v.first_over for v in verdicts] == [False, False, True, False]
    assert [v.action for v in verdicts] == ["pass", "pass", "mute", "mute"]
    assert 0 < verdicts[-1].retry_after <= 60
    assert lim.hit("k", rule, now + timedelta(seconds=61)).count == 1  # a new window
    assert lim.hit("other", Rule(1, 60, HOLD), now).allowed
    assert [k for k, _, _ in lim.active("", 1, now + timedelta(seconds=61))] == ["k"]
    assert lim.prune(now + timedelta(seconds=200)) == 2
    with pytest.raises(ValueError):
        Rule(1, 60, "drop")


def test_lapor_limit_is_shared_by_processes(db_url):
    """The public form's limit lives in the database: a second app process sees the first's count."""
    from hub.web.public import RateLimit

    a, b = RateLimit(3, 600, "lapor"), RateLimit(3, 600, "lapor")  # as two processes would build it
    assert [a.allow("10.1.1.1"), b.allow("10.1.1.1"), a.allow("10.1.1.1"), b.allow("10.1.1.1")] == \
        [True, True, True, False]
    assert b.allow("10.1.1.2")


def test_logins_hash_off_the_event_loop(sqlite_url):
    """Four wrong passwords at once: the event loop keeps ticking (before: each argon2 check
    stopped it for the whole hash), and at most HASH_THREADS hashes run at a time."""
    from hub.web import security

    async def scenario():
        gaps, stop = [], False

        async def ticker():
            last = time.perf_counter()
            while not stop:
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        t = asyncio.create_task(ticker())
        started = time.perf_counter()
        results = await asyncio.gather(*(security.login(f"orang-{i}", "salah-sandi", f"10.0.0.{i}")
                                         for i in range(4)), return_exceptions=True)
        took = time.perf_counter() - started
        stop = True
        await t
        return results, max(gaps), took

    results, worst, took = asyncio.run(scenario())
    assert all(isinstance(r, security.LoginRefused) for r in results)
    assert security._hash_pool._max_workers == security.HASH_THREADS
    # the four hashes took `took` seconds; the loop never stopped for more than a fraction
    print(f"4 logins in {took:.2f}s, longest event-loop gap {worst * 1000:.0f} ms")
    assert worst < max(0.25, took / 4)


def test_a_password_check_uses_one_lane_and_old_hashes_are_remade_at_login(db_url):
    """argon2-cffi's default hash (4 lanes = 4 threads, 64 MiB) took both cores for ~0.35 s of CPU
    per check; the hub's checks run on one lane. A password stored with the old settings still
    logs in, and that login re-makes it with the new ones."""
    from argon2 import PasswordHasher, extract_parameters
    from sqlmodel import Session

    from hub.auth import hash_password
    from hub.db import get_engine
    from hub.models import User
    from hub.web import security

    assert extract_parameters(hash_password("x")).parallelism == 1
    with Session(get_engine()) as s:
        s.add(User(username="bupati", role="pimpinan", full_name="Bupati",
                   password_hash=PasswordHasher().hash("Benar-sekali-2026")))
        s.commit()
    user = asyncio.run(security.login("bupati", "Benar-sekali-2026", "10.9.9.9"))
    params = extract_parameters(user.password_hash)
    assert (params.parallelism, params.memory_cost, params.time_cost) == (1, 19456, 2)
    with Session(get_engine()) as s:
        assert extract_parameters(s.get(User, user.id).password_hash).parallelism == 1
    assert asyncio.run(security.login("bupati", "Benar-sekali-2026", "10.9.9.9")).id == user.id
    with pytest.raises(security.LoginRefused):
        asyncio.run(security.login("bupati", "salah", "10.9.9.9"))
