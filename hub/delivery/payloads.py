"""What is sent about a ticket: the canonical JSON (webhooks) and the GeoReport v2 request.
Confidential or anonymous reporters never leave in a delivery (hub.tickets.ticket_dict)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable

from sqlalchemy import bindparam, update

from adapters import open311_client
from hub import media
from normalizer.reporter import mask_niks
from hub.config import regency_config
from hub.db import get_engine, writer
from hub.models import Outbox, Ticket
from hub.settings import get_settings
from hub.tickets import ticket_dict


def ticket_payload(t: Ticket) -> dict[str, Any]:
    """The canonical ticket (hub.tickets.ticket_dict: hides confidential/anonymous reporters)."""
    out = ticket_dict(t, include_reporter=True)
    out["escalation_level"] = t.escalation_level
    out["attachments"] = media.links(t.code, t.attachments)  # signed hub URLs, never telegram-file:
    return out


def human_address(t: Ticket) -> str | None:
    """'<free text>, Desa X, Kec. Y, Kabupaten Trenggalek' (names, not Kemendagri codes)."""
    cfg = regency_config(str(get_settings().config_dir))
    names = cfg.place_names
    desa = names.get(t.desa_code or "")
    kec = names.get(t.kecamatan_code or "")
    parts = [t.address, f"Desa {desa}" if desa else None, f"Kec. {kec}" if kec else None]
    if not any(parts):
        return None
    return ", ".join(p for p in [*parts, cfg.region_label] if p)


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
    kept = kept_body(row)
    if kept is not None:
        return kept
    body = build()
    payload = {**(row.payload or {}), FROZEN_BODY: body.decode()}
    with writer(get_engine()).begin() as conn:
        conn.execute(update(Outbox.__table__).where(Outbox.__table__.c.id == row.id).values(payload=payload))
    row.payload = payload
    return body


def kept_body(row: Outbox) -> bytes | None:
    """The body frozen at the row's first attempt, if there was one."""
    kept = (row.payload or {}).get(FROZEN_BODY)
    return kept.encode() if isinstance(kept, str) else None


def freeze_bodies(todo: list[tuple[Outbox, Callable[[], bytes]]]) -> None:
    """`frozen_body` for a whole claimed batch before its first send: one transaction and one
    commit for the batch instead of one per row (a per-row commit is a WAL flush per delivery,
    which the delivery processes queue for together)."""
    out = Outbox.__table__
    frozen = []
    for row, build in todo:
        if kept_body(row) is None:
            frozen.append((row, {**(row.payload or {}), FROZEN_BODY: build().decode()}))
    if not frozen:
        return
    with writer(get_engine()).begin() as conn:
        conn.execute(update(out).where(out.c.id == bindparam("row_id"))
                     .values(payload=bindparam("new_payload", type_=out.c.payload.type)),
                     [{"row_id": row.id, "new_payload": payload} for row, payload in frozen])
    for row, payload in frozen:
        row.payload = payload


def open311_request(t: Ticket) -> open311_client.ServiceRequest:
    data = ticket_payload(t)
    photos = [a["url"] for a in data["attachments"] if a.get("kind") == "photo"]
    reporter = data["reporter"] or {}
    address = human_address(t)
    if t.latitude is None and not address:
        address = regency_config(str(get_settings().config_dir)).region_label  # GeoReport needs a location
    return open311_client.ServiceRequest(
        description=f"[Simpul {t.code}] {mask_niks(t.text_original)}", lat=t.latitude, long=t.longitude,
        address_string=address, media_url=photos[0] if photos else None,
        first_name=reporter.get("name"), phone=reporter.get("phone"),
        attributes=(("simpul_code", t.code), ("urgency", t.urgency)))
