"""Background work inside `simpul serve`: APScheduler wakes each job; the database decides
who does the work (leases, SKIP LOCKED), so many hub processes can share one PostgreSQL."""
from __future__ import annotations

import asyncio
import os
import sys
from typing import Awaitable, Callable, Sequence

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from hub.parts import Periodic
from hub.logging import get_logger
from hub.settings import Settings

log = get_logger(__name__)


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


def start_scheduler(settings: Settings, periodic: Sequence[Periodic] = ()) -> AsyncIOScheduler:
    """The hub's own jobs plus the periodic jobs of the wired lines and features (hub.wiring)."""
    sched = AsyncIOScheduler(timezone="UTC")
    jobs = [("process_intake", settings.process_interval_s, lambda: process_intake_job(settings.process_batch)),
            ("outbox", settings.outbox_interval_s, lambda: outbox_job(settings)),
            *((p.name, p.seconds, p.run) for p in periodic)]
    for name, seconds, fn in jobs:
        sched.add_job(_guard(name, fn), "interval", seconds=seconds, id=name, max_instances=1,
                      coalesce=True, misfire_grace_time=None)
    sched.start()
    log.info("scheduler.started", jobs=[j[0] for j in jobs])
    return sched


def die_with_parent() -> None:
    """A worker started by `simpul serve` (SIMPUL_SERVE_PID) never outlives it, even if serve is
    killed outright and even while this process is still starting up: on Linux the kernel
    sends SIGTERM when the parent dies (PR_SET_PDEATHSIG); elsewhere, and for a parent that died
    before this call, `run_forever` also watches the parent's pid. Call it first thing."""
    parent = os.environ.get("SIMPUL_SERVE_PID")
    if not parent:
        return
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):  # gone already, before the kernel could be told
        raise SystemExit("simpul worker: the serve process that started it is gone")


async def run_forever(settings: Settings) -> None:
    """`simpul worker`: the scheduler and its jobs, until SIGTERM/SIGINT."""
    import signal

    from hub.db import session_scope
    from hub.config import regency_config
    from hub.logging import configure_logging
    from hub.runtime import warm_and_freeze
    from hub.seed import sync_opds
    from hub.wiring import install, wire

    from sqlalchemy.exc import DBAPIError

    configure_logging(settings.log_level, settings.log_json)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The store may be down when the worker starts (a database restart, or `simpul serve`
    # starting its worker during an outage): wait for it instead of exiting, or every message
    # accepted meanwhile would stay pending until someone restarted the hub.
    waited, last_log = 0.0, None
    while True:
        try:
            with session_scope() as s:
                sync_opds(s, regency_config(str(settings.config_dir)))
            break
        except DBAPIError as exc:
            if last_log is None or waited - last_log >= 30:
                log.warning("worker.store_unavailable_at_start", error=type(exc.orig).__name__, waited_s=round(waited))
                last_log = waited
            try:
                await asyncio.wait_for(stop.wait(), timeout=2)
                return  # told to stop while waiting
            except asyncio.TimeoutError:
                waited += 2
    if waited:
        log.info("worker.store_back", waited_s=round(waited))
    wired = wire(settings)
    install(wired)
    sched = start_scheduler(settings, wired.periodic)
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
