"""Is each line that should be taking messages actually taking them? (issue #13, item 1)

A line whose loop has died, or whose polls have failed for a while, is *stopped*: citizens'
messages pile up unread at the provider. /readyz answers 503 and names it, /metrics exports
`simpul_line_up{line=...}` (1 running, 0 stopped), and the admin page shows it. A line that
still works but not as it should (a poll failed and is being retried, WhatsApp templates not
approved) is *degraded*: /readyz stays 200 and lists it, `simpul_line_degraded{line=...}` is 1,
the admin page shows it.

A line's start-up hook registers a check (`register(name, check)`) and its shut-down hook
removes it (nothing registers on import); a check returns `(running: bool, detail: str)` or a
`Status` (state, English detail for /readyz and logs, optional Indonesian text for the page).
`stale_check` builds the common one from the line's `channel_state` row (written by
hub.lines.health), so it works across processes (the poll may run in `simpul worker`).
Here, not in hub.lines: /readyz (hub.api) and the admin page (hub.web) read it, and the lines
package imports hub.api.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Union

from sqlmodel import Session

from hub import metrics
from hub.db import get_engine
from hub.logging import get_logger
from hub.models import ChannelState

log = get_logger(__name__)
RUNNING, DEGRADED, STOPPED = "running", "degraded", "stopped"


@dataclass(frozen=True)
class Status:
    state: str  # RUNNING | DEGRADED | STOPPED
    detail: str  # English: /readyz, logs
    page: str | None = None  # Bahasa Indonesia for the admin page (detail when None)


Check = Callable[[], Union[tuple[bool, str], Status]]
CHECKS: dict[str, Check] = {}
FAILURES_STOPPED = 5  # this many failed polls in a row: the line counts as stopped


def register(name: str, check: Check) -> None:
    CHECKS[name] = check


def unregister(name: str) -> None:
    CHECKS.pop(name, None)


def _aware(d: datetime | None) -> datetime | None:
    return d if d is None or d.tzinfo else d.replace(tzinfo=timezone.utc)


def stale_check(channel: str, max_age_s: float, started_at: datetime | None = None) -> Check:
    """Stopped when the line's last good poll is older than `max_age_s` (counted from start-up
    when it never succeeded), or after FAILURES_STOPPED failures in a row; degraded while
    fewer failures in a row are being retried."""
    started = started_at or datetime.now(timezone.utc)

    def check() -> Status:
        with Session(get_engine()) as s:
            st = s.get(ChannelState, channel)
        now = datetime.now(timezone.utc)
        ok_at = _aware(st.last_ok_at) if st else None
        since = max(ok_at, started) if ok_at else started
        failures = (st.consecutive_failures or 0) if st is not None else 0
        if failures >= FAILURES_STOPPED:
            return Status(STOPPED, f"{failures} failures in a row: {(st.last_error or '')[:200]}")
        if now - since > timedelta(seconds=max_age_s):
            last = ok_at.isoformat() if ok_at else "never"
            return Status(STOPPED, f"no successful poll for {int((now - since).total_seconds())} s (last: {last})")
        if failures:
            return Status(DEGRADED, f"{failures} failure(s) in a row, retrying: {(st.last_error or '')[:200]}",
                          f"{failures}× gagal berturut-turut, dicoba lagi: {(st.last_error or '')[:200]}")
        return Status(RUNNING, "ok")

    return check


def _status(got: tuple[bool, str] | Status) -> Status:
    if isinstance(got, Status):
        return got
    running, detail = got
    return Status(RUNNING if running else STOPPED, detail)


def report() -> dict[str, dict[str, object]]:
    """{line: {"running": bool, "state": running|degraded|stopped, "detail": str, "page": str}}
    for every registered line; sets the gauges."""
    out: dict[str, dict[str, object]] = {}
    for name, check in list(CHECKS.items()):
        try:
            st = _status(check())
        except Exception as exc:  # a check that cannot tell says so; it is not "running"
            st = Status(STOPPED, f"health check failed: {type(exc).__name__}")
        metrics.LINE_UP.labels(line=name).set(0 if st.state == STOPPED else 1)
        metrics.LINE_DEGRADED.labels(line=name).set(1 if st.state == DEGRADED else 0)
        out[name] = {"running": st.state != STOPPED, "state": st.state, "detail": st.detail,
                     "page": st.page or st.detail}
    return out
