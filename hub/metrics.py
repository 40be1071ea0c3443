"""Prometheus metrics of the hub (exposed at /metrics)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INTAKE = Counter("simpul_intake_messages_total", "Inbound messages accepted", ["channel", "duplicate"])
TICKETS_CREATED = Counter("simpul_tickets_created_total", "Tickets created", ["channel", "opd"])
TICKETS_BY_STATUS = Gauge("simpul_tickets", "Tickets by status", ["status"])
OUTBOX_SENT = Counter("simpul_outbox_sent_total", "Outbox rows sent", ["kind", "result"])
OUTBOX_PENDING = Gauge("simpul_outbox_pending", "Outbox rows waiting or parked", ["state"])
REQUEST_LATENCY = Histogram(
    "simpul_http_request_seconds", "HTTP request latency", ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LINE_UP = Gauge("simpul_line_up", "1 while a line takes messages, 0 when it has stopped", ["line"])
LINE_DEGRADED = Gauge("simpul_line_degraded", "1 while a line works but not fully (retrying, templates "
                      "missing), else 0", ["line"])
INTAKE_UNREADABLE = Gauge("simpul_intake_unreadable", "Dead intake rows: payloads no line could read")
