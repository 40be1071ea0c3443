"""Twilio Programmable Messaging (SMS and WhatsApp senders): webhook form -> InboundMessage,
X-Twilio-Signature check, TwiML answers, and sending with twilio's Client.

Knows the Twilio protocol only: never imports hub, never logs a phone number, token or body.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping
from urllib.parse import quote, urlsplit

import httpx

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from adapters import dukcapil
from adapters.base import (BadSignature, InvalidPayload, OutboundMessage, PermanentError,
                           RetryableError, SendResult, http_call, http_error, is_retryable_status,
                           parse_retry_after)
from normalizer.types import Attachment, InboundMessage

TWILIO_API = "https://api.twilio.com"
CONTENT_API = "https://content.twilio.com"  # Content API: WhatsApp templates
WHATSAPP_PREFIX = "whatsapp:"
MAX_MEDIA = 10  # Twilio sends at most 10 media per message
# A MediaUrl of an incoming message: .../Accounts/{AccountSid}/Messages/{MessageSid}/Media/{MediaSid}
MEDIA_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Messages/(?P<message>[A-Z]{2}[0-9a-fA-F]{32})"
                        r"/Media/(?P<media>ME[0-9a-fA-F]{32})/?$")

# Twilio message status -> what it means for our reply (SendResult.detail["status"]).
STATUS_MAPPING: dict[str, str] = {
    "accepted": "queued", "scheduled": "queued", "queued": "queued", "sending": "queued",
    "sent": "sent", "delivered": "delivered", "read": "delivered", "receiving": "received",
    "received": "received", "undelivered": "failed", "failed": "failed", "canceled": "failed",
}
# Twilio error codes that will never succeed as sent (the rest of 4xx also count as permanent).
PERMANENT_CODES = {21211: "invalid 'To' number", 21408: "region not enabled",
                   21610: "recipient unsubscribed (STOP)", 21614: "not a mobile number",
                   63016: "WhatsApp session closed (template needed)", 20003: "authentication failed"}

# twilio-python logs every request at INFO (URLs with the account SID): keep it quiet.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


class _BaseUrlHttpClient(TwilioHttpClient):
    """Twilio's documented way to reach another host: a custom HTTP client that rewrites the
    API URL (https://www.twilio.com/docs/libraries/python/custom-http-clients-python). Used to
    point the real Client at a local fake Twilio API (and Content API) in tests, or at a proxy."""

    def __init__(self, base_url: str | None, timeout: float, content_base_url: str | None = None):
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/") if base_url else None
        self.hosts = {k: v.rstrip("/") for k, v in ((TWILIO_API, base_url), (CONTENT_API, content_base_url)) if v}

    def request(self, method, url, *args, **kwargs):
        for real, other in self.hosts.items():
            if url.startswith(real):
                url = other + url[len(real):]
                break
        return super().request(method, url, *args, **kwargs)


def media_sid(url: str, base_url: str | None = None) -> str | None:
    """The MediaSid of a Twilio media URL (on api.twilio.com, or on `base_url` when one is
    configured), else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    origin = f"{parts.scheme}://{parts.netloc}"
    if origin != TWILIO_API and (not base_url or origin != base_url.rstrip("/")):
        return None
    m = MEDIA_PATH.match(parts.path)
    return m.group("media") if m else None


def is_blank(text: str | None) -> bool:
    """Empty, whitespace-only or binary-looking text (no letter or digit at all)."""
    return not any(ch.isalnum() for ch in (text or ""))


def channel_of(address: str) -> str:
    return "whatsapp" if address.lower().startswith(WHATSAPP_PREFIX) else "sms"


def twiml(text: str | None) -> str:
    """A TwiML answer: one message back on the same line, or nothing."""
    resp = MessagingResponse()
    if text:
        resp.message(text)
    return str(resp)


@dataclass
class TwilioAdapter:
    """One Twilio account. `from_number` sends SMS, `whatsapp_from` ("whatsapp:+1...") WhatsApp."""

    account_sid: str | None = None
    auth_token: str | None = None
    from_number: str | None = None
    whatsapp_from: str | None = None
    base_url: str | None = None
    timeout_s: float = 10.0
    name: str = "sms"
    # Where Twilio reports each message's delivery (queued, sent, delivered, undelivered, failed);
    # the outbox message id is added as ?m=..., so the report finds its row.
    status_callback: str | None = None
    content_base_url: str | None = None  # another Content API host (tests: a local fake)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._client: Client | None = None

    # -- inbound ---------------------------------------------------------------------------
    def validate(self, url: str, params: Mapping[str, str], signature: str | None) -> None:
        """Raise BadSignature unless X-Twilio-Signature proves the form came from our account."""
        if not self.auth_token:
            raise BadSignature("Twilio auth token is not configured")
        if not signature:
            raise BadSignature("missing X-Twilio-Signature")
        if not RequestValidator(self.auth_token).validate(url, dict(params), signature):
            raise BadSignature("X-Twilio-Signature does not match")

    def parse(self, form: Mapping[str, str], received_at: datetime | None = None) -> InboundMessage:
        """A Twilio incoming-message webhook form -> InboundMessage (channel sms or whatsapp).

        Sample (form-encoded): MessageSid=SM...&AccountSid=AC...&From=%2B6281234567890
        &To=%2B6285100000000&Body=Jalan+rusak&NumMedia=0 ; WhatsApp: From=whatsapp%3A%2B62...
        &ProfileName=Siti&Latitude=-8.05&Longitude=111.7 (shared location), MediaUrl0=...
        """
        sid = (form.get("MessageSid") or form.get("SmsMessageSid") or "").strip()
        sender = (form.get("From") or "").strip()
        if not sid:
            raise InvalidPayload("MessageSid is missing")
        if not sender:
            raise InvalidPayload("From is missing")
        if self.account_sid and form.get("AccountSid") and form.get("AccountSid") != self.account_sid:
            raise InvalidPayload("AccountSid is not this account's")
        body = form.get("Body") or ""
        try:
            num_media = min(int(form.get("NumMedia") or 0), MAX_MEDIA)
        except ValueError:
            raise InvalidPayload("NumMedia is not a number") from None
        attachments = []
        for i in range(num_media):
            url = form.get(f"MediaUrl{i}")
            if not url:
                raise InvalidPayload(f"MediaUrl{i} is missing (NumMedia={num_media})")
            mime = form.get(f"MediaContentType{i}") or None
            kind = (mime or "").split("/", 1)[0]
            attachments.append(Attachment(url=url, mime=mime, kind={"image": "photo", "audio": "audio",
                                                                    "video": "video"}.get(kind, "file")))
        lat, lon = _coordinate(form.get("Latitude"), -90, 90), _coordinate(form.get("Longitude"), -180, 180)
        if (lat is None) != (lon is None):
            raise InvalidPayload("Latitude and Longitude must come together")
        fields: dict[str, Any] = dict(dukcapil.parse(body) or {})
        # A WhatsApp location pin: empty Body, Latitude/Longitude, and Address / Label when the
        # citizen picked a place (Label is the place's name, Address its street address).
        place = ", ".join(v.strip() for v in (form.get("Label"), form.get("Address")) if v and v.strip())
        if place:
            fields["alamat"] = place
        return InboundMessage(
            channel=channel_of(sender), text=body, sender=sender, provider_id=sid,
            received_at=received_at, sender_name=(form.get("ProfileName") or None),
            attachments=tuple(attachments), latitude=lat, longitude=lon, fields=fields,
            raw={k: v for k, v in form.items()},
        )

    def read_by_hand(self, form: Mapping[str, str], received_at: datetime | None = None) -> InboundMessage | None:
        """What can still be read of a form `parse` refused (a media count without its URLs,
        a coordinate that is not a number): sender, text and the media URLs that are there.
        None without a From (no MessageSid: the hub dedups on a content hash)."""
        sid = (form.get("MessageSid") or form.get("SmsMessageSid") or "").strip() or None
        sender = (form.get("From") or "").strip()
        if not sender:
            return None
        attachments = tuple(Attachment(url=v, kind="file") for k, v in sorted(form.items())
                            if k.startswith("MediaUrl") and v.startswith(("https://", "http://")))
        return InboundMessage(channel=channel_of(sender), text=form.get("Body") or "", sender=sender,
                              provider_id=sid, received_at=received_at,
                              sender_name=(form.get("ProfileName") or None), attachments=attachments,
                              raw={k: v for k, v in form.items()})

    # -- outbound --------------------------------------------------------------------------
    def client(self) -> Client:
        if self._client is None:
            if not (self.account_sid and self.auth_token):
                raise PermanentError("Twilio account SID / auth token are not configured")
            self._client = Client(self.account_sid, self.auth_token,
                                  http_client=_BaseUrlHttpClient(self.base_url, self.timeout_s,
                                                                 self.content_base_url))
        return self._client

    def _from_for(self, message: OutboundMessage) -> tuple[str, str]:
        to = message.to
        if message.channel == "whatsapp":
            if not self.whatsapp_from:
                raise PermanentError("no Twilio WhatsApp sender configured (twilio_whatsapp_from)")
            sender = self.whatsapp_from
            if not sender.startswith(WHATSAPP_PREFIX):
                sender = WHATSAPP_PREFIX + sender
            if not to.startswith(WHATSAPP_PREFIX):
                to = WHATSAPP_PREFIX + to
            return sender, to
        if not self.from_number:
            raise PermanentError("no Twilio SMS sender configured (twilio_from_number)")
        return self.from_number, to.removeprefix(WHATSAPP_PREFIX)

    def send_sync(self, message: OutboundMessage) -> SendResult:
        sender, to = self._from_for(message)
        with self._lock:  # one request at a time per client: last_response is per client
            client = self.client()
            kw: dict[str, Any] = {}
            mid = (message.extra or {}).get("message_id")
            if self.status_callback:
                kw["status_callback"] = self.status_callback + (f"?m={quote(str(mid))}" if mid else "")
            template = (message.extra or {}).get("content_sid")
            if template:  # an approved WhatsApp template (Twilio Content API): outside the 24-h window
                kw["content_sid"] = template
                kw["content_variables"] = json.dumps(message.extra.get("content_variables") or {}, ensure_ascii=False)
            else:
                kw["body"] = message.text
            try:
                msg = client.messages.create(to=to, from_=sender, **kw)
            except TwilioRestException as exc:
                raise _classify(exc, client) from None
            except Exception as exc:  # requests' timeouts and connection errors
                if _is_network_error(exc):
                    raise RetryableError(f"Twilio unreachable: {type(exc).__name__}") from None
                raise
        return SendResult(provider_id=msg.sid,
                          detail={"status": STATUS_MAPPING.get(msg.status or "", msg.status or "unknown"),
                                  "twilio_status": msg.status})

    async def send(self, message: OutboundMessage) -> SendResult:
        return await asyncio.to_thread(self.send_sync, message)

    # -- WhatsApp templates (Content API) ---------------------------------------------------
    def _content(self, call):
        with self._lock:
            client = self.client()
            try:
                return call(client.content.v1)
            except TwilioRestException as exc:
                raise _classify(exc, client) from None
            except Exception as exc:
                if _is_network_error(exc):
                    raise RetryableError(f"Twilio Content API unreachable: {type(exc).__name__}") from None
                raise

    def create_text_template(self, friendly_name: str, language: str, body: str,
                             samples: Mapping[str, str]) -> str:
        """POST /v1/Content with a twilio/text type; returns the ContentSid (HX…)."""
        from twilio.rest.content.v1.content import ContentList

        request = ContentList.ContentCreateRequest({
            "friendly_name": friendly_name, "language": language, "variables": dict(samples),
            "types": {"twilio/text": {"body": body}}})
        return self._content(lambda v1: v1.contents.create(request)).sid

    def request_whatsapp_approval(self, content_sid: str, name: str, category: str = "UTILITY") -> str:
        """POST /v1/Content/{sid}/ApprovalRequests/whatsapp; returns the approval status."""
        from twilio.rest.content.v1.content.approval_create import ApprovalCreateList

        request = ApprovalCreateList.ContentApprovalRequest({"name": name, "category": category})
        return self._content(lambda v1: v1.contents(content_sid).approval_create.create(request)).status

    def whatsapp_approval(self, content_sid: str) -> dict[str, Any]:
        """GET /v1/Content/{sid}/ApprovalRequests: WhatsApp's verdict ({"status": "approved"|
        "pending"|"received"|"rejected"|"unsubmitted"|..., "rejection_reason", "name", "category"})."""
        got = self._content(lambda v1: v1.contents(content_sid).approval_fetch().fetch())
        wa = dict(got.whatsapp or {})
        return {"status": str(wa.get("status") or "unsubmitted").lower(),
                "rejection_reason": wa.get("rejection_reason") or None,
                "name": wa.get("name"), "category": wa.get("category")}

    # -- media -----------------------------------------------------------------------------
    async def fetch_media(self, url: str, max_bytes: int) -> tuple[bytes, str | None]:
        """(bytes, Content-Type) of an incoming message's media. Twilio answers the media URL
        (HTTP Basic: Account SID / Auth Token) with a redirect to its media host; httpx drops the
        credentials when it follows it to another host. Too large, deleted (404) or refused is
        PermanentError; 5xx, 429 and timeouts RetryableError."""
        if not (self.account_sid and self.auth_token):
            raise PermanentError("Twilio account SID / auth token are not configured")
        if media_sid(url, self.base_url) is None:
            raise PermanentError("not a Twilio media URL")
        if self.base_url and url.startswith(TWILIO_API):
            url = self.base_url.rstrip("/") + url[len(TWILIO_API):]
        with http_call("Twilio media", self.timeout_s):
            async with httpx.AsyncClient(auth=(self.account_sid, self.auth_token), follow_redirects=True,
                                         timeout=self.timeout_s) as c:
                async with c.stream("GET", url) as resp:
                    if resp.status_code >= 300:
                        await resp.aread()
                        raise http_error(resp.status_code, f"Twilio media: HTTP {resp.status_code}",
                                         resp.headers.get("retry-after"))
                    declared = int(resp.headers.get("content-length") or 0)
                    if declared > max_bytes:
                        raise PermanentError(f"Twilio media: {declared} bytes, more than the limit {max_bytes}")
                    data = bytearray()
                    async for chunk in resp.aiter_bytes():
                        data += chunk
                        if len(data) > max_bytes:
                            raise PermanentError(f"Twilio media: more than the limit {max_bytes} bytes")
                    return bytes(data), resp.headers.get("content-type")


def _coordinate(value: str | None, lo: float, hi: float) -> float | None:
    if value in (None, ""):
        return None
    try:
        v = float(value)
    except ValueError:
        raise InvalidPayload(f"coordinate {value!r} is not a number") from None
    if not lo <= v <= hi:
        raise InvalidPayload(f"coordinate {v} out of range")
    return v


def _retry_after(client: Client) -> float | None:
    resp = getattr(client.http_client, "_test_only_last_response", None)
    return parse_retry_after((resp.headers or {}).get("Retry-After") if resp is not None else None)


def _classify(exc: TwilioRestException, client: Client) -> Exception:
    # Twilio's own message may quote the phone number: keep only the code and our reading of it.
    code = f" (Twilio error {exc.code})" if exc.code else ""
    reason = PERMANENT_CODES.get(exc.code or 0, "see https://www.twilio.com/docs/errors")
    return http_error(exc.status, f"Twilio HTTP {exc.status}{code}: {reason}",
                      _retry_after(client) if is_retryable_status(exc.status) else None)


def _is_network_error(exc: Exception) -> bool:
    import requests

    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))
