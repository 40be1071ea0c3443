"""What the hub is made of, in one visible list: the lines (hub/lines/<name>/) and the other
optional parts (delivery, escalation, the OPD and Open311 APIs, outbox admin, the web pages).

`create_app(settings, lines=...)` and the workers call `wire(settings)` and use what it returns;
nothing registers itself on import. A new line is one adapter module, one hub line package and
one entry in LINES.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from hub import delivery, escalation, media, outbox, replies, router_learning, tickets, web
from hub.works import wiring as works
from hub.api import admin_outbox, open311, opd
from hub.parts import Hook, Line, OutboxSender, Periodic, ReplySender
from hub.lines import gammu, hotline, lapor, telegram, twilio
from hub.settings import Settings

# The lines, in wiring order. Gammu and Twilio each add the "sms" reply sender only when they
# are SIMPUL_SMS_PROVIDER.
LINES: tuple[Callable[[Settings], Line], ...] = (
    gammu.line,  # SMS through a Gammu SMSD modem (docs/sms.md)
    twilio.line,  # SMS and WhatsApp through Twilio (docs/sms.md)
    telegram.line,  # Telegram bot: webhook or polling, guided conversation (docs/telegram.md)
    lapor.line,  # SP4N-LAPOR!: pull, status sync and push (docs/lapor.md)
    hotline.line,  # PSC 119 / BPBD hotline: console, API, old call logs (docs/hotline.md)
)


def _api_router(module: Any) -> Callable[[Settings], Line]:
    return lambda settings: Line(module.__name__, routers=[module.router])


# Everything else that is optional: delivery to OPDs, SLA escalation, the OPD API, Open311,
# outbox admin (docs/delivery.md), the web pages (docs/dashboard.md).
FEATURES: tuple[Callable[[Settings], Line], ...] = (
    delivery.feature,
    media.feature,  # attachments at signed expiring hub URLs, /media/... (docs/delivery.md)
    escalation.feature,
    router_learning.feature,  # retrains the router from re-routes, closures, dispositions (docs/routing.md)
    _api_router(opd),
    open311.feature,  # GeoReport v2: JSON and XML, discovery, error lists (docs/delivery.md)
    _api_router(admin_outbox),
    works.feature,  # public works: register, progress, money, red flags, citizens' reports (docs/works.md)
    web.feature,
)


@dataclass
class Wiring:
    """The parts' contributions, merged: what the app and the workers run."""
    parts: list[Line]
    routers: list[Any] = field(default_factory=list)
    installs: list[Callable[[Any], None]] = field(default_factory=list)
    reply_senders: dict[str, ReplySender] = field(default_factory=dict)
    outbox_senders: dict[str, OutboxSender] = field(default_factory=dict)
    periodic: list[Periodic] = field(default_factory=list)
    startup: list[Hook] = field(default_factory=list)
    shutdown: list[Hook] = field(default_factory=list)
    body_limits: dict[str, int] = field(default_factory=dict)
    session_resolvers: list[Callable[[Any], Any]] = field(default_factory=list)
    draft_hooks: list[Callable[..., list]] = field(default_factory=list)
    ticket_panels: list[Callable[..., Any]] = field(default_factory=list)

    @classmethod
    def of(cls, parts: Sequence[Line]) -> "Wiring":
        w = cls(list(parts))
        for p in parts:
            w.routers += p.routers
            if p.install is not None:
                w.installs.append(p.install)
            w.reply_senders.update(p.reply_senders)
            w.outbox_senders.update(p.outbox_senders)
            w.periodic += p.periodic
            w.startup += p.startup
            w.shutdown += p.shutdown
            w.body_limits.update(p.body_limits)
            w.session_resolvers += p.session_resolvers
            w.draft_hooks += p.draft_hooks
            w.ticket_panels += p.ticket_panels
        # replies go out through the reply sender of the reporter's line
        w.outbox_senders["reply"] = replies.reply_outbox_sender(w.reply_senders)
        names = [p.name for p in w.periodic]
        if len(names) != len(set(names)):
            raise ValueError(f"two periodic jobs share a name: {sorted(names)}")
        return w


def wire(settings: Settings, lines: Sequence[Callable[[Settings], Line]] = LINES,
         features: Sequence[Callable[[Settings], Line]] = FEATURES) -> Wiring:
    """The configured lines and features for these settings. In demo mode (SIMPUL_DEMO=true)
    the senders of lines without credentials are replaced last by the demo outbox
    (hub/demo_outbox.py); never otherwise."""
    parts = [make(settings) for make in (*lines, *features)]
    if settings.demo:
        from hub import demo_outbox

        merged = Wiring.of(parts)
        parts.append(demo_outbox.part(settings, merged.reply_senders, merged.outbox_senders))
    return Wiring.of(parts)


def install(wiring: Wiring) -> None:
    """This process sends outbox rows through these senders (hub.outbox.run_once) and shows
    each batch of new tickets to these draft hooks (hub.tickets.create_many)."""
    outbox.use_senders(wiring.outbox_senders)
    tickets.use_draft_hooks(wiring.draft_hooks)
