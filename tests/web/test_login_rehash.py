"""A password hashed with older settings is hashed again at the next login (hub.web.security),
on SQLite and PostgreSQL, and that write never fails the login because the hub committed
something meanwhile. Before, the user was read, re-hashed (~0.1 s) and written in one deferred
transaction: on SQLite a commit by anyone in between made the write fail at once ("database is
locked", 503 at /masuk) - the browser tests' first logins hit it whenever the hub's worker
committed during the hash."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, select, text

PASSWORD = "Sandi-lama-2019"


@pytest.fixture
def old_user(db_url):
    from argon2 import PasswordHasher
    from sqlmodel import Session

    from hub.db import get_engine
    from hub.models import User

    with Session(get_engine()) as s:
        s.add(User(username="sekda", role="pimpinan", full_name="Sekda",
                   password_hash=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)))
        s.commit()
    return db_url


def _stored_hash(username: str) -> str:
    from sqlmodel import Session

    from hub.db import get_engine
    from hub.models import User

    with Session(get_engine()) as s:
        return s.scalars(select(User.password_hash).where(User.username == username)).one()


def test_an_old_hash_is_made_again_with_the_current_settings(old_user, monkeypatch):
    from hub.auth import needs_rehash, verify_password
    from hub.web import security

    monkeypatch.setattr(security, "REFUSAL_DELAY_S", 0)
    before = _stored_hash("sekda")
    assert needs_rehash(before)
    user = asyncio.run(security.login("sekda", PASSWORD, "10.1.1.1"))
    after = _stored_hash("sekda")
    assert after != before and not needs_rehash(after) and verify_password(after, PASSWORD)
    # the session started from this login carries the stored hash's fingerprint: it stays valid
    assert security.fingerprint(user) == security.fingerprint(type(user)(password_hash=after,
                                                                          session_gen=user.session_gen))
    # the next login finds nothing to redo
    asyncio.run(security.login("sekda", PASSWORD, "10.1.1.1"))
    assert _stored_hash("sekda") == after


def test_a_commit_by_the_hub_during_the_rehash_does_not_fail_the_login(old_user, monkeypatch):
    """Another connection commits right after the login read the user (as the hub's worker does
    all the time): the login must still succeed and store the new hash."""
    from hub.auth import needs_rehash
    from hub.db import get_engine, make_engine
    from hub.web import security

    monkeypatch.setattr(security, "REFUSAL_DELAY_S", 0)
    other = make_engine(old_user)
    with other.begin() as c:
        c.execute(text("CREATE TABLE IF NOT EXISTS scratch_commits (n INTEGER)"))
    commits = []

    def after_execute(conn, cursor, statement, *args):
        # the read of the user after the password check (by id), as the rehash starts
        if statement.lstrip().upper().startswith("SELECT") and "users.id = " in statement and not commits:
            with other.begin() as c:  # the worker commits while the login holds its read
                c.execute(text("INSERT INTO scratch_commits (n) VALUES (1)"))
            commits.append(1)

    engine = get_engine()
    event.listen(engine, "after_cursor_execute", after_execute)
    try:
        user = asyncio.run(security.login("sekda", PASSWORD, "10.2.2.2"))
    finally:
        event.remove(engine, "after_cursor_execute", after_execute)
        with other.begin() as c:
            c.execute(text("DROP TABLE scratch_commits"))
        other.dispose()
    assert commits == [1] and user.username == "sekda"
    assert not needs_rehash(_stored_hash("sekda"))
