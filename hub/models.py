"""Tables of the central store (SQLModel on SQLAlchemy 2).

Every schema change here needs an Alembic migration in hub/migrations/versions. These classes
hold state only; the rules that change them live in hub/tickets.py, hub/intake.py, hub/outbox.py.
"""
from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Status(str, enum.Enum):
    MENUNGGU = "menunggu"  # waiting
    DIPROSES = "diproses"  # in process
    SELESAI = "selesai"  # done
    DITOLAK = "ditolak"  # rejected / not our authority
    DIGABUNG = "digabung"  # merged into another ticket


# Lifecycle of DESIGN.md. selesai/ditolak may be reopened to menunggu by staff.
ALLOWED_MOVES: dict[Status, set[Status]] = {
    Status.MENUNGGU: {Status.DIPROSES, Status.SELESAI, Status.DITOLAK, Status.DIGABUNG},
    Status.DIPROSES: {Status.SELESAI, Status.DITOLAK, Status.DIGABUNG, Status.MENUNGGU},
    Status.SELESAI: {Status.MENUNGGU},
    Status.DITOLAK: {Status.MENUNGGU},
    Status.DIGABUNG: set(),
}
OPEN_STATUSES = (Status.MENUNGGU.value, Status.DIPROSES.value)


class Opd(SQLModel, table=True):
    __tablename__ = "opd"
    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    kind: str = Field(default="dinas", max_length=32)
    head_contact: Optional[str] = Field(default=None, max_length=200)
    delivery: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    active: bool = True


class User(SQLModel, table=True):
    __tablename__ = "users"
    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(max_length=80, unique=True, index=True)
    full_name: Optional[str] = Field(default=None, max_length=200)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=20)  # admin | pimpinan | operator | opd
    opd_code: Optional[str] = Field(default=None, foreign_key="opd.code", max_length=32)
    failed_logins: int = 0
    locked_until: Optional[datetime] = None
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    # Raised at logout (and by an admin): every session cookie issued before stops working.
    session_gen: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class RateCounter(SQLModel, table=True):
    """The current counting window of one key of the hub's one rate limiter (hub/limiter.py):
    `hits` of `key` (e.g. "login:src:10.0.0.1") since `window_start` (epoch seconds, the
    window's first hit), for `window_s` seconds. In the database so that every process shares
    the count."""
    __tablename__ = "rate_counters"
    key: str = Field(primary_key=True, max_length=200)
    window_start: int
    window_s: int
    hits: int = 0


class Lease(SQLModel, table=True):
    """A named lease (hub/leases.py): which process may do a piece of periodic work (the
    router's retraining) until `until` (epoch seconds). Shared by every process."""
    __tablename__ = "leases"
    name: str = Field(primary_key=True, max_length=64)
    owner: str = Field(max_length=120)
    until: float


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    id: Optional[int] = Field(default=None, primary_key=True)
    prefix: str = Field(max_length=16, unique=True, index=True)
    key_hash: str = Field(max_length=128)
    name: str = Field(max_length=120)
    role: str = Field(max_length=20)  # opd | intake | admin
    opd_code: Optional[str] = Field(default=None, foreign_key="opd.code", max_length=32)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: Optional[datetime] = None


class RawMessage(SQLModel, table=True):
    """Every inbound message as received, stored before the channel gets its 2xx."""

    __tablename__ = "raw_messages"
    __table_args__ = (Index("ix_raw_pending", "state", "id"),
                      Index("ix_raw_sender_recent", "channel", "sender", "stored_at"))  # rate limit
    id: Optional[int] = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=200, unique=True)
    ticket_code: str = Field(max_length=10, unique=True)  # reserved at intake, returned at once
    channel: str = Field(max_length=32)
    provider_id: Optional[str] = Field(default=None, max_length=200)
    sender: Optional[str] = Field(default=None, max_length=200)
    text: str = Field(sa_column=Column(Text, nullable=False))
    message: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: datetime
    stored_at: datetime = Field(default_factory=utcnow)
    state: str = Field(default="pending", max_length=16)  # pending | done | rejected
    error: Optional[str] = Field(default=None, sa_column=Column(Text))
    # failed processing attempts (hub.guard): in the store, so every process and restart shares them
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Incident(SQLModel, table=True):
    __tablename__ = "incidents"
    id: Optional[int] = Field(default=None, primary_key=True)
    key: Optional[str] = Field(default=None, max_length=200, index=True)
    category: Optional[str] = Field(default=None, max_length=120)
    kecamatan_code: Optional[str] = Field(default=None, max_length=16)
    desa_code: Optional[str] = Field(default=None, max_length=20)
    latitude: Optional[float] = None
    longitude: Optional[float] = None
    urgency: str = Field(default="normal", max_length=10)
    is_open: bool = True
    first_at: datetime = Field(default_factory=utcnow)
    last_at: datetime = Field(default_factory=utcnow)
    ticket_count: int = 0


class Ticket(SQLModel, table=True):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_opd", "status", "opd_code"),
        Index("ix_tickets_created", "created_at", "id"),
        Index("ix_tickets_phone", "reporter_phone"),
        Index("ix_tickets_kec", "kecamatan_code"),
        Index("ix_tickets_channel", "channel"),
        Index("ix_tickets_due", "status", "due_at"),
        # Dashboard (hub/stats.py): open tickets by dimension, and recently finished tickets.
        Index("ix_tickets_open_dims", "status", "due_at", "urgency", "opd_code", "channel", "kecamatan_code",
              "incident_id"),
        Index("ix_tickets_closed", "closed_at", "status", "opd_code", "created_at"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    code: str = Field(max_length=10, unique=True)
    raw_message_id: Optional[int] = Field(default=None, foreign_key="raw_messages.id")
    channel: str = Field(max_length=32)
    channel_message_id: Optional[str] = Field(default=None, max_length=200)
    reporter_name: Optional[str] = Field(default=None, max_length=200)
    reporter_phone: Optional[str] = Field(default=None, max_length=20)
    reporter_chat_id: Optional[str] = Field(default=None, max_length=64)
    reporter_lapor_id: Optional[str] = Field(default=None, max_length=64)
    reporter_nik_masked: Optional[str] = Field(default=None, max_length=16)
    anonymous: bool = False
    confidential: bool = False
    text_original: str = Field(sa_column=Column(Text, nullable=False))
    text_clean: str = Field(sa_column=Column(Text, nullable=False))
    attachments: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    kecamatan_code: Optional[str] = Field(default=None, max_length=16)
    desa_code: Optional[str] = Field(default=None, max_length=20)
    address: Optional[str] = Field(default=None, sa_column=Column(Text))
    latitude: Optional[float] = None
    longitude: Optional[float] = None
    category: Optional[str] = Field(default=None, max_length=120)
    subcategory: Optional[str] = Field(default=None, max_length=200)
    urgency: str = Field(default="normal", max_length=10)
    opd_code: str = Field(foreign_key="opd.code", max_length=32)
    routing_confidence: float = 0.0
    routing_rule: Optional[str] = Field(default=None, sa_column=Column(Text))
    needs_triage: bool = False
    status: str = Field(default=Status.MENUNGGU.value, max_length=10)
    incident_id: Optional[int] = Field(default=None, foreign_key="incidents.id", index=True)
    merged_into: Optional[str] = Field(default=None, max_length=10)
    due_at: Optional[datetime] = None
    escalation_level: int = 0  # 0 none, 1 OPD reminded, 2 OPD head, 3 regional head
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    closed_at: Optional[datetime] = None


class TicketCount(SQLModel, table=True):
    """Dashboard rollup: +1/-1 rows per (status, OPD, channel, kecamatan, urgency).

    Written only by database triggers on `tickets` (migration b7d41c0e2a19) and folded by
    hub.stats.compact_counts; the sum of n per key is the live count. Never edit by hand.
    """

    __tablename__ = "ticket_counts"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused: hub.stats.data_version
    id: Optional[int] = Field(default=None, primary_key=True)
    status: str = Field(max_length=10)
    opd_code: str = Field(max_length=32)
    channel: str = Field(max_length=32)
    kecamatan_code: str = Field(default="", max_length=16)  # "" when unknown
    urgency: str = Field(max_length=10)
    n: int = 0
    # The changed ticket's own times and incident (migration d9f4b2e6a871), so a cached summary
    # can fold just the new rows, also for a period; NULL once compact_counts folded the row.
    created_at: Optional[datetime] = None
    due_at: Optional[datetime] = None
    incident_id: Optional[int] = None


class TicketEvent(SQLModel, table=True):
    """One line of a ticket's history: who, when, what, why."""

    __tablename__ = "ticket_events"
    id: Optional[int] = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=120)  # "system", "user:budi", "opd-key:PUPR", "channel:sms"
    kind: str = Field(max_length=32)  # received | routed | status | rerouted | delivered | reply | merged | escalated | note
    from_status: Optional[str] = Field(default=None, max_length=10)
    to_status: Optional[str] = Field(default=None, max_length=10)
    from_opd: Optional[str] = Field(default=None, max_length=32)
    to_opd: Optional[str] = Field(default=None, max_length=32)
    note: Optional[str] = Field(default=None, sa_column=Column(Text))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Outbox(SQLModel, table=True):
    """Everything that leaves the hub. Written in the same transaction as its cause."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    message_id: str = Field(max_length=64, unique=True)  # stable across retries (webhook-id)
    kind: str = Field(max_length=20)  # deliver | reply | lapor_push | notify
    target: str = Field(max_length=200)  # opd code, channel name, ...
    ticket_id: Optional[int] = Field(default=None, foreign_key="tickets.id", index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: str = Field(default="pending", max_length=10)  # pending | done | dead
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_owner: Optional[str] = Field(default=None, max_length=64)
    lease_until: Optional[datetime] = None
    last_error: Optional[str] = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    done_at: Optional[datetime] = None


class RoutingExample(SQLModel, table=True):
    """A text with its correct OPD: from staff re-routes and `simpul router learn`."""

    __tablename__ = "routing_examples"
    id: Optional[int] = Field(default=None, primary_key=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    opd_code: str = Field(max_length=32)
    source: str = Field(max_length=32)  # reroute | learn | confirmed
    created_at: datetime = Field(default_factory=utcnow)


class RouterModel(SQLModel, table=True):
    __tablename__ = "router_models"
    id: Optional[int] = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    examples: int = 0
    model: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ChannelState(SQLModel, table=True):
    """Health of each line for the admin page: last message, last error, sync cursors."""

    __tablename__ = "channel_state"
    channel: str = Field(primary_key=True, max_length=32)
    last_message_at: Optional[datetime] = None
    last_ok_at: Optional[datetime] = None
    last_error_at: Optional[datetime] = None
    last_error: Optional[str] = Field(default=None, sa_column=Column(Text))
    consecutive_failures: int = 0
    cursor: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Conversation(SQLModel, table=True):
    """Short guided conversations (Telegram bot asking for the place)."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "chat_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    chat_id: str = Field(max_length=64)
    state: str = Field(max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class DemoMessage(SQLModel, table=True):
    """Demo mode only (SIMPUL_DEMO=true): what a line without credentials would have sent (SMS,
    Telegram, WhatsApp, e-mail, webhook), shown on the admin's "Kotak keluar demo" page."""

    __tablename__ = "demo_outbox"
    id: Optional[int] = Field(default=None, primary_key=True)
    message_id: str = Field(max_length=64, unique=True)  # the outbox row's: a retry adds nothing
    kind: str = Field(max_length=20)  # the outbox kind: reply | deliver | notify | lapor_push
    channel: str = Field(max_length=20)  # sms | whatsapp | telegram | email | webhook | open311 | lapor
    to: str = Field(max_length=300)
    subject: Optional[str] = Field(default=None, max_length=300)
    text: str = Field(sa_column=Column(Text, nullable=False))
    ticket_code: Optional[str] = Field(default=None, max_length=16)
    at: datetime = Field(default_factory=utcnow)
