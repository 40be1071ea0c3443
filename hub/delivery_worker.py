"""A stand-alone outbox worker: `python -m hub.delivery_worker` sends what the outbox holds.

`simpul serve` runs the same loop inside its scheduler; this process exists so deliveries can
be scaled out (and tested) on their own. It only claims rows through hub.outbox leases, so any
number of these can run beside any number of hub processes.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import time

from sqlalchemy import func, select

from hub.db import get_engine
from hub.logging import configure_logging, get_logger
from hub.models import Outbox
from hub.outbox import WORKER_ID, run_once
from hub.settings import get_settings
from hub.wiring import install, wire

log = get_logger(__name__)


def pending_count(kinds: list[str] | None) -> int:
    from sqlmodel import Session

    with Session(get_engine()) as s:
        q = select(func.count()).select_from(Outbox).where(Outbox.state == "pending")
        if kinds:
            q = q.where(Outbox.kind.in_(kinds))
        return int(s.scalar(q) or 0)


async def work(kinds: list[str] | None, batch: int, concurrency: int, lease_s: int, max_attempts: int,
               idle_sleep_s: float, until_empty: bool, max_seconds: float | None,
               max_send_s: float | None = None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started, handled = time.monotonic(), 0
    while not stop.is_set():
        n = await run_once(limit=batch, lease_s=lease_s, max_attempts=max_attempts, kinds=kinds,
                           concurrency=concurrency, **({"max_send_s": max_send_s} if max_send_s else {}))
        handled += n
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            break
        if n == 0:
            if until_empty and await asyncio.to_thread(pending_count, kinds) == 0:
                break
            try:
                await asyncio.wait_for(stop.wait(), idle_sleep_s)
            except TimeoutError:
                pass
    log.info("delivery_worker.stopped", worker=WORKER_ID, handled=handled)
    return handled


def main(argv: list[str] | None = None) -> int:
    s = get_settings()
    ap = argparse.ArgumentParser(prog="python -m hub.delivery_worker", description=__doc__)
    ap.add_argument("--kinds", default="", help="comma-separated outbox kinds (default: all)")
    ap.add_argument("--batch", type=int, default=s.outbox_batch)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--lease", type=int, default=s.outbox_lease_s, help="lease seconds")
    ap.add_argument("--max-attempts", type=int, default=s.outbox_max_attempts)
    ap.add_argument("--idle-sleep", type=float, default=s.outbox_interval_s)
    ap.add_argument("--until-empty", action="store_true",
                    help="exit once no pending row of these kinds is left (tests, benchmarks)")
    ap.add_argument("--max-seconds", type=float, default=None)
    ap.add_argument("--max-send", type=float, default=None,
                    help="longest one send may take (the OPDs' timeout): a claim fits in the lease")
    a = ap.parse_args(argv)
    configure_logging(s.log_level, s.log_json)
    install(wire(s))  # the senders of every wired line and feature
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()] or None
    handled = asyncio.run(work(kinds, a.batch, a.concurrency, a.lease, a.max_attempts, a.idle_sleep,
                               a.until_empty, a.max_seconds, a.max_send))
    print(f"handled={handled}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
