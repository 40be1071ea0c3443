"""The adapter contract: registry by name, outbound message shape, typed send errors.

An adapter turns a provider payload into `normalizer.types.InboundMessage` and sends replies
out. It never imports `hub` and never touches the database of the hub.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

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
