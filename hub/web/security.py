"""People in the browser: session cookie login, CSRF tokens, login limits and lockouts.

The session cookie is signed with settings.secret_key (Starlette SessionMiddleware) and holds
only the user id, a password fingerprint and the CSRF token; never a password or a role that
the server would trust without reading the users table again.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from fastapi import Request
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from hub.auth import Principal, hash_password, needs_rehash, verify_password
from hub.db import get_engine, session_scope
from hub.limiter import REFUSE, Rule, limiter
from hub.logging import get_logger
from hub.models import User

log = get_logger(__name__)
MAX_FAILED = 5
LOCK_FOR = timedelta(minutes=15)
SESSION_HOURS = 12
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_DUMMY_HASH = hash_password("simpul-timing-equaliser")


class LoginRefused(Exception):
    """Wrong name/password, or a locked account; the message is shown to the person."""


def fingerprint(user: User) -> str:
    """Changes when the password changes or the sessions are ended (logout raises the user's
    session_gen), so old session cookies stop working: checked on every request."""
    return hashlib.sha256(f"{user.password_hash}|{user.session_gen or 0}".encode()).hexdigest()[:16]


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, presented: str | None) -> bool:
    token = request.session.get("csrf")
    return bool(token and presented and hmac.compare_digest(str(token), str(presented)))


# --- login: rate limits, lockout per (source, username), the hash off the event loop ---------
# Counted by the hub's one limiter (hub.limiter) in the database, so every process shares them.
# Lockouts are per (source, username): five wrong passwords from a stranger's address lock
# that address out of that account, never the account's owner elsewhere. The source limit
# stops one address guessing many names; the username limit (failures from every address)
# slows a guesser spread over many addresses. An unknown username is counted and answered
# exactly like a known one, and costs one (dummy) hash, so answers do not reveal which exist.
# A source or username the limiter knows to be over its limit is refused before any of that
# (_remembered_refusal): no read, no write, no hash, the same answer for every name.
SOURCE_RULE = Rule(30, 600, REFUSE)  # attempts per source address per 10 minutes
USERNAME_RULE = Rule(100, 900, REFUSE)  # failures per username (all sources) per 15 minutes
FAIL_RULE = Rule(MAX_FAILED, int(LOCK_FOR.total_seconds()), REFUSE)  # failures per (source, username)
LOCK_RULE = Rule(1, int(LOCK_FOR.total_seconds()), REFUSE)  # a lockout: its window is the lock
HASH_THREADS = 1  # password checks at once: logins never take more than one core from intake
MAX_WAITING = 32  # logins waiting for a hash slot before more are told to retry
_hash_pool = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="pwhash")
_waiting = 0
# A login refused by a limit or a lockout is answered REFUSAL_DELAY_S late: a sleep, no CPU, the
# same for every name. A sprayer's connections then wait instead of looping (four of them had
# sent ~850 refused attempts a second once a refusal cost no database work, and each attempt
# still costs the hub ~0.7 ms of its event loop in the web stack). At most MAX_DELAYED wait at
# once (a sprayer with more connections gets the rest at once), so waiting holds no more than
# that many requests open.
REFUSAL_DELAY_S = 0.5
MAX_DELAYED = 256
_delayed = 0
REFUSED = "Nama pengguna atau kata sandi salah."


def _name_key(username: str) -> str:
    return username.strip().lower()[:80]


def _pair(source: str, username: str) -> str:
    return f"{source[:64]}|{_name_key(username)}"


def _locked_message(seconds_left: int, now: datetime) -> str:
    until = (now + timedelta(seconds=seconds_left)).astimezone(timezone(timedelta(hours=7))).strftime("%H:%M")
    return (f"Akun dikunci karena terlalu banyak percobaan gagal. Coba lagi setelah pukul {until} WIB "
            f"atau hubungi admin.")


def _shown(username: str, known: bool) -> str:
    """The username for a log line: never what a stranger typed (it may be a password typed
    into the wrong field), only the name of an account that exists."""
    return _name_key(username) if known else "(unknown)"


SOURCE_REFUSED = "Terlalu banyak percobaan masuk dari perangkat ini. Coba lagi dalam beberapa menit."
USERNAME_REFUSED = ("Terlalu banyak percobaan masuk untuk akun ini. Coba lagi dalam beberapa menit "
                    "atau hubungi admin.")


def _remembered_refusal(username: str, source: str, now: datetime) -> None:
    """A source or username the limiter already knows to be over its limit is refused here,
    before any database read or write, any lookup and any hash (hub.limiter, remembered
    refusals): a password sprayer's refused attempts cost a dictionary lookup. No store access:
    runs on the event loop. The same answers as _before_hash gives from the store, for known
    and unknown names alike. Logged at debug: the refusal the store gave (once per key, process
    and RECHECK_S while it lasts) is the warning; a warning per attempt was ~10% of the cost
    of a refusal during a spray."""
    if limiter.recall(f"login:src:{source[:64]}", SOURCE_RULE, now) is not None:
        log.debug("web.login_rate_limited", by="source", source=source[:64], remembered=True)
        raise LoginRefused(SOURCE_REFUSED)
    if limiter.recall(f"login:user:{_name_key(username)}", USERNAME_RULE, now, cost=0) is not None:
        log.debug("web.login_rate_limited", by="username", source=source[:64], remembered=True)
        raise LoginRefused(USERNAME_REFUSED)


def _before_hash(username: str, source: str, now: datetime) -> tuple[int | None, str]:
    """Limits and lockout before any hashing; (user id or None, the hash to check against).
    The source is counted before the user is looked up, so a refusal by it reads nothing else."""
    src = limiter.hit(f"login:src:{source[:64]}", SOURCE_RULE, now, remember=True)
    if not src.allowed:
        log.warning("web.login_rate_limited", by="source", source=source[:64])
        raise LoginRefused(SOURCE_REFUSED)
    with Session(get_engine()) as s:
        user = s.scalars(select(User).where(User.username == username.strip())).first()
        found = (user.id, user.password_hash) if user is not None and user.active else (None, _DUMMY_HASH)
    shown = _shown(username, found[0] is not None)
    lock = limiter.peek(f"login:lock:{_pair(source, username)}", LOCK_RULE, now)
    if lock.count >= 1:
        log.warning("web.login_locked", user=shown, source=source[:64])
        raise LoginRefused(_locked_message(lock.retry_after, now))
    if not limiter.peek(f"login:user:{_name_key(username)}", USERNAME_RULE, now, remember=True).allowed:
        log.warning("web.login_rate_limited", by="username", user=shown)
        raise LoginRefused(USERNAME_REFUSED)
    return found


def _after_hash(user_id: int | None, ok: bool, username: str, source: str, now: datetime,
                password: str | None = None) -> User:
    pair = _pair(source, username)
    if ok and user_id is not None:
        limiter.clear([f"login:fail:{pair}"])
        with Session(get_engine(), expire_on_commit=False) as s:
            user = s.get(User, user_id)
        if user is not None and user.active:
            if password is not None and needs_rehash(user.password_hash):
                _rehash(user, password)
            log.info("web.login", user=user.username, role=user.role)
            return user
    fails = limiter.hit(f"login:fail:{pair}", FAIL_RULE, now)
    limiter.hit(f"login:user:{_name_key(username)}", USERNAME_RULE, now, remember=True)
    if fails.count >= MAX_FAILED:
        limiter.hit(f"login:lock:{pair}", LOCK_RULE, now)
        limiter.clear([f"login:fail:{pair}"])
        log.warning("web.account_locked", user=_shown(username, user_id is not None), source=source[:64],
                    minutes=int(LOCK_FOR.total_seconds() // 60))
    log.info("web.login_failed", user=_shown(username, user_id is not None), source=source[:64])
    raise LoginRefused(REFUSED)


def _rehash(user: User, password: str) -> None:
    """Store the password again under the current settings (it was hashed with older, costlier
    ones). The hash is made first, with no transaction open, then written in a short write
    transaction (BEGIN IMMEDIATE on SQLite), only if nobody changed it meanwhile. Before, the
    user was read, hashed and written in one deferred transaction: on SQLite any commit by the
    hub in those ~100 ms made the write fail at once ("database is locked", a 503 at login; the
    browser tests' first logins hit it under load)."""
    new, old = hash_password(password), user.password_hash
    try:
        with session_scope() as s:
            s.execute(update(User).where(User.id == user.id, User.password_hash == old).values(password_hash=new))
    except SQLAlchemyError as exc:  # optional work: the password was right, the login stands
        log.warning("web.rehash_failed", user=user.username, error=type(exc).__name__)
        return
    user.password_hash = new


async def login(username: str, password: str, source: str, now: datetime | None = None) -> User:
    """Check a password without stalling the event loop: the limits and the lookup in a worker
    thread, the argon2 check in a pool of HASH_THREADS threads. LoginRefused on any refusal."""
    global _waiting
    now = now or datetime.now(timezone.utc)
    source = source or "?"
    try:
        _remembered_refusal(username, source, now)
        user_id, hashed = await asyncio.to_thread(_before_hash, username, source, now)
    except LoginRefused:
        await _held_back()
        raise
    if _waiting >= MAX_WAITING:
        log.warning("web.login_busy", waiting=_waiting)
        raise LoginRefused("Server sedang sibuk. Coba lagi sebentar lagi.")
    _waiting += 1
    try:
        ok = await asyncio.get_running_loop().run_in_executor(_hash_pool, verify_password, hashed, password)
    finally:
        _waiting -= 1
    return await asyncio.to_thread(_after_hash, user_id, ok and user_id is not None, username, source, now,
                                   password if ok else None)


async def _held_back() -> None:
    """Wait REFUSAL_DELAY_S before a refusal by a limit or lockout is answered (see above)."""
    global _delayed
    if REFUSAL_DELAY_S <= 0 or _delayed >= MAX_DELAYED:
        return
    _delayed += 1
    try:
        await asyncio.sleep(REFUSAL_DELAY_S)
    finally:
        _delayed -= 1


def lockouts(now: datetime | None = None) -> list[dict]:
    """Active login lockouts and rate limits, for the admin: source, username, minutes left."""
    out = []
    for key, hits, left in limiter.active("login:lock:", 1, now):
        source, _, name = key[len("login:lock:"):].rpartition("|")
        out.append({"key": key, "kind": "kunci", "source": source, "username": name, "left_s": left})
    for key, hits, left in limiter.active("login:user:", USERNAME_RULE.limit, now):
        out.append({"key": key, "kind": "batas akun", "source": "(semua)", "username": key[len("login:user:"):],
                    "left_s": left, "hits": hits})
    for key, hits, left in limiter.active("login:src:", SOURCE_RULE.limit, now):
        out.append({"key": key, "kind": "batas alamat", "source": key[len("login:src:"):], "username": "(semua)",
                    "left_s": left, "hits": hits})
    return out


def unlock(username: str | None = None, key: str | None = None) -> int:
    """Lift lockouts: every one of `username` (from any source), or the one with `key`."""
    n = 0
    if key and key.startswith("login:"):
        n += limiter.clear([key])
    if username:
        name = _name_key(username)
        n += limiter.clear(prefix="login:lock:", suffix=f"|{name}")
        n += limiter.clear(prefix="login:fail:", suffix=f"|{name}")
        n += limiter.clear([f"login:user:{name}"])
    return n


def end_sessions(session: Session, user: User) -> None:
    """Every session cookie issued to `user` so far stops working (logout, deactivation)."""
    user.session_gen = (user.session_gen or 0) + 1
    session.add(user)


def start_session(request: Request, user: User) -> None:
    request.session.clear()  # a fresh session (and CSRF token) at every login
    request.session.update({"uid": user.id, "fp": fingerprint(user), "csrf": secrets.token_urlsafe(32)})


def session_user(request: Request) -> Principal | None:
    """The logged-in person behind the session cookie, re-read from the users table."""
    if "session" not in request.scope:
        return None
    uid = request.session.get("uid")
    if not uid:
        return None
    with Session(get_engine()) as s:
        user = s.get(User, uid)
        if user is None or not user.active or fingerprint(user) != request.session.get("fp"):
            return None
        return Principal(kind="user", name=user.username, role=user.role, opd_code=user.opd_code,
                         user_id=user.id)


def api_session_resolver(request: Request) -> Principal | None:
    """hub.auth.SESSION_RESOLVERS hook: the JSON API accepts a logged-in person. A change
    (POST/PATCH/...) must also carry the session's CSRF token in X-CSRF-Token."""
    p = session_user(request)
    if p is None:
        return None
    if request.method in UNSAFE and not csrf_ok(request, request.headers.get("x-csrf-token")):
        return None
    return p
