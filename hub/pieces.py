"""A report that arrives in pieces is one ticket (issue #13, items 2 and 3).

Runs inside ticket creation (hub.tickets._prepare), where every line's messages pass, with the
database as the only memory (so it holds across hub processes and restarts):

- **A piece without words** (a WhatsApp location pin: empty Body with Latitude/Longitude and
  maybe Address/Label; a photo or voice note alone) from a reporter who has an open ticket
  from the last JOIN_WINDOW joins that ticket: the coordinates (and address) become its place
  when it has none, the media its attachments; the reporter is told. Without such a ticket it
  is kept (raw state `waiting`) and the reporter is asked what happened; their next message
  with words within ASK_WINDOW becomes the ticket, with the kept place and media. Nobody
  answering: `submit_waiting` (a periodic job) makes the kept piece a ticket on its own after
  ASK_WINDOW, so nothing is lost.
- **Late parts** of one message (`fields["join_key"]`, e.g. an SMS part that arrived after its
  message was stored): joined to the ticket of the message with the same key within 24 h, the
  text completed (hub.multipart sets the key).

Telegram keeps its own conversation (hub/lines/telegram/) and is left alone here.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from hub.logging import get_logger
from hub.models import OPEN_STATUSES, RawMessage, Ticket, TicketEvent
from normalizer.types import TicketDraft

log = get_logger(__name__)
JOIN_WINDOW = timedelta(hours=2)  # a place or photo alone joins an open ticket this recent
ASK_WINDOW = timedelta(minutes=15)  # a place or photo alone waits this long for its words
PART_WINDOW = timedelta(hours=24)  # a late part joins its message within this
LINES = ("sms", "whatsapp")  # lines without a conversation of their own
WAITING = "waiting"  # raw_messages.state of a wordless piece waiting for its words
NO_WORDS = "(Pelapor mengirim lokasi/lampiran tanpa keterangan)"

DEFAULT_TEXTS = {
    "piece_added": "Lokasi/lampiran diterima dan ditambahkan pada laporan {code}.",
    "ask_what_happened": "Lokasi/lampiran sudah kami terima. Sekarang ceritakan apa yang terjadi "
                         "(balas pesan ini dengan keterangan kejadian).",
}


def _text(cfg, name: str, **values: Any) -> str:
    tpl = (getattr(cfg, "templates", None) or {}).get(name) or DEFAULT_TEXTS[name]
    return tpl.format(**values)


def _aware(d: datetime | None) -> datetime | None:
    return d if d is None or d.tzinfo else d.replace(tzinfo=timezone.utc)


def has_words(text: str | None) -> bool:
    return any(ch.isalnum() for ch in (text or ""))


def is_wordless_piece(draft: TicketDraft) -> bool:
    return not has_words(draft.text_original) and (
        draft.place.latitude is not None or bool(draft.attachments))


def takes_wordless(raw: RawMessage, draft: TicketDraft) -> bool:
    """A place or media without words on a line this module serves (not an empty message)."""
    return raw.channel in LINES and bool(raw.sender) and is_wordless_piece(draft)


def _open_ticket(session: Session, raw: RawMessage, since: datetime, joined_since: bool = False) -> Ticket | None:
    """The reporter's latest open ticket on this line created (or, joined_since, last touched by
    them) after `since`."""
    if not raw.sender:
        return None
    # tickets made from this sender's raw messages on this line (phone numbers as the line gave them)
    q = (select(Ticket).join(RawMessage, RawMessage.id == Ticket.raw_message_id)
         .where(RawMessage.channel == raw.channel, RawMessage.sender == raw.sender,
                Ticket.status.in_(OPEN_STATUSES), Ticket.merged_into.is_(None))
         .order_by(Ticket.id.desc()).limit(1))
    t = session.scalars(q).first()
    if t is None:
        return None
    last = _last_touch(t)
    return t if last is not None and last >= since else None


def _last_touch(t: Ticket) -> datetime | None:
    """When the reporter last added to the ticket (created, or a piece/follow-up joined)."""
    stamp = (t.fields or {}).get("pieces_last_at")
    return datetime.fromisoformat(stamp) if stamp else _aware(t.created_at)


def _touch(t: Ticket, when: datetime) -> None:
    t.fields = {**(t.fields or {}), "pieces_last_at": when.astimezone(timezone.utc).isoformat()}


def _apply_place_and_media(t: Ticket, draft: TicketDraft) -> list[str]:
    """Put a piece's coordinates/address/media on a ticket; what was added, for the event note."""
    added = []
    p = draft.place
    if p.latitude is not None and p.longitude is not None and t.latitude is None:
        t.latitude, t.longitude = p.latitude, p.longitude
        added.append("lokasi")
    if p.address and not t.address:
        t.address = p.address
    if draft.attachments:
        t.attachments = [*(t.attachments or []), *[asdict(a) for a in draft.attachments]]
        added.append(f"{len(draft.attachments)} lampiran")
    if not t.kecamatan_code and p.kecamatan_code:
        t.kecamatan_code, t.desa_code = p.kecamatan_code, p.desa_code
    return added


def _received(raw: RawMessage, now: datetime) -> datetime:
    return _aware(raw.received_at) or now


def _in_batch(ctx, key: str | None, raw: RawMessage, since: datetime) -> Ticket | None:
    """A ticket of this reporter (`key`: hub.tickets' reporter key) made earlier in the same
    processing batch (not flushed yet)."""
    if ctx is None:
        return None
    for r in ctx.recent.get(key, ()) if key else ():
        t = r.ticket
        if t is not None and t.channel == raw.channel and (_last_touch(t) or since) >= since:
            return t
    return None


def _note(session: Session, ctx, t: Ticket, **event: Any) -> None:
    if t.id is not None:
        session.add(TicketEvent(ticket_id=t.id, **event))
    elif ctx is not None:  # made in this batch: its id comes with the flush
        ctx.after_flush.append(lambda: session.add(TicketEvent(ticket_id=t.id, **event)))


def before_create(session: Session, raw: RawMessage, draft: TicketDraft, cfg, now: datetime,
                  replies, ctx=None, reporter_key: str | None = None, resolve=None) -> bool:
    """True when the message was joined to a ticket or kept waiting (no new ticket).
    hub.tickets passes its batch context, the reporter's key and resolve_code (this module
    never imports hub.tickets: that would be an import cycle)."""
    fields = draft.fields or {}
    if fields.get("imported"):
        return False
    if fields.get("join_key"):
        return resolve is not None and _join_part(session, raw, draft, resolve)
    if raw.channel not in LINES or not raw.sender:
        return False
    at = _received(raw, now)
    if is_wordless_piece(draft):
        t = _in_batch(ctx, reporter_key, raw, at - JOIN_WINDOW) or _open_ticket(session, raw, at - JOIN_WINDOW)
        if t is not None:
            added = _apply_place_and_media(t, draft)
            _touch(t, at)
            session.add(t)
            _note(session, ctx, t, actor=f"channel:{raw.channel}", kind="note",
                  note="Pelapor menambahkan " + (", ".join(added) or "pesan"),
                  data={"raw_id": raw.id, "latitude": draft.place.latitude, "longitude": draft.place.longitude,
                        "attachments": [asdict(a) for a in draft.attachments]})
            raw.state, raw.error = "duplicate", t.code
            replies.queue_text(session, t, raw.channel, raw.sender, _text(cfg, "piece_added", code=t.code), cfg=cfg)
            return True
        if fields.get("asked"):  # waited for its words in vain: a ticket of its own
            return False
        raw.state, raw.error = WAITING, None
        if ctx is not None:
            ctx.__dict__.setdefault("pieces_waiting", []).append(raw)
        replies.queue_text(session, None, raw.channel, raw.sender, _text(cfg, "ask_what_happened"), raw=raw, cfg=cfg)
        return True
    return False


def _waiting(session: Session, raw: RawMessage, at: datetime, ctx=None) -> list[RawMessage]:
    found = list(session.scalars(select(RawMessage).where(
        RawMessage.state == WAITING, RawMessage.channel == raw.channel, RawMessage.sender == raw.sender,
        RawMessage.received_at >= at - ASK_WINDOW).order_by(RawMessage.id)))
    for w in (ctx.__dict__.get("pieces_waiting") or []) if ctx is not None else []:
        if w.state == WAITING and w.channel == raw.channel and w.sender == raw.sender and w not in found:
            found.append(w)
    return found


def after_create(session: Session, raw: RawMessage, draft: TicketDraft, ticket: Ticket, now: datetime,
                 ctx=None) -> None:
    """A new ticket takes the pieces its reporter sent before the words (place, media)."""
    if raw.channel not in LINES or not raw.sender or (draft.fields or {}).get("imported"):
        return
    from hub.intake import message_from_json
    from normalizer.types import Attachment

    for w in _waiting(session, raw, _received(raw, now), ctx):
        m = message_from_json(w.message)
        if m.latitude is not None and ticket.latitude is None:
            ticket.latitude, ticket.longitude = m.latitude, m.longitude
        addr = (m.fields or {}).get("alamat")
        if addr and not ticket.address:
            ticket.address = addr
        if m.attachments:
            ticket.attachments = [*(ticket.attachments or []), *[asdict(a) for a in m.attachments
                                                                 if isinstance(a, Attachment)]]
        w.state, w.error = "duplicate", ticket.code
        session.add(w)


def _join_part(session: Session, raw: RawMessage, draft: TicketDraft, resolve) -> bool:
    """A late part of a message already stored: complete the text of its ticket."""
    key = draft.fields["join_key"]
    at = _received(raw, datetime.now(timezone.utc))
    first = session.scalars(select(RawMessage).where(
        RawMessage.id != raw.id, RawMessage.channel == raw.channel,
        RawMessage.received_at >= at - PART_WINDOW, RawMessage.state.in_(("done", "duplicate")))
        .where(RawMessage.message["fields"]["sms_concat"].as_string() == key)
        .order_by(RawMessage.id).limit(1)).first()
    if first is None:
        return False
    t = resolve(session, first.ticket_code)
    if t is None:
        return False
    full = (draft.fields or {}).get("sms_full_text")
    if full and has_words(full):
        t.text_original = full
        t.text_clean = " ".join(full.split())
    fields = dict(t.fields or {})
    parts = (draft.fields or {}).get("sms_parts_present")
    if parts:
        fields["sms_parts_present"] = parts
        missing = [p for p in fields.get("sms_parts_missing") or [] if p not in parts]
        if missing:
            fields["sms_parts_missing"] = missing
        else:
            fields.pop("sms_parts_missing", None)
    t.fields = fields
    session.add(t)
    session.add(TicketEvent(ticket_id=t.id, actor=f"channel:{raw.channel}", kind="note",
                            note="Bagian SMS yang terlambat tiba digabungkan ke laporan ini",
                            data={"raw_id": raw.id, "parts": parts}))
    raw.state, raw.error = "duplicate", t.code
    return True


def submit_waiting(session: Session, now: datetime | None = None) -> int:
    """Pieces that waited ASK_WINDOW for words in vain go back to processing, to be a ticket."""
    now = now or datetime.now(timezone.utc)
    rows = list(session.scalars(select(RawMessage).where(
        RawMessage.state == WAITING, RawMessage.received_at < now - ASK_WINDOW).limit(500)))
    for r in rows:
        msg = dict(r.message)
        msg["fields"] = {**(msg.get("fields") or {}), "asked": True}
        if not has_words(msg.get("text")):
            msg["text"] = NO_WORDS
        r.message, r.state, r.text = msg, "pending", msg["text"]
        session.add(r)
    return len(rows)


def _submit_waiting_now() -> int:
    from hub.db import get_engine, writer

    with Session(writer(get_engine())) as s:
        n = submit_waiting(s)
        s.commit()
    if n:
        log.info("pieces.waiting_submitted", count=n)
    return n


async def waiting_job() -> None:
    """Periodic job (in the Periodic list of the line that sends wordless pieces: hub/lines/twilio/__init__.py line())."""
    import asyncio

    await asyncio.to_thread(_submit_waiting_now)
