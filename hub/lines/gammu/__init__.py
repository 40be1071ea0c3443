"""Gammu SMSD line: a periodic job moves new rows of the modem's `inbox` table into the hub,
and the SMS reply sender writes replies into Gammu's `outbox`. An inbox row is marked processed
only after the hub stored it (or answered it); never logs a phone number or a message text.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from functools import lru_cache

from fastapi import FastAPI
from sqlalchemy import Engine, select

from adapters.base import OutboundMessage, PermanentError, SendResult
from adapters.gammu import GammuAdapter, GammuSchemaError
from hub.commands import answer_citizen_command, parse_citizen_command
from hub.config import RegencyConfig, regency_config
from hub.db import get_engine, session_scope
from hub import multipart
from hub import readiness
from hub.lines import health as linehealth
from hub.lines import ratelimit
from hub.parts import Line, Periodic
from hub.logging import get_logger
from hub.models import Outbox
from hub.outbox import enqueue
from hub.replies import queue_text
from hub.settings import Settings, get_settings
from hub.unreadable import mark_for_triage, store_unreadable
from normalizer.types import InboundMessage

log = get_logger(__name__)
BATCH = 500
HEALTH_ROW = "gammu"  # channel_state row of the modem line (the channel itself is "sms")


@lru_cache(maxsize=4)
def _adapter(url: str, phone_id: str | None) -> GammuAdapter:
    return GammuAdapter(url, phone_id=phone_id)


def adapter_for(settings: Settings) -> GammuAdapter:
    if not settings.gammu_database_url:
        raise PermanentError("gammu_database_url is not configured")
    return _adapter(settings.gammu_database_url, settings.gammu_phone_id)


@dataclass(frozen=True)
class PollResult:
    stored: int = 0  # new raw messages (tickets follow from processing)
    held: int = 0  # stored but rate-limited
    duplicates: int = 0  # already stored before (a crash between store and mark)
    status_queries: int = 0  # CEK <code>, answered through the outbox
    skipped: int = 0  # USSD / network messages: marked processed, not reports

    @property
    def handled(self) -> int:
        return self.stored + self.held + self.duplicates + self.status_queries + self.skipped


def poll_once(adapter: GammuAdapter, cfg: RegencyConfig, settings: Settings,
              engine: Engine | None = None, limit: int = BATCH) -> PollResult:
    """One pass over Gammu's inbox: store reports, answer status queries, then mark the rows."""
    engine = engine or get_engine()
    batch = adapter.fetch(limit)
    if not batch:
        return PollResult()
    reports, queries, skipped_ids = [], [], []
    for sms in batch:
        if sms.ussd:
            skipped_ids.extend(sms.ids)
            continue
        code = None if sms.binary else parse_citizen_command(sms.text)
        (queries if code else reports).append((sms, code))
    if queries:
        with session_scope(engine) as s:
            for sms, code in queries:
                # Keyed on the inbox row: a crash before marking must not answer twice.
                mid = f"sms-cek-{sms.provider_id}"[:64]
                if s.scalars(select(Outbox.id).where(Outbox.message_id == mid)).first() is None:
                    enqueue(s, "reply", "sms", {"channel": "sms", "to": sms.sender, "ticket_code": None,
                                                "text": answer_citizen_command(s, cfg, "sms", sms.sender, code)},
                            message_id=mid)
    inbound, readable, repeats = [], [], 0
    for sms, code in reports:  # rows we cannot read: a ticket for triage, or a dead intake row
        try:
            if sms.error:
                raise ValueError(sms.error)
            placed = multipart.place_part(engine, adapter.to_inbound(sms))
            if placed is multipart.REPEAT:  # a part stored before, or it completed its message
                repeats += 1
                continue
            inbound.append(placed)
            readable.append((sms, code))
        except Exception as exc:
            problem = f"gammu: {exc}"[:300]
            if sms.sender and sms.text.strip():
                inbound.append(mark_for_triage(InboundMessage(
                    channel="sms", text=sms.text, sender=sms.sender, provider_id=sms.provider_id,
                    raw=sms.raw), problem))
                readable.append((sms, code))
            else:
                store_unreadable("sms", sms.raw or {"ids": list(sms.ids)}, problem, key=sms.provider_id,
                                 engine=engine, dedup_window_s=settings.dedup_window_s)
    reports = readable
    admissions = ratelimit.admit(inbound, settings.rate_limit_per_sender, engine, settings.dedup_window_s)
    notify = [(sms, a) for (sms, _), a in zip(reports, admissions) if a.notify]
    if notify:
        with session_scope(engine) as s:
            for sms, _a in notify:
                queue_text(s, None, "sms", sms.sender, cfg.template("rate_limited"))
    # Only now, with everything stored, may Gammu forget the rows.
    adapter.mark_processed([i for sms in batch for i in sms.ids])
    res = PollResult(stored=sum(1 for a in admissions if not a.accepted.duplicate and not a.held),
                     held=sum(1 for a in admissions if a.held and not a.accepted.duplicate),
                     duplicates=sum(1 for a in admissions if a.accepted.duplicate) + repeats,
                     status_queries=len(queries), skipped=len(skipped_ids))
    log.info("gammu.polled", stored=res.stored, held=res.held, duplicates=res.duplicates,
             status_queries=res.status_queries, skipped=res.skipped)
    return res


async def poll_job() -> None:
    settings = get_settings()
    if not settings.gammu_database_url:
        return
    adapter = adapter_for(settings)
    cfg = regency_config(str(settings.config_dir))
    got = False
    try:
        while True:
            res = await asyncio.to_thread(poll_once, adapter, cfg, settings)
            got = got or res.handled > 0
            if res.handled < BATCH:
                break
    except Exception as exc:  # the modem database is away: noted for /readyz and the admin page
        await asyncio.to_thread(_record_safely, False, f"{type(exc).__name__}: {str(exc)[:200]}", False)
        raise
    if got or _health["failing"] or time.monotonic() - _health["ok_at"] > HEALTH_EVERY_S:
        await asyncio.to_thread(_record_safely, True, None, got)


HEALTH_EVERY_S = 30.0  # a quiet, healthy line notes itself this often (not every 2 s poll)
_health = {"ok_at": 0.0, "failing": False}


def _record_safely(ok: bool, error: str | None, got: bool) -> None:
    try:
        linehealth.record(HEALTH_ROW, ok, error, got)
        _health["failing"] = not ok
        if ok:
            _health["ok_at"] = time.monotonic()
    except Exception:
        log.warning("gammu.health_write_failed")


async def send_reply(message: OutboundMessage) -> SendResult:
    """Outbox reply sender for sms when sms_provider is gammu: a row in Gammu's outbox."""
    return await adapter_for(get_settings()).send(message)


def health_check(settings: Settings) -> readiness.Check:
    """Stopped when no poll succeeded for ten intervals and a minute, or after repeated failures."""
    return readiness.stale_check(HEALTH_ROW, settings.gammu_poll_interval_s * 10 + 60)


async def _startup(app: FastAPI, settings: Settings) -> None:
    if settings.gammu_database_url:
        # /readyz, /metrics and the admin page say when the modem poll stops (issue #13 item 1)
        readiness.register(HEALTH_ROW, health_check(settings))
        try:
            version = await asyncio.to_thread(adapter_for(settings).schema_version)
            log.info("gammu.connected", schema_version=version)
        except GammuSchemaError as exc:
            log.error("gammu.schema_unsupported", error=str(exc))
        except Exception as exc:  # the hub runs on; the poll job retries every interval
            log.error("gammu.unreachable", error=type(exc).__name__)



def line(settings: Settings) -> Line:
    """Replies to SMS when Gammu is the SMS provider; polls the modem when one is configured."""
    return Line(
        "gammu",
        reply_senders={"sms": send_reply} if settings.sms_provider == "gammu" else {},
        periodic=[Periodic("gammu_poll", settings.gammu_poll_interval_s, poll_job)]
        if settings.gammu_database_url else [],
        startup=[_startup], shutdown=[_shutdown])


async def _shutdown(app: FastAPI, settings: Settings) -> None:
    readiness.unregister(HEALTH_ROW)
