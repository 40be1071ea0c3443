"""Payloads a line cannot read are kept, never lost (issue #13, item 1).

The rule for every line (Telegram, Twilio, Gammu, LAPOR!): what the sender gave us is stored
before any library tries to understand it.
- When we can still read who sent it and some text, it becomes an ordinary intake message
  marked `fields["unreadable"]` (the reason): processing makes a ticket and sends it to the
  triage OPD, so a person looks at it (`mark_for_triage`).
- When we cannot read even that, the raw body is stored as a *dead intake row*: a
  `raw_messages` row in state `unreadable` that processing never takes, counted at /metrics
  (`simpul_intake_unreadable`) and listed on the admin page (`store_unreadable`, `recent`).
Both are keyed (channel + the provider's id, or a hash of the body), so a provider retrying
the same payload stores it once.
"""
from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from hub.db import get_engine
from hub.intake import Accepted, accept
from hub.logging import get_logger
from hub.models import RawMessage
from normalizer.types import InboundMessage

log = get_logger(__name__)
UNREADABLE = "unreadable"  # raw_messages.state of a dead intake row
MAX_BODY = 64 * 1024  # characters of a raw body kept (a Bot API update is at most a few KB)


def body_text(body: bytes | str | Any) -> str:
    """The body as text, whatever it is (undecodable bytes become U+FFFD)."""
    if isinstance(body, (bytes, bytearray)):
        text = bytes(body).decode("utf-8", errors="replace")
    elif isinstance(body, str):
        text = body
    else:
        import json

        try:
            text = json.dumps(body, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(body)
    return text[:MAX_BODY]


def body_hash(body: bytes | str | Any) -> str:
    return hashlib.sha256(body_text(body).encode("utf-8", errors="replace")).hexdigest()[:32]


def store_unreadable(channel: str, body: bytes | str | Any, error: str, *, key: str | None = None,
                     sender: str | None = None, text: str = "", engine: Engine | None = None,
                     dedup_window_s: int = 600) -> Accepted:
    """Keep a payload nobody could read as a dead intake row (raises if storing fails)."""
    msg = InboundMessage(channel=channel, text=text or "", sender=sender,
                         provider_id=f"unreadable:{key or body_hash(body)}",
                         received_at=datetime.now(timezone.utc), raw={"body": body_text(body)},
                         fields={"unreadable": error[:500]})
    accepted = accept(msg, engine or get_engine(), dedup_window_s, state=UNREADABLE)
    log.warning("intake.unreadable_stored", channel=channel, raw_id=accepted.raw_id,
                duplicate=accepted.duplicate, error=error[:200])
    return accepted


def mark_for_triage(msg: InboundMessage, error: str, body: bytes | str | Any | None = None) -> InboundMessage:
    """A message read by hand from a payload the library refused: a ticket for the triage OPD."""
    raw = dict(msg.raw)
    if body is not None:
        raw["body"] = body_text(body)
    return dataclasses.replace(msg, fields={**msg.fields, "unreadable": error[:500]}, raw=raw)


def triage_reason(message: dict[str, Any]) -> str | None:
    """The reason a stored message must go to triage (processing reads the stored form)."""
    return ((message or {}).get("fields") or {}).get("unreadable")


def count(engine: Engine | None = None) -> int:
    with (engine or get_engine()).connect() as conn:
        return conn.execute(select(func.count()).select_from(RawMessage.__table__)
                            .where(RawMessage.__table__.c.state == UNREADABLE)).scalar_one()


def recent(session: Session, limit: int = 20) -> list[RawMessage]:
    return list(session.scalars(select(RawMessage).where(RawMessage.state == UNREADABLE)
                                .order_by(RawMessage.id.desc()).limit(limit)))
