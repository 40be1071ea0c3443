"""PSC 119 / BPBD hotline line: call takers type calls into the console, systems post them to
the API, and old call logs come in through the importer. The protocol (fields, incident types,
validation) is adapters/hotline.py; this package is the hub side:

- calls.py     store a call (through hub.intake), the caller's earlier calls, the outcome
- api.py       `/api/v1/hotline/...` for systems and the console's JavaScript
- console.py   the call takers' pages (`/konsol/...`)
- importer.py  old Excel/CSV call logs as closed historic tickets
- cli.py       `simpul import psc119|bpbd FILE`
"""
from __future__ import annotations

from hub.parts import Line
from hub.settings import Settings


def line(settings: Settings) -> Line:
    from hub.lines.hotline import api, console

    return Line("hotline", routers=[api.router, console.router])
