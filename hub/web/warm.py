"""Keeps the overview's counts warm in the server process.

hub.stats keeps exact counts per scope in each process and brings them up to date in a few
milliseconds, but the first call of a scope (after start-up, or after a compaction of the
rollup) counts afresh: up to ~2 s at a million tickets. A background task in `simpul serve`
asks for the overview's default views every KEEP_WARM_S, so that cost falls on it and not on
the regional head opening the dashboard on a phone. Measured at a million tickets on SQLite:
the first round takes ~15 s in the background; afterwards the overview answers in 14-33 ms.
"""
from __future__ import annotations

import asyncio
import time

from hub.logging import get_logger

log = get_logger(__name__)
KEEP_WARM_S = 30.0
FLOOD_QUIET_S = 5.0  # skip a round when this process took messages in the last seconds


def prime_overview() -> int:
    """Ask for the overview of every period (no filters) and the default trend. Returns how
    many summaries were computed."""
    from sqlmodel import Session

    from hub import stats
    from hub.db import get_engine
    from hub.web.pages import PERIODS, period_range

    with Session(get_engine(), expire_on_commit=False) as s:
        for key in PERIODS:
            since, _ = period_range(key)
            stats.summary(s, since=since)
        stats.trend(s)  # the default 12 weeks: the one trend that is cached
    return len(PERIODS)


async def keep_warm(interval_s: float = KEEP_WARM_S) -> None:
    from hub.intake import seconds_since_intake

    first = True
    while True:
        if seconds_since_intake() < FLOOD_QUIET_S:
            # Messages are pouring in: counting afresh (seconds of CPU at a million tickets)
            # would compete with accepting them. The counts stay exact without it.
            await asyncio.sleep(interval_s)
            continue
        start = time.perf_counter()
        try:
            n = await asyncio.to_thread(prime_overview)
        except Exception:  # a warm cache is an optimisation: never let it take the hub down
            log.warning("dashboard.warm_failed", exc_info=True)
        else:
            (log.info if first else log.debug)("dashboard.warmed", summaries=n,
                                                ms=round((time.perf_counter() - start) * 1000))
            first = False
        await asyncio.sleep(interval_s)


async def start(app, settings) -> None:
    if getattr(app.state, "server_process", False):
        app.state.keep_warm = asyncio.create_task(keep_warm(), name="dashboard-keep-warm")


async def stop(app, settings) -> None:
    task = getattr(app.state, "keep_warm", None)
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
