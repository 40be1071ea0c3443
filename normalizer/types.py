"""Plain data that crosses the adapter -> hub -> normalizer boundary.

No database, network or clock here: these are frozen value objects that adapters build,
the hub stores, and the normalizer reads. Keep them JSON-serialisable.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Urgency(str, enum.Enum):
    DARURAT = "darurat"  # life-threatening: minutes, around the clock
    TINGGI = "tinggi"
    NORMAL = "normal"


@dataclass(frozen=True)
class Attachment:
    url: str
    kind: str = "file"  # photo | file | audio | video | location
    mime: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    """The adapter contract: what every line turns its provider payload into.

    `provider_id` is the provider's own id for this message (Twilio MessageSid, Telegram
    bot:update_id, Gammu inbox ID, LAPOR tracking id, a hotline log row id). When it is None
    the hub derives an idempotency key from a content hash in a short time window.
    """

    channel: str
    text: str
    sender: str | None = None  # phone number, chat id, ... as the provider gave it
    provider_id: str | None = None
    received_at: datetime | None = None
    sender_name: str | None = None
    attachments: tuple[Attachment, ...] = ()
    latitude: float | None = None
    longitude: float | None = None
    # Structured fields a line already knows (hotline console: kecamatan, desa, incident type,
    # triage colour, people affected; LAPOR: category, anonymous, rahasia, ...).
    fields: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def idempotency_key(self, content_hash_window_s: int = 600, previous: bool = False) -> str | None:
        """channel + provider id, or a content hash bucketed in a short window.

        With previous=True: the content key of the window before (None when the provider gave
        an id), so the hub can also catch a repeat that straddles a window boundary."""
        import hashlib

        if self.provider_id:
            return None if previous else f"{self.channel}:{self.provider_id}"
        ts = int(self.received_at.timestamp()) if self.received_at else 0
        bucket = ts // content_hash_window_s - (1 if previous else 0)
        digest = hashlib.sha256(
            "\x1f".join([self.channel, self.sender or "", " ".join(self.text.split())]).encode()
        ).hexdigest()[:32]
        return f"{self.channel}:h:{bucket}:{digest}"


@dataclass(frozen=True)
class Reporter:
    name: str | None = None
    phone: str | None = None  # E.164, "+62..."
    telegram_chat_id: str | None = None
    lapor_id: str | None = None
    nik_masked: str | None = None  # "3503**********12"; the full NIK never leaves the raw store
    anonymous: bool = False
    confidential: bool = False  # LAPOR "rahasia": identity never shown to the OPD


@dataclass(frozen=True)
class Place:
    kecamatan_code: str | None = None  # "35.03.11"
    desa_code: str | None = None  # "35.03.11.1004"
    kecamatan_name: str | None = None
    desa_name: str | None = None
    address: str | None = None  # free text: dusun, RT/RW, landmark
    latitude: float | None = None
    longitude: float | None = None
    ambiguous_desa: tuple[str, ...] = ()  # desa codes that matched a repeated name


@dataclass(frozen=True)
class Routing:
    opd: str
    confidence: float
    rule: str  # which rule or model decided, human-readable
    needs_triage: bool = False
    candidates: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class TicketDraft:
    """What the normalizer makes of one InboundMessage. The hub turns it into a ticket."""

    channel: str
    text_original: str
    text_clean: str
    reporter: Reporter
    place: Place
    category: str | None
    subcategory: str | None
    urgency: Urgency
    routing: Routing
    incident_key: str | None  # coarse key: category family + place, for incident linking
    attachments: tuple[Attachment, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)  # parsed keyword formats etc.
    is_empty: bool = False  # nothing usable (empty / binary SMS): polite reply, no ticket
