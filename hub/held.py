"""Messages the flood limiter (hub.lines.ratelimit) holds: listed per line and sender and
released by an admin (all, per sender, or one by one). Below both the lines and the web part,
which may not import each other."""
from __future__ import annotations

from typing import Sequence

from sqlalchemy import Engine, and_, select, update

from hub.db import get_engine, writer
from hub.logging import get_logger
from hub.models import RawMessage

log = get_logger(__name__)
RAW = RawMessage.__table__
HELD = "held"


def list_held(engine: Engine | None = None, limit: int = 500) -> list[dict]:
    """Messages the limiter holds, grouped per line and sender (most held first): for the admin
    page. Each group: channel, sender, count, first/last time, and its messages (id, time, text)."""
    engine = engine or get_engine()
    with engine.connect() as conn:
        rows = conn.execute(select(RAW.c.id, RAW.c.channel, RAW.c.sender, RAW.c.received_at, RAW.c.text)
                            .where(RAW.c.state == HELD).order_by(RAW.c.id).limit(limit)).all()
    groups: dict[tuple[str, str], dict] = {}
    for r in rows:
        g = groups.setdefault((r.channel, r.sender or ""), {"channel": r.channel, "sender": r.sender or "",
                                                            "messages": []})
        g["messages"].append({"id": r.id, "at": r.received_at, "text": r.text or ""})
    out = list(groups.values())
    for g in out:
        g["count"], g["first"], g["last"] = len(g["messages"]), g["messages"][0]["at"], g["messages"][-1]["at"]
    out.sort(key=lambda g: (-g["count"], g["channel"], g["sender"]))
    return out


def release_held(engine: Engine | None = None, channel: str | None = None, sender: str | None = None,
                 raw_ids: Sequence[int] | None = None) -> int:
    """Admin action: turn held messages back into pending ones (they become tickets). Returns count.
    `raw_ids` releases just those messages (one by one from the admin page)."""
    engine = engine or get_engine()
    cond = RAW.c.state == HELD
    if raw_ids is not None:
        cond = and_(cond, RAW.c.id.in_(list(raw_ids)))
    if channel:
        cond = and_(cond, RAW.c.channel == channel)
    if sender:
        cond = and_(cond, RAW.c.sender == sender)
    with writer(engine).begin() as conn:
        n = conn.execute(update(RAW).where(cond).values(state="pending")).rowcount
    log.info("ratelimit.released", channel=channel, count=n)
    return n
