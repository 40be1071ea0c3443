"""Who is calling: OPD/system API keys and logged-in people, with roles from DESIGN.md.

Roles: admin, pimpinan (read all), operator (hotline console), opd (only their OPD's tickets).
API keys carry role intake | opd | admin; an opd key is scoped to one OPD. Secrets are only
ever stored hashed and never logged.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request
from sqlalchemy import select
from sqlmodel import Session

from hub.models import ApiKey, User

ROLES = ("admin", "pimpinan", "operator", "opd")
KEY_ROLES = ("intake", "opd", "admin")
# Who may read tickets (with reporters' phones for all but opd, which sees only its OPD's).
# An intake key only submits: it reads nothing back but the code it was given.
READ_ROLES = ("admin", "pimpinan", "operator", "opd")
# argon2id at OWASP's first recommended setting (19 MiB, 2 passes, 1 lane). argon2-cffi's default
# (64 MiB, 3 passes, 4 lanes) ran 4 threads for ~0.35 s of CPU per check: four clients posting
# wrong passwords took both cores from intake (issue #15 item 4). One lane keeps a check on
# one core (~0.05 s). Hashes made with older settings still verify and are re-made at the next
# successful login (needs_rehash).
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


@dataclass(frozen=True)
class Principal:
    kind: str  # "key" | "user"
    name: str
    role: str
    opd_code: str | None = None
    user_id: int | None = None

    @property
    def actor(self) -> str:
        return f"{'user' if self.kind == 'user' else 'key'}:{self.name}"

    def can_read_all(self) -> bool:
        return self.role in ("admin", "pimpinan", "operator")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def needs_rehash(hashed: str) -> bool:
    try:
        return _hasher.check_needs_rehash(hashed)
    except InvalidHashError:
        return False


def verify_password(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def _key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(session: Session, name: str, role: str, opd_code: str | None = None) -> str:
    """Returns the full key once; only its hash is stored."""
    if role not in KEY_ROLES:
        raise ValueError(f"role must be one of {KEY_ROLES}")
    if role == "opd" and not opd_code:
        raise ValueError("an opd key needs an OPD code")
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(24)
    full = f"sk_{prefix}_{secret}"
    session.add(ApiKey(prefix=prefix, key_hash=_key_hash(full), name=name, role=role, opd_code=opd_code))
    return full


def revoke_api_key(session: Session, prefix: str) -> ApiKey:
    key = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    if key is None:
        raise LookupError(f"no API key with prefix {prefix}")
    key.revoked_at = datetime.now(timezone.utc)
    session.add(key)
    _key_cache.clear()
    return key


# Verified keys are remembered briefly so the intake path does not query per request.
# A revocation takes effect at once in this process and within KEY_CACHE_S in others.
KEY_CACHE_S = 10.0
_key_cache: dict[str, tuple[Principal, float]] = {}


def cached_key_principal(presented: str) -> Principal | None:
    hit = _key_cache.get(_key_hash(presented.strip()))
    if hit is not None and hit[1] > time.monotonic():
        return hit[0]
    return None


def principal_for_key(session: Session, presented: str) -> Principal | None:
    digest = _key_hash(presented.strip())
    hit = cached_key_principal(presented)
    if hit is not None:
        return hit
    p = _lookup_key(session, presented)
    if p is not None:
        if len(_key_cache) > 10_000:
            _key_cache.clear()
        _key_cache[digest] = (p, time.monotonic() + KEY_CACHE_S)
    return p


def _lookup_key(session: Session, presented: str) -> Principal | None:
    parts = presented.strip().split("_")
    if len(parts) < 3 or parts[0] != "sk":
        return None
    key = session.scalars(select(ApiKey).where(ApiKey.prefix == parts[1])).first()
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.key_hash, _key_hash(presented.strip())):
        return None
    return Principal(kind="key", name=f"{key.name}", role=key.role, opd_code=key.opd_code)


def carries_api_key(scope) -> bool:
    """Whether an ASGI request presents a Simpul API key (X-API-Key, or a Bearer sk_ token),
    read from the raw headers before any Request object exists. Another bearer token (a
    proxy's) does not count: that request keeps its session and the normal routes."""
    for name, value in scope.get("headers") or ():
        if name == b"x-api-key" or (name == b"authorization" and value[:10].lower() == b"bearer sk_"):
            return True
    return False


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def authenticate(request: Request, session: Session) -> Principal:
    key = presented_key(request)
    if key:
        p = principal_for_key(session, key)
        if p is None:
            raise HTTPException(401, "invalid or revoked API key")
        return p
    # Who else may vouch for a request: the web's session cookie (hub/web), wired by hub.wiring.
    for resolver in getattr(request.app.state, "session_resolvers", ()):
        p = resolver(request)
        if p is not None:
            return p
    raise HTTPException(401, "authentication required: send 'Authorization: Bearer <API key>' or log in")


def require(p: Principal, *roles: str) -> Principal:
    if p.role not in roles:
        raise HTTPException(403, f"role {p.role} may not do this; needs one of {', '.join(roles)}")
    return p


def create_user(session: Session, username: str, password: str, role: str, opd_code: str | None = None,
                full_name: str | None = None) -> User:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == "opd" and not opd_code:
        raise ValueError("a user with role opd needs --opd")
    if len(password) < 8:
        raise ValueError("password must be at least 8 characters")
    if session.scalars(select(User).where(User.username == username)).first():
        raise ValueError(f"user {username} already exists")
    user = User(username=username, password_hash=hash_password(password), role=role, opd_code=opd_code,
                full_name=full_name)
    session.add(user)
    return user
