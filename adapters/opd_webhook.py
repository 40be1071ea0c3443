"""Outbound webhooks to an OPD's own system, signed per the Standard Webhooks spec.

Knows HTTP and the signature scheme only: the caller gives the message id (stable across
retries), the body bytes and the secret. Never imports hub; never logs the secret.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import NoReturn

import httpx

from adapters.base import PermanentError, SendResult, http_call, http_error, parse_retry_after

SECRET_PREFIX = "whsec_"
DEFAULT_TIMEOUT_S = 10.0
TOLERANCE_S = 5 * 60
USER_AGENT = "Simpul-Webhooks/1"


def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64 part of a `whsec_<base64>` secret (raw bytes of any other string)."""
    if secret.startswith(SECRET_PREFIX):
        raw = secret[len(SECRET_PREFIX):]
        try:
            return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except ValueError:
            raise PermanentError("webhook secret starts with whsec_ but is not valid base64") from None
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""
    signed = msg_id.encode() + b"." + str(int(timestamp)).encode() + b"." + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None,
           tolerance_s: int = TOLERANCE_S) -> bool:
    """Receiver side (what an OPD system does; used by our tests and the docs)."""
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts, sigs = h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature")
    if not (msg_id and ts and sigs) or not ts.isdigit():
        return False
    if abs((now if now is not None else time.time()) - int(ts)) > tolerance_s:
        return False
    expected = sign(secret, msg_id, int(ts), body).split(",", 1)[1]
    return any(hmac.compare_digest(expected, s.split(",", 1)[1])
               for s in sigs.split() if s.startswith("v1,"))


def headers_for(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(timestamp if timestamp is not None else time.time())
    return {"content-type": "application/json", "user-agent": USER_AGENT, "webhook-id": msg_id,
            "webhook-timestamp": str(ts), "webhook-signature": sign(secret, msg_id, ts, body)}


retry_after_seconds = parse_retry_after  # the one Retry-After parser (adapters.base)


def classify(status: int, retry_after: str | None, text: str) -> NoReturn:
    """Raise the typed error for a non-2xx answer: 408/429/5xx retry, other 4xx/3xx are permanent."""
    snippet = " ".join(text.split())[:200]
    raise http_error(status, f"HTTP {status}: {snippet}", retry_after)


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str
    timeout_s: float = DEFAULT_TIMEOUT_S


async def send(target: WebhookTarget, msg_id: str, body: bytes,
               client: httpx.AsyncClient | None = None) -> SendResult:
    """POST one signed webhook. A new timestamp and signature each attempt; the id never changes."""
    headers = headers_for(target.secret, msg_id, body)
    own = client is None
    client = client or httpx.AsyncClient()
    try:
        with http_call("webhook", target.timeout_s):
            resp = await client.post(target.url, content=body, headers=headers, timeout=target.timeout_s,
                                     follow_redirects=False)
    finally:
        if own:
            await client.aclose()
    if 200 <= resp.status_code < 300:
        return SendResult(provider_id=resp.headers.get("x-request-id"),
                          detail={"status": resp.status_code})
    classify(resp.status_code, resp.headers.get("retry-after"), resp.text)
