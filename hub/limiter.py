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

import threading
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
RECHECK_S = 10  # a remembered refusal is checked against the store again after at most this long
REMEMBER_MAX = 10_000  # remembered keys per Limiter (past it, the ended ones go, then all)


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
        # remembered refusals: key -> [window end ts, recheck ts, count]; for one store only
        self._blocked: dict[str, list[int]] = {}
        self._blocked_store: tuple | None = None
        self._blocked_lock = threading.Lock()

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

    # --- remembered refusals (module docstring) ----------------------------------------------
    def _memory(self) -> dict[str, list[int]]:
        """The remembered refusals for the store this Limiter counts in now (a new engine, as
        after hub.db.reset_engine, or another Redis starts with an empty memory)."""
        settings = get_settings()
        store = (self.engine,
                 self._redis_url if self._redis_url is not None else settings.redis_url,
                 self._redis_prefix if self._redis_prefix is not None else settings.redis_key_prefix)
        if store != self._blocked_store:  # engines compare by identity
            with self._blocked_lock:
                self._blocked, self._blocked_store = {}, store
        return self._blocked

    def recall(self, key: str, rule: Rule, now: datetime | None = None, cost: int = 1) -> Verdict | None:
        """The refusal remembered for `key` (counting `cost` more hits in memory), or None: then
        ask the store (`hit`/`peek` with remember=True). Never touches the store: safe to call
        on an event loop."""
        return self._recall(key[:200], rule, _ts(now), cost)

    def _recall(self, key: str, rule: Rule, ts: int, cost: int) -> Verdict | None:
        memory = self._memory()
        entry = memory.get(key)
        if entry is None:
            return None
        until, recheck, count = entry
        if ts >= recheck or ts >= until or ts < recheck - RECHECK_S:
            with self._blocked_lock:  # _remember may be walking the memory in another thread
                memory.pop(key, None)
            return None
        entry[2] = count + cost
        return Verdict(False, count + cost, False, until - ts, rule.policy)

    def _remember(self, key: str, ts: int, verdict: Verdict) -> None:
        if verdict.allowed or verdict.retry_after <= 0:
            return
        memory = self._memory()
        with self._blocked_lock:
            if len(memory) >= REMEMBER_MAX:
                for k in [k for k, e in list(memory.items()) if e[1] <= ts]:
                    del memory[k]
                if len(memory) >= REMEMBER_MAX:
                    memory.clear()  # many sources at once: the store answers for them
            until = ts + verdict.retry_after
            memory[key] = [until, min(until, ts + RECHECK_S), verdict.count]

    def forget(self, keys: Sequence[str] = (), prefix: str | None = None, suffix: str | None = None,
               everything: bool = False) -> None:
        """Drop remembered refusals (of these keys, of keys with this prefix [and suffix], or
        all): their next hit asks the store again. `clear` calls it; nothing else needs to."""
        memory = self._memory()
        wanted = {k[:200] for k in keys}
        with self._blocked_lock:
            for k in list(memory):
                if everything or k in wanted or (prefix is not None and k.startswith(prefix)
                                                  and (suffix is None or k.endswith(suffix))):
                    memory.pop(k, None)

    def hit(self, key: str, rule: Rule, now: datetime | None = None, cost: int = 1,
            conn: Connection | None = None, remember: bool = False) -> Verdict:
        """Count `cost` hits of `key` now and say whether they are within the rule. Sync.

        `conn`: count inside the caller's transaction (it commits or rolls back the hit with
        its own work; on SQLite the only way while the caller holds the write lock). With
        Redis configured the hit is counted in Redis at once, whatever the caller does next.
        `remember` (REFUSE rules, no `conn`): a key over its limit is refused from memory
        until its window ends, without a write (module docstring)."""
        ts = _ts(now)
        if rule.limit <= 0:
            return Verdict(True, 0, False, 0, rule.policy)
        key = key[:200]
        remember = remember and rule.policy == REFUSE and cost > 0 and conn is None
        if remember:
            known = self._recall(key, rule, ts, cost)
            if known is not None:
                return known
        verdict = self._count(key, rule, ts, now, cost, conn)
        if remember:
            self._remember(key, ts, verdict)
        return verdict

    def _count(self, key: str, rule: Rule, ts: int, now: datetime | None, cost: int,
               conn: Connection | None) -> Verdict:
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

    def peek(self, key: str, rule: Rule, now: datetime | None = None, remember: bool = False) -> Verdict:
        """The key's verdict for one more hit, without counting it. `remember` (REFUSE rules):
        answer from, and add to, the remembered refusals (as `hit` does)."""
        ts = _ts(now)
        remember = remember and rule.policy == REFUSE and rule.limit > 0
        if remember:
            known = self._recall(key[:200], rule, ts, 0)
            if known is not None:
                return known
        verdict = self._peek(key, rule, ts)
        if remember:
            self._remember(key[:200], ts, verdict)
        return verdict

    def _peek(self, key: str, rule: Rule, ts: int) -> Verdict:
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
        returns how many keys were forgotten. Also forgets them in this Limiter's memory of
        refusals (other processes re-read the store within RECHECK_S)."""
        self.forget(keys, prefix, suffix)
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
