"""SLA escalation: a periodic job that marks tickets overdue, reminds the OPD, and escalates to
the OPD head and the regional head's dashboard.

Levels (ticket.escalation_level): 1 OPD reminded (a fraction of the SLA elapsed), 2 OPD head
(overdue by N hours), 3 regional head (overdue by M hours). Safe with many hub processes: each
step is a conditional UPDATE ... WHERE escalation_level = <old>, so exactly one process wins and
only the winner writes the event and queues the messages, in the same transaction.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, and_, exists, or_, select, update
from sqlmodel import Session

from hub import tickets as T
from hub.config import RegencyConfig, regency_config
from hub.db import get_engine, writer
from hub.parts import Line, Periodic
from hub.logging import get_logger
from hub.models import OPEN_STATUSES, Opd, Ticket, TicketEvent
from hub.settings import Settings, get_settings

log = get_logger(__name__)
LEVEL_NAMES = {1: "pengingat ke OPD", 2: "eskalasi ke kepala OPD", 3: "eskalasi ke kepala daerah"}
TABLE = Ticket.__table__


@dataclass(frozen=True)
class Policy:
    remind_fraction: float
    head_after: timedelta
    regional_after: timedelta


def policy(sla: dict[str, Any], urgency: str) -> Policy:
    """The escalation rule for an urgency: `escalation:` in sla.yaml, overridable per urgency."""
    esc = dict(sla.get("escalation") or {})
    esc.update((esc.get("by_urgency") or {}).get(urgency) or {})
    return Policy(remind_fraction=float(esc.get("remind_opd_after", 0.75)),
                  head_after=timedelta(hours=float(esc.get("opd_head_after_overdue_hours", 24))),
                  regional_after=timedelta(hours=float(esc.get("regional_head_after_overdue_hours", 72))))


def target_level(t: Ticket, sla: dict[str, Any], now: datetime) -> int:
    if t.due_at is None or t.status not in OPEN_STATUSES:
        return 0
    p = policy(sla, t.urgency)
    if now >= t.due_at + p.regional_after:
        return 3
    if now >= t.due_at + p.head_after:
        return 2
    if now >= t.created_at + (t.due_at - t.created_at) * p.remind_fraction:
        return 1
    return 0


def _earliest_remind(sla: dict[str, Any]) -> float:
    esc = sla.get("escalation") or {}
    fractions = [float(esc.get("remind_opd_after", 0.75))]
    fractions += [float(v.get("remind_opd_after", fractions[0])) for v in (esc.get("by_urgency") or {}).values()]
    return min(fractions)


def _candidates(session: Session, now: datetime, limit: int,
                after: tuple[datetime, int] | None) -> list[Ticket]:
    """Open tickets with a due time that may need a step: below level 3, or overdue and not yet
    marked. Keyset-paged by (due_at, id) so a long tail of waiting tickets starves nothing."""
    overdue_marked = exists().where(TicketEvent.ticket_id == Ticket.id, TicketEvent.kind == "overdue")
    q = select(Ticket).where(Ticket.status.in_(OPEN_STATUSES), Ticket.due_at.is_not(None),
                             or_(Ticket.escalation_level < 3, and_(Ticket.due_at <= now, ~overdue_marked)))
    if after is not None:
        q = q.where(or_(Ticket.due_at > after[0], and_(Ticket.due_at == after[0], Ticket.id > after[1])))
    return list(session.scalars(q.order_by(Ticket.due_at, Ticket.id).limit(limit)))


def _mark_overdue(session: Session, t: Ticket, now: datetime, engine: Engine) -> bool:
    """Write the 'overdue' event once. The ticket row is locked first (FOR UPDATE on
    PostgreSQL; the whole transaction is BEGIN IMMEDIATE on SQLite), then the check."""
    q = select(Ticket.id).where(Ticket.id == t.id)
    if engine.dialect.name == "postgresql":
        q = q.with_for_update()
    session.execute(q)
    done = session.scalars(select(TicketEvent.id).where(TicketEvent.ticket_id == t.id,
                                                        TicketEvent.kind == "overdue").limit(1)).first()
    if done is not None:
        return False
    late = now - t.due_at
    T.add_event(session, t, "system:sla", "overdue", note=f"Melewati tenggat {t.due_at.isoformat()}",
                data={"due_at": t.due_at.isoformat(), "late_minutes": int(late.total_seconds() // 60)})
    return True


def _notify(session: Session, t: Ticket, level: int, cfg: RegencyConfig) -> list[str]:
    """Queue the messages of one escalation step; returns what was queued (for the event)."""
    from hub.delivery import email_for, queue_notify_email
    from hub.tickets import queue_delivery

    queued: list[str] = []
    opd = session.get(Opd, t.opd_code)
    if level == 1:
        # the OPD's own system hears it the way it hears new tickets; pull OPDs see escalation_level
        if opd is not None and (opd.delivery or {}).get("type", "pull") != "pull":
            queue_delivery(session, t, "ticket.reminder")
            queued.append(f"deliver:{t.opd_code}")
        return queued
    if level == 2:
        to = opd.head_contact if opd is not None else None
    else:
        to = (cfg.sla.get("escalation") or {}).get("regional_head_contact")
    if to and "@" in to and opd is not None:
        mail = email_for("ticket.escalated", t, opd, (to,), "", note=LEVEL_NAMES[level])
        if queue_notify_email(session, t, to, mail.subject, mail.text, mail.html) is not None:
            queued.append(f"notify:{'opd_head' if level == 2 else 'regional_head'}")
    if level == 2 and opd is not None and (opd.delivery or {}).get("type", "pull") == "webhook":
        queue_delivery(session, t, "ticket.escalated")
        queued.append(f"deliver:{t.opd_code}")
    return queued


def escalate_once(engine: Engine | None = None, cfg: RegencyConfig | None = None,
                  now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """One pass: mark overdue, step escalation levels. Returns counts of what this process did."""
    engine = engine or get_engine()
    cfg = cfg or regency_config(str(get_settings().config_dir))
    now = now or datetime.now(timezone.utc)
    stats = {"overdue": 0, "escalated": 0, "lost_race": 0}
    after = None
    while True:
        with Session(engine, expire_on_commit=False) as s:
            page = _candidates(s, now, limit, after)
        if not page:
            return stats
        after = (page[-1].due_at, page[-1].id)
        for t in page:
            _step(engine, t, cfg, now, stats)


def _step(engine: Engine, t: Ticket, cfg: RegencyConfig, now: datetime, stats: dict[str, int]) -> None:
    want = target_level(t, cfg.sla, now)
    is_late = t.due_at <= now
    if want <= t.escalation_level:
        if not is_late:
            return
        with Session(engine) as r:  # overdue, and already marked: nothing to do, take no write lock
            if r.scalars(select(TicketEvent.id).where(TicketEvent.ticket_id == t.id,
                                                      TicketEvent.kind == "overdue").limit(1)).first():
                return
    with Session(writer(engine), expire_on_commit=False) as s:
        t = s.get(Ticket, t.id)
        if t is None or t.status not in OPEN_STATUSES or t.due_at is None:
            return
        if t.due_at <= now and _mark_overdue(s, t, now, engine):
            stats["overdue"] += 1
        old = t.escalation_level
        want = target_level(t, cfg.sla, now)
        if want > old:
            res = s.execute(update(TABLE).where(TABLE.c.id == t.id, TABLE.c.escalation_level == old,
                                                TABLE.c.status.in_(OPEN_STATUSES))
                            .values(escalation_level=want, updated_at=datetime.now(timezone.utc)))
            if res.rowcount != 1:  # another process stepped it first
                stats["lost_race"] += 1
                s.commit()
                return
            s.refresh(t)  # as the UPDATE left it (level, updated_at: pull feeds see the change)
            for level in range(old + 1, want + 1):
                queued = _notify(s, t, level, cfg)
                T.add_event(s, t, "system:sla", "escalated", note=LEVEL_NAMES[level],
                            data={"level": level, "due_at": t.due_at.isoformat(), "queued": queued})
            stats["escalated"] += 1
            log.info("sla.escalated", ticket=t.code, opd=t.opd_code, level=want, from_level=old)
        s.commit()


async def escalation_job() -> None:
    await asyncio.to_thread(escalate_once)


def feature(settings: Settings) -> Line:
    return Line("escalation", periodic=[Periodic("sla_escalation", settings.escalation_interval_s, escalation_job)])
