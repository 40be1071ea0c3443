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
    report += _lifecycle(scope, cfg, now)
    return report


DEMO_ACTOR = "demo"


def _lifecycle(scope: Callable, cfg: RegencyConfig, now: datetime) -> list[str]:
    """Move today's demo tickets through the lifecycle, once, so that every status, overdue and
    escalated tickets and a reopened one are on the pages: staff actions through hub.tickets,
    then older due times and one SLA escalation pass as if days had gone by."""
    from sqlalchemy import update

    from hub import tickets as T
    from hub.escalation import escalate_once
    from hub.models import OPEN_STATUSES, Ticket, TicketEvent

    with scope() as s:
        if s.scalars(select(TicketEvent.id).where(TicketEvent.actor == DEMO_ACTOR).limit(1)).first():
            return []
        ts = [t for t in s.scalars(select(Ticket).where(Ticket.status == "menunggu").order_by(Ticket.id))
              if not t.needs_triage]
        if len(ts) < 12:
            return []
        normal = [t for t in ts if t.urgency != "darurat"]
        darurat = [t for t in ts if t.urgency == "darurat"]
        for t in normal[0:3]:
            T.change_status(s, t, "diproses", DEMO_ACTOR, cfg, "Petugas sudah dijadwalkan ke lokasi.")
        for t in normal[3:5]:
            T.change_status(s, t, "diproses", DEMO_ACTOR, cfg, "Sedang dikerjakan.")
            T.change_status(s, t, "selesai", DEMO_ACTOR, cfg, "Sudah diperbaiki.")
        T.change_status(s, normal[5], "ditolak", DEMO_ACTOR, cfg, "Bukan kewenangan pemerintah kabupaten.")
        reopened = normal[6]
        T.change_status(s, reopened, "selesai", DEMO_ACTOR, cfg, "Sudah ditangani.")
        T.change_status(s, reopened, "menunggu", DEMO_ACTOR, cfg, "Pelapor: belum beres, dibuka kembali.")
        T.merge(s, normal[7], normal[8], DEMO_ACTOR, cfg, "Laporan yang sama.")
        late = [(normal[9], 4 * 24), (normal[10], 30)] + ([(darurat[0], 3)] if darurat else [])
        for t, hours_late in late:
            # as if reported days ago: due times in the past (the SLA job then escalates them)
            s.execute(update(Ticket).where(Ticket.id == t.id, Ticket.status.in_(OPEN_STATUSES)).values(
                created_at=now - timedelta(hours=hours_late + 72), due_at=now - timedelta(hours=hours_late)))
    esc = escalate_once(cfg=cfg, now=now)
    return [f"demo lifecycle: in process, done, rejected, merged, reopened tickets; "
            f"{esc['overdue']} overdue, {esc['escalated']} escalated"]
