"""Hub side of the Telegram line: the webhook route, the polling loop, and the short guided
conversation (ask for the place, take a shared location or a photo) whose state lives in the
conversations table. Never speaks the Bot API itself (adapters/telegram.py does) and never
answers a citizen except through the outbox.

The conversation, one row per chat (state + data):
- idle: a report whose text names a place (or that is urgent, or comes with a location) is
  submitted at once; otherwise it is kept in data["report"] and the bot asks for the place.
- awaiting_location: the next text (or shared location/venue) completes the report: one intake
  message with the report text + "Lokasi: <answer>" and the coordinates.
- awaiting_text: a photo or location came first; the next text completes it.
A report nobody completes is submitted without a place after settings.telegram_ask_timeout_s.
Every update is deduplicated on (bot, update_id): the chat remembers its last update ids, and
the intake message of a report carries provider_id "<bot>:<update_id of its first update>".
"""
from __future__ import annotations

import asyncio
import copy
import hmac
import json
import logging
import re
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from adapters.base import DeliveryError, InvalidPayload, OutboundMessage, PermanentError, SendResult, backoff_delay
from adapters.telegram import (TelegramAdapter, TelegramUpdate, bot_id_of, parse_or_keep, parse_update,
                               provider_id)
from hub import media, pieces, readiness
from hub.guard import strip_nul
from hub.unavailable import is_unavailable, log_throttled
from hub.commands import answer_citizen_command, parse_citizen_command, parse_status_query
from hub.config import RegencyConfig, regency_config
from hub.db import get_engine, writer
from hub.limiter import MUTE, Limiter, Rule
from hub.lines import health
from hub.parts import Line, Periodic
from hub.intake import accept, message_from_json, message_to_json
from hub.logging import get_logger, mask_text
from hub.models import Conversation, RawMessage, Ticket, utcnow
from hub.replies import queue_text
from hub.settings import Settings, get_settings
from hub.tickets import add_attachments, add_event, resolve_code
from hub.unreadable import store_unreadable
from normalizer.types import Attachment, InboundMessage, Urgency

log = get_logger(__name__)
CHANNEL = "telegram"
IDLE, AWAITING_LOCATION, AWAITING_TEXT = "idle", "awaiting_location", "awaiting_text"
SUBMITTING = "submitting"  # idle, but an intake message or a ticket addition is not written yet
MODES = ("webhook", "polling", "off")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
BOT_TOKEN = re.compile(r"(?<!\d)(\d{5,15}:)[A-Za-z0-9_-]{30,}")  # also inside ".../bot<token>/..."
SECRET_FORMAT = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
ATTACH_WINDOW = timedelta(minutes=10)  # a lone photo this soon after a report belongs to it
LATE_TTL = timedelta(hours=24)  # give up adding to a ticket that never appeared
RATE_WINDOW_S = 600
RECENT_KEEP = 30
GROUPS_KEEP = 16  # albums remembered per chat (media_group_id -> the report they went to)
SEEN_KEEP = 64  # update ids remembered per chat (webhook deliveries may arrive out of order)
NO_TEXT = "(Pelapor mengirim foto/lokasi tanpa keterangan)"
CONV = Conversation.__table__


@dataclass
class Outcome:
    """What one update did: the webhook answers it (Telegram ignores it), tests read it."""

    action: str
    keys: list[str] = field(default_factory=list)  # idempotency keys of intake messages submitted


# --- the conversation ---------------------------------------------------------------------

def _lock_conversation(session: Session, engine: Engine, chat_id: str) -> Conversation:
    """The chat's row, created if missing, locked until commit (SQLite: the write lock of BEGIN
    IMMEDIATE; PostgreSQL: FOR UPDATE), so two updates of one chat never interleave."""
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(CONV).values(channel=CHANNEL, chat_id=chat_id, state=IDLE, data={},
                                        updated_at=utcnow()).on_conflict_do_nothing())
    q = select(Conversation).where(Conversation.channel == CHANNEL, Conversation.chat_id == chat_id)
    if engine.dialect.name == "postgresql":
        q = q.with_for_update()
    conv = session.scalars(q).one()
    session.refresh(conv)
    return conv


def sane_time(at: datetime | None, now: datetime) -> datetime:
    """Telegram's own date of an update, or `now` if it is missing or impossible (hub.guard):
    a stored report with an impossible time could never leave the chat's queue."""
    from hub.guard import InvalidMessage, check_time

    try:
        check_time(_aware(at) if at else None, now)
    except InvalidMessage:
        return now
    return at or now


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat()


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


class Step:
    """One update applied to one chat's conversation, inside the chat's lock."""

    def __init__(self, session: Session, conv: Conversation, update: TelegramUpdate, bot_id: str,
                 cfg: RegencyConfig, settings: Settings, now: datetime, file_path: str | None):
        self.s, self.conv, self.u, self.bot_id = session, conv, update, bot_id
        self.cfg, self.settings, self.now, self.file_path = cfg, settings, now, file_path
        self.data: dict[str, Any] = copy.deepcopy(conv.data or {})
        self.state = conv.state or IDLE
        self.chat_id = str(update.chat_id)
        self.keys: list[str] = []
        self.muted = False

    # replies go out through the outbox, in this transaction
    def reply(self, template: str, **values: Any) -> None:
        self.say(self.cfg.template(template, **values))

    def say(self, text: str) -> None:
        if not self.muted:
            queue_text(self.s, None, CHANNEL, self.chat_id, text, cfg=self.cfg)

    def _count_rate(self) -> None:
        """Flood guard: past the limit the bot stops answering (once it says so); every report
        is still stored and submitted. The hub's one limiter (hub.limiter) with the MUTE policy,
        counted in the database like the phone lines' HOLD."""
        limit = self.settings.rate_limit_per_sender
        key = f"sender:{CHANNEL}:{self.chat_id}"
        verdict = Limiter().hit(key, Rule(limit, RATE_WINDOW_S, MUTE), self.now, conn=self.s.connection())
        if not verdict.allowed:
            if verdict.first_over:
                self.reply("rate_limited")
            self.muted = True

    def run(self) -> str:
        u = self.u
        if not u.is_private:
            if u.kind == "message" and u.command:
                self.reply("telegram_private_only")
            return "ignored_not_private"
        self._count_rate()
        if u.kind == "edited_message":
            return self.edited()
        if u.command:
            return self.command(u.command, u.command_args)
        cmd = parse_citizen_command(u.text) if u.text and not u.media else None
        if cmd:
            return self.status(cmd)
        if u.unsupported and not u.media and not u.text and not u.has_location:
            self.reply("telegram_unsupported")
            return "unsupported"
        report = self.data.get("report")
        mg = u.media_group_id
        target = (self.data.get("groups") or {}).get(mg) if mg else None
        if target and (report is None or report.get("media_group_id") != mg):
            return self._follow_group(target)
        if report is None:
            return self.start_report()
        return self.continue_report(report)

    def _remember_group(self, mg: str | None, key: str) -> None:
        """An album (several updates, one media_group_id) goes where its first item went."""
        if not mg:
            return
        groups = self.data.setdefault("groups", {})
        groups[mg] = key
        if len(groups) > GROUPS_KEEP:
            self.data["groups"] = dict(list(groups.items())[-GROUPS_KEEP:])

    def _follow_group(self, key: str) -> str:
        """A later item of an album whose report is already submitted: onto the same ticket
        (its photo, and its caption as the reporter's note), never a report of its own."""
        u = self.u
        item: dict[str, Any] = {"key": key, "at": _iso(self.now)}
        if u.media is not None:
            item["attachment"] = _att_json(u.media.attachment(self.file_path))
        if u.text:
            item["note"] = f"Pelapor menambahkan: {mask_text(u.text)}"
        if len(item) > 2:
            self.data.setdefault("late", []).append(item)
            self.state = SUBMITTING if self.state == IDLE else self.state
        return "attached_to_album"

    # commands
    def command(self, name: str, args: str) -> str:
        if name in ("start", "help", "mulai", "bantuan"):
            self.reply("welcome")
            return "welcome"
        if name in ("status", "cek"):
            code = parse_status_query(f"/status {args}") if args else None
            if not code:
                self.reply("telegram_status_usage")
                return "status_usage"
            return self.status(("cek", code, None))
        if name in ("beres", "belum"):
            cmd = parse_citizen_command(f"/{name} {args}") if args else None
            if not cmd:
                self.reply("telegram_status_usage")
                return "status_usage"
            return self.status(cmd)
        if name in ("batal", "cancel"):
            if self.data.pop("report", None) is None:
                self.reply("telegram_nothing_pending")
                return "nothing_to_cancel"
            self.state = SUBMITTING if self._work_left() else IDLE
            self.reply("telegram_cancelled")
            return "cancelled"
        if name == "lapor" and args:  # "/lapor jalan rusak di ..." is a report
            self.u = _with_text(self.u, args)
            report = self.data.get("report")
            return self.start_report() if report is None else self.continue_report(report)
        self.reply("welcome")
        return "unknown_command"

    def status(self, cmd: tuple[str, str, int | None]) -> str:
        self.say(answer_citizen_command(self.s, self.cfg, CHANNEL, self.chat_id, cmd))
        return "status" if cmd[0] == "cek" else "feedback"

    # reports
    def _new_report(self) -> dict[str, Any]:
        u = self.u
        return {"first_update_id": u.update_id, "started_at": _iso(sane_time(u.date, self.now)), "text": "",
                "text_mid": None, "place_answer": None, "place_mid": None, "latitude": None,
                "longitude": None, "attachments": [], "message_ids": [], "sender_name": u.sender_name,
                "updates": []}

    def _absorb(self, report: dict[str, Any]) -> None:
        """Keep what this update brings: its id, raw payload, media, coordinates."""
        u = self.u
        if u.message_id is not None:
            report["message_ids"].append(u.message_id)
        report["updates"].append(u.raw)
        if u.unreadable:
            report["unreadable"] = u.unreadable
        if u.media_group_id and not report.get("media_group_id"):
            report["media_group_id"] = u.media_group_id
        if u.media is not None:
            report["attachments"].append(_att_json(u.media.attachment(self.file_path)))
        if u.has_location:
            report["latitude"], report["longitude"] = u.latitude, u.longitude

    def start_report(self) -> str:
        u = self.u
        report = self._new_report()
        self._absorb(report)
        if not u.text:
            if u.media is not None and self._attach_to_last(report["attachments"][-1]):
                return "attached_to_last_report"
            if u.venue:
                report["place_answer"], report["place_mid"] = u.venue, u.message_id
            self.data["report"], self.state = report, AWAITING_TEXT
            self.reply("telegram_ask_text")
            return "awaiting_text"
        report["text"], report["text_mid"] = u.text, u.message_id
        return self.decide(report)

    def continue_report(self, report: dict[str, Any]) -> str:
        u = self.u
        self._absorb(report)
        if self.state == AWAITING_TEXT:
            if not u.text:
                if u.venue:
                    report["place_answer"], report["place_mid"] = u.venue, u.message_id
                self.data["report"] = report
                if u.media is not None:
                    self.reply("telegram_photo_received")
                return "awaiting_text"
            report["text"], report["text_mid"] = u.text, u.message_id
            return self.decide(report)
        # awaiting the place: a text, a location or a venue answers; a photo alone does not
        answer = u.venue or u.text
        if answer:
            report["place_answer"], report["place_mid"] = answer, u.message_id
        if answer or u.has_location:
            return self.submit(report, "submitted_with_location")
        self.data["report"] = report
        self.reply("telegram_photo_received")
        return "awaiting_location"

    def decide(self, report: dict[str, Any]) -> str:
        """Submit now, or ask where it happened."""
        if report["latitude"] is not None or report["place_answer"]:
            return self.submit(report, "submitted")
        msg = self._message(report)
        draft = _normalize(self.s, msg, self.now)
        if draft is None or draft.is_empty or draft.urgency == Urgency.DARURAT \
                or draft.place.kecamatan_code or draft.place.desa_code:
            # no normalizer (submit rather than hold), nothing to ask about, an emergency
            # (never held back), or the place is known
            return self.submit(report, "submitted")
        if self._follows_up(msg, draft):  # "oh iya, tambahan ...": joins the report, no place asked
            return self.submit(report, "submitted_follow_up")
        self.data["report"], self.state = report, AWAITING_LOCATION
        self.reply("ask_location")
        return "awaiting_location"

    def _follows_up(self, msg: InboundMessage, draft) -> bool:
        """Would processing join this text to the chat's last report (hub.pieces, the same rule
        as SMS and WhatsApp)? Then asking for its place would be wrong."""
        try:
            verdict = pieces.would_join(self.s, msg, msg.received_at or self.now, draft)
        except Exception:  # ask as for any report
            log.exception("telegram.follow_up_check_failed")
            return False
        return bool(verdict and verdict.join)

    def _message(self, report: dict[str, Any]) -> InboundMessage:
        text = report["text"] or ""
        if report["place_answer"]:
            text = f"{text}\nLokasi: {report['place_answer']}" if text else f"Lokasi: {report['place_answer']}"
        if not text.strip():
            text = NO_TEXT
        fields: dict[str, Any] = {"telegram_message_ids": list(report["message_ids"])}
        if report["place_answer"]:
            fields["lokasi"] = report["place_answer"]
        if report.get("unreadable"):  # the library refused an update of it: a person checks
            fields["unreadable"] = report["unreadable"]
        return InboundMessage(
            channel=CHANNEL, text=text, sender=self.chat_id,
            provider_id=provider_id(self.bot_id, report["first_update_id"]),
            received_at=datetime.fromisoformat(report["started_at"]), sender_name=report["sender_name"],
            attachments=tuple(Attachment(**a) for a in report["attachments"]),
            latitude=report["latitude"], longitude=report["longitude"], fields=fields,
            raw={"updates": report["updates"]},
        )

    def submit(self, report: dict[str, Any], action: str) -> str:
        msg = self._message(report)
        key = msg.idempotency_key(self.settings.dedup_window_s)
        self.data.setdefault("outgoing", []).append(message_to_json(msg))
        recent = self.data.setdefault("recent", {})
        for mid in report["message_ids"]:
            recent[str(mid)] = key
        if len(recent) > RECENT_KEEP:
            self.data["recent"] = dict(list(recent.items())[-RECENT_KEEP:])
        self.data["last_submitted"] = {"key": key, "at": _iso(self.now)}
        self._remember_group(report.get("media_group_id"), key)
        self.data.pop("report", None)
        self.state = SUBMITTING
        self.keys.append(key)
        return action

    def _attach_to_last(self, att: dict[str, Any]) -> bool:
        """A lone photo right after a submitted report (an album, or 'here is a picture')."""
        last = self.data.get("last_submitted")
        if not last or self.now - datetime.fromisoformat(last["at"]) > ATTACH_WINDOW:
            return False
        self.data.setdefault("late", []).append({"key": last["key"], "attachment": att, "at": _iso(self.now)})
        self._remember_group(self.u.media_group_id, last["key"])
        self.state = SUBMITTING
        self.reply("telegram_photo_added")
        return True

    def edited(self) -> str:
        """An edit never makes a second ticket: it updates a report still being asked about, or
        becomes a note in the ticket's history; edits of anything else are ignored."""
        u = self.u
        new = u.text or ""
        report = self.data.get("report")
        if report is not None and u.message_id in (report["text_mid"], report["place_mid"]):
            slot = "text" if u.message_id == report["text_mid"] else "place_answer"
            if new:
                report[slot] = new
                report["updates"].append(u.raw)
                self.data["report"] = report
            return "edit_applied"
        key = (self.data.get("recent") or {}).get(str(u.message_id))
        if key and new:
            self.data.setdefault("late", []).append(
                {"key": key, "note": f"Pelapor mengubah pesannya menjadi: {mask_text(new)}", "at": _iso(self.now)})
            self.state = SUBMITTING if self.state == IDLE else self.state
            return "edit_noted"
        return "edit_ignored"

    def _work_left(self) -> bool:
        return bool(self.data.get("outgoing") or self.data.get("late"))

    def save(self) -> None:
        if self.state == SUBMITTING and not self._work_left():
            self.state = IDLE
        self.conv.data, self.conv.state, self.conv.updated_at = self.data, self.state, self.now
        self.s.add(self.conv)


def _with_text(u: TelegramUpdate, text: str) -> TelegramUpdate:
    from dataclasses import replace

    return replace(u, text=text, command=None, command_args="")


def _att_json(att: Attachment) -> dict[str, Any]:
    return {"url": att.url, "kind": att.kind, "mime": att.mime, "name": att.name}


def _normalize(session: Session, msg: InboundMessage, now: datetime):
    """The normalizer's draft of what would be submitted (to see whether it names a place)."""
    try:
        from hub.normalizer_loader import current_regency
        from normalizer import normalize

        return normalize(msg, current_regency(session), now)
    except Exception:  # a broken normalizer must not hold reports back: submit them instead
        log.exception("telegram.normalize_failed")
        return None


def handle_update(update: TelegramUpdate, bot_id: str, settings: Settings | None = None,
                  cfg: RegencyConfig | None = None, engine: Engine | None = None,
                  file_path: str | None = None, now: datetime | None = None) -> Outcome:
    """Apply one update to its chat's conversation, then submit what became complete.

    Safe to call again with the same update (Telegram retries): it is recognised and skipped.
    """
    settings = settings or get_settings()
    cfg = cfg or regency_config(str(settings.config_dir))
    engine = engine or get_engine()
    now = now or datetime.now(timezone.utc)
    if update.kind == "other" or update.chat_id is None:
        return Outcome("ignored_update_type")
    chat_id = str(update.chat_id)
    with Session(writer(engine), expire_on_commit=False) as session:
        conv = _lock_conversation(session, engine, chat_id)
        data = conv.data or {}
        seen = [int(i) for i in data.get("seen") or []] if data.get("bot_id") == bot_id else []
        if update.update_id in seen or (len(seen) >= SEEN_KEEP and update.update_id < min(seen)):
            unfinished = conv.state == SUBMITTING
            session.rollback()
            if unfinished:  # the first attempt stored the state but failed to submit: finish it
                flush(chat_id, engine, settings)
            return Outcome("duplicate")
        step = Step(session, conv, update, bot_id, cfg, settings, now, file_path)
        step.data["bot_id"] = bot_id
        step.data["seen"] = sorted([*seen, update.update_id])[-SEEN_KEEP:]
        action = step.run()
        step.save()
        session.commit()
    if step._work_left():  # reports to store, photos or notes to add to tickets
        flush(chat_id, engine, settings)
    log.info("telegram.update", update_id=update.update_id, kind=update.kind, action=action)
    return Outcome(action, step.keys)


def flush(chat_id: str, engine: Engine | None = None, settings: Settings | None = None) -> int:
    """Store the chat's completed reports in intake and add late photos/notes to their tickets.

    Intake is idempotent, so a crash between storing and clearing only repeats a no-op.
    Returns how many items are still waiting (a ticket not yet created by processing).
    """
    engine = engine or get_engine()
    settings = settings or get_settings()
    with Session(engine) as s:
        conv = s.scalars(select(Conversation).where(Conversation.channel == CHANNEL,
                                                    Conversation.chat_id == chat_id)).first()
        outgoing = list((conv.data or {}).get("outgoing") or []) if conv else []
    done: set[str] = set()
    for m in outgoing:
        msg = message_from_json(m)
        accepted = accept(msg, engine, settings.dedup_window_s)  # raises: stays queued for the next flush
        done.add(accepted.idempotency_key)
    now = datetime.now(timezone.utc)
    with Session(writer(engine), expire_on_commit=False) as s:
        conv = _lock_conversation(s, engine, chat_id)
        data = copy.deepcopy(conv.data or {})
        data["outgoing"] = [m for m in data.get("outgoing") or []
                            if message_from_json(m).idempotency_key(settings.dedup_window_s) not in done]
        still = []
        for item in data.get("late") or []:
            if not _apply_late(s, item):
                if now - datetime.fromisoformat(item["at"]) < LATE_TTL:
                    still.append(item)
                else:
                    log.warning("telegram.late_item_dropped", key=item["key"])
        data["late"] = still
        if not data["outgoing"]:
            data.pop("outgoing")
        if not still:
            data.pop("late")
        conv.data = data
        if conv.state == SUBMITTING and not data.get("outgoing") and not still:
            conv.state = IDLE
        s.add(conv)
        s.commit()
        return len(still) + len(data.get("outgoing") or [])


def _apply_late(s: Session, item: dict[str, Any]) -> bool:
    """A photo or an edit for an already submitted report: onto its ticket, once it exists."""
    code = s.scalars(select(RawMessage.ticket_code).where(RawMessage.idempotency_key == item["key"])).first()
    ticket: Ticket | None = resolve_code(s, code) if code else None
    if ticket is None:
        return False
    if "attachment" in item:
        add_attachments(s, ticket, [item["attachment"]], f"channel:{CHANNEL}")
    if "note" in item:
        add_event(s, ticket, f"channel:{CHANNEL}", "note", note=item["note"])
    return True


def submit_stale(settings: Settings | None = None, engine: Engine | None = None,
                 now: datetime | None = None) -> int:
    """Reports nobody completed are submitted without a place; half-done flushes are finished."""
    settings = settings or get_settings()
    engine = engine or get_engine()
    now = now or datetime.now(timezone.utc)
    cfg = regency_config(str(settings.config_dir))
    asked_before = now - timedelta(seconds=settings.telegram_ask_timeout_s)
    with Session(engine) as s:
        rows = s.execute(select(Conversation.chat_id, Conversation.state).where(
            Conversation.channel == CHANNEL,
            or_(and_(Conversation.state.in_((AWAITING_LOCATION, AWAITING_TEXT)),
                     Conversation.updated_at < asked_before),
                and_(Conversation.state == SUBMITTING,
                     Conversation.updated_at < now - timedelta(seconds=30)))).limit(500)).all()
    bot_id = bot_id_of(settings.telegram_bot_token or "0:")
    n = 0
    for chat_id, _state in rows:
        with Session(writer(engine), expire_on_commit=False) as s:
            conv = _lock_conversation(s, engine, chat_id)
            report = (conv.data or {}).get("report")
            if report is not None and conv.state in (AWAITING_LOCATION, AWAITING_TEXT) \
                    and _aware(conv.updated_at) < asked_before:
                fake = TelegramUpdate(update_id=report["first_update_id"], kind="message",
                                      chat_id=int(chat_id), chat_type="private")
                step = Step(s, conv, fake, (conv.data or {}).get("bot_id", bot_id), cfg, settings, now, None)
                step.submit(step.data["report"], "submitted_stale")
                step.conv.data, step.conv.state = step.data, step.state  # keep updated_at: no new activity
                s.add(step.conv)
                n += 1
            s.commit()
        flush(chat_id, engine, settings)
    return n


# --- talking to Telegram ------------------------------------------------------------------

_ADAPTERS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, TelegramAdapter]]" = \
    weakref.WeakKeyDictionary()


def get_adapter(settings: Settings | None = None) -> TelegramAdapter:
    """The bot for this event loop (its HTTP client belongs to the loop)."""
    settings = settings or get_settings()
    if not settings.telegram_bot_token:
        raise PermanentError("telegram line not configured: SIMPUL_TELEGRAM_BOT_TOKEN is not set")
    per_loop = _ADAPTERS.setdefault(asyncio.get_running_loop(), {})
    key = (settings.telegram_bot_token, settings.telegram_base_url)
    if key not in per_loop:
        per_loop[key] = TelegramAdapter(settings.telegram_bot_token, settings.telegram_base_url)
    return per_loop[key]


async def close_adapters() -> None:
    for adapter in _ADAPTERS.pop(asyncio.get_running_loop(), {}).values():
        await adapter.close()


async def send_reply(message: OutboundMessage) -> SendResult:
    """Outbox reply sender for channel "telegram" (receipts, status changes, bot answers)."""
    return await get_adapter().send(message)


async def process_update(update: TelegramUpdate, settings: Settings) -> Outcome:
    """Webhook and polling share this: look up a photo's file path, then the conversation."""
    file_path = None
    if update.media is not None and update.is_private and update.kind == "message":
        file_id, adapter = update.media.file_id, get_adapter(settings)
        try:
            if media.telegram_path(file_id).exists():  # a repeated update: stored already
                file_path = await asyncio.wait_for(adapter.file_path(file_id), 5)
            else:  # into the hub's storage now, one getFile: served later at a signed hub URL
                file_path, data = await asyncio.wait_for(adapter.fetch_file(file_id, media.MAX_FETCH), 15)
                if data is not None:
                    media.store_telegram(file_id, data)
        except (DeliveryError, asyncio.TimeoutError) as exc:  # the file_id alone is enough; a file
            # not stored now is fetched on first request (hub.media)
            log.warning("telegram.get_file_failed", update_id=update.update_id, error=str(exc)[:200] or "timeout")
    bot_id = bot_id_of(settings.telegram_bot_token or "")
    return await asyncio.to_thread(handle_update, update, bot_id, settings, None, None, file_path)


# --- webhook ------------------------------------------------------------------------------

router = APIRouter(tags=["webhooks"])


@router.post("/webhooks/telegram", responses={
    200: {"description": "handled (or a retry of an update already handled)"},
    400: {"description": "malformed JSON or not a Telegram Update"},
    403: {"description": "missing or wrong X-Telegram-Bot-Api-Secret-Token"},
    404: {"description": "the Telegram line is not in webhook mode"},
    503: {"description": "not stored; Telegram retries"}})
async def telegram_webhook(request: Request):
    settings: Settings = request.app.state.settings
    if settings.telegram_mode != "webhook" or not settings.telegram_bot_token:
        return JSONResponse({"detail": "the Telegram webhook is not enabled (telegram_mode, telegram_bot_token)"},
                            status_code=404)
    secret = settings.telegram_webhook_secret or ""
    given = request.headers.get(SECRET_HEADER, "")
    if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        log.warning("telegram.webhook_forbidden", client=request.client.host if request.client else None,
                    reason="no secret configured" if not secret else ("missing" if not given else "mismatch"))
        return JSONResponse({"detail": f"bad or missing {SECRET_HEADER}"}, status_code=403)
    body = await request.body()
    try:
        payload = strip_nul(json.loads(body))  # hub.guard: the same text on both stores
    except (ValueError, UnicodeDecodeError) as exc:
        return await _keep_unreadable(settings, body, f"malformed JSON: {exc}")
    try:
        update = parse_update(payload)
    except InvalidPayload as exc:
        return await _keep_unreadable(settings, payload, str(exc))
    try:
        outcome = await process_update(update, settings)
    except Exception as exc:
        if is_unavailable(exc):
            log_throttled("telegram.store_failed", exc)
        else:
            log.exception("telegram.store_failed", update_id=update.update_id)
        await _note_health(False, repr(exc))
        return JSONResponse({"detail": "not stored, please retry"}, status_code=503)
    await _note_health(True)
    return {"ok": True, "action": outcome.action}


async def _keep_unreadable(settings: Settings, payload: Any, problem: str) -> JSONResponse:
    """Store what we could not read as a dead intake row (hub.unreadable), then answer: 200
    for an update (it has an update_id: Telegram's retries would change nothing), 400 with
    the reason for a body that is not an update at all; 503 if even storing failed."""
    uid = payload.get("update_id") if isinstance(payload, dict) else None
    is_update = isinstance(uid, int) and not isinstance(uid, bool)
    if payload in (b"", None):
        return JSONResponse({"detail": problem}, status_code=400)
    key = provider_id(bot_id_of(settings.telegram_bot_token or ""), uid) if is_update else None
    try:
        await asyncio.to_thread(store_unreadable, CHANNEL, payload, problem, key=key,
                                dedup_window_s=settings.dedup_window_s)
    except Exception:
        log.exception("telegram.unreadable_not_stored")
        return JSONResponse({"detail": "not stored, please retry"}, status_code=503)
    if is_update:
        return JSONResponse({"ok": True, "action": "stored_unreadable", "detail": problem})
    return JSONResponse({"detail": problem}, status_code=400)


_last_health = 0.0


async def _note_health(ok: bool, error: str | None = None) -> None:
    """Webhook mode: keep the line's health row fresh, at most every 30 s while all is well."""
    global _last_health
    if ok and time.monotonic() - _last_health < 30:
        return
    try:
        await asyncio.to_thread(_health, ok, error, None, ok)
        _last_health = time.monotonic() if ok else 0.0
    except Exception:  # health is for the admin page; never fail a webhook over it
        log.warning("telegram.health_write_failed")


# --- polling and start-up -----------------------------------------------------------------

def _health(ok: bool, error: str | None = None, offset: int | None = None, got: bool = False) -> None:
    """Line health for the admin page (channel_state row "telegram", hub.lines.health)."""
    if not ok:
        health.record_failure(get_engine(), CHANNEL, error or "", max_len=500)
        return
    values: dict[str, Any] = {}
    if got:
        values["last_message_at"] = datetime.now(timezone.utc)
    if offset is not None:
        values["cursor"] = {"offset": offset}  # the line's only cursor value
    health.record_ok(get_engine(), CHANNEL, **values)


GIVE_UP_AFTER = 3  # polling: an update that fails this often is kept as a dead intake row


async def poll(settings: Settings, stop: asyncio.Event) -> None:
    """getUpdates loop: an update is confirmed (offset moves past it) only once it is stored.

    Updates come as raw JSON and are read one by one, so one the library cannot parse never
    hides the others: it is read by hand (a ticket for triage) or kept as a dead intake row.
    An update whose handling fails GIVE_UP_AFTER times is kept as a dead intake row too, so
    the offset always moves past it. Nothing but `stop` ends the loop."""
    adapter = get_adapter(settings)
    try:
        await adapter.delete_webhook()
    except DeliveryError as exc:
        log.warning("telegram.delete_webhook_failed", error=str(exc)[:200])
    offset: int | None = None
    delay = 1.0
    poll_failures = 0  # getUpdates calls failing in a row: the back-off
    failures: dict[int, int] = {}  # update_id -> handling failures
    log.info("telegram.polling_started")

    async def pause() -> None:
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except asyncio.TimeoutError:
            pass

    while not stop.is_set():
        try:
            payloads = await adapter.get_updates_raw(offset, settings.telegram_poll_timeout_s)
        except DeliveryError as exc:
            poll_failures += 1
            delay = backoff_delay(poll_failures, 1.0, 60.0, jitter=False)  # 1, 2, 4 ... 60 s
            log.warning("telegram.poll_failed", error=str(exc)[:300], retry_in_s=delay)
            await _safe_health(False, str(exc))
            await pause()
            continue
        except Exception as exc:  # anything else: note it, back off, go on polling
            poll_failures += 1
            delay = backoff_delay(poll_failures, 1.0, 60.0, jitter=False)
            log.exception("telegram.poll_crashed")
            await _safe_health(False, repr(exc))
            await pause()
            continue
        poll_failures = 0
        handled = 0
        for payload in payloads:
            uid = payload.get("update_id") if isinstance(payload, dict) else None
            if not isinstance(uid, int):  # not an update: keep it; nothing to confirm
                await _safe_store_unreadable(settings, payload, "getUpdates: not an Update", None)
                continue
            try:
                update = parse_or_keep(payload)
                if isinstance(update, TelegramUpdate):
                    await process_update(update, settings)
                else:
                    await asyncio.to_thread(store_unreadable, CHANNEL, payload, "not a readable Telegram Update",
                                            key=provider_id(bot_id_of(settings.telegram_bot_token or ""), uid),
                                            dedup_window_s=settings.dedup_window_s)
            except Exception as exc:  # not stored: do not confirm; getUpdates returns it again
                log.exception("telegram.store_failed", update_id=uid)
                failures[uid] = failures.get(uid, 0) + 1
                await _safe_health(False, repr(exc))
                if failures[uid] < GIVE_UP_AFTER or not await _safe_store_unreadable(
                        settings, payload, f"handling failed {failures[uid]} times: {exc!r}", uid):
                    await asyncio.sleep(1.0)
                    break
            failures.pop(uid, None)
            offset = uid + 1
            handled += 1
        await _safe_health(True, None, offset, handled > 0)


async def _safe_health(ok: bool, error: str | None = None, offset: int | None = None, got: bool = False) -> None:
    try:
        await asyncio.to_thread(_health, ok, error, offset, got)
    except Exception:  # the database is down: the next round tries again
        log.warning("telegram.health_write_failed")


async def _safe_store_unreadable(settings: Settings, payload: Any, problem: str, uid: int | None) -> bool:
    key = provider_id(bot_id_of(settings.telegram_bot_token or ""), uid) if uid is not None else None
    try:
        await asyncio.to_thread(store_unreadable, CHANNEL, payload, problem, key=key,
                                dedup_window_s=settings.dedup_window_s)
        return True
    except Exception:
        log.exception("telegram.unreadable_not_stored", update_id=uid)
        return False


def _poll_check(task: asyncio.Task, settings: Settings):
    stale = readiness.stale_check(CHANNEL, settings.telegram_poll_timeout_s * 3 + 60)

    def check() -> tuple[bool, str]:
        if task.done():
            exc = None if task.cancelled() else task.exception()
            return False, f"polling loop ended: {exc!r}" if exc else "polling loop ended"
        return stale()

    return check


async def _register_webhook(settings: Settings) -> None:
    url = settings.public_url.rstrip("/") + "/webhooks/telegram"
    try:
        await get_adapter(settings).set_webhook(url, settings.telegram_webhook_secret or "")
        log.info("telegram.webhook_set", url=url)
    except DeliveryError as exc:
        log.error("telegram.set_webhook_failed", error=str(exc)[:300])


async def on_startup(app: FastAPI, settings: Settings) -> None:
    if settings.telegram_mode not in MODES:
        raise ValueError(f"SIMPUL_TELEGRAM_MODE must be one of {', '.join(MODES)}, not {settings.telegram_mode!r}")
    secret = settings.telegram_webhook_secret
    if secret and not SECRET_FORMAT.match(secret):
        raise ValueError("SIMPUL_TELEGRAM_WEBHOOK_SECRET may only hold 1-256 of A-Z a-z 0-9 _ - (Telegram's rule)")
    app.state.telegram_tasks = []
    if settings.telegram_mode == "off" or not settings.telegram_bot_token:
        return
    if settings.telegram_mode == "polling":
        stop = asyncio.Event()
        app.state.telegram_stop = stop
        task = asyncio.create_task(poll(settings, stop), name="telegram-poll")
        app.state.telegram_tasks.append(task)
        readiness.register(CHANNEL, _poll_check(task, settings))
    elif not settings.telegram_webhook_secret:
        log.error("telegram.no_webhook_secret", hint="set SIMPUL_TELEGRAM_WEBHOOK_SECRET; webhooks get 403 until then")
    elif settings.telegram_set_webhook and settings.public_url.startswith("https://"):
        app.state.telegram_tasks.append(asyncio.create_task(_register_webhook(settings), name="telegram-setwebhook"))


async def on_shutdown(app: FastAPI, settings: Settings) -> None:
    stop = getattr(app.state, "telegram_stop", None)
    readiness.unregister(CHANNEL)
    if stop is not None:
        stop.set()
    for task in getattr(app.state, "telegram_tasks", []):
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
    await close_adapters()


async def _stale_job() -> None:
    await asyncio.to_thread(submit_stale)


class _RedactTokens(logging.Filter):
    """httpx logs request URLs at INFO, and Bot API URLs carry the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(BOT_TOKEN.sub(r"\1***", record.getMessage()))
        record.args = ()
        return True


for _name in ("httpx", "telegram", "telegram.Bot"):  # logger filters are not inherited by children
    logging.getLogger(_name).addFilter(_RedactTokens())


def line(settings: Settings) -> Line:
    """The webhook, polling (started at start-up), replies, and submitting stale conversations."""
    return Line(CHANNEL, routers=[router], reply_senders={CHANNEL: send_reply},
                periodic=[Periodic("telegram_conversations", 60, _stale_job)],
                startup=[on_startup], shutdown=[on_shutdown])
