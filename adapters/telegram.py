"""Telegram Bot API line: parse an Update into a small `TelegramUpdate`, and talk to the Bot API
through python-telegram-bot's `Bot` (sendMessage, getFile, getUpdates, setWebhook).

Knows the Telegram protocol only: it never imports `hub`, holds no conversation state and does
not decide what to answer (hub/lines/telegram.py does). It never logs or returns the bot token.
"""
from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import httpx
from telegram import Bot, LinkPreviewOptions, Message, Update
from telegram.error import (BadRequest, ChatMigrated, Conflict, EndPointNotFound, Forbidden, InvalidToken,
                            NetworkError, RetryAfter, TelegramError, TimedOut)
from telegram.request import HTTPXRequest

from adapters.base import (DeliveryError, InvalidPayload, OutboundMessage, PermanentError, RetryableError,
                           SendResult)
from normalizer.types import Attachment

# The Bot API root; a local `telegram-bot-api` server or a test fake replaces it
# (settings.telegram_base_url). Methods live under <root>/bot<token>/, files under <root>/file/bot<token>/.
DEFAULT_BASE_URL = "https://api.telegram.org"
MAX_TEXT = 4096  # sendMessage limit (characters)
# Updates the hub handles; ask Telegram for nothing else (setWebhook / getUpdates allowed_updates).
ALLOWED_UPDATES = ("message", "edited_message")
# Media a citizen may attach to a report (message attribute -> our Attachment.kind).
MEDIA_KINDS = {"photo": "photo", "video": "video", "document": "file", "voice": "audio", "audio": "audio",
               "video_note": "video", "animation": "video"}
# Message content we cannot use for a report: answered politely, never a ticket.
UNSUPPORTED = ("sticker", "contact", "poll", "dice", "game", "story", "invoice", "paid_media")
FILE_URL_SCHEME = "telegram-file:"  # Attachment.url = "telegram-file:<file_id>" (file URLs embed the token)
_CHAT_ID = re.compile(r"^-?\d{1,20}$")
_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@\w+)?(?:\s+(.*))?$", re.S)


def bot_id_of(token: str) -> str:
    """The bot's numeric id: the part of the token before the colon (public, safe to store)."""
    return token.split(":", 1)[0]


def provider_id(bot_id: str, update_id: int) -> str:
    """Dedup key of one update: update ids are unique and increasing per bot."""
    return f"{bot_id}:{update_id}"


@dataclass(frozen=True)
class Media:
    file_id: str
    kind: str  # photo | video | file | audio
    file_unique_id: str | None = None
    mime: str | None = None
    name: str | None = None
    size: int | None = None

    def attachment(self, file_path: str | None = None) -> Attachment:
        """The durable reference: the file_id (download URLs carry the token and expire)."""
        return Attachment(url=f"{FILE_URL_SCHEME}{self.file_id}", kind=self.kind, mime=self.mime,
                          name=file_path or self.name)


# A private text message as Telegram posts it to the webhook (getUpdates returns a list of these):
# {"update_id": 10001, "message": {"message_id": 7, "date": 1764320000,
#   "chat": {"id": 555001, "type": "private", "first_name": "Sri"},
#   "from": {"id": 555001, "is_bot": false, "first_name": "Sri"}, "text": "Jalan berlubang ..."}}
@dataclass(frozen=True)
class TelegramUpdate:
    """What the hub needs of one Update. `kind` is message | edited_message | other."""

    update_id: int
    kind: str
    chat_id: int | None = None
    chat_type: str | None = None  # private | group | supergroup | channel
    message_id: int | None = None
    date: datetime | None = None
    sender_name: str | None = None
    text: str = ""  # the text, or a media caption; "" when there is none
    command: str | None = None  # "start", "status" (lower case, no slash, no @botname)
    command_args: str = ""
    latitude: float | None = None
    longitude: float | None = None
    venue: str | None = None  # "title, address" of a shared venue
    media: Media | None = None
    media_group_id: str | None = None  # an album: several photos, the caption on the first only
    unsupported: str | None = None  # "sticker", "contact", ... : content we cannot use
    raw: dict[str, Any] = field(default_factory=dict)
    # Set when python-telegram-bot refused the update and it was read by hand (read_by_hand):
    # the reason, so the hub sends the report to triage.
    unreadable: str | None = None

    @property
    def is_private(self) -> bool:
        return self.chat_type == "private"

    @property
    def has_location(self) -> bool:
        return self.latitude is not None and self.longitude is not None


def _require(cond: bool, problem: str) -> None:
    if not cond:
        raise InvalidPayload(problem)


def _check_shape(payload: Any) -> None:
    """Reject what is not an Update before python-telegram-bot (which is lenient) sees it."""
    _require(isinstance(payload, dict), "not a Telegram Update: expected a JSON object")
    uid = payload.get("update_id")
    _require(isinstance(uid, int) and not isinstance(uid, bool) and uid >= 0,
             "not a Telegram Update: 'update_id' must be a non-negative integer")
    for key in ALLOWED_UPDATES:
        if key in payload:
            msg = payload[key]
            _require(isinstance(msg, dict), f"'{key}' must be an object")
            _require(isinstance(msg.get("message_id"), int), f"'{key}.message_id' must be an integer")
            _require(isinstance(msg.get("date"), int), f"'{key}.date' must be a unix time")
            chat = msg.get("chat")
            _require(isinstance(chat, dict) and isinstance(chat.get("id"), int)
                     and isinstance(chat.get("type"), str), f"'{key}.chat' needs an integer id and a type")
            for text_key in ("text", "caption"):
                _require(not isinstance(msg.get(text_key), (dict, list, int, float)),
                         f"'{key}.{text_key}' must be a string")


def parse_update(payload: Any) -> TelegramUpdate:
    """A webhook body (already JSON-decoded) -> TelegramUpdate, or InvalidPayload.

    Telegram adds fields and kinds faster than libraries follow (a forwarded message whose
    `forward_origin` is a `hidden_user` without `sender_user_name` makes python-telegram-bot
    raise): when the library refuses an update, it is read by hand (`read_by_hand`) and
    marked `unreadable` with the library's reason. InvalidPayload only when even that fails.
    """
    _check_shape(payload)
    try:
        update = Update.de_json(payload, None)
        return from_update(update, payload)
    except InvalidPayload:
        raise
    except Exception as exc:  # any library failure: never lose the update over it
        reason = f"python-telegram-bot: {type(exc).__name__}: {str(exc)[:200]}"
        by_hand = read_by_hand(payload, reason)
        if by_hand is None:
            raise InvalidPayload(f"not a Telegram Update: {reason}") from None
        return by_hand


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def read_by_hand(payload: Any, reason: str) -> TelegramUpdate | None:
    """What the hub needs of an update, read from the JSON without python-telegram-bot.

    None when not even the update id and (for a message) the chat can be read."""
    if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
        return None
    uid = payload["update_id"]
    kind = next((k for k in ALLOWED_UPDATES if isinstance(payload.get(k), dict)), None)
    if kind is None:
        return TelegramUpdate(update_id=uid, kind="other", raw=payload, unreadable=reason)
    msg = payload[kind]
    chat = _dict(msg.get("chat"))
    if not isinstance(chat.get("id"), int) or not isinstance(msg.get("message_id"), int):
        return None
    for key in ("text", "caption"):
        if key in msg and not isinstance(msg[key], str):
            return None
    text = _str(msg.get("text")) or _str(msg.get("caption")) or ""
    command, args = None, ""
    m = _COMMAND.match(text.strip()) if isinstance(msg.get("text"), str) else None
    if m:
        command, args = m.group(1).lower(), (m.group(2) or "").strip()
    user = _dict(msg.get("from"))
    name = " ".join(p for p in (_str(user.get("first_name")), _str(user.get("last_name"))) if p) or None
    lat = lon = None
    venue = None
    v, loc = _dict(msg.get("venue")), _dict(msg.get("location"))
    if v:
        venue = ", ".join(p for p in (_str(v.get("title")), _str(v.get("address"))) if p) or None
        loc = _dict(v.get("location"))
    if isinstance(loc.get("latitude"), (int, float)) and isinstance(loc.get("longitude"), (int, float)):
        lat, lon = float(loc["latitude"]), float(loc["longitude"])
    media = None
    photos = [p for p in msg.get("photo") or [] if isinstance(p, dict) and _str(p.get("file_id"))]
    if photos:
        big = max(photos, key=lambda p: (p.get("width") or 0) * (p.get("height") or 0))
        media = Media(file_id=big["file_id"], kind="photo", file_unique_id=_str(big.get("file_unique_id")),
                      mime="image/jpeg", size=big.get("file_size") if isinstance(big.get("file_size"), int) else None)
    else:
        for attr, mkind in MEDIA_KINDS.items():
            obj = _dict(msg.get(attr))
            if _str(obj.get("file_id")):
                mime = _str(obj.get("mime_type"))
                if attr == "document" and mime and mime.startswith("image/"):
                    mkind = "photo"
                media = Media(file_id=obj["file_id"], kind=mkind, file_unique_id=_str(obj.get("file_unique_id")),
                              mime=mime, name=_str(obj.get("file_name")))
                break
    date = None
    if isinstance(msg.get("date"), int):
        date = datetime.fromtimestamp(msg["date"], timezone.utc)
    unsupported = next((u for u in UNSUPPORTED if msg.get(u)), None)
    mgid = msg.get("media_group_id")
    return TelegramUpdate(
        update_id=uid, kind=kind, chat_id=chat["id"], chat_type=_str(chat.get("type")) or "private",
        message_id=msg["message_id"], date=date, sender_name=name, text=text, command=command,
        command_args=args, latitude=lat, longitude=lon, venue=venue, media=media,
        media_group_id=str(mgid) if mgid is not None else None, unsupported=unsupported, raw=payload,
        unreadable=reason)


def _name(msg: Message) -> str | None:
    user = msg.from_user
    if user is None:
        return None
    return " ".join(p for p in (user.first_name, user.last_name) if p) or None


def _media(msg: Message) -> Media | None:
    if msg.photo:
        biggest = max(msg.photo, key=lambda p: (p.width or 0) * (p.height or 0))
        return Media(file_id=biggest.file_id, kind="photo", file_unique_id=biggest.file_unique_id,
                     mime="image/jpeg", size=biggest.file_size)
    for attr, kind in MEDIA_KINDS.items():
        if attr == "photo":
            continue
        obj = getattr(msg, attr, None)
        if obj is not None:
            mime = getattr(obj, "mime_type", None)
            if attr == "document" and mime and mime.startswith("image/"):
                kind = "photo"  # a photo sent "as file", uncompressed
            return Media(file_id=obj.file_id, kind=kind, file_unique_id=obj.file_unique_id, mime=mime,
                         name=getattr(obj, "file_name", None), size=obj.file_size)
    return None


def from_update(update: Update, raw: dict[str, Any] | None = None) -> TelegramUpdate:
    """python-telegram-bot's Update (webhook or getUpdates) -> TelegramUpdate."""
    raw = raw if raw is not None else update.to_dict()
    if update.message is not None:
        kind, msg = "message", update.message
    elif update.edited_message is not None:
        kind, msg = "edited_message", update.edited_message
    else:
        return TelegramUpdate(update_id=update.update_id, kind="other", raw=raw)
    text = msg.text or msg.caption or ""
    command, args = None, ""
    m = _COMMAND.match(text.strip()) if msg.text else None
    if m:
        command, args = m.group(1).lower(), (m.group(2) or "").strip()
    lat = lon = None
    venue = None
    if msg.venue is not None:
        venue = ", ".join(p for p in (msg.venue.title, msg.venue.address) if p) or None
        lat, lon = msg.venue.location.latitude, msg.venue.location.longitude
    elif msg.location is not None:
        lat, lon = msg.location.latitude, msg.location.longitude
    unsupported = next((u for u in UNSUPPORTED if getattr(msg, u, None)), None)
    date = msg.date if msg.date.tzinfo else msg.date.replace(tzinfo=timezone.utc)
    return TelegramUpdate(
        update_id=update.update_id, kind=kind, chat_id=msg.chat.id, chat_type=msg.chat.type,
        message_id=msg.message_id, date=date, sender_name=_name(msg), text=text, command=command,
        command_args=args, latitude=lat, longitude=lon, venue=venue, media=_media(msg),
        media_group_id=msg.media_group_id, unsupported=unsupported, raw=raw,
    )


def parse_or_keep(payload: Any) -> TelegramUpdate | Any:
    """parse_update, or the payload itself when it is not readable at all (the caller stores it)."""
    try:
        return parse_update(payload)
    except InvalidPayload:
        return payload


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """One CA bundle load per process, not two per Bot (it takes a few hundred ms)."""
    return httpx.create_ssl_context()


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramAdapter:
    """One bot. Sends through `telegram.Bot`; every Telegram failure becomes a typed DeliveryError.

    The Bot holds an httpx client bound to the event loop that first uses it: make one adapter
    per loop and `await close()` it when done.
    """

    name = "telegram"

    def __init__(self, token: str, base_url: str | None = None, *, connect_timeout: float = 5.0,
                 read_timeout: float = 10.0):
        if not token:
            raise ValueError("a Telegram bot token is needed")
        self._token = token
        self.bot_id = bot_id_of(token)
        root = (base_url or DEFAULT_BASE_URL).rstrip("/")
        tls = {"verify": _tls_context()}
        self._requests = (HTTPXRequest(connect_timeout=connect_timeout, read_timeout=read_timeout,
                                       write_timeout=read_timeout, connection_pool_size=8, httpx_kwargs=tls),
                          HTTPXRequest(connect_timeout=connect_timeout, read_timeout=read_timeout,
                                       httpx_kwargs=tls))
        self._bot = Bot(token, base_url=f"{root}/bot", base_file_url=f"{root}/file/bot",
                        request=self._requests[0], get_updates_request=self._requests[1])

    # -- errors ------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<token>")

    def error(self, exc: TelegramError, what: str) -> DeliveryError:
        """Map a python-telegram-bot error to Retryable (try later) or Permanent (dead letter)."""
        detail = f"telegram {what}: {type(exc).__name__}: {self._redact(str(exc))}"
        if isinstance(exc, RetryAfter):  # 429 flood control: Telegram says when
            return RetryableError(detail, retry_after=_seconds(exc.retry_after))
        if isinstance(exc, (Forbidden, BadRequest, ChatMigrated, EndPointNotFound)):
            return PermanentError(detail)  # blocked by the user, chat gone, bad request: never works as is
        if isinstance(exc, (TimedOut, NetworkError, Conflict)):
            return RetryableError(detail)  # timeouts, 5xx, connection errors
        if isinstance(exc, InvalidToken):
            return RetryableError(detail)  # our configuration, not the message: keep it until fixed
        return RetryableError(detail)

    # -- sending -----------------------------------------------------------------------------
    async def send(self, message: OutboundMessage) -> SendResult:
        text = message.text if len(message.text) <= MAX_TEXT else message.text[:MAX_TEXT - 1] + "…"
        if not _CHAT_ID.match(str(message.to)):
            # not echoed: a phone number routed here by mistake must not reach logs or the dashboard
            raise PermanentError("telegram sendMessage: the destination is not a chat id")
        chat_id = int(message.to)
        try:
            sent = await self._bot.send_message(chat_id=chat_id, text=text,
                                                link_preview_options=LinkPreviewOptions(is_disabled=True))
        except TelegramError as exc:
            raise self.error(exc, "sendMessage") from None
        return SendResult(provider_id=f"{sent.chat.id}:{sent.message_id}")

    async def get_me(self) -> dict[str, Any]:
        try:
            me = await self._bot.get_me()
        except TelegramError as exc:
            raise self.error(exc, "getMe") from None
        return {"id": me.id, "username": me.username, "first_name": me.first_name}

    async def file_path(self, file_id: str) -> str | None:
        """getFile: the file's path on the Bot API server (no token in it), or None if unknown."""
        try:
            f = await self._bot.get_file(file_id)
        except TelegramError as exc:
            raise self.error(exc, "getFile") from None
        return self._relative(f.file_path)

    def _relative(self, file_path: str | None) -> str | None:
        """The path below the Bot API's file root: the library's URL carries the bot token."""
        if not file_path:
            return None
        prefix = self._bot.base_file_url + "/"
        return file_path[len(prefix):] if file_path.startswith(prefix) else file_path

    async def fetch_file(self, file_id: str, max_bytes: int) -> tuple[str | None, bytes | None]:
        """One getFile for both: the file's path (as `file_path`) and its bytes (None when
        Telegram says it is larger than `max_bytes`)."""
        try:
            f = await self._bot.get_file(file_id)
            if f.file_size and f.file_size > max_bytes:
                return self._relative(f.file_path), None
            return self._relative(f.file_path), bytes(await f.download_as_bytearray())
        except TelegramError as exc:
            raise self.error(exc, "getFile") from None

    async def download(self, file_id: str) -> bytes:
        """The file's bytes (getFile, then GET <root>/file/bot<token>/<path>)."""
        try:
            f = await self._bot.get_file(file_id)
            return bytes(await f.download_as_bytearray())
        except TelegramError as exc:
            raise self.error(exc, "download") from None

    async def get_updates(self, offset: int | None, timeout: int) -> list[TelegramUpdate]:
        """Long-poll getUpdates (polling mode). Confirms every update below `offset`."""
        return [parse_or_keep(u) for u in await self.get_updates_raw(offset, timeout)]

    async def get_updates_raw(self, offset: int | None, timeout: int) -> list[Any]:
        """getUpdates as Telegram sent it (JSON objects), before any library reads an update:
        one update the library cannot parse must not hide the others."""
        api_kwargs: dict[str, Any] = {"timeout": timeout, "allowed_updates": list(ALLOWED_UPDATES)}
        if offset is not None:
            api_kwargs["offset"] = offset
        try:
            result = await self._bot.do_api_request("getUpdates", api_kwargs=api_kwargs,
                                                    read_timeout=timeout + 10)
        except TelegramError as exc:
            raise self.error(exc, "getUpdates") from None
        return list(result) if isinstance(result, list) else []

    async def set_webhook(self, url: str, secret: str) -> None:
        try:
            await self._bot.set_webhook(url=url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES),
                                        max_connections=40)
        except TelegramError as exc:
            raise self.error(exc, "setWebhook") from None

    async def delete_webhook(self) -> None:
        """Polling needs no webhook: Telegram refuses getUpdates while one is set."""
        try:
            await self._bot.delete_webhook(drop_pending_updates=False)
        except TelegramError as exc:
            raise self.error(exc, "deleteWebhook") from None

    async def close(self) -> None:
        for request in self._requests:
            await request.shutdown()
