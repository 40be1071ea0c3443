"""When the store is unreachable: 503 with Retry-After on every path, one log line per failure
kind per interval, and nothing to do to recover (issue #15, item 3). A parameter the store
cannot take (an integer beyond 64 bits, a NUL on PostgreSQL) is a 400, not a 500 (item 11).

`StoreGuard` is a pure ASGI middleware around the whole app (inside RequestContext): an
exception from any route that means "the database cannot be reached" becomes a 503 with
`Retry-After` instead of a 500 and an 80-line traceback; an `InvalidMessage` from the intake
door becomes a 422 with its reason. The engine's pool (pre-ping on PostgreSQL) reconnects by
itself once the database is back, so the next request simply succeeds.
"""
from __future__ import annotations

import threading
import time

import psycopg
from starlette.responses import JSONResponse

from hub.logging import get_logger

log = get_logger(__name__)
RETRY_AFTER_S = 5
LOG_INTERVAL_S = 10.0
_last_logged: dict[str, float] = {}
_suppressed: dict[str, int] = {}
_lock = threading.Lock()


def is_unavailable(exc: BaseException | None) -> bool:
    """Does `exc` (or what caused it) mean the database cannot be reached right now?"""
    from sqlalchemy import exc as sa_exc

    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                            sa_exc.DisconnectionError, ConnectionError)):
            return True
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def is_bad_value(exc: BaseException | None) -> bool:
    """Does `exc` say a parameter the caller gave cannot be stored or compared (an integer
    beyond 64 bits, a NUL character on PostgreSQL)? Then it is bad input (400), not a bug."""
    from sqlalchemy import exc as sa_exc

    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OverflowError) or isinstance(exc, sa_exc.DataError):
            return True
        if isinstance(exc, psycopg.DataError):
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
        seen += 1
    return False


def kind_of(exc: BaseException) -> str:
    """A short, stable name of the failure for the throttled log line (no data from the row)."""
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else ""
    for needle, name in (("Connection refused", "connection_refused"), ("terminating connection", "terminated"),
                         ("server closed the connection", "closed"), ("the database system is", "starting_or_stopping"),
                         ("timeout", "timeout"), ("locked", "locked"), ("unable to open", "cannot_open")):
        if needle.lower() in text.lower():
            return f"{type(exc).__name__}:{name}"
    return type(exc).__name__


def log_throttled(event: str, exc: BaseException, **kw) -> None:
    """One line per (event, failure kind) per LOG_INTERVAL_S, with how many were left out."""
    key = f"{event}|{kind_of(exc)}"
    now = time.monotonic()
    with _lock:
        last = _last_logged.get(key)
        if last is not None and now - last < LOG_INTERVAL_S:
            _suppressed[key] = _suppressed.get(key, 0) + 1
            return
        _last_logged[key] = now
        skipped = _suppressed.pop(key, 0)
    log.error(event, kind=kind_of(exc), error=str(exc).splitlines()[0][:200] if str(exc) else "",
              suppressed_since_last=skipped, **kw)


def unavailable_response() -> JSONResponse:
    return JSONResponse({"detail": "penyimpanan sedang tidak tersedia, silakan coba lagi"}, status_code=503,
                        headers={"Retry-After": str(RETRY_AFTER_S)})


class StoreGuard:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = {"v": False}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                started["v"] = True
                if message["status"] == 503 and not any(k.lower() == b"retry-after" for k, _ in message.get("headers") or ()):
                    message["headers"] = list(message.get("headers") or ()) + [
                        (b"retry-after", str(RETRY_AFTER_S).encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if started["v"]:
                raise
            if getattr(exc, "http_status", None):  # a refusal that knows its answer (hub.guard.InvalidMessage: 422)
                resp = JSONResponse({"detail": str(exc)}, status_code=exc.http_status)
            elif is_bad_value(exc):  # a value the store cannot take: the caller's input, not a 500
                log.info("request.bad_value", path=scope.get("path", ""), error=type(exc).__name__)
                resp = JSONResponse({"detail": "invalid value: a number out of range or a NUL character "
                                               "in a parameter"}, status_code=400)
            elif is_unavailable(exc):
                log_throttled("store.unavailable", exc, path=scope.get("path", ""))
                resp = unavailable_response()
            else:
                raise
            await resp(scope, receive, send)
