"""SMS parts that arrive late or twice join their message (issue #13, items 3 and 4).

A concatenated SMS is parts with the same sender, UDH reference and part count
(`adapters.gammu.concat_key`). The modem usually delivers them together and the Gammu adapter
joins them; but a part may come minutes later (after the adapter gave up waiting and the
message was stored with `sms_parts_missing`), or the modem may store a part it already
delivered a second time. Within PART_WINDOW (24 h) such a part:
- when every part it brings is already stored: is a repeat, and stores nothing;
- when the stored message is not processed yet: completes it in place (text and parts);
- otherwise: is stored with `fields.join_key`, and processing (hub.pieces) completes the text
  of the message's ticket and notes the late part on it: no second ticket, receipt or delivery.
Texts are decoded from all parts' bytes joined (adapters.gammu.decode_joined), so an emoji
split across parts survives.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, select, update
from sqlmodel import Session

from adapters.gammu import TEXT_CODINGS, decode_joined
from hub.db import writer
from hub.logging import get_logger
from hub.models import RawMessage
from normalizer.types import InboundMessage

log = get_logger(__name__)
PART_WINDOW = timedelta(hours=24)
REPEAT = None  # place_part's answer for a part that is stored already


def _text_of(parts: dict[str, dict[str, Any]]) -> str:
    ordered = [parts[k] for k in sorted(parts, key=int)]
    if ordered and all(p.get("coding") in TEXT_CODINGS and p.get("text") for p in ordered):
        try:
            return decode_joined([bytes.fromhex(p["text"]) for p in ordered])
        except ValueError:
            pass
    return "".join(p.get("decoded") or "" for p in ordered)


def place_part(engine: Engine, msg: InboundMessage, now: datetime | None = None) -> InboundMessage | None:
    """The message to store for `msg` (a Gammu SMS, maybe a part of one stored before), or
    None when nothing is to be stored (a repeat, or the stored message was completed in place)."""
    key = (msg.fields or {}).get("sms_concat")
    if not key or not msg.sender:
        return msg
    now = now or datetime.now(timezone.utc)
    with Session(engine) as s:
        earlier = list(s.scalars(select(RawMessage).where(
            RawMessage.channel == msg.channel, RawMessage.sender == msg.sender,
            RawMessage.stored_at >= now - PART_WINDOW,
            RawMessage.message["fields"]["sms_concat"].as_string() == key).order_by(RawMessage.id)))
    if not earlier:
        return msg
    known: dict[str, dict[str, Any]] = {}
    for r in earlier:
        known.update(((r.message or {}).get("raw") or {}).get("parts") or {})
    mine = (msg.raw or {}).get("parts") or {}
    new = {k: v for k, v in mine.items() if k not in known}
    if not new:
        log.info("multipart.repeated_part", channel=msg.channel, raw_id=earlier[0].id)
        return REPEAT
    merged = {**known, **new}
    total = int(key.rsplit("|", 1)[1])
    text = _text_of(merged)
    missing = [i for i in range(1, total + 1) if str(i) not in merged]
    present = sorted(int(k) for k in merged)
    first = earlier[0]
    if first.state == "pending" and _complete_in_place(engine, first, merged, text, missing):
        log.info("multipart.completed_in_place", channel=msg.channel, raw_id=first.id, parts=present)
        return REPEAT
    log.info("multipart.late_part", channel=msg.channel, raw_id=first.id, parts=sorted(int(k) for k in new))
    fields = {**msg.fields, "join_key": key, "sms_full_text": text, "sms_parts_present": present}
    if missing:
        fields["sms_parts_missing"] = missing
    else:
        fields.pop("sms_parts_missing", None)
    return dataclasses.replace(msg, text=text, fields=fields, raw={**msg.raw, "parts": merged})


def _complete_in_place(engine: Engine, first: RawMessage, merged: dict[str, Any], text: str,
                       missing: list[int]) -> bool:
    """The stored message has no ticket yet: give it the whole text. False if processing took
    it meanwhile (then the late part joins the ticket instead)."""
    message = dict(first.message)
    fields = dict(message.get("fields") or {})
    if missing:
        fields["sms_parts_missing"] = missing
    else:
        fields.pop("sms_parts_missing", None)
    message.update(text=text, fields=fields, raw={**(message.get("raw") or {}), "parts": merged})
    table = RawMessage.__table__
    with writer(engine).begin() as conn:
        done = conn.execute(update(table).where(table.c.id == first.id, table.c.state == "pending")
                            .values(text=text, message=message)).rowcount
    return done == 1
