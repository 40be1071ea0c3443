"""Outbox upkeep jobs: gauges for /metrics and the purge of old sent rows."""
from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import Session

from hub.db import get_engine
from hub.outbox import counts, purge_done
from hub.settings import get_settings


async def outbox_gauges_job() -> None:
    """Keep simpul_outbox_pending{state=pending|dead} current for /metrics and alerts."""

    def run() -> None:
        with Session(get_engine()) as s:
            counts(s)

    await asyncio.to_thread(run)


async def outbox_purge_job() -> None:
    """Sent rows older than SIMPUL_OUTBOX_RETENTION_DAYS go; pending and dead rows never do."""
    days = get_settings().outbox_retention_days
    while await asyncio.to_thread(purge_done, get_engine(), timedelta(days=days)) == 5000:
        pass

