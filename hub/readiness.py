"""Is each line that should be taking messages actually taking them? (issue #13, item 1)

A line whose loop has died, or whose polls have failed for a while, is *stopped*: citizens'
messages pile up unread at the provider. /readyz answers 503 and names it, /metrics exports
`simpul_line_up{line=...}` (1 running, 0 stopped), and the admin page shows it.

A polling line's start-up hook registers a check (`register(name, check)`) and its shut-down
hook removes it (nothing registers on import); a check returns `(running: bool, detail: str)`.
`stale_check` builds the common one from the line's `channel_state` row (written by
hub.lines.health), so it works across processes (the poll may run in `simpul worker`).
Here, not in hub.lines: /readyz (hub.api) and the admin page (hub.web) read it, and the lines
package imports hub.api.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlmodel import Session

from hub import metrics
from hub.db import get_engine
from hub.logging import get_logger
from hub.models import ChannelState

log = get_logger(__name__)
Check = Callable[[], tuple[bool, str]]
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
    when it never succeeded), or after FAILURES_STOPPED failures in a row."""
    started = started_at or datetime.now(timezone.utc)

    def check() -> tuple[bool, str]:
        with Session(get_engine()) as s:
            st = s.get(ChannelState, channel)
        now = datetime.now(timezone.utc)
        ok_at = _aware(st.last_ok_at) if st else None
        since = max(ok_at, started) if ok_at else started
        if st is not None and (st.consecutive_failures or 0) >= FAILURES_STOPPED:
            return False, f"{st.consecutive_failures} failures in a row: {(st.last_error or '')[:200]}"
        if now - since > timedelta(seconds=max_age_s):
            last = ok_at.isoformat() if ok_at else "never"
            return False, f"no successful poll for {int((now - since).total_seconds())} s (last: {last})"
        return True, "ok"

    return check


def report() -> dict[str, dict[str, object]]:
    """{line: {"running": bool, "detail": str}} for every registered line; sets the gauge."""
    out: dict[str, dict[str, object]] = {}
    for name, check in list(CHECKS.items()):
        try:
            running, detail = check()
        except Exception as exc:  # a check that cannot tell says so; it is not "running"
            running, detail = False, f"health check failed: {type(exc).__name__}"
        metrics.LINE_UP.labels(line=name).set(1 if running else 0)
        out[name] = {"running": running, "detail": detail}
    return out
