"""Wires the optional modules (lines, delivery, dashboard) into the app by import.

Each module registers its routers, outbox senders and periodic jobs when imported.
"""
import importlib

from hub.logging import get_logger

log = get_logger(__name__)
MODULES: list[str] = [
    "hub.lines.lapor",  # SP4N-LAPOR! pull, status sync and push (docs/lapor.md)
]

for _name in MODULES:
    importlib.import_module(_name)
