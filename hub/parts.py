"""`Line`: what a line (hub/lines/<name>/) or any other optional part of the hub contributes
to the app and the workers (routers, reply and outbox senders, periodic jobs, start/stop hooks).

A line package ends with `def line(settings) -> Line`; hub/wiring.py lists the lines and wires
them. Nothing here registers itself on import or reads settings at import.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Sequence

# async fn(OutboundMessage) -> SendResult: sends a reply to a reporter on one channel
ReplySender = Callable[[Any], Awaitable[Any]]
# async fn() run every `seconds` by the scheduler (hub.workers)
Job = Callable[[], Awaitable[object]]
# async fn(app, settings) at start-up / shut-down of the app
Hook = Callable[[Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class OutboxSender:
    """Who sends outbox rows of one kind (hub.outbox): `send(row) -> dict|None`, optionally
    `on_done(conn, row, detail)` inside the finishing transaction and `prepare(rows)` per batch."""
    send: Callable[[Any], Awaitable[dict[str, Any] | None]]
    on_done: Callable[..., None] | None = None
    prepare: Callable[[list[Any]], Any] | None = None


@dataclass(frozen=True)
class Periodic:
    name: str
    seconds: float
    run: Job


@dataclass(frozen=True)
class Line:
    """What one line or feature adds. Every field is optional; `install(app)` is for what is
    not a router (middleware, mounts, exception pages)."""
    name: str
    routers: Sequence[Any] = ()
    install: Callable[[Any], None] | None = None
    reply_senders: Mapping[str, ReplySender] = field(default_factory=dict)
    outbox_senders: Mapping[str, OutboxSender] = field(default_factory=dict)
    periodic: Sequence[Periodic] = ()
    startup: Sequence[Hook] = ()
    shutdown: Sequence[Hook] = ()
    body_limits: Mapping[str, int] = field(default_factory=dict)  # path prefix -> bytes
    session_resolvers: Sequence[Callable[[Any], Any]] = ()  # Request -> Principal | None
    # (session, [(raw, draft)], cfg, ctx) -> items: sees each batch before its tickets are made
    # (hub.tickets.create_many), e.g. hub.works links reports about a public-works project
    draft_hooks: Sequence[Callable[..., list]] = ()
    # (session, ticket, who) -> {"template": name, **context} | None: a section the part adds to
    # the staff ticket page (hub.web.routes), e.g. hub.works shows and relinks the ticket's project
    ticket_panels: Sequence[Callable[..., dict[str, Any] | None]] = ()
