"""Every stored attachment at a signed, expiring hub URL (issue #13, item 5).

What leaves the hub (Open311 push, e-mails, webhooks) never carries an attachment reference
only we understand (`telegram-file:<file_id>`, `/lampiran/<name>` behind a login): it carries
`<public_url>/media/<ticket code>/<n>?exp=<unix time>&sig=<HMAC>`, which anyone holding it may
fetch until it expires (`media_url_ttl_s`, 14 days by default), and nobody can forge or extend
(HMAC-SHA256 with the hub's secret_key over code, index and expiry).

Telegram files are fetched into the hub's storage when the update arrives
(`data_dir/media/telegram/`): Telegram's own download URLs carry the bot token and expire, and
the file may be gone from Telegram later. Twilio media (MMS, WhatsApp) are fetched by an outbox
job of the Twilio line (`data_dir/media/twilio/<MediaSid>`, hub.lines.twilio.media): Twilio's
URLs need the account's credentials, and Twilio deletes media eventually. A file not fetched
yet is fetched on first request. Web uploads (`/lampiran/<name>`) are served from their upload
folder; other http(s) media (an Open311 media_url, an OPD's photo link) are redirected to.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from sqlalchemy import select
from sqlmodel import Session

from hub.logging import get_logger
from hub.parts import Line
from hub.settings import get_settings

log = get_logger(__name__)
router = APIRouter(tags=["media"])
TELEGRAM_PREFIX = "telegram-file:"
MAX_FETCH = 20 * 1024 * 1024  # the Bot API's own download limit
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def _key() -> bytes:
    return hashlib.sha256(b"simpul-media\x00" + get_settings().secret_key.encode()).digest()


def _sig(code: str, index: int, exp: int) -> str:
    return hmac.new(_key(), f"{code}/{index}/{exp}".encode(), hashlib.sha256).hexdigest()[:32]


def signed_url(code: str, index: int, ttl_s: int | None = None, now: float | None = None) -> str:
    s = get_settings()
    exp = int((now if now is not None else time.time()) + (ttl_s if ttl_s is not None else s.media_url_ttl_s))
    return f"{s.public_url.rstrip('/')}/media/{code}/{index}?" + urlencode({"exp": exp, "sig": _sig(code, index, exp)})


def twilio_sid(url: str) -> str | None:
    """The MediaSid when `url` is a Twilio media URL (served from the hub's storage), else None."""
    from adapters.twilio_sms import media_sid

    return media_sid(url, get_settings().twilio_base_url)


def hub_served(url: str) -> bool:
    """Media only the hub can hand out (a Telegram file, a Twilio media URL that needs the
    account's credentials): every link to it is the signed hub URL."""
    return url.startswith(TELEGRAM_PREFIX) or twilio_sid(url) is not None


def links(code: str, attachments: list[dict] | None) -> list[dict]:
    """The ticket's attachments as they may leave the hub: `hub_url` is always the signed hub
    URL; `url` is that too, unless the attachment already was a public http(s) URL (an OPD's
    own photo link), which stays as it was."""
    out = []
    for i, a in enumerate(attachments or ()):
        url = str(a.get("url") or "")
        if not url:
            continue
        hub = signed_url(code, i)
        public = url.startswith(("https://", "http://")) and not hub_served(url)
        out.append({"url": url if public else hub, "hub_url": hub,
                    "kind": a.get("kind"), "mime": a.get("mime"), "name": Path(str(a.get("name") or "")).name or None})
    return out


def media_dir(source: str = "telegram") -> Path:
    d = Path(get_settings().data_dir) / "media" / source
    d.mkdir(parents=True, exist_ok=True)
    return d


def telegram_path(file_id: str) -> Path:
    return media_dir() / _SAFE.sub("_", file_id)[:200]


def _store(path: Path, data: bytes) -> Path:
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def store_telegram(file_id: str, data: bytes) -> Path:
    return _store(telegram_path(file_id), data)


def twilio_path(sid: str) -> Path:
    return media_dir("twilio") / _SAFE.sub("_", sid)[:64]


async def fetch_twilio(url: str, adapter) -> Path:
    """Copy a Twilio media into the hub's storage (once). Raises DeliveryError when Twilio does
    not hand it out (the caller retries, or keeps the original reference)."""
    sid = twilio_sid(url)
    if sid is None:
        raise ValueError("not a Twilio media URL")
    path = twilio_path(sid)
    if path.exists():
        return path
    data, _mime_declared = await adapter.fetch_media(url, MAX_FETCH)
    return await asyncio.to_thread(_store, path, data)


async def _fetch_twilio_now(url: str) -> Path | None:
    from adapters.twilio_sms import TwilioAdapter

    s = get_settings()
    adapter = TwilioAdapter(account_sid=s.twilio_account_sid, auth_token=s.twilio_auth_token,
                            base_url=s.twilio_base_url)
    try:
        return await asyncio.wait_for(fetch_twilio(url, adapter), 20)
    except Exception as exc:  # DeliveryError and time-outs: the outbox job keeps trying
        log.warning("media.twilio_fetch_failed", error=str(exc)[:200])
        return None


async def fetch_telegram(file_id: str, adapter) -> Path | None:
    """Download a Telegram file into the hub's storage (once); None when Telegram refuses."""
    path = telegram_path(file_id)
    if path.exists():
        return path
    try:
        data = await adapter.download(file_id)
    except Exception as exc:  # DeliveryError and time-outs: tried again on first request
        log.warning("media.telegram_fetch_failed", error=str(exc)[:200])
        return None
    if len(data) > MAX_FETCH:
        return None
    return store_telegram(file_id, data)


async def _fetch_now(file_id: str) -> Path | None:
    from adapters.telegram import TelegramAdapter

    s = get_settings()
    if not s.telegram_bot_token:
        return None
    adapter = TelegramAdapter(s.telegram_bot_token, s.telegram_base_url)
    try:
        return await fetch_telegram(file_id, adapter)
    finally:
        await adapter.close()


_MAGIC = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png", b"%PDF": "application/pdf",
          b"OggS": "audio/ogg", b"GIF8": "image/gif"}


def _mime(path: Path, declared: str | None) -> str:
    """From the file's own first bytes (never trusted from the sender), else as declared."""
    with path.open("rb") as fh:
        head = fh.read(16)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    found = next((m for magic, m in _MAGIC.items() if head.startswith(magic)), None)
    return found or (declared or "application/octet-stream")


@router.get("/media/{code}/{index}", summary="An attachment of a ticket, at a signed expiring URL")
async def get_media(code: str, index: int, request: Request):
    q = request.query_params
    try:
        exp = int(q.get("exp", ""))
    except ValueError:
        return JSONResponse({"detail": "missing or bad exp"}, status_code=403)
    if not hmac.compare_digest(_sig(code, index, exp), q.get("sig", "")):
        return JSONResponse({"detail": "bad signature"}, status_code=403)
    if exp < time.time():
        return JSONResponse({"detail": "link expired"}, status_code=410)
    from hub.db import get_engine
    from hub.models import Ticket

    with Session(get_engine()) as s:
        atts = s.scalars(select(Ticket.attachments).where(Ticket.code == code)).first()
    if atts is None or not 0 <= index < len(atts):
        return JSONResponse({"detail": "not found"}, status_code=404)
    att = atts[index]
    url = str(att.get("url") or "")
    if url.startswith(TELEGRAM_PREFIX):
        file_id = url[len(TELEGRAM_PREFIX):]
        path = telegram_path(file_id)
        if not path.exists():  # not fetched at intake (Telegram was slow): now
            path = await _fetch_now(file_id)
        if path is None or not path.exists():
            return JSONResponse({"detail": "file not available"}, status_code=404)
        return FileResponse(path, media_type=_mime(path, att.get("mime")),
                            headers={"Cache-Control": "private, max-age=3600"})
    if twilio_sid(url):
        path = twilio_path(twilio_sid(url))
        if not path.exists():  # the outbox job has not copied it yet: now
            path = await _fetch_twilio_now(url)
        if path is None or not path.exists():
            return JSONResponse({"detail": "file not available yet"}, status_code=404)
        return FileResponse(path, media_type=_mime(path, att.get("mime")),
                            headers={"Cache-Control": "private, max-age=3600"})
    if url.startswith("/lampiran/"):  # a web upload (hub/web/uploads.py keeps them there)
        path = Path(get_settings().data_dir) / "uploads" / Path(url).name
        if not path.is_file():
            return JSONResponse({"detail": "file not available"}, status_code=404)
        return FileResponse(path, media_type=_mime(path, att.get("mime")))
    if url.startswith(("https://", "http://")):
        return RedirectResponse(url, status_code=302)
    return JSONResponse({"detail": "file not available"}, status_code=404)


def feature(settings) -> Line:
    """The /media/... route that serves attachments at signed expiring URLs (docs/delivery.md)."""
    return Line("hub.media", routers=[router])
