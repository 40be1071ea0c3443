"""People in the browser: session cookie login, CSRF tokens, lockout after failed logins.

The session cookie is signed with settings.secret_key (Starlette SessionMiddleware) and holds
only the user id, a password fingerprint and the CSRF token; never a password or a role that
the server would trust without reading the users table again.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone

from fastapi import Request
from sqlalchemy import select
from sqlmodel import Session

from hub.auth import Principal, hash_password, verify_password
from hub.db import get_engine
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
    """Changes when the password changes, so old sessions stop working."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, presented: str | None) -> bool:
    token = request.session.get("csrf")
    return bool(token and presented and hmac.compare_digest(str(token), str(presented)))


def login(session: Session, username: str, password: str, now: datetime | None = None) -> User:
    """Check a password; count failures and lock the account for 15 minutes after 5."""
    now = now or datetime.now(timezone.utc)
    user = session.scalars(select(User).where(User.username == username.strip())).first()
    if user is None or not user.active:
        verify_password(_DUMMY_HASH, password)  # same time as a real check
        log.info("web.login_failed", reason="unknown_user")
        raise LoginRefused("Nama pengguna atau kata sandi salah.")
    if user.locked_until is not None and user.locked_until > now:
        log.warning("web.login_locked", user=user.username)
        until = user.locked_until.astimezone(timezone(timedelta(hours=7))).strftime("%H:%M")
        raise LoginRefused(f"Akun dikunci karena terlalu banyak percobaan gagal. Coba lagi setelah pukul "
                           f"{until} WIB atau hubungi admin.")
    if not verify_password(user.password_hash, password):
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= MAX_FAILED:
            user.locked_until, user.failed_logins = now + LOCK_FOR, 0
            log.warning("web.account_locked", user=user.username, minutes=int(LOCK_FOR.total_seconds() // 60))
        session.add(user)
        session.commit()
        log.info("web.login_failed", reason="password", user=user.username)
        raise LoginRefused("Nama pengguna atau kata sandi salah.")
    user.failed_logins, user.locked_until = 0, None
    session.add(user)
    session.commit()
    log.info("web.login", user=user.username, role=user.role)
    return user


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
