"""`simpul demo`: demo users and a day of sample traffic, idempotent (re-running adds nothing)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import select

from hub.auth import create_user
from hub.config import RegencyConfig, load_yaml
from hub.intake import accept_many
from hub.models import User
from hub.processing import drain
from normalizer.types import InboundMessage

DEMO_USERS = [("admin", "admin", None, "Admin Diskominfo"), ("bupati", "pimpinan", None, "Bupati Trenggalek"),
              ("operator", "operator", None, "Operator PSC 119 / Pusdalops"),
              ("pupr", "opd", "PUPR", "Staf PUPR"), ("dukcapil", "opd", "DUKCAPIL", "Staf Dukcapil"),
              ("bpbd", "opd", "BPBD", "Staf BPBD")]


def load_demo(scope: Callable, cfg: RegencyConfig, password: str, traffic: bool = True) -> list[str]:
    report = []
    with scope() as s:
        for username, role, opd, name in DEMO_USERS:
            if s.scalars(select(User).where(User.username == username)).first() is None:
                create_user(s, username, password, role, opd, name)
                report.append(f"demo user {username} ({role}{' ' + opd if opd else ''}) password {password}")
    from hub.works.demo import load_works_demo  # public works register (docs/works.md)
    report += load_works_demo(scope, cfg, traffic)
    if not traffic:
        return report
    data = load_yaml(cfg.directory / "demo_traffic.yaml") or {}
    now = datetime.now(timezone.utc)
    day = now.strftime("%Y%m%d")
    msgs = []
    for i, m in enumerate(data.get("messages", [])):
        msgs.append(InboundMessage(channel=m["channel"], text=m["text"], sender=m.get("sender"),
                                   sender_name=m.get("sender_name"), provider_id=f"demo-{day}-{i}",
                                   received_at=now - timedelta(minutes=m.get("offset_min", 0)),
                                   fields=m.get("fields") or {}))
    accepted = accept_many(msgs)
    new = sum(1 for a in accepted if not a.duplicate)
    drain()
    report.append(f"demo traffic: {new} new messages ({len(accepted) - new} already loaded today)")
    return report
