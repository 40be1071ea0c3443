"""Twilio media (MMS, WhatsApp photos, voice notes, documents) copied into the hub's storage
(issue #13, item 5).

A MediaUrl needs the account's credentials and Twilio deletes media eventually, so every media
of an incoming message is fetched once into `data_dir/media/twilio/<MediaSid>` and served at a
signed hub URL (hub.media). Never in the webhook (Twilio wants a fast answer): a periodic job
finds stored messages with Twilio media and queues one outbox row per media (kind
`twilio_media`, message id `twilio-media:<MediaSid>`); the outbox fetches with retries and
back-off and parks a media that cannot be had (deleted at Twilio, over the size limit) as a
dead letter an admin sees. The attachment keeps its original reference all along, so a failed
fetch loses nothing, and a link asked for before the copy is made fetches it on the spot.
"""
from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from hub import media
from hub.db import get_engine, writer
from hub.lines import health
from hub.logging import get_logger
from hub.models import Outbox, RawMessage
from hub.outbox import enqueue
from hub.settings import get_settings

log = get_logger(__name__)
KIND = "twilio_media"
STATE_ROW = "twilio_media"  # channel_state: cursor {"after_id": last raw message id looked at}
CHANNELS = ("sms", "whatsapp")
OVERLAP_IDS = 500  # look again at recent ids: on PostgreSQL a lower id may commit after a higher one
BATCH = 2000


def _wanted(row: RawMessage) -> list[dict[str, Any]]:
    out = []
    for a in (row.message or {}).get("attachments") or ():
        url = str(a.get("url") or "")
        sid = media.twilio_sid(url)
        if sid and not media.twilio_path(sid).exists():
            out.append({"sid": sid, "url": url, "mime": a.get("mime"), "raw_id": row.id})
    return out


def queue_new(engine: Engine | None = None) -> int:
    """Queue one fetch per Twilio media of messages stored since the last run. Returns how many."""
    engine = engine or get_engine()
    st = health.line_state(STATE_ROW, engine)
    after = int(((st or {}).get("cursor") or {}).get("after_id") or 0)
    with Session(engine) as s:
        rows = list(s.scalars(select(RawMessage).where(RawMessage.id > max(0, after - OVERLAP_IDS),
                                                       RawMessage.channel.in_(CHANNELS))
                              .order_by(RawMessage.id).limit(BATCH)))
    if not rows:
        return 0
    wanted = {w["sid"]: w for r in rows for w in _wanted(r)}
    queued = 0
    with Session(writer(engine)) as s:
        if wanted:
            ids = {f"twilio-media:{sid}" for sid in wanted}
            known = set(s.scalars(select(Outbox.message_id).where(Outbox.message_id.in_(ids))))
            for sid, w in wanted.items():
                if f"twilio-media:{sid}" in known:
                    continue
                enqueue(s, KIND, sid, {"url": w["url"], "mime": w["mime"], "raw_id": w["raw_id"]},
                        message_id=f"twilio-media:{sid}")
                queued += 1
        s.commit()
    health.record_ok(engine, STATE_ROW, cursor={"after_id": max(after, rows[-1].id)})
    if queued:
        log.info("twilio.media_queued", count=queued)
    return queued


async def queue_job() -> None:
    s = get_settings()
    if s.twilio_account_sid and s.twilio_auth_token:
        await asyncio.to_thread(queue_new)


async def fetch_sender(row: Outbox) -> dict[str, Any]:
    """Outbox sender for kind twilio_media: the media into the hub's storage."""
    from hub.lines.twilio import adapter_for

    path = await media.fetch_twilio(row.payload["url"], adapter_for(get_settings()))
    return {"stored": path.name, "bytes": path.stat().st_size}
