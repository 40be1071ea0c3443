"""Wires the optional modules (lines, delivery, dashboard) into the app by import.

Each module registers its routers, outbox senders and periodic jobs when imported.
"""
import importlib

from hub.logging import get_logger

log = get_logger(__name__)
MODULES: list[str] = [
    # SMS (Gammu SMSD, Twilio) and WhatsApp lines (docs/sms.md)
    "hub.lines.gammu", "hub.lines.twilio",
    # delivery to OPDs, the OPD API, Open311, outbox admin, SLA escalation (docs/delivery.md)
    "hub.delivery", "hub.escalation", "hub.api.opd", "hub.api.open311", "hub.api.admin_outbox",
    "hub.lines.telegram",  # Telegram bot: webhook, polling, guided conversation (docs/telegram.md)
    "hub.lines.lapor",  # SP4N-LAPOR! pull, status sync and push (docs/lapor.md)
    "hub.web",  # dashboard, ticket pages, hotline console, OPD view, admin, /lapor and /cek (docs/dashboard.md)
    "hub.api.hotline",  # PSC 119 / BPBD hotline console API (docs/hotline.md)
    "hub.media",  # attachments at signed expiring URLs, /media/... (docs/delivery.md)
]

for _name in MODULES:
    importlib.import_module(_name)
