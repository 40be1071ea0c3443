"""Line health: one channel_state row per line (last success, last error and how many failures
in a row, last message, the line's cursor), shown on the admin page. Every line that pulls or
pushes records through here; a health write never decides whether a message is stored.

Whether a line is *running* is hub.readiness (its checks read these rows).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from hub.db import get_engine, writer
from hub.models import ChannelState

STATE = ChannelState.__table__


def _utc(d: datetime | None) -> datetime | None:
    if d is None:
        return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def ensure_row(engine: Engine, channel: str) -> None:
    with Session(writer(engine)) as s:
        if s.get(ChannelState, channel) is None:
            s.add(ChannelState(channel=channel, cursor={}))
            try:
                s.commit()
            except IntegrityError:  # another process created it first
                s.rollback()


def record_ok(engine: Engine, channel: str, **values: Any) -> None:
    """A success: failures back to 0; `values` sets other columns too (cursor, last_message_at)."""
    ensure_row(engine, channel)
    with writer(engine).begin() as conn:
        conn.execute(update(STATE).where(STATE.c.channel == channel)
                     .values(last_ok_at=datetime.now(timezone.utc), consecutive_failures=0, **values))


def record_failure(engine: Engine, channel: str, error: str, max_len: int = 2000) -> None:
    ensure_row(engine, channel)
    with writer(engine).begin() as conn:
        conn.execute(update(STATE).where(STATE.c.channel == channel)
                     .values(last_error_at=datetime.now(timezone.utc), last_error=error[:max_len],
                             consecutive_failures=STATE.c.consecutive_failures + 1))


def line_state(channel: str, engine: Engine | None = None) -> dict[str, Any] | None:
    """What the dashboard shows for a line, or None before its first record."""
    with Session(engine or get_engine()) as s:
        st = s.get(ChannelState, channel)
        if st is None:
            return None
        return {"channel": channel, "last_ok_at": _utc(st.last_ok_at), "last_error_at": _utc(st.last_error_at),
                "last_error": st.last_error, "consecutive_failures": st.consecutive_failures,
                "last_message_at": _utc(st.last_message_at), "cursor": dict(st.cursor or {})}


def record(channel: str, ok: bool, error: str | None = None, got: bool = False) -> None:
    """Note one poll of a line in its channel_state row (created when missing)."""
    engine = get_engine()
    if ok:
        record_ok(engine, channel, **({"last_message_at": datetime.now(timezone.utc)} if got else {}))
    else:
        record_failure(engine, channel, error or "", max_len=500)
