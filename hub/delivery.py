"""Delivery to OPDs and the loop back: the outbox senders for "deliver" and "notify", and the
rules for what an OPD system reports back (acknowledge, diproses, selesai, not our authority).

Picks the adapter by the OPD's `delivery.type` (webhook | email | open311; pull sends nothing)
at send time. Secrets come from environment variables named in the config, never from YAML,
and never reach a log line. Confidential or anonymous reporters never leave in a delivery.
"""
from __future__ import annotations

import asyncio
import csv
import html
import json
import os
import weakref
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Connection, select, update
from sqlmodel import Session

from adapters import email_smtp, open311_client, opd_webhook
from adapters.base import PermanentError, RetryableError
from hub import media
from hub import tickets as T
from hub.config import RegencyConfig
from hub.db import get_engine, writer
from hub.logging import get_logger
from hub.models import Opd, Outbox, Status, Ticket, TicketEvent
from hub.outbox import enqueue, prepared, register_sender
from hub.settings import get_settings

log = get_logger(__name__)
EVENTS = ("ticket.created", "ticket.rerouted", "ticket.reminder", "ticket.escalated")
SUBJECTS = {"ticket.created": "Laporan baru", "ticket.rerouted": "Laporan dialihkan kepada Anda",
            "ticket.reminder": "Pengingat tenggat laporan", "ticket.escalated": "Eskalasi laporan terlambat"}
INTROS = {"ticket.created": "Laporan warga berikut diteruskan kepada {opd} melalui Simpul.",
          "ticket.rerouted": "Laporan warga berikut dialihkan kepada {opd} melalui Simpul.",
          "ticket.reminder": "Laporan berikut mendekati atau melewati tenggat penyelesaian. Mohon segera ditindaklanjuti.",
          "ticket.escalated": "Laporan berikut telah melewati tenggat penyelesaian dan dieskalasi."}
URGENCY_LABELS = {"darurat": "DARURAT", "tinggi": "tinggi", "normal": "normal"}


# ---------------------------------------------------------------- config of a delivery target
def secret_from_env(name: str | None, what: str) -> str:
    if not name:
        raise PermanentError(f"{what}: no environment variable named in the delivery config")
    value = os.environ.get(name)
    if not value:
        # the message is fine; the hub's environment is not: retry, so fixing it lets it flow
        raise RetryableError(f"{what}: environment variable {name} is not set")
    return value


def webhook_target(delivery: dict[str, Any]) -> opd_webhook.WebhookTarget:
    return opd_webhook.WebhookTarget(url=delivery["url"],
                                     secret=secret_from_env(delivery.get("secret_env"), "webhook secret"),
                                     timeout_s=float(delivery.get("timeout_s", opd_webhook.DEFAULT_TIMEOUT_S)))


def open311_target(delivery: dict[str, Any]) -> open311_client.Open311Target:
    return open311_client.Open311Target(
        endpoint=delivery["endpoint"], api_key=secret_from_env(delivery.get("api_key_env"), "Open311 api_key"),
        service_code=str(delivery["service_code"]), jurisdiction_id=delivery.get("jurisdiction_id"),
        timeout_s=float(delivery.get("timeout_s", 15)))


def smtp_config() -> email_smtp.SmtpConfig:
    s = get_settings()
    return email_smtp.SmtpConfig(host=s.smtp_host, port=s.smtp_port, tls=s.smtp_tls, username=s.smtp_username,
                                 password=s.smtp_password, from_addr=s.smtp_from,
                                 ca_file=str(s.smtp_ca_file) if s.smtp_ca_file else None)


def recipients(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace(";", ",").split(",")]
    return tuple(v.strip() for v in value or () if v and v.strip())


_CLIENTS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = weakref.WeakKeyDictionary()


def http_client() -> httpx.AsyncClient:
    """One pooled client per event loop (keep-alive to OPD servers across sends)."""
    loop = asyncio.get_running_loop()
    client = _CLIENTS.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=50, max_keepalive_connections=20))
        _CLIENTS[loop] = client
    return client


# ---------------------------------------------------------------- what is sent
def ticket_payload(t: Ticket) -> dict[str, Any]:
    """The canonical ticket (hub.tickets.ticket_dict: hides confidential/anonymous reporters)."""
    out = T.ticket_dict(t, include_reporter=True)
    out["escalation_level"] = t.escalation_level
    out["attachments"] = media.links(t.code, t.attachments)  # signed hub URLs, never telegram-file:
    return out


def human_address(t: Ticket) -> str | None:
    """'<free text>, Desa X, Kec. Y, Kabupaten Trenggalek' (names, not Kemendagri codes)."""
    config_dir = str(get_settings().config_dir)
    names = _place_names(config_dir)
    desa = names.get(t.desa_code or "")
    kec = names.get(t.kecamatan_code or "")
    parts = [t.address, f"Desa {desa}" if desa else None, f"Kec. {kec}" if kec else None]
    if not any(parts):
        return None
    return ", ".join(p for p in [*parts, _regency_label(config_dir)] if p)


def webhook_body(event: str, t: Ticket, extra: dict[str, Any] | None = None,
                 at: datetime | None = None) -> bytes:
    """Standard Webhooks payload shape: {type, timestamp, data}; `timestamp` is when the event
    happened (the outbox row's creation), not when this attempt runs."""
    data = ticket_payload(t)
    if extra:
        data.update(extra)
    when = at or datetime.now(timezone.utc)
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    doc = {"type": event, "timestamp": when.astimezone(timezone.utc).isoformat(), "data": data}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


FROZEN_BODY = "webhook_body"  # outbox payload key: the body as first sent


def frozen_body(row: Outbox, build: Callable[[], bytes]) -> bytes:
    """One message id, one body, every attempt (Standard Webhooks): the body is built at the
    first attempt and kept in the outbox row; retries and an admin's replay send it again as
    it was, even when the ticket changed meanwhile. Only the webhook-timestamp header and the
    signature are per attempt."""
    kept = (row.payload or {}).get(FROZEN_BODY)
    if isinstance(kept, str):
        return kept.encode()
    body = build()
    payload = {**(row.payload or {}), FROZEN_BODY: body.decode()}
    with writer(get_engine()).begin() as conn:
        conn.execute(update(Outbox.__table__).where(Outbox.__table__.c.id == row.id).values(payload=payload))
    row.payload = payload
    return body


@lru_cache(maxsize=4)
def _place_names(config_dir: str) -> dict[str, str]:
    path = Path(config_dir) / "wilayah.csv"
    if not path.exists():
        return {}
    with path.open(encoding="utf-8") as fh:
        return {row["kode"]: row["nama"] for row in csv.DictReader(fh)}


@lru_cache(maxsize=4)
def _regency_label(config_dir: str) -> str:
    """"Kabupaten Trenggalek", from the regency's own wilayah.csv (config, not code)."""
    path = Path(config_dir) / "wilayah.csv"
    if path.exists():
        with path.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("level") in ("kabupaten", "kota"):
                    return row["nama"]
    return "daerah"


def _regency_name() -> str:
    return f"Pemerintah {_regency_label(str(get_settings().config_dir))}"


def _tz() -> ZoneInfo:
    from hub.config import regency

    return ZoneInfo(regency(str(get_settings().config_dir)).sla.get("timezone", "Asia/Jakarta"))


def _links_expire() -> datetime:
    from datetime import timedelta

    return datetime.now(timezone.utc) + timedelta(seconds=get_settings().media_url_ttl_s)


def _local(d: datetime | None) -> str:
    return d.astimezone(_tz()).strftime("%d-%m-%Y %H:%M %Z") if d else "-"


def email_for(event: str, t: Ticket, opd: Opd, to: tuple[str, ...], message_id: str,
              note: str | None = None) -> email_smtp.Email:
    """The e-mail to an OPD about one ticket, in Bahasa Indonesia, code in the subject."""
    data = ticket_payload(t)
    names = _place_names(str(get_settings().config_dir))
    place = ", ".join(p for p in (t.address, names.get(t.desa_code or ""),
                                  f"Kec. {names[t.kecamatan_code]}" if t.kecamatan_code in names else None) if p) or "-"
    reporter = data["reporter"]
    who = "dirahasiakan (pelapor anonim/rahasia)" if reporter is None else \
        ", ".join(v for v in (reporter.get("name"), reporter.get("phone")) if v) or "-"
    rows = [("Kode laporan", t.code), ("Diterima", _local(t.created_at)), ("Saluran", t.channel),
            ("Kategori", " / ".join(v for v in (t.category, t.subcategory) if v) or "-"),
            ("Urgensi", URGENCY_LABELS.get(t.urgency, t.urgency)), ("Status", t.status),
            ("Lokasi", place), ("Tenggat", _local(t.due_at)), ("Pelapor", who)]
    if t.latitude is not None and t.longitude is not None:
        rows.append(("Koordinat", f"{t.latitude:.6f}, {t.longitude:.6f}"))
    if event in ("ticket.reminder", "ticket.escalated"):
        rows.append(("Tingkat eskalasi", str(t.escalation_level)))
    links = [a["url"] for a in data["attachments"]]  # every attachment, at its signed hub URL
    footer = f"Pesan ini dikirim otomatis oleh Simpul, {_regency_name()}."
    intro = INTROS.get(event, INTROS["ticket.created"]).format(opd=opd.name)
    base = get_settings().public_url.rstrip("/")
    how = (f"Perbarui status (diproses / selesai / bukan kewenangan) melalui API Simpul: "
           f"POST {base}/api/v1/opd/tickets/{t.code}/status, atau melalui dasbor Simpul.")
    width = max(len(k) for k, _ in rows)
    text = "\n".join([f"Yth. {opd.name},", "", intro, ""]
                     + [f"{k.ljust(width)} : {v}" for k, v in rows]
                     + (["", f"Catatan: {note}"] if note else [])
                     + ["", "Isi laporan:", t.text_original, ""]
                     + ([f"Lampiran ({len(links)} berkas; tautan berlaku sampai {_local(_links_expire())}):"]
                        + [f"- {u}" for u in links] + [""] if links else [])
                     + [how, "", footer])
    e = html.escape
    table = "".join(f"<tr><th align='left'>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
    html_body = (f"<p>Yth. {e(opd.name)},</p><p>{e(intro)}</p><table cellpadding='4'>{table}</table>"
                 + (f"<p><b>Catatan:</b> {e(note)}</p>" if note else "")
                 + f"<p><b>Isi laporan:</b></p><blockquote>{e(t.text_original)}</blockquote>"
                 + (f"<p><b>Lampiran ({len(links)} berkas):</b></p><ul>"
                    + "".join(f"<li><a href='{e(u)}'>{e(u)}</a></li>" for u in links)
                    + "</ul>" if links else "")
                 + f"<p>{e(how)}</p><p><small>{e(footer)}</small></p>")
    subject = f"[Simpul {t.code}] {SUBJECTS.get(event, 'Laporan')}: {t.category or 'Laporan warga'}"
    if t.urgency == "darurat":
        subject = f"[DARURAT] {subject}"
    if links:
        subject = f"{subject} ({len(links)} lampiran)"
    s = get_settings()
    reply_to = (opd.delivery or {}).get("reply_to") or s.smtp_reply_to or s.smtp_from
    return email_smtp.Email(to=to, subject=subject, text=text, html=html_body, message_id=message_id,
                            reply_to=reply_to, date=datetime.now(_tz()))  # Date in the regency's zone


def open311_request(t: Ticket) -> open311_client.ServiceRequest:
    data = ticket_payload(t)
    photos = [a["url"] for a in data["attachments"] if a.get("kind") == "photo"]
    reporter = data["reporter"] or {}
    address = human_address(t)
    if t.latitude is None and not address:
        address = _regency_label(str(get_settings().config_dir))  # GeoReport needs a location
    return open311_client.ServiceRequest(
        description=f"[Simpul {t.code}] {t.text_original}", lat=t.latitude, long=t.longitude,
        address_string=address, media_url=photos[0] if photos else None,
        first_name=reporter.get("name"), phone=reporter.get("phone"),
        attributes=(("simpul_code", t.code), ("urgency", t.urgency)))


# ---------------------------------------------------------------- outbox senders
def _load_batch(rows: list[Outbox]) -> dict[str, dict]:
    """Tickets and OPDs of a whole batch in two queries (outbox prepare hook)."""
    with Session(get_engine(), expire_on_commit=False) as s:
        ids = {r.ticket_id for r in rows if r.ticket_id is not None}
        tickets = {t.id: t for t in s.scalars(select(Ticket).where(Ticket.id.in_(ids)))} if ids else {}
        opds = {o.code: o for o in s.scalars(select(Opd).where(Opd.code.in_({r.target for r in rows})))}
        return {"tickets": tickets, "opds": opds}


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
        body = await asyncio.to_thread(frozen_body, row, lambda: webhook_body(
            event, t, {"note": row.payload["note"]} if row.payload.get("note") else None, at=row.created_at))
        res = await opd_webhook.send(webhook_target(delivery), row.message_id, body, client=http_client())
    elif kind == "email":
        to = recipients(delivery.get("to"))
        res = await email_smtp.send(smtp_config(), email_for(event, t, opd, to, row.message_id,
                                                              row.payload.get("note")))
    elif kind == "open311":
        if event != "ticket.created" and event != "ticket.rerouted":
            return {"skipped": f"{event} has no GeoReport v2 equivalent"}
        res = await open311_client.post_request(open311_target(delivery), open311_request(t), client=http_client())
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


def _record_delivered(conn: Connection, row: Outbox, detail: dict[str, Any] | None) -> None:
    """A "delivered" event in the ticket's history, committed with the row's done mark."""
    if row.ticket_id is None or not detail or detail.get("skipped"):
        return
    conn.execute(TicketEvent.__table__.insert().values(
        ticket_id=row.ticket_id, at=datetime.now(timezone.utc), actor="system", kind="delivered",
        to_opd=row.target if row.kind == "deliver" else None,
        note=f"{row.payload.get('event', row.kind)} via {detail.get('via')}",
        data={"message_id": row.message_id, "provider_id": detail.get("provider_id"),
              "kind": row.kind}))


register_sender("deliver", send_delivery, _record_delivered, _load_batch)
register_sender("notify", send_notify, _record_delivered)


async def outbox_gauges_job() -> None:
    """Keep simpul_outbox_pending{state=pending|dead} current for /metrics and alerts."""
    from hub.outbox import counts

    def run() -> None:
        with Session(get_engine()) as s:
            counts(s)

    await asyncio.to_thread(run)


def _register_jobs() -> None:
    from hub.workers import register_periodic

    register_periodic("outbox_gauges", 30, outbox_gauges_job)
    register_periodic("outbox_purge", 3600, outbox_purge_job)


async def outbox_purge_job() -> None:
    """Sent rows older than SIMPUL_OUTBOX_RETENTION_DAYS go; pending and dead rows never do."""
    from datetime import timedelta

    from hub.outbox import purge_done

    days = get_settings().outbox_retention_days
    while await asyncio.to_thread(purge_done, get_engine(), timedelta(days=days)) == 5000:
        pass


_register_jobs()


# ---------------------------------------------------------------- the loop back from an OPD
ACTIONS = ("diterima", "diproses", "selesai", "bukan_kewenangan")


def queue_notify_email(session: Session, ticket: Ticket, to: str | list[str], subject: str, text: str,
                       html_body: str | None = None) -> Outbox | None:
    if not recipients(to):
        return None
    return enqueue(session, "notify", ",".join(recipients(to))[:200],
                   {"channel": "email", "to": list(recipients(to)), "subject": subject, "text": text,
                    "html": html_body, "ticket_code": ticket.code}, ticket_id=ticket.id)


def apply_opd_update(session: Session, ticket: Ticket, action: str, actor: str, cfg: RegencyConfig,
                     note: str | None = None, photo_url: str | None = None,
                     external_id: str | None = None) -> Ticket:
    """What an OPD system reports back. Raises hub.tickets errors (400/409) for illegal moves.

    - diterima: acknowledged; an event, no status change, nothing to the reporter
    - diproses / selesai: status change (the reporter is told on their own line; LAPOR! pushed)
    - bukan_kewenangan: handed back to the triage OPD, flagged needs_triage, the event says why
    """
    data = {k: v for k, v in (("photo_url", photo_url), ("external_id", external_id)) if v}
    note = note.strip() if note and note.strip() else None
    if action == "diterima":
        if ticket.status not in (Status.MENUNGGU.value, Status.DIPROSES.value):
            raise T.IllegalMove(f"ticket {ticket.code} is {ticket.status}; only open tickets can be acknowledged")
        T.add_event(session, ticket, actor, "acknowledged", note=note, data=data)
        ticket.updated_at = datetime.now(timezone.utc)  # pull feeds (cursor by updated_at) show it
        session.add(ticket)
        return ticket
    if action in ("diproses", "selesai"):
        if photo_url and action == "selesai":
            ticket.attachments = [*(ticket.attachments or []), {"url": photo_url, "kind": "photo",
                                                                 "mime": None, "name": "bukti penyelesaian"}]
        return T.change_status(session, ticket, action, actor, cfg, note, data=data)
    if action == "bukan_kewenangan":
        if not note:
            raise T.TicketError("a hand-back needs a note saying why it is not this OPD's authority")
        from_opd = ticket.opd_code
        if from_opd == cfg.triage_opd:
            raise T.IllegalMove(f"ticket {ticket.code} is already with the triage OPD {cfg.triage_opd}; "
                                "re-route it to the right OPD instead")
        T.reroute(session, ticket, cfg.triage_opd, actor, cfg,
                  note=f"Dikembalikan oleh {from_opd} (bukan kewenangan): {note}", learn=False)
        ticket.needs_triage = True
        ticket.routing_confidence, ticket.routing_rule = 0.0, f"handed back by {from_opd}: {note}"[:500]
        session.add(ticket)
        T.add_event(session, ticket, actor, "handed_back", note=note, from_opd=from_opd,
                    to_opd=cfg.triage_opd, data={**data, "reason": "bukan_kewenangan"})
        _tell_reporter_handed_back(session, ticket, cfg)
        return ticket
    raise T.TicketError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")


def _tell_reporter_handed_back(session: Session, ticket: Ticket, cfg: RegencyConfig) -> None:
    from hub import replies

    route = replies.reply_route(ticket.channel, cfg, ticket.reporter_phone, ticket.reporter_chat_id,
                                ticket.reporter_lapor_id)
    if route is None:
        return
    text = cfg.template("status_dialihkan", code=ticket.code, opd_name=T.opd_name(session, ticket.opd_code)) \
        if "status_dialihkan" in cfg.templates else \
        f"Laporan {ticket.code} sedang ditinjau ulang untuk diteruskan ke instansi yang berwenang."
    if route[0] == "lapor":
        enqueue(session, "lapor_push", "lapor",
                {"tracking_id": route[1], "status": ticket.status, "opd": ticket.opd_code, "text": text,
                 "note": None, "ticket_code": ticket.code}, ticket_id=ticket.id)
    else:
        enqueue(session, "reply", route[0], {"channel": route[0], "to": route[1], "text": text,
                                             "ticket_code": ticket.code}, ticket_id=ticket.id)
