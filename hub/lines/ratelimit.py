"""Per-sender rate limit for the phone lines (SMS, WhatsApp): a flood from one number is kept,
never lost, but does not flood the OPD.

How: a message beyond `rate_limit_per_sender` stored messages of the same (channel, sender) in
the last 10 minutes is still stored in raw_messages, with state "held" instead of "pending"
(unless the normalizer reads it as an emergency: those are never held).
The processor only takes "pending" rows, so a held message makes no ticket, no OPD delivery and
no receipt; the sender gets the `rate_limited` template once per window (not once per message,
which would answer a flood with a flood). An admin reads held rows and releases them with
`release_held` (they then become tickets as usual, repeats linked to the first ticket).
Counting is in the database, so several hub processes share one limit. Never drops a message.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Sequence

from sqlalchemy import Engine, and_, func, select
from sqlmodel import Session

from hub.db import get_engine
from hub.intake import Accepted, accept_many
from hub.logging import get_logger
from hub.models import RawMessage
from normalizer.types import InboundMessage

log = get_logger(__name__)
RAW = RawMessage.__table__
WINDOW_S = 600
HELD = "held"


@dataclass(frozen=True)
class Admission:
    accepted: Accepted
    held: bool  # stored but not processed: over the sender's limit
    notify: bool  # send the rate_limited reply (first held message of the window, not a retry)


def recent_counts(engine: Engine, channel: str, sender: str, now: datetime,
                  window_s: int = WINDOW_S) -> tuple[int, int]:
    """(stored, held) messages of this sender on this channel in the window."""
    since = now - timedelta(seconds=window_s)
    q = (select(func.count(), func.count().filter(RAW.c.state == HELD))
         .where(and_(RAW.c.channel == channel, RAW.c.sender == sender, RAW.c.stored_at >= since)))
    with engine.connect() as conn:
        total, held = conn.execute(q).one()
    return int(total), int(held or 0)


def over_limit(engine: Engine, msg: InboundMessage, limit: int, now: datetime | None = None) -> bool:
    """Would storing this message pass the sender's limit? Messages without a sender never are."""
    if not msg.sender or limit <= 0:
        return False
    total, _ = recent_counts(engine, msg.channel, msg.sender, now or datetime.now(timezone.utc))
    return total >= limit


def _is_emergency(engine: Engine, msg: InboundMessage, now: datetime) -> bool:
    """An emergency (darurat) is never held back, however many messages came before it. When
    the normalizer cannot tell, the message is not held either: a flood costs the OPD some
    tickets; a held cry for help could cost a life."""
    try:
        from hub.normalizer_loader import current_regency
        from normalizer import normalize
        from normalizer.types import Urgency

        with Session(engine) as session:
            return normalize(msg, current_regency(session), now).urgency == Urgency.DARURAT
    except Exception:
        log.exception("ratelimit.normalize_failed", channel=msg.channel)
        return True


def state_of(engine: Engine, raw_id: int) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(RAW.c.state).where(RAW.c.id == raw_id)).scalar_one_or_none()


def admit(messages: Sequence[InboundMessage], limit: int, engine: Engine | None = None,
          dedup_window_s: int = 600, now: datetime | None = None,
          answered: bool = False) -> list[Admission]:
    """Store messages (in order), holding those beyond each sender's limit. Sync.

    `answered=True`: the line answers the stored (not held) ones with their code itself (TwiML),
    so they carry fields["receipt_sent"] and the hub sends no second receipt. A held message
    gets its receipt from the hub when it is released."""
    engine = engine or get_engine()
    now = now or datetime.now(timezone.utc)
    counts: dict[tuple[str, str], list[int]] = {}  # (stored, held) in the window, as we go
    plan: list[tuple[bool, bool]] = []  # (held, notify)
    for m in messages:
        if not m.sender or limit <= 0:
            plan.append((False, False))
            continue
        key = (m.channel, m.sender)
        if key not in counts:
            counts[key] = list(recent_counts(engine, m.channel, m.sender, now))
        c = counts[key]
        held = c[0] >= limit and not _is_emergency(engine, m, now)
        plan.append((held, held and c[1] == 0))  # tell the sender once per window
        c[0] += 1
        c[1] += int(held)
    normal = [dataclasses.replace(m, fields={**m.fields, "receipt_sent": True}) if answered else m
              for m, (h, _) in zip(messages, plan) if not h]
    held_msgs = [m for m, (h, _) in zip(messages, plan) if h]
    results = iter(accept_many(normal, engine, dedup_window_s) if normal else [])
    held_results = iter(accept_many(held_msgs, engine, dedup_window_s, state=HELD) if held_msgs else [])
    out: list[Admission] = []
    for m, (h, notify) in zip(messages, plan):
        acc = next(held_results) if h else next(results)
        if acc.duplicate:  # a provider retry: answer as the stored original was answered
            out.append(Admission(acc, state_of(engine, acc.raw_id) == HELD, False))
            continue
        if h:
            log.info("ratelimit.held", channel=m.channel, raw_id=acc.raw_id, code=acc.ticket_code)
        out.append(Admission(acc, h, notify))
    return out


def release_held(engine: Engine | None = None, channel: str | None = None, sender: str | None = None,
                 raw_ids: Sequence[int] | None = None) -> int:
    """Admin action: turn held messages back into pending ones (they become tickets). Returns
    count. (hub.held, which the admin page uses too: the web part may not import the lines.)"""
    from hub import held

    return held.release_held(engine, channel, sender, raw_ids)
