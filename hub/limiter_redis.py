"""The rate limiter's counts in Redis (SIMPUL_REDIS_URL), for hub.limiter: the same windows as
its rate_counters rows, so every process sharing the Redis shares the counts.

One hash per key ({prefix}{key}: hits, start, window). A hit is one Lua script, atomic on the
server: a window that has ended (start + window <= now) starts again at now with this hit,
otherwise the hit is added; the key expires when its window ends (plus a margin), so nothing
needs pruning. `now` is the caller's clock, passed in, exactly as the database counts use it.

Every call raises redis.exceptions.RedisError when Redis cannot answer; hub.limiter then counts
in the database. `went_down` logs that once, and `usable` keeps the limiter off Redis for
RETRY_S seconds so that a dead Redis costs no connection attempt per request.
"""
from __future__ import annotations

import threading
import time
from typing import NamedTuple, Sequence

import redis
from redis.exceptions import RedisError

from hub.logging import get_logger

__all__ = ["RedisCounts", "RedisError", "Window", "redis_counts"]
log = get_logger(__name__)
RETRY_S = 30.0  # after a failure, count in the database this long before trying Redis again
TIMEOUT_S = 0.5  # connect and read timeout: a hanging Redis must not hang a login
EXPIRE_MARGIN_S = 5

_HIT = """
local ts, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'hits', 'start', 'window')
local hits, start
if v[1] and v[2] and v[3] and tonumber(v[2]) + tonumber(v[3]) > ts then
  hits = redis.call('HINCRBY', KEYS[1], 'hits', cost)
  start, window = tonumber(v[2]), tonumber(v[3])
else
  hits, start = cost, ts
  redis.call('HSET', KEYS[1], 'hits', cost, 'start', ts, 'window', window)
end
local left = start + window - ts
if left < 1 then left = 1 end
redis.call('EXPIRE', KEYS[1], left + tonumber(ARGV[4]))
return {hits, start, window}
"""


class Window(NamedTuple):
    hits: int
    window_start: int
    window_s: int


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisCounts:
    def __init__(self, url: str, prefix: str = "simpul:"):
        self.prefix = f"{prefix}rl:"
        self.client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S,
                                           decode_responses=True)
        self._hit = self.client.register_script(_HIT)
        self._down_until = 0.0
        self._down = False
        self._lock = threading.Lock()

    # --- up or down ---------------------------------------------------------------------
    def usable(self) -> bool:
        return not self._down or time.monotonic() >= self._down_until

    def went_down(self, exc: BaseException) -> None:
        with self._lock:
            self._down_until = time.monotonic() + RETRY_S
            first, self._down = not self._down, True
        if first:  # one line per outage, not one per request
            log.warning("limiter.redis_unreachable", error=f"{type(exc).__name__}: {exc}"[:300],
                        fallback="database", retry_s=RETRY_S)

    def _up(self) -> None:
        if self._down:
            with self._lock:
                was, self._down = self._down, False
            if was:
                log.info("limiter.redis_back")

    # --- the counts (hub.limiter.Limiter's operations) ---------------------------------
    def hit(self, key: str, window_s: int, ts: int, cost: int) -> tuple[int, int, int]:
        hits, start, window = self._hit(keys=[self.prefix + key], args=[ts, window_s, cost, EXPIRE_MARGIN_S])
        self._up()
        return int(hits), int(start), int(window)

    def get(self, key: str) -> Window | None:
        hits, start, window = self.client.hmget(self.prefix + key, ["hits", "start", "window"])
        self._up()
        if hits is None or start is None or window is None:
            return None
        return Window(int(hits), int(start), int(window))

    def _keys(self, prefix: str, suffix: str | None = None) -> list[str]:
        match = self.prefix + _glob_escape(prefix) + "*" + (_glob_escape(suffix) if suffix else "")
        return list(self.client.scan_iter(match=match, count=500))

    def active(self, prefix: str, at_least: int, ts: int) -> list[tuple[str, int, int]]:
        names = self._keys(prefix)
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hmget(name, ["hits", "start", "window"])
        out = []
        for name, (hits, start, window) in zip(names, pipe.execute()):
            if hits is None or start is None or window is None:
                continue
            left = int(start) + int(window) - ts
            if left > 0 and int(hits) >= at_least:
                out.append((name[len(self.prefix):], int(hits), left))
        self._up()
        return sorted(out, key=lambda r: (-r[1], r[0]))

    def clear(self, keys: Sequence[str], prefix: str | None, suffix: str | None) -> int:
        names = [self.prefix + k for k in keys]
        if prefix is not None:
            names += self._keys(prefix, suffix)
        n = int(self.client.delete(*names)) if names else 0
        self._up()
        return n


_stores: dict[tuple[str, str], RedisCounts] = {}
_stores_lock = threading.Lock()


def redis_counts(url: str, prefix: str) -> RedisCounts:
    """One RedisCounts (one connection pool, one up/down state) per Redis and prefix in a process."""
    with _stores_lock:
        store = _stores.get((url, prefix))
        if store is None:
            store = _stores[(url, prefix)] = RedisCounts(url, prefix)
        return store
