"""The hub's one rate limiter: counting windows in the database, so every process shares them.

A `Rule` says how many hits of one key a window of `window_s` seconds allows and what the
caller does past it (`policy`): the limiter only counts and answers; the caller carries out
the policy it chose:
- HOLD    (SMS/WhatsApp, hub.lines.ratelimit): the message is stored "held", not processed.
- MUTE    (Telegram): the report is still submitted, the bot stops answering.
- REFUSE  (logins, the public /lapor form): the request is refused with 429 / a message.

Counting: one row per key in `rate_counters`: its window starts at the key's first hit and
lasts the rule's `window_s`; a hit after the window ended starts a new one. Each hit is one
INSERT ... ON CONFLICT DO UPDATE ... RETURNING (SQLite and PostgreSQL), so concurrent hits
in several processes each see a distinct count. Ended windows are deleted by `prune`, which
each process runs after every PRUNE_EVERY of its own hits (no job to wire, whatever is wired).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

from sqlalchemy import Connection, Engine, case, delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hub.db import get_engine, writer
from hub.models import RateCounter

HOLD, MUTE, REFUSE = "hold", "mute", "refuse"
POLICIES = (HOLD, MUTE, REFUSE)
T = RateCounter.__table__
PRUNE_EVERY = 1000


@dataclass(frozen=True)
class Rule:
    limit: int  # hits allowed per window; <= 0 means unlimited
    window_s: int
    policy: str = REFUSE

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}")
        if self.window_s <= 0:
            raise ValueError("window_s must be positive")


@dataclass(frozen=True)
class Verdict:
    allowed: bool  # within the limit (this hit included)
    count: int  # hits of the key in this window, this one included (0 for a peek of nothing)
    first_over: bool  # the first hit past the limit in this window: tell the sender once
    retry_after: int  # seconds until the key's window ends
    policy: str

    @property
    def action(self) -> str:
        """"pass", or the rule's policy when over the limit."""
        return "pass" if self.allowed else self.policy


def _ts(now: datetime | None) -> int:
    return int((now or datetime.now(timezone.utc)).timestamp())


class Limiter:
    _hits = 0  # this process's hits since the last prune (all Limiter objects)

    def __init__(self, engine: Engine | None = None):
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine or get_engine()

    def hit(self, key: str, rule: Rule, now: datetime | None = None, cost: int = 1,
            conn: Connection | None = None) -> Verdict:
        """Count `cost` hits of `key` now and say whether they are within the rule. Sync.

        `conn`: count inside the caller's transaction (it commits or rolls back the hit with
        its own work; on SQLite the only way while the caller holds the write lock)."""
        ts = _ts(now)
        if rule.limit <= 0:
            return Verdict(True, 0, False, 0, rule.policy)
        key = key[:200]
        eng = conn.engine if conn is not None else self.engine
        insert = pg_insert if eng.dialect.name == "postgresql" else sqlite_insert
        ended = (T.c.window_start + T.c.window_s) <= ts
        stmt = insert(T).values(key=key, window_start=ts, window_s=rule.window_s, hits=cost)
        stmt = stmt.on_conflict_do_update(index_elements=[T.c.key], set_={
            "hits": case((ended, cost), else_=T.c.hits + cost),
            "window_s": case((ended, rule.window_s), else_=T.c.window_s),
            "window_start": case((ended, ts), else_=T.c.window_start),
        }).returning(T.c.hits, T.c.window_start, T.c.window_s)
        if conn is not None:
            hits, start, window_s = conn.execute(stmt).one()
        else:
            with writer(eng).begin() as c:
                hits, start, window_s = c.execute(stmt).one()
            Limiter._hits += 1
            if Limiter._hits >= PRUNE_EVERY:
                Limiter._hits = 0
                self.prune(now)
        over = hits > rule.limit
        return Verdict(not over, int(hits), over and hits - cost <= rule.limit,
                       max(int(start) + int(window_s) - ts, 0), rule.policy)

    def peek(self, key: str, rule: Rule, now: datetime | None = None) -> Verdict:
        """The key's verdict for one more hit, without counting it."""
        ts = _ts(now)
        with self.engine.connect() as conn:
            row = conn.execute(select(T.c.hits, T.c.window_start, T.c.window_s).where(T.c.key == key[:200])).first()
        if row is None or row.window_start + row.window_s <= ts:
            return Verdict(True, 0, False, 0, rule.policy)
        allowed = rule.limit <= 0 or row.hits < rule.limit
        return Verdict(allowed, int(row.hits), False, int(row.window_start + row.window_s - ts), rule.policy)

    def active(self, prefix: str, at_least: int = 1, now: datetime | None = None) -> list[tuple[str, int, int]]:
        """Keys under `prefix` whose window is still running with at least `at_least` hits:
        [(key, hits, seconds left)], most hits first."""
        ts = _ts(now)
        q = (select(T.c.key, T.c.hits, T.c.window_start + T.c.window_s - ts)
             .where(T.c.key.startswith(prefix, autoescape=True), T.c.window_start + T.c.window_s > ts,
                    T.c.hits >= at_least)
             .order_by(T.c.hits.desc(), T.c.key))
        with self.engine.connect() as conn:
            return [(k, int(c), int(left)) for k, c, left in conn.execute(q)]

    def clear(self, keys: Sequence[str] = (), prefix: str | None = None, suffix: str | None = None) -> int:
        """Forget the counts of these keys (or of every key with this prefix [and suffix]);
        returns how many keys were forgotten."""
        conds = []
        if keys:
            conds.append(T.c.key.in_([k[:200] for k in keys]))
        if prefix is not None:
            cond = T.c.key.startswith(prefix, autoescape=True)
            if suffix is not None:
                cond = cond & T.c.key.endswith(suffix, autoescape=True)
            conds.append(cond)
        if not conds:
            return 0
        with writer(self.engine).begin() as conn:
            return conn.execute(delete(T).where(or_(*conds))).rowcount or 0

    def prune(self, now: datetime | None = None) -> int:
        """Delete the rows of windows that have ended."""
        ts = _ts(now)
        with writer(self.engine).begin() as conn:
            return conn.execute(delete(T).where(T.c.window_start + T.c.window_s <= ts)).rowcount or 0


limiter = Limiter()
