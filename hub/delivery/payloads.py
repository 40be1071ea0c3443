"""What is sent about a ticket: the canonical JSON (webhooks) and the GeoReport v2 request.
Confidential or anonymous reporters never leave in a delivery (hub.tickets.ticket_dict)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from adapters import open311_client
from normalizer.reporter import mask_niks
from hub.config import regency_config
from hub.models import Ticket
from hub.settings import get_settings
from hub.tickets import ticket_dict


def ticket_payload(t: Ticket) -> dict[str, Any]:
    """The canonical ticket (hub.tickets.ticket_dict: hides confidential/anonymous reporters)."""
    out = ticket_dict(t, include_reporter=True)
    out["escalation_level"] = t.escalation_level
    return out


def webhook_body(event: str, t: Ticket, extra: dict[str, Any] | None = None) -> bytes:
    """Standard Webhooks payload shape: {type, timestamp, data}."""
    data = ticket_payload(t)
    if extra:
        data.update(extra)
    doc = {"type": event, "timestamp": datetime.now(timezone.utc).isoformat(), "data": data}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def open311_request(t: Ticket) -> open311_client.ServiceRequest:
    data = ticket_payload(t)
    photos = [a.get("url") for a in t.attachments or () if a.get("url") and a.get("kind") == "photo"]
    reporter = data["reporter"] or {}
    address = t.address or (f"kecamatan {t.kecamatan_code}" if t.kecamatan_code else None)
    if t.latitude is None and not address:
        address = regency_config(str(get_settings().config_dir)).region_label  # GeoReport needs a location
    return open311_client.ServiceRequest(
        description=f"[Simpul {t.code}] {mask_niks(t.text_original)}", lat=t.latitude, long=t.longitude,
        address_string=address, media_url=photos[0] if photos else None,
        first_name=reporter.get("name"), phone=reporter.get("phone"),
        attributes=(("simpul_code", t.code), ("urgency", t.urgency)))
