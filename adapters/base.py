"""The adapter contract: registry by name, outbound message shape, typed send errors, and the
plumbing every sender shares: HTTP status → Retryable/Permanent, Retry-After, back-off.

An adapter turns a provider payload into `normalizer.types.InboundMessage` and sends replies
out. It never imports `hub` and never touches the database of the hub.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from importlib.metadata import entry_points
from typing import Any, Iterator, Protocol, runtime_checkable

ENTRY_POINT_GROUP = "simpul.adapters"


class DeliveryError(Exception):
    """Base of send failures. The outbox worker decides what to do by the subclass."""


class RetryableError(DeliveryError):
    """Try again later (timeouts, 5xx, 408, 429). `retry_after` seconds if the peer said so."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Will never succeed as is (4xx other than 408/429, bad address): park as dead letter."""


def is_retryable_status(status: int) -> bool:
    """408 (timeout), 429 (slow down) and 5xx are worth another try; other non-2xx are not."""
    return status in (408, 429) or status >= 500


def http_error(status: int, message: str, retry_after: str | float | None = None) -> DeliveryError:
    """The typed error for a non-2xx HTTP answer (raise it): Retryable for 408/429/5xx, carrying
    the peer's Retry-After; Permanent for every other 4xx/3xx."""
    if is_retryable_status(status):
        return RetryableError(message, retry_after=parse_retry_after(retry_after))
    return PermanentError(message)


@contextmanager
def http_call(what: str, timeout_s: float | None = None) -> Iterator[None]:
    """Wrap one httpx request: a timeout or a failed connection (refused, reset, DNS: the peer is
    down) becomes RetryableError, an invalid URL PermanentError. `what` starts each message."""
    import httpx

    try:
        yield
    except httpx.TimeoutException as exc:
        after = f" after {timeout_s}s" if timeout_s is not None else ""
        raise RetryableError(f"{what}: timeout{after} ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise RetryableError(f"{what}: connection failed: {type(exc).__name__}: {exc}"[:300]) from None
    except httpx.InvalidURL as exc:
        raise PermanentError(f"{what}: invalid URL: {exc}") from None


def parse_retry_after(value: str | float | None, now: datetime | None = None) -> float | None:
    """Retry-After in seconds: delta-seconds ("120", also "1.5") or an HTTP date (RFC 9110);
    None when absent or unreadable. A date in the past is 0."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return max(0.0, float(value))
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def backoff_delay(attempt: int, base: float, cap: float, jitter: bool = True) -> float:
    """Exponential back-off: attempt 1 -> base, 2 -> 2*base, 3 -> 4*base ... capped at `cap`.

    With jitter the delay is drawn from the upper half, [top/2, top], so many senders that
    failed together (an OPD server restarting) do not come back in one burst."""
    top = min(cap, base * 2 ** max(0, attempt - 1))
    return random.uniform(top / 2, top) if jitter else top


class InvalidPayload(ValueError):
    """The provider payload is malformed: the route answers 400 with this message."""


class BadSignature(PermissionError):
    """The request did not prove who sent it: the route answers 403."""


@dataclass(frozen=True)
class OutboundMessage:
    """A reply to a reporter on their own line."""

    channel: str
    to: str  # E.164 phone, "whatsapp:+62...", Telegram chat id, LAPOR tracking id
    text: str
    ticket_code: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    provider_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    """What the hub may call on every adapter. Adapters add their own parse functions."""

    name: str  # channel name, e.g. "sms", "telegram", "whatsapp", "lapor", "psc119", "bpbd"

    async def send(self, message: OutboundMessage) -> SendResult:  # pragma: no cover - protocol
        ...


def adapter_classes() -> dict[str, Any]:
    """Adapter factories registered under the `simpul.adapters` entry-point group."""
    found: dict[str, Any] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep
    return found


def load_adapter(name: str) -> Any:
    eps = adapter_classes()
    if name not in eps:
        raise KeyError(f"no adapter registered as {name!r}; known: {sorted(eps)}")
    return eps[name].load()
