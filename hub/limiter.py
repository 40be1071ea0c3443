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

With SIMPUL_REDIS_URL set the same windows are counted in Redis instead (hub.limiter_redis:
one Lua script per hit, keys expire when their window ends), same rules, same answers. When
Redis cannot be reached the limiter logs one warning and counts in the database until Redis
answers again (tried again every RETRY_S seconds): a login or a message never fails because
Redis is down.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from sqlalchemy import Connection, Engine, case, delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hub.db import get_engine, writer
from hub.limiter_redis import RedisCounts, RedisError, redis_counts
from hub.models import RateCounter
from hub.settings import get_settings

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


def _verdict(hits: int, start: int, window_s: int, *, ts: int, cost: int, rule: Rule) -> Verdict:
    over = hits > rule.limit
    return Verdict(not over, int(hits), over and hits - cost <= rule.limit,
                   max(int(start) + int(window_s) - ts, 0), rule.policy)


_FALLBACK = object()  # the Redis part answered nothing: count in the database


class Limiter:
    _hits = 0  # this process's hits since the last prune (all Limiter objects)

    def __init__(self, engine: Engine | None = None, redis_url: str | None = None,
                 redis_prefix: str | None = None):
        """`redis_url`/`redis_prefix`: None takes SIMPUL_REDIS_URL / SIMPUL_REDIS_KEY_PREFIX;
        an empty `redis_url` counts in the database whatever is configured."""
        self._engine = engine
        self._redis_url, self._redis_prefix = redis_url, redis_prefix

    @property
    def engine(self) -> Engine:
        return self._engine or get_engine()

    def _store(self) -> "RedisCounts | None":
        """The Redis counts when one is configured and not known to be down, else None."""
        url = self._redis_url if self._redis_url is not None else get_settings().redis_url
        if not url:
            return None
        prefix = self._redis_prefix if self._redis_prefix is not None else get_settings().redis_key_prefix
        store = redis_counts(url, prefix)
        return store if store.usable() else None

    def _redis(self, op: str, *args: Any) -> Any:
        """Run `op` on Redis; _FALLBACK when there is no Redis or it failed (then the database counts)."""
        store = self._store()
        if store is None:
            return _FALLBACK
        try:
            return getattr(store, op)(*args)
        except RedisError as exc:
            store.went_down(exc)
            return _FALLBACK

    def hit(self, key: str, rule: Rule, now: datetime | None = None, cost: int = 1,
            conn: Connection | None = None) -> Verdict:
        """Count `cost` hits of `key` now and say whether they are within the rule. Sync.

        `conn`: count inside the caller's transaction (it commits or rolls back the hit with
        its own work; on SQLite the only way while the caller holds the write lock). With
        Redis configured the hit is counted in Redis at once, whatever the caller does next."""
        ts = _ts(now)
        if rule.limit <= 0:
            return Verdict(True, 0, False, 0, rule.policy)
        key = key[:200]
        counted = self._redis("hit", key, rule.window_s, ts, cost)
        if counted is not _FALLBACK:
            return _verdict(*counted, ts=ts, cost=cost, rule=rule)
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
        return _verdict(hits, start, window_s, ts=ts, cost=cost, rule=rule)

    def peek(self, key: str, rule: Rule, now: datetime | None = None) -> Verdict:
        """The key's verdict for one more hit, without counting it."""
        ts = _ts(now)
        row = self._redis("get", key[:200])
        if row is _FALLBACK:
            with self.engine.connect() as conn:
                row = conn.execute(select(T.c.hits, T.c.window_start, T.c.window_s)
                                   .where(T.c.key == key[:200])).first()
        if row is None or row.window_start + row.window_s <= ts:
            return Verdict(True, 0, False, 0, rule.policy)
        allowed = rule.limit <= 0 or row.hits < rule.limit
        return Verdict(allowed, int(row.hits), False, int(row.window_start + row.window_s - ts), rule.policy)

    def active(self, prefix: str, at_least: int = 1, now: datetime | None = None) -> list[tuple[str, int, int]]:
        """Keys under `prefix` whose window is still running with at least `at_least` hits:
        [(key, hits, seconds left)], most hits first."""
        ts = _ts(now)
        found = self._redis("active", prefix, at_least, ts)
        if found is not _FALLBACK:
            return found
        q = (select(T.c.key, T.c.hits, T.c.window_start + T.c.window_s - ts)
             .where(T.c.key.startswith(prefix, autoescape=True), T.c.window_start + T.c.window_s > ts,
                    T.c.hits >= at_least)
             .order_by(T.c.hits.desc(), T.c.key))
        with self.engine.connect() as conn:
            return [(k, int(c), int(left)) for k, c, left in conn.execute(q)]

    def clear(self, keys: Sequence[str] = (), prefix: str | None = None, suffix: str | None = None) -> int:
        """Forget the counts of these keys (or of every key with this prefix [and suffix]);
        returns how many keys were forgotten."""
        forgotten = self._redis("clear", [k[:200] for k in keys], prefix, suffix)
        if forgotten is not _FALLBACK:
            return forgotten
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
        """Delete the rows of windows that have ended (Redis lets its keys expire by themselves;
        rows the database counted while Redis was down are pruned all the same)."""
        ts = _ts(now)
        with writer(self.engine).begin() as conn:
            return conn.execute(delete(T).where(T.c.window_start + T.c.window_s <= ts)).rowcount or 0


limiter = Limiter()
