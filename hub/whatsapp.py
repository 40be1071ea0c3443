"""WhatsApp replies after the 24-hour window, and Twilio's delivery reports (issue #13, item 8).

**The window.** WhatsApp lets a business write freely only within 24 hours of the citizen's last
message; later a free-form message fails (Twilio 63016). A reply to a WhatsApp reporter whose
last message is older than that goes as an approved template instead (Twilio Content API:
`ContentSid` + `ContentVariables`), chosen by the reply's kind (`status_diproses`, `receipt`,
...; `default` for the rest) from `config/<regency>/whatsapp_templates.yaml`. Inside the
window, or with no template configured, the reply goes as text.

**Delivery reports.** Every Twilio send asks for a status callback
(`<public_url>/webhooks/twilio/status?m=<outbox message id>`). A report is stored on the outbox
row (`payload.twilio_status`); `failed` / `undelivered` park the row as a dead letter (the
dashboard's outbox admin shows it, an admin can replay it) and note `reply_failed` on the
ticket. Reports arriving out of order never move a message backwards.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlmodel import Session

from adapters.base import OutboundMessage
from hub.config import ConfigError, _node_lines, load_yaml
from hub.db import get_engine, writer
from hub.logging import get_logger
from hub.models import Outbox, RawMessage, TicketEvent

log = get_logger(__name__)
FILE = "whatsapp_templates.yaml"
RANK = {"accepted": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4, "read": 5}
FAILED = ("failed", "undelivered")
STATUS_PATH = "/webhooks/twilio/status"


@lru_cache(maxsize=4)
def templates(config_dir: str) -> dict[str, Any]:
    """{"window_hours": 24, "templates": {kind: {"content_sid": "HX…", "variables": {"1": "code"}}}}"""
    path = Path(config_dir) / FILE
    if not path.exists():
        return {"window_hours": 24, "templates": {}}
    data = load_yaml(path) or {}
    lines = _node_lines(path)
    if not isinstance(data, dict):
        raise ConfigError(path, 1, "expected a mapping with 'templates:'")
    out = {"window_hours": float(data.get("window_hours", 24)), "templates": {}}
    for kind, t in (data.get("templates") or {}).items():
        line = lines.get(("templates", kind))
        if not isinstance(t, dict) or not str(t.get("content_sid", "")).startswith("HX"):
            raise ConfigError(path, line, f"templates.{kind}: needs content_sid: HX… (Twilio Content API)")
        variables = t.get("variables") or {}
        if not isinstance(variables, dict):
            raise ConfigError(path, line, f"templates.{kind}.variables: a mapping like {{'1': code}}")
        out["templates"][str(kind)] = {"content_sid": str(t["content_sid"]),
                                       "variables": {str(k): str(v) for k, v in variables.items()}}
    return out


def last_message_at(to: str, engine: Engine | None = None) -> datetime | None:
    """When this WhatsApp number last wrote to us (Twilio's From: whatsapp:+62…)."""
    address = to if to.startswith("whatsapp:") else f"whatsapp:{to}"
    with (engine or get_engine()).connect() as conn:
        at = conn.execute(select(func.max(RawMessage.__table__.c.received_at)).where(
            RawMessage.__table__.c.channel == "whatsapp",
            RawMessage.__table__.c.sender.in_((address, address.removeprefix("whatsapp:"))))).scalar()
    return at if at is None or at.tzinfo else at.replace(tzinfo=timezone.utc)


def prepare(message: OutboundMessage, config_dir: str, now: datetime | None = None,
            engine: Engine | None = None) -> OutboundMessage:
    """A WhatsApp reply as it must go: text inside the window, else the kind's template."""
    if message.channel != "whatsapp":
        return message
    cfg = templates(config_dir)
    now = now or datetime.now(timezone.utc)
    last = last_message_at(message.to, engine)
    if last is not None and now - last < timedelta(hours=cfg["window_hours"]):
        return message
    extra = message.extra or {}
    kind = extra.get("template")
    t = cfg["templates"].get(kind or "") or cfg["templates"].get("default")
    if t is None:
        log.warning("whatsapp.no_template", kind=kind)
        return message  # Twilio will refuse it (63016): a dead letter the dashboard shows
    values = {**(extra.get("values") or {}), "code": message.ticket_code or "", "text": message.text}
    variables = {k: str(values.get(v, ""))[:1000] for k, v in t["variables"].items()}
    return dataclasses.replace(message, extra={**extra, "content_sid": t["content_sid"],
                                               "content_variables": variables})


def record_status(message_id: str, form: dict[str, str], engine: Engine | None = None) -> str:
    """Store one Twilio status callback on its outbox row; park failures. Returns what it did."""
    engine = engine or get_engine()
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    code = (form.get("ErrorCode") or "").strip() or None
    table = Outbox.__table__
    now = datetime.now(timezone.utc)
    with Session(writer(engine)) as s:
        row = s.execute(select(table).where(table.c.message_id == message_id)).first()
        if row is None:
            return "unknown"
        payload = dict(row.payload or {})
        before = (payload.get("twilio_status") or {}).get("status")
        if before in FAILED or (before in RANK and status in RANK and RANK[status] <= RANK[before]):
            return "kept"  # out of order, or after a failure: never backwards
        payload["twilio_status"] = {"sid": form.get("MessageSid"), "status": status, "error_code": code,
                                    "at": now.isoformat()}
        values: dict[str, Any] = {"payload": payload}
        if status in FAILED:
            values.update(state="dead", lease_owner=None, lease_until=None,
                          last_error=f"Twilio reported the reply {status}" + (f" (Twilio error {code})" if code else ""))
            if row.ticket_id is not None:
                s.add(TicketEvent(ticket_id=row.ticket_id, actor=f"channel:{payload.get('channel', 'twilio')}",
                                  kind="reply_failed",
                                  note=f"Balasan ke pelapor tidak terkirim ({status}"
                                       + (f", kode Twilio {code})" if code else ")"),
                                  data={"outbox_id": row.id, "error_code": code}))
        s.execute(update(table).where(table.c.id == row.id).values(**values))
        s.commit()
    log.info("twilio.status", outbox_id=row.id, status=status, error_code=code)
    return "failed" if status in FAILED else "stored"
