"""The hub side of each line, one package per line (`hub/lines/<name>/`): its routes,
conversation, jobs, console and import, beside its pure protocol module `adapters/<name>`.
A line package says what it adds to the hub in `line(settings) -> hub.parts.Line`; hub/wiring.py
lists the lines. Shared plumbing of the lines: ratelimit.py (and hub.parts for the interface).
A line package never imports another line's package.
"""
