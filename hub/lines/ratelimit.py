"""Per-sender rate limit for the phone lines (SMS, WhatsApp): a flood from one number is kept,
never lost, but does not flood the OPD. The counting is the hub's one limiter (hub.limiter)
with the HOLD policy; Telegram uses the same limiter with MUTE.

How: a message beyond `rate_limit_per_sender` messages of the same (channel, sender) in a
10-minute window is still stored in raw_messages, with state "held" instead of "pending"
(unless the normalizer reads it as an emergency: those are never held).
The processor only takes "pending" rows, so a held message makes no ticket, no OPD delivery and
no receipt; the sender gets the `rate_limited` template once per window (not once per message,
which would answer a flood with a flood). An admin reads held rows and releases them with
`release_held` (they then become tickets as usual, repeats linked to the first ticket).
Counting is in the database (rate_counters), so several hub processes share one limit; a
provider's retry of a stored message is not counted. Never drops a message.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

from sqlalchemy import Engine, and_, func, select, update
from sqlmodel import Session

from hub.db import get_engine
from hub.intake import Accepted, accept_many
from hub.limiter import HOLD as HOLD_POLICY
from hub.limiter import Limiter, Rule, Verdict
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


def rule(limit: int) -> Rule:
    return Rule(limit, WINDOW_S, HOLD_POLICY)


def _key(msg: InboundMessage) -> str:
    return f"sender:{msg.channel}:{msg.sender}"


def count(engine: Engine, msg: InboundMessage, limit: int, now: datetime | None = None) -> Verdict | None:
    """Count one message of its sender; None when the message has no sender or there is no limit."""
    if not msg.sender or limit <= 0:
        return None
    return Limiter(engine).hit(_key(msg), rule(limit), now)


def uncount(engine: Engine, msg: InboundMessage, limit: int, now: datetime | None = None) -> None:
    """A provider's retry of a stored message is not a new message: take its count back."""
    if msg.sender and limit > 0:
        Limiter(engine).hit(_key(msg), rule(limit), now, cost=-1)


def over_limit(engine: Engine, msg: InboundMessage, limit: int, now: datetime | None = None) -> bool:
    """Would storing this message pass the sender's limit? (A peek: counts nothing.)"""
    if not msg.sender or limit <= 0:
        return False
    return not Limiter(engine).peek(_key(msg), rule(limit), now).allowed


def _first_told(engine: Engine, msg: InboundMessage, now: datetime) -> bool:
    """Whether this is the first held message of the sender's window (the one that is told)."""
    return Limiter(engine).hit(f"told:{msg.channel}:{msg.sender}", Rule(1, WINDOW_S, HOLD_POLICY), now).allowed


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
          answered: bool = False, counted: Sequence[Verdict | None] | None = None) -> list[Admission]:
    """Store messages (in order), holding those beyond each sender's limit. Sync.

    `answered=True`: the line answers the stored (not held) ones with their code itself (TwiML),
    so they carry fields["receipt_sent"] and the hub sends no second receipt. A held message
    gets its receipt from the hub when it is released. `counted`: the messages were already
    counted (`count`), these are their verdicts."""
    engine = engine or get_engine()
    now = now or datetime.now(timezone.utc)
    plan: list[tuple[bool, bool]] = []  # (held, notify)
    for i, m in enumerate(messages):
        v = counted[i] if counted is not None else count(engine, m, limit, now)
        held = v is not None and not v.allowed and not _is_emergency(engine, m, now)
        plan.append((held, held and _first_told(engine, m, now)))  # tell the sender once per window
    normal = [dataclasses.replace(m, fields={**m.fields, "receipt_sent": True}) if answered else m
              for m, (h, _) in zip(messages, plan) if not h]
    held_msgs = [m for m, (h, _) in zip(messages, plan) if h]
    results = iter(accept_many(normal, engine, dedup_window_s) if normal else [])
    held_results = iter(accept_many(held_msgs, engine, dedup_window_s, state=HELD) if held_msgs else [])
    out: list[Admission] = []
    for m, (h, notify) in zip(messages, plan):
        acc = next(held_results) if h else next(results)
        if acc.duplicate:  # a provider retry: answer as the stored original was answered
            uncount(engine, m, limit, now)
            if notify:  # it told nobody: the next held message does
                Limiter(engine).clear([f"told:{m.channel}:{m.sender}"])
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
