"""The door and the quarantine: bad messages are refused at intake, and a stored message that
cannot be processed is isolated so that every other message flows on (issue #15, items 1-2).

- `check_message` runs on every intake path before a message is stored: NUL characters are
  removed from every text (PostgreSQL cannot store them; SQLite could, so both stores now keep
  the same text), and a `received_at` far outside now or with an offset beyond +-14:00 is an
  `InvalidMessage` that the paths answer with 422 and the reason.
- `process_isolated` is processing's fallback when a whole batch fails (for any reason, e.g. a
  row the driver cannot even load): each pending row is then processed on its own; a row that
  fails `MAX_ATTEMPTS` times is parked as `failed` with its error, for the admin page to show
  and replay, while the rows around it become tickets. The attempts are counted in the store
  (raw_messages.attempts), so restarts and several processes share the count.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import Engine, String, case, cast, literal, select, update
from sqlmodel import Session

from hub.logging import get_logger
from hub.unavailable import is_unavailable
from hub.models import RawMessage
from normalizer.types import Attachment, InboundMessage

log = get_logger(__name__)
RAW = RawMessage.__table__

MAX_OFFSET = timedelta(hours=14)  # the widest real UTC offsets are -12:00 and +14:00
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)  # old hotline logs are imported; nothing older
MAX_FUTURE = timedelta(days=1)  # a client clock a little ahead is fine, a year ahead is not
KEY_MAX = 200  # raw_messages.idempotency_key / provider_id / sender column width
MAX_ATTEMPTS = 3  # processing attempts of one message before it is parked as failed


class InvalidMessage(ValueError):
    """A message the hub refuses at the door (422 with this reason; hub.unavailable.StoreGuard
    answers any exception carrying `http_status` with it)."""
    http_status = 422


def strip_nul(value: Any) -> Any:
    """`value` with every NUL character removed from its strings (dict keys too), recursively."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {strip_nul(k): strip_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(strip_nul(v) for v in value)
    return value


def check_time(at: datetime | None, now: datetime | None = None, field: str = "received_at") -> None:
    if at is None:
        return
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidMessage(f"{field} needs a timezone offset, e.g. 2026-11-28T10:00:00+07:00")
    offset = at.utcoffset()
    if abs(offset) > MAX_OFFSET:
        raise InvalidMessage(f"{field} has offset {offset}; offsets range from -14:00 to +14:00")
    try:
        utc = at.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise InvalidMessage(f"{field} {at.isoformat()} is outside the representable range") from None
    now = now or datetime.now(timezone.utc)
    if utc < EARLIEST or utc > now + MAX_FUTURE:
        raise InvalidMessage(f"{field} {at.isoformat()} is too far from now: it must lie between "
                             f"{EARLIEST.date().isoformat()} and one day after now")


def _has_nul(msg: InboundMessage) -> bool:
    for v in (msg.text, msg.sender, msg.provider_id, msg.sender_name):
        if v and "\x00" in v:
            return True
    if msg.fields or msg.raw or msg.attachments:
        return "\\u0000" in repr((msg.fields, msg.raw)) or "\x00" in repr((msg.fields, msg.raw, msg.attachments))
    return False


def check_message(msg: InboundMessage, now: datetime | None = None) -> InboundMessage:
    """The message as it may be stored (NUL removed), or InvalidMessage with the reason."""
    check_time(msg.received_at, now)
    # raw_messages keeps these in 200-character columns: PostgreSQL refused a longer one (and
    # with it the whole group commit), SQLite kept it. Now both refuse it at the door.
    if msg.provider_id and len(msg.channel) + 1 + len(msg.provider_id) > KEY_MAX:
        raise InvalidMessage(f"id is too long: at most {KEY_MAX - len(msg.channel) - 1} characters on this channel")
    if msg.sender and len(msg.sender) > KEY_MAX:
        raise InvalidMessage(f"sender is too long: at most {KEY_MAX} characters")
    if not _has_nul(msg):
        return msg
    atts = tuple(Attachment(**strip_nul(dataclasses.asdict(a))) for a in msg.attachments)
    msg = dataclasses.replace(
        msg, text=strip_nul(msg.text), sender=strip_nul(msg.sender), provider_id=strip_nul(msg.provider_id),
        sender_name=strip_nul(msg.sender_name), fields=strip_nul(msg.fields), raw=strip_nul(msg.raw),
        attachments=atts)
    return msg


# ---------------------------------------------------------------- behind the door: isolation
def pending_ids(engine: Engine, limit: int) -> list[int]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(RAW.c.id).where(RAW.c.state == "pending")
                                           .order_by(RAW.c.id).limit(limit))]


def record_failure(engine: Engine, raw_id: int, error: BaseException) -> bool:
    """Count a failed attempt at `raw_id`; park it as failed after MAX_ATTEMPTS. True if parked.

    The count is raw_messages.attempts, raised and checked in one UPDATE ... RETURNING: a
    restart or a second process continues the count instead of granting fresh attempts."""
    from hub.db import writer

    reason = f"{type(error).__name__}: {error}"[:2000]
    n_after = RAW.c.attempts + 1
    parks = n_after >= MAX_ATTEMPTS
    with writer(engine).begin() as conn:
        n = conn.execute(
            update(RAW).where(RAW.c.id == raw_id, RAW.c.state == "pending")
            .values(attempts=n_after,
                    state=case((parks, "failed"), else_=RAW.c.state),
                    error=case((parks, literal("after ") + cast(n_after, String) + literal(f" attempts: {reason}")),
                               else_=literal(reason)))
            .returning(RAW.c.attempts)).scalar_one_or_none()
    if n is None:  # no longer pending: another process made its ticket or parked it
        return False
    if n < MAX_ATTEMPTS:
        log.warning("processing.message_failed", raw_id=raw_id, attempt=n, error=reason[:300])
        return False
    log.error("processing.message_parked", raw_id=raw_id, attempts=n, error=reason[:300])
    return True


def process_isolated(engine: Engine, ids: list[int], process_ids: Callable[[list[int]], int]) -> int:
    """Process `ids` so that a failure touches only its own row: halves that fail are split
    again (one poison row among 500 costs ~18 transactions, not 500). Returns how many."""
    if not ids:
        return 0
    try:
        process_ids(ids)
        return len(ids)
    except Exception as exc:
        if is_unavailable(exc):  # the store is gone: not this message's fault
            raise
        if len(ids) > 1:
            mid = len(ids) // 2
            return process_isolated(engine, ids[:mid], process_ids) + process_isolated(engine, ids[mid:], process_ids)
        try:
            record_failure(engine, ids[0], exc)
        except Exception:
            log.warning("processing.park_failed", raw_id=ids[0], exc_info=True)
        return 1


# ---------------------------------------------------------------- admin: list and replay
def list_failed(session: Session, limit: int = 50) -> list[RawMessage]:
    """Failed intake rows, newest first. Loads columns one by one so that a row the driver
    cannot load (a timestamp beyond year 9999) still shows."""
    rows = session.execute(select(RAW.c.id, RAW.c.ticket_code, RAW.c.channel, RAW.c.error, RAW.c.stored_at)
                           .where(RAW.c.state == "failed").order_by(RAW.c.id.desc()).limit(limit)).all()
    return [RawMessage(id=r[0], ticket_code=r[1], channel=r[2], error=r[3], stored_at=r[4],
                       idempotency_key="", text="", received_at=r[4]) for r in rows]


def count_failed(session: Session) -> int:
    from sqlalchemy import func

    return session.execute(select(func.count()).select_from(RAW).where(RAW.c.state == "failed")).scalar_one()


def replay_failed(session: Session, raw_id: int) -> None:
    """An admin sends a failed intake row through processing again (fresh attempts).

    A received_at the database stores but Python cannot load is replaced by the time it was
    stored, so the replay can succeed."""
    state = session.execute(select(RAW.c.state).where(RAW.c.id == raw_id)).scalar_one_or_none()
    if state is None:
        raise LookupError(f"intake row {raw_id} not found")
    if state != "failed":
        raise ValueError(f"intake row {raw_id} is {state}; only failed rows can be replayed")
    values: dict[str, Any] = {"state": "pending", "attempts": 0}
    try:
        session.execute(select(RAW.c.received_at).where(RAW.c.id == raw_id)).scalar_one()
    except Exception:
        session.rollback()
        values["received_at"] = RAW.c.stored_at
    message = None
    try:
        message = session.execute(select(RAW.c.message).where(RAW.c.id == raw_id)).scalar_one()
    except Exception:
        session.rollback()
    if isinstance(message, dict) and message.get("received_at"):
        try:
            check_time(datetime.fromisoformat(message["received_at"]))
        except (InvalidMessage, ValueError):
            values["message"] = {**message, "received_at": None}
    session.execute(update(RAW).where(RAW.c.id == raw_id).values(**values))
    log.info("processing.replay", raw_id=raw_id)
