"""Refused logins are cheap (issue #15 item 4), on SQLite and PostgreSQL: once the store has
said a source or a username is over its limit, further attempts are refused from the limiter's
memory without a statement, a user lookup or a hash; lifting clears the memory; the limits
still hold for a second process sharing the store; known and unknown names cost the same.

Statements are counted on the engine (before_cursor_execute); hashes by a counting wrapper
around the real argon2 check."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

PASSWORD = "Benar-sekali-2026"
SOURCE = "10.7.7.7"


@pytest.fixture(autouse=True)
def answer_at_once(monkeypatch):
    """Refusals without their REFUSAL_DELAY_S (test_refusals_by_a_limit_are_held_back checks it)."""
    from hub.web import security

    monkeypatch.setattr(security, "REFUSAL_DELAY_S", 0)


@pytest.fixture
def users(db_url):
    """bupati with a light hash (the check's cost is read from the hash), and nothing else."""
    from argon2 import PasswordHasher
    from sqlmodel import Session

    from hub.db import get_engine
    from hub.models import User

    with Session(get_engine()) as s:
        s.add(User(username="bupati", role="pimpinan", full_name="Bupati",
                   password_hash=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)))
        s.commit()
    return db_url


@pytest.fixture
def statements():
    """The SQL statements the hub's engine runs while the test looks: a list to read and clear."""
    from sqlalchemy import event

    from hub.db import get_engine

    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement.split(None, 1)[0].upper())

    eng = get_engine()
    event.listen(eng, "before_cursor_execute", count)
    yield seen
    event.remove(eng, "before_cursor_execute", count)


@pytest.fixture
def hashes(monkeypatch):
    """How many password checks ran (the real check, counted)."""
    from hub.web import security

    done: list[str] = []
    real = security.verify_password

    def counted(hashed: str, password: str) -> bool:
        done.append(hashed)
        return real(hashed, password)

    monkeypatch.setattr(security, "verify_password", counted)
    return done


def attempt(username: str, password: str = "salah-sandi", source: str = SOURCE, now: datetime | None = None):
    """One login through hub.web.security.login: the user, or the refusal's message."""
    from hub.web import security

    try:
        return asyncio.run(security.login(username, password, source, now))
    except security.LoginRefused as exc:
        return str(exc)


def hits(key: str) -> int | None:
    from sqlalchemy import select

    from hub.db import get_engine
    from hub.models import RateCounter

    with get_engine().connect() as c:
        return c.execute(select(RateCounter.hits).where(RateCounter.key == key)).scalar()


def preset(key: str, rule, n: int) -> None:
    """n hits already counted in the store (as earlier attempts would have), not remembered."""
    from hub.limiter import Limiter

    lim = Limiter()
    for _ in range(n):
        lim.hit(key, rule)


def test_a_source_over_its_limit_is_refused_without_a_statement_or_hash(users, statements, hashes):
    from hub.web import security

    preset(f"login:src:{SOURCE}", security.SOURCE_RULE, security.SOURCE_RULE.limit)
    assert attempt("bupati") == security.SOURCE_REFUSED  # the store says so: one counting write
    assert hits(f"login:src:{SOURCE}") == security.SOURCE_RULE.limit + 1
    statements.clear()
    answers = [attempt(name, pw) for name, pw in [("bupati", "salah"), ("staf-1", "x"), ("bupati", PASSWORD),
                                                  ("tidak-ada", "y")] * 5]
    assert answers == [security.SOURCE_REFUSED] * 20  # the same answer, the right password included
    assert statements == [] and hashes == []  # no read, no write, no hash
    assert hits(f"login:src:{SOURCE}") == security.SOURCE_RULE.limit + 1
    assert attempt("bupati", PASSWORD, source="10.7.7.8").username == "bupati"  # another address is not limited


def test_a_username_over_its_limit_is_refused_without_a_statement_from_any_source(users, statements, hashes):
    from hub.web import security

    for name in ("bupati", "tidak-ada"):  # a known and an unknown name: the same answers
        preset(f"login:user:{name}", security.USERNAME_RULE, security.USERNAME_RULE.limit)
        assert attempt(name, source="10.8.0.1") == security.USERNAME_REFUSED  # read from the store
        statements.clear()
        assert [attempt(name.upper(), source=f"10.8.0.{i}") for i in range(2, 7)] == [security.USERNAME_REFUSED] * 5
        assert statements == [] and hashes == []
        assert [hits(f"login:src:10.8.0.{i}") for i in range(2, 7)] == [None] * 5  # nothing counted, nothing written
    assert attempt("operator", source="10.8.0.2") == security.REFUSED  # other names are not limited
    assert len(hashes) == 1


def test_lifting_a_limit_or_lockout_clears_the_memory_at_once(users):
    from hub.web import security

    preset(f"login:src:{SOURCE}", security.SOURCE_RULE, security.SOURCE_RULE.limit + 1)
    assert attempt("bupati", PASSWORD) == security.SOURCE_REFUSED
    assert attempt("bupati", PASSWORD) == security.SOURCE_REFUSED  # remembered
    assert security.unlock(key=f"login:src:{SOURCE}") == 1  # the admin page's "buka" for this row
    assert attempt("bupati", PASSWORD).username == "bupati"

    preset("login:user:bupati", security.USERNAME_RULE, security.USERNAME_RULE.limit)
    assert attempt("bupati", PASSWORD) == security.USERNAME_REFUSED
    assert attempt("bupati", PASSWORD, source="10.9.0.1") == security.USERNAME_REFUSED  # remembered
    assert security.unlock(username="Bupati") >= 1  # `simpul users unlock` / the user's "Buka kunci"
    assert attempt("bupati", PASSWORD, source="10.9.0.1").username == "bupati"

    for _ in range(security.MAX_FAILED):  # a lockout of (source, bupati), lifted by name
        attempt("bupati", "salah", source="10.9.0.2")
    assert "dikunci" in attempt("bupati", PASSWORD, source="10.9.0.2")
    assert security.unlock(username="bupati") >= 1
    assert attempt("bupati", PASSWORD, source="10.9.0.2").username == "bupati"


def test_another_processes_lift_is_seen_within_recheck_s(db_url):
    """Two Limiter objects, as two processes have: a lift in one reaches the other's memory when
    that re-reads the store, RECHECK_S at most after it remembered the refusal."""
    from hub.limiter import RECHECK_S, Limiter
    from hub.web import security

    a, b, now, key = Limiter(), Limiter(), datetime.now(timezone.utc), "login:src:10.1.2.3"
    rule = security.SOURCE_RULE
    preset(key, rule, rule.limit)
    assert not a.hit(key, rule, now, remember=True).allowed
    assert b.clear([key]) == 1  # lifted in the other process
    later = now + timedelta(seconds=RECHECK_S - 1)
    assert not a.hit(key, rule, later, remember=True).allowed and hits(key) is None  # still remembered
    assert a.hit(key, rule, now + timedelta(seconds=RECHECK_S), remember=True).allowed  # asked the store again
    assert hits(key) == 1


def test_a_remembered_refusal_asks_the_store_again_every_recheck_s(db_url):
    from hub.limiter import RECHECK_S, Limiter, Rule

    lim, now, rule = Limiter(), datetime.now(timezone.utc), Rule(3, 600)
    verdicts = [lim.hit("k", rule, now, remember=True) for _ in range(10)]
    assert [v.allowed for v in verdicts] == [True] * 3 + [False] * 7
    assert [v.count for v in verdicts] == list(range(1, 11))
    assert hits("k") == 4  # one write past the limit, then memory
    assert 595 <= verdicts[-1].retry_after <= 600
    assert not lim.hit("k", rule, now + timedelta(seconds=RECHECK_S), remember=True).allowed
    assert hits("k") == 5  # re-read (and counted) once per RECHECK_S
    assert lim.hit("k", rule, now + timedelta(seconds=601), remember=True).allowed  # the window ended
    assert lim.hit("h", Rule(1, 600, "hold"), now, remember=True).allowed
    assert [lim.hit("h", Rule(1, 600, "hold"), now, remember=True).count for _ in range(2)] == [2, 3]
    assert hits("h") == 3  # held messages are counted, never remembered


SECOND_PROCESS = """
import asyncio, sys
from hub.web import security
from hub.db import get_engine
from hub.models import RateCounter
from sqlalchemy import select
out = []
for _ in range(3):
    try:
        asyncio.run(security.login("bupati", sys.argv[1], sys.argv[2]))
        out.append("in")
    except security.LoginRefused as exc:
        out.append("source" if str(exc) == security.SOURCE_REFUSED else str(exc))
    with get_engine().connect() as c:
        out.append(c.execute(select(RateCounter.hits).where(RateCounter.key == "login:src:" + sys.argv[2])).scalar())
print(out)
"""


def test_the_source_limit_holds_in_a_second_process_sharing_the_store(users):
    from hub.web import security

    preset(f"login:src:{SOURCE}", security.SOURCE_RULE, security.SOURCE_RULE.limit)
    assert attempt("bupati", PASSWORD) == security.SOURCE_REFUSED  # this process remembers it
    out = subprocess.run([sys.executable, "-c", SECOND_PROCESS, PASSWORD, SOURCE], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    n = security.SOURCE_RULE.limit
    # the other process has not seen the key: it counts once in the store, is refused, then remembers
    assert out.stdout.strip().splitlines()[-1] == str(["source", n + 2, "source", n + 2, "source", n + 2])


HIT_SCRIPT = """
import sys
from hub.limiter import Limiter, Rule
from hub.db import make_engine
lim = Limiter(make_engine(sys.argv[1]))
print(sum(lim.hit("proc:shared", Rule(20, 600), remember=True).allowed for _ in range(int(sys.argv[2]))))
"""


def test_two_processes_remembering_share_one_limit(db_url):
    procs = [subprocess.Popen([sys.executable, "-c", HIT_SCRIPT, db_url, "25"], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    allowed = [int(p.communicate(timeout=120)[0].strip() or -1) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(allowed) == 20  # 50 hits, one limit of 20, however they interleaved
    assert 21 <= hits("proc:shared") <= 22  # each process wrote at most one hit past the limit (was 50)


def test_known_and_unknown_names_cost_the_same_until_refused(users, statements, hashes, monkeypatch):
    """Under the limits a known and an unknown name run the same statements and one hash each
    (an unknown one against a dummy hash made like a real one); over them, none of either
    (test_a_source_over_its_limit_... and test_a_username_over_its_limit_...)."""
    from argon2 import extract_parameters

    from hub.auth import hash_password
    from hub.limiter import Limiter
    from hub.web import security

    monkeypatch.setattr(Limiter, "_hits", 0)  # no prune (every PRUNE_EVERY hits) in between

    assert extract_parameters(security._DUMMY_HASH) == extract_parameters(hash_password("x"))
    runs = {}
    for name, source in (("bupati", "10.5.0.1"), ("tidak-ada", "10.5.0.2")):
        statements.clear()
        assert attempt(name, source=source) == security.REFUSED
        runs[name] = list(statements)
    assert runs["bupati"] == runs["tidak-ada"] and len(hashes) == 2
    assert hashes[1] == security._DUMMY_HASH


def test_refusals_by_a_limit_are_held_back_at_most_max_delayed_at_once(users, monkeypatch):
    """A refusal by a limit waits REFUSAL_DELAY_S before it is answered (a sprayer's connection
    waits instead of looping); past MAX_DELAYED waiting, refusals are answered at once; a wrong
    password is answered when its hash is done."""
    from hub.web import security

    preset(f"login:src:{SOURCE}", security.SOURCE_RULE, security.SOURCE_RULE.limit + 1)
    assert attempt("bupati") == security.SOURCE_REFUSED  # remembered from here on
    monkeypatch.setattr(security, "REFUSAL_DELAY_S", 3600)
    monkeypatch.setattr(security, "MAX_DELAYED", 2)

    async def scenario():
        held = [asyncio.create_task(security.login(f"staf-{i}", "x", SOURCE)) for i in range(2)]
        await asyncio.sleep(0)  # both start waiting
        assert security._delayed == 2
        third = asyncio.create_task(security.login("bupati", "x", SOURCE))
        wrong = asyncio.create_task(security.login("bupati", "salah", "10.7.7.8"))
        await asyncio.wait([third, wrong], timeout=120)  # a safety net, not a measure: both come at once
        assert third.done() and wrong.done() and not any(t.done() for t in held)  # those two still held back
        for t in held:
            t.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        return [str(t.exception()) for t in (third, wrong)], security._delayed

    answers, delayed_after = asyncio.run(scenario())
    assert answers == [security.SOURCE_REFUSED, security.REFUSED]
    assert delayed_after == 0
