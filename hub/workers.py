"""Background work inside `simpul serve`: APScheduler wakes each job; the database decides
who does the work (leases, SKIP LOCKED), so many hub processes can share one PostgreSQL."""
from __future__ import annotations

import asyncio
import os
from typing import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from hub.logging import get_logger
from hub.settings import Settings

log = get_logger(__name__)
# Other modules add periodic jobs here: (name, seconds, async function).
PERIODIC: list[tuple[str, float, Callable[[], Awaitable[object]]]] = []


def register_periodic(name: str, seconds: float, fn: Callable[[], Awaitable[object]]) -> None:
    PERIODIC[:] = [p for p in PERIODIC if p[0] != name]
    PERIODIC.append((name, seconds, fn))


BUSY_BATCH = 25  # while requests are coming in: at most this many tickets per wake-up


async def process_intake_job(batch: int) -> None:
    """Turn stored messages into tickets. While the request path of this process is busy (a
    flood), take only a small batch per wake-up so accepting messages keeps the CPU; the
    backlog is worked off at full speed as soon as the flood eases."""
    from hub.intake import seconds_since_intake
    from hub.processing import process_pending

    while True:
        size = BUSY_BATCH if seconds_since_intake() < 0.5 else batch
        if await asyncio.to_thread(process_pending, None, size) < size or size == BUSY_BATCH:
            return


async def outbox_job(settings: Settings) -> None:
    from hub.outbox import claim_limit, run_once

    full = claim_limit(settings.outbox_batch, settings.outbox_lease_s, 8)  # a full claim: there may be more
    while await run_once(limit=settings.outbox_batch, lease_s=settings.outbox_lease_s,
                         max_attempts=settings.outbox_max_attempts) >= full:
        pass


def _guard(name: str, fn: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await fn()
        except Exception as exc:
            from hub.unavailable import is_unavailable, log_throttled

            if is_unavailable(exc):  # one line per kind per interval, not a traceback per tick
                log_throttled("job.store_unavailable", exc, job=name)
            else:
                log.exception("job.failed", job=name)
    return run


def start_scheduler(settings: Settings) -> AsyncIOScheduler:
    sched = AsyncIOScheduler(timezone="UTC")
    jobs = [("process_intake", settings.process_interval_s, lambda: process_intake_job(settings.process_batch)),
            ("outbox", settings.outbox_interval_s, lambda: outbox_job(settings)), *PERIODIC]
    for name, seconds, fn in jobs:
        sched.add_job(_guard(name, fn), "interval", seconds=seconds, id=name, max_instances=1,
                      coalesce=True, misfire_grace_time=None)
    sched.start()
    log.info("scheduler.started", jobs=[j[0] for j in jobs])
    return sched


async def run_forever(settings: Settings) -> None:
    """`simpul worker`: the scheduler and its jobs, until SIGTERM/SIGINT."""
    import signal

    import hub.plugins  # noqa: F401  (every module's senders and periodic jobs)
    from hub.db import session_scope
    from hub.config import regency
    from hub.logging import configure_logging
    from hub.runtime import warm_and_freeze
    from hub.seed import sync_opds

    configure_logging(settings.log_level, settings.log_json)
    with session_scope() as s:
        sync_opds(s, regency(str(settings.config_dir)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sched = start_scheduler(settings)
    warm_and_freeze(warm_normalizer=True)
    log.info("worker.started")
    parent = os.environ.get("SIMPUL_SERVE_PID")
    if parent:
        # Started by `simpul serve` on the same machine: when both want the CPU (a flood),
        # accepting messages goes first and the backlog is worked off with what is left;
        # when intake is quiet this process still gets every idle cycle.
        os.nice(settings.worker_nice)
        # ... and never outlive it, even if it was killed outright.
        async def watch_parent() -> None:
            while not stop.is_set():
                if os.getppid() != int(parent):
                    log.warning("worker.parent_gone")
                    stop.set()
                await asyncio.sleep(1)
        asyncio.create_task(watch_parent())
    try:
        await stop.wait()
    finally:
        sched.shutdown(wait=False)
        log.info("worker.stopped")
