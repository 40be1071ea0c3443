"""Delivery to OPDs: the outbox senders for "deliver" (one ticket event to an OPD's own system)
and "notify" (an e-mail to a person), and the "delivered" event they leave in the history.

Picks the adapter by the OPD's `delivery.type` (webhook | email | open311; pull sends nothing)
at send time. The rest of delivery is in focused modules beside this one:

- targets: the OPD's delivery config → adapter targets, secrets from the environment
- http: the pooled HTTP client
- payloads: the canonical ticket JSON, webhook body, GeoReport v2 request
- mail: e-mails to OPDs (Jinja2 templates in templates/), notify e-mails
- maintenance: outbox gauges and purge jobs

What an OPD reports back is a ticket rule: hub.tickets.opd_updates.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, select
from sqlmodel import Session

from adapters import email_smtp, open311_client, opd_webhook
from adapters.base import PermanentError
from hub.db import get_engine
from hub.delivery.http import http_client
from hub.delivery.mail import INTROS, SUBJECTS, URGENCY_LABELS, email_for, queue_notify_email
from hub.delivery.maintenance import outbox_gauges_job, outbox_purge_job
from hub.delivery.payloads import FROZEN_BODY, freeze_bodies, frozen_body, human_address, kept_body, open311_request, ticket_payload, webhook_body
from hub.delivery.targets import open311_target, recipients, secret_from_env, smtp_config, webhook_target
from hub.logging import get_logger
from hub.models import Opd, Outbox, Ticket, TicketEvent
from hub.outbox import prepared
from hub.parts import Line, OutboxSender, Periodic
from hub.settings import Settings

log = get_logger(__name__)
EVENTS = ("ticket.created", "ticket.rerouted", "ticket.reminder", "ticket.escalated",
          "ticket.reopened", "ticket.updated")

__all__ = ["EVENTS", "FROZEN_BODY", "frozen_body", "human_address", "INTROS", "SUBJECTS", "URGENCY_LABELS", "email_for", "http_client", "open311_request",
           "open311_target", "outbox_gauges_job", "outbox_purge_job", "queue_notify_email", "recipients",
           "secret_from_env", "send_delivery", "send_notify", "smtp_config", "ticket_payload", "webhook_body",
           "webhook_target"]


# ---------------------------------------------------------------- outbox senders
def _load_batch(rows: list[Outbox]) -> dict[str, dict]:
    """Tickets and OPDs of a whole batch in two queries (outbox prepare hook), and the webhook
    bodies of the batch's first attempts frozen in one transaction, before any of them is sent."""
    with Session(get_engine(), expire_on_commit=False) as s:
        ids = {r.ticket_id for r in rows if r.ticket_id is not None}
        tickets = {t.id: t for t in s.scalars(select(Ticket).where(Ticket.id.in_(ids)))} if ids else {}
        opds = {o.code: o for o in s.scalars(select(Opd).where(Opd.code.in_({r.target for r in rows})))}
    todo = []
    for row in rows:
        t, opd = tickets.get(row.ticket_id), opds.get(row.target)
        if t is not None and opd is not None and t.opd_code == opd.code \
                and (opd.delivery or {}).get("type") == "webhook":
            todo.append((row, _body_builder(row, t)))
    freeze_bodies(todo)
    return {"tickets": tickets, "opds": opds}


def _body_builder(row: Outbox, t: Ticket):
    event = row.payload.get("event", "ticket.created")
    extra = {"note": row.payload["note"]} if row.payload.get("note") else None
    return lambda: webhook_body(event, t, extra, at=row.created_at)


def _cached(row: Outbox) -> tuple[Ticket | None, Opd | None] | None:
    batch = prepared(row.kind)
    if not batch or row.ticket_id not in batch["tickets"] or row.target not in batch["opds"]:
        return None
    return batch["tickets"][row.ticket_id], batch["opds"][row.target]


def _load(row: Outbox) -> tuple[Ticket | None, Opd | None]:
    with Session(get_engine(), expire_on_commit=False) as s:
        t = s.get(Ticket, row.ticket_id) if row.ticket_id else None
        if t is None and row.payload.get("code"):
            t = s.scalars(select(Ticket).where(Ticket.code == row.payload["code"])).first()
        return t, s.get(Opd, row.target)


async def send_delivery(row: Outbox) -> dict[str, Any] | None:
    """Outbox sender for kind "deliver": one ticket event to one OPD's own system."""
    event = row.payload.get("event", "ticket.created")
    t, opd = _cached(row) or await asyncio.to_thread(_load, row)
    if t is None:
        raise PermanentError(f"ticket {row.payload.get('code')} not found")
    if opd is None:
        raise PermanentError(f"OPD {row.target} not found")
    if t.opd_code != opd.code:  # re-routed before this was sent: the new OPD has its own row
        return {"skipped": f"ticket is now with {t.opd_code}"}
    delivery = opd.delivery or {}
    kind = delivery.get("type", "pull")
    if kind == "pull":
        return {"skipped": "OPD pulls over the API"}
    if kind == "webhook":
        # frozen for the whole batch by _load_batch; a row sent without it freezes its own
        body = kept_body(row) or await asyncio.to_thread(frozen_body, row, _body_builder(row, t))
        res = await opd_webhook.send(webhook_target(delivery), row.message_id, body, client=http_client())
    elif kind == "email":
        to = recipients(delivery.get("to"))
        res = await email_smtp.send(smtp_config(), email_for(event, t, opd, to, row.message_id,
                                                              row.payload.get("note")))
    elif kind == "open311":
        if event != "ticket.created" and event != "ticket.rerouted":
            return {"skipped": f"{event} has no GeoReport v2 equivalent"}
        target = open311_target(delivery)
        res = None
        if row.attempts > 0:  # an earlier attempt may have reached the OPD: look before re-posting
            made = row.created_at.replace(tzinfo=row.created_at.tzinfo or timezone.utc) if row.created_at else None
            since = (made - timedelta(minutes=5)).isoformat() if made else None
            res = await open311_client.find_request(target, t.code, since, client=http_client())
        if res is None:
            res = await open311_client.post_request(target, open311_request(t), client=http_client())
        # what the OPD answered (its id, token, notice) goes into the ticket's history
        return {"via": kind, "event": event, "provider_id": res.provider_id, "answer": res.detail}
    else:
        raise PermanentError(f"unknown delivery type {kind!r}")
    return {"via": kind, "event": event, "provider_id": res.provider_id}


async def send_notify(row: Outbox) -> dict[str, Any] | None:
    """Outbox sender for kind "notify": an e-mail to a person (OPD head, regional head)."""
    p = row.payload
    if p.get("channel", "email") != "email":
        raise PermanentError(f"notify channel {p.get('channel')!r} is not supported")
    mail = email_smtp.Email(to=recipients(p.get("to")), subject=p["subject"], text=p["text"],
                            html=p.get("html"), message_id=row.message_id)
    res = await email_smtp.send(smtp_config(), mail)
    return {"via": "email", "provider_id": res.provider_id}


_DELIVERED = TicketEvent.__table__.insert()


def _record_delivered(conn: Connection, row: Outbox, detail: dict[str, Any] | None) -> None:
    """A "delivered" event in the ticket's history, committed with the row's done mark."""
    if row.ticket_id is None or not detail or detail.get("skipped"):
        return
    conn.execute(_DELIVERED, dict(  # parameters to a statement built once: cheap per row
        ticket_id=row.ticket_id, at=datetime.now(timezone.utc), actor="system", kind="delivered",
        to_opd=row.target if row.kind == "deliver" else None,
        note=f"{row.payload.get('event', row.kind)} via {detail.get('via')}",
        data={"message_id": row.message_id, "provider_id": detail.get("provider_id"),
              "kind": row.kind, **({"answer": detail["answer"]} if detail.get("answer") else {})}))


def feature(settings: Settings) -> Line:
    """Delivery to OPD systems (`deliver`), e-mails to people (`notify`), outbox upkeep."""
    return Line("delivery",
                outbox_senders={"deliver": OutboxSender(send_delivery, _record_delivered, _load_batch),
                                "notify": OutboxSender(send_notify, _record_delivered)},
                periodic=[Periodic("outbox_gauges", 30, outbox_gauges_job),
                          Periodic("outbox_purge", 3600, outbox_purge_job)])
