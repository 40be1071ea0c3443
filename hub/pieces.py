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
- **Follow-up texts** (SMS, WhatsApp, Telegram): a message with words from the same sender on the
  same line within `follow_up_window_s` of their last message on an open ticket, which
  normalizer.followup reads as a continuation (tambahan, lokasinya, fotonya nyusul, a sentence
  the phone split...), is appended to that ticket's text; the reporter is told once
  (`follow_up_added`, no second receipt); an OPD that already got the ticket gets a
  `ticket.updated` delivery. A message that already got its own code (Twilio's TwiML receipt,
  `fields.receipt_sent`) is never joined: the Twilio webhook asks `would_join` first and keeps
  the receipt back from a likely follow-up.

Telegram's guided conversation (hub/lines/telegram/) handles its own wordless pieces and albums.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from hub.logging import get_logger
from hub.models import OPEN_STATUSES, Outbox, RawMessage, Ticket, TicketEvent
from normalizer.followup import Earlier, Verdict, decide, is_confident
from normalizer.reporter import mask_niks
from normalizer.types import InboundMessage, TicketDraft, Urgency

log = get_logger(__name__)
JOIN_WINDOW = timedelta(hours=2)  # a place or photo alone joins an open ticket this recent
ASK_WINDOW = timedelta(minutes=15)  # a place or photo alone waits this long for its words
PART_WINDOW = timedelta(hours=24)  # a late part joins its message within this
LINES = ("sms", "whatsapp")  # lines without a conversation of their own
FOLLOW_LINES = ("sms", "whatsapp", "telegram")  # lines whose follow-up texts join their report
CLOCK_SLACK = timedelta(seconds=60)  # arrival times a little before the ticket's: clocks differ
FOLLOW_UP_HEAD = "\n\n[Tambahan "  # what starts each follow-up appended to a ticket's text
WAITING = "waiting"  # raw_messages.state of a wordless piece waiting for its words
NO_WORDS = "(Pelapor mengirim lokasi/lampiran tanpa keterangan)"

DEFAULT_TEXTS = {
    "piece_added": "Lokasi/lampiran diterima dan ditambahkan pada laporan {code}.",
    "ask_what_happened": "Lokasi/lampiran sudah kami terima. Sekarang ceritakan apa yang terjadi "
                         "(balas pesan ini dengan keterangan kejadian).",
    "follow_up_added": "Tambahan diterima dan digabungkan ke laporan {code}.",
}
_RANK = {Urgency.NORMAL.value: 0, Urgency.TINGGI.value: 1, Urgency.DARURAT.value: 2}


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


def _open_ticket(session: Session, raw: RawMessage, since: datetime, before: int | None = None) -> Ticket | None:
    """The reporter's latest open ticket on this line last touched by them after `since`;
    `before`: made from a message stored before raw message id `before`."""
    if not raw.sender:
        return None
    # tickets made from this sender's raw messages on this line (phone numbers as the line gave them)
    q = (select(Ticket).join(RawMessage, RawMessage.id == Ticket.raw_message_id)
         .where(RawMessage.channel == raw.channel, RawMessage.sender == raw.sender,
                Ticket.status.in_(OPEN_STATUSES), Ticket.merged_into.is_(None))
         .order_by(Ticket.id.desc()).limit(1))
    if before is not None:
        q = q.where(Ticket.raw_message_id < before)
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
        if t is not None and t.channel == raw.channel:
            # the newest ticket of this batch decides: an older one is not "their last report"
            return t if (_last_touch(t) or since) >= since else None
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


# --- follow-up texts ----------------------------------------------------------------------

def follow_up_window() -> timedelta:
    from hub.settings import get_settings

    return timedelta(seconds=max(0, get_settings().follow_up_window_s))


def earlier_of(t: Ticket) -> Earlier:
    """What normalizer.followup compares a new message with: the ticket's matter and place, and
    the reporter's last message on it (a sentence may have broken off there)."""
    fields = t.fields or {}
    return Earlier(text=fields.get("follow_up_last_text") or t.text_original or "",
                   category=t.category if is_confident(t.routing_confidence or 0.0, bool(t.needs_triage)) else None,
                   kecamatan_code=t.kecamatan_code, desa_code=t.desa_code)


def _earlier_of_draft(text: str, d: TicketDraft) -> Earlier:
    return Earlier(text=text, category=d.category if is_confident(d.routing.confidence, d.routing.needs_triage) else None,
                   kecamatan_code=d.place.kecamatan_code, desa_code=d.place.desa_code)


def _gap(at: datetime, last: datetime | None) -> float:
    if last is None:
        return -1.0
    gap = (at - last).total_seconds()
    return 0.0 if -CLOCK_SLACK.total_seconds() <= gap < 0 else gap


def takes_follow_up(raw: RawMessage, draft: TicketDraft) -> bool:
    fields = draft.fields or {}
    return (raw.channel in FOLLOW_LINES and bool(raw.sender) and has_words(draft.text_original)
            and not fields.get("imported") and not fields.get("receipt_sent") and not fields.get("unreadable"))


def join_follow_up(session: Session, raw: RawMessage, draft: TicketDraft, cfg, now: datetime, replies,
                   ctx=None, reporter_key: str | None = None, deliver_update=None) -> bool:
    """True when the message was appended to its reporter's open ticket as a follow-up.
    `deliver_update(ticket, note)`: hub.tickets' queue of a `ticket.updated` delivery."""
    window = follow_up_window()
    if not window or not takes_follow_up(raw, draft):
        return False
    at = _received(raw, now)
    since = at - window - CLOCK_SLACK
    in_batch = _in_batch(ctx, reporter_key, raw, since)
    if in_batch is None and ctx is not None and not ctx.recent.get(reporter_key or ""):
        return False  # the batch loaded this reporter's open tickets of the last day: none
    t = in_batch or _open_ticket(session, raw, since, before=raw.id)
    if t is None:
        return False
    verdict = decide(earlier_of(t), draft, _gap(at, _last_touch(t)), window.total_seconds())
    log.info("pieces.follow_up", channel=raw.channel, join=verdict.join, reason=verdict.reason, ticket=t.code)
    if not verdict.join:
        return False
    _append(t, draft, at, cfg)
    added = _apply_place_and_media(t, draft)
    if draft.place.address and t.address and draft.place.address not in t.address:
        t.address = f"{t.address}; {draft.place.address}"[:500]
    raised = _raise_urgency(t, draft, cfg)
    _touch(t, at)
    t.updated_at = now  # pull feeds (cursor by updated_at) show the change
    session.add(t)
    note = f"Pelapor menambahkan keterangan: {mask_niks(draft.text_clean)}"[:2000]
    _note(session, ctx, t, actor=f"channel:{raw.channel}", kind="note", note=note,
          data={"raw_id": raw.id, "follow_up": verdict.reason, "added": added,
                **({"urgency": t.urgency} if raised else {})})
    raw.state, raw.error = "duplicate", t.code
    told = ctx.__dict__.setdefault("follow_up_told", set()) if ctx is not None else set()
    fresh = in_batch is not None and t.id is None  # made in this batch: its receipt is still to come
    if t.code not in told and not (fresh and not (t.fields or {}).get("receipt_sent")):
        told.add(t.code)
        replies.queue_text(session, t, raw.channel, raw.sender, _text(cfg, "follow_up_added", code=t.code), cfg=cfg)
    if not fresh and deliver_update is not None and _delivery_left(session, t):
        deliver_update(t, note)
    return True


def _append(t: Ticket, draft: TicketDraft, at: datetime, cfg) -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo((getattr(cfg, "sla", None) or {}).get("timezone", "Asia/Jakarta"))
    local = at.astimezone(tz)
    stamp = f"{local.strftime('%H:%M')} {local.tzname() or ''}".strip()
    t.text_original = f"{t.text_original}{FOLLOW_UP_HEAD}{stamp}] {draft.text_original}"
    t.text_clean = f"{t.text_clean} [Tambahan {stamp}] {draft.text_clean}"
    t.fields = {**(t.fields or {}), "follow_up_last_text": mask_niks(draft.text_original),
                "follow_ups": int((t.fields or {}).get("follow_ups") or 0) + 1}


def _raise_urgency(t: Ticket, draft: TicketDraft, cfg) -> bool:
    """"tambahan: sudah ada korban": a follow-up never lowers the urgency, but may raise it."""
    if _RANK.get(draft.urgency.value, 0) <= _RANK.get(t.urgency, 0):
        return False
    from hub.sla import compute_due

    t.urgency = draft.urgency.value
    if t.created_at is not None:
        t.due_at = compute_due(cfg.sla, t.urgency, t.category, _aware(t.created_at))
    return True


def _delivery_left(session: Session, t: Ticket) -> bool:
    """Has a delivery of this ticket left (or begun to leave) for an OPD? An untouched pending
    one is built at its first attempt and carries the follow-up already. The row is locked
    (PostgreSQL) so a worker cannot start on it between this look and our commit."""
    rows = session.scalars(select(Outbox).where(Outbox.ticket_id == t.id, Outbox.kind == "deliver")
                           .with_for_update()).all()
    return any(r.state != "pending" or r.attempts > 0 or r.lease_owner for r in rows)


def would_join(session: Session, msg: InboundMessage, at: datetime, draft: TicketDraft | None = None) -> Verdict | None:
    """Before a message is stored (a webhook that answers at once): would processing join it
    to its reporter's report? Compared with their newest open ticket on this line, or with
    their newest message still waiting for processing. None: no recent report at all.
    `draft`: the message's draft when the caller has it (else it is normalized here)."""
    window = follow_up_window()
    if not window or msg.channel not in FOLLOW_LINES or not msg.sender:
        return None
    since = at - window - CLOCK_SLACK
    probe = RawMessage(channel=msg.channel, sender=msg.sender)
    t = _open_ticket(session, probe, since)
    waiting = session.scalars(select(RawMessage).where(
        RawMessage.channel == msg.channel, RawMessage.sender == msg.sender, RawMessage.state == "pending",
        RawMessage.stored_at >= since).order_by(RawMessage.id.desc()).limit(1)).first()
    if waiting is not None and (t is None or waiting.id > (t.raw_message_id or 0)):
        from hub.intake import message_from_json
        from hub.normalizer_loader import current_regency
        from normalizer import normalize

        earlier_msg = message_from_json(waiting.message)
        earlier = _earlier_of_draft(earlier_msg.text or "", normalize(earlier_msg, current_regency(session), at))
        last = _received(waiting, at)
    elif t is not None:
        earlier, last = earlier_of(t), _last_touch(t)
    else:
        return None
    if draft is None:
        from hub.normalizer_loader import current_regency
        from normalizer import normalize

        draft = normalize(msg, current_regency(session), at)
    return decide(earlier, draft, _gap(at, last), window.total_seconds())


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
