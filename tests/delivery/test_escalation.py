"""SLA escalation: levels by elapsed SLA and overdue time, the messages each step queues, and
exactly one step per level even when several hub processes run the job at the same moment."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlmodel import Session

from hub.db import session_scope
from hub.escalation import escalate_once, policy, target_level
from hub.models import Outbox, Ticket, TicketEvent
from tests.delivery.helpers import make_ticket

NOW = datetime.now(timezone.utc).replace(microsecond=0)
SLA = {"escalation": {"remind_opd_after": 0.75, "opd_head_after_overdue_hours": 24,
                      "regional_head_after_overdue_hours": 72,
                      "by_urgency": {"darurat": {"remind_opd_after": 0.5, "opd_head_after_overdue_hours": 0.25,
                                                 "regional_head_after_overdue_hours": 1}}}}


@pytest.mark.parametrize("urgency,created_ago,due_in,status,level", [
    ("normal", timedelta(days=1), timedelta(days=4), "menunggu", 0),  # 20% elapsed
    ("normal", timedelta(days=4), timedelta(days=1), "menunggu", 1),  # 80% elapsed: remind
    ("normal", timedelta(days=6), -timedelta(hours=1), "diproses", 1),  # overdue, not yet a day
    ("normal", timedelta(days=7), -timedelta(hours=25), "menunggu", 2),  # head of the OPD
    ("normal", timedelta(days=9), -timedelta(hours=73), "menunggu", 3),  # regional head
    ("normal", timedelta(days=9), -timedelta(hours=73), "selesai", 0),  # closed: never
    ("darurat", timedelta(minutes=10), timedelta(minutes=20), "menunggu", 0),
    ("darurat", timedelta(minutes=16), timedelta(minutes=14), "menunggu", 1),  # half of 30 min
    ("darurat", timedelta(minutes=50), -timedelta(minutes=20), "menunggu", 2),  # 15 min overdue: head
    ("darurat", timedelta(minutes=95), -timedelta(minutes=65), "menunggu", 3),  # an hour overdue: bupati
])
def test_target_level(urgency, created_ago, due_in, status, level):
    t = Ticket(code="X", channel="sms", text_original="", text_clean="", opd_code="PUPR", urgency=urgency,
               status=status, created_at=NOW - created_ago, due_at=NOW + due_in)
    assert target_level(t, SLA, NOW) == level


def test_policy_falls_back_to_the_general_rule():
    assert policy(SLA, "tinggi").head_after == timedelta(hours=24)
    assert policy(SLA, "darurat").head_after == timedelta(minutes=15)
    assert policy({}, "normal").remind_fraction == 0.75


def _t(s, code, opd, created_ago, due_in, **kw):
    return make_ticket(s, opd=opd, code=code, created_at=NOW - created_ago, due_at=NOW + due_in, **kw)


def _events(engine, code):
    with Session(engine) as s:
        tid = s.scalars(select(Ticket.id).where(Ticket.code == code)).one()
        return [(e.kind, (e.data or {}).get("level")) for e in
                s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == tid).order_by(TicketEvent.id))]


def _queued(engine, code):
    with Session(engine) as s:
        tid = s.scalars(select(Ticket.id).where(Ticket.code == code)).one()
        return [(o.kind, o.target, o.payload.get("event") or o.payload.get("subject"))
                for o in s.scalars(select(Outbox).where(Outbox.ticket_id == tid).order_by(Outbox.id))]


def test_escalation_steps_and_messages(engine, seeded):
    with session_scope() as s:
        _t(s, "LATE001", "PUPR", timedelta(days=7), -timedelta(hours=25))  # e-mail OPD with a head
        _t(s, "EARLY01", "PUPR", timedelta(days=1), timedelta(days=4))
        _t(s, "DONE001", "PUPR", timedelta(days=9), -timedelta(hours=80), status="selesai")
        _t(s, "DARURT1", "BPBD", timedelta(minutes=95), -timedelta(minutes=65), urgency="darurat")
        _t(s, "SOON001", "DLH", timedelta(days=4), timedelta(days=1))  # pull OPD, no head contact
    stats = escalate_once(engine, seeded, NOW)
    assert stats == {"overdue": 2, "escalated": 3, "lost_race": 0}
    assert _events(engine, "LATE001") == [("overdue", None), ("escalated", 1), ("escalated", 2)]
    queued = _queued(engine, "LATE001")
    assert queued[0] == ("deliver", "PUPR", "ticket.reminder")
    assert queued[1][0] == "notify" and queued[1][1] == "kepala.pupr@trenggalekkab.go.id"
    assert "[Simpul LATE001] Eskalasi laporan terlambat" in queued[1][2]
    assert _events(engine, "DARURT1") == [("overdue", None), ("escalated", 1), ("escalated", 2), ("escalated", 3)]
    # BPBD pulls: no reminder delivery; its head gets an e-mail; no regional contact configured
    assert [q[:2] for q in _queued(engine, "DARURT1")] == [("notify", "kalak.bpbd@trenggalekkab.go.id")]
    assert _events(engine, "SOON001") == [("escalated", 1)] and _queued(engine, "SOON001") == []
    assert _events(engine, "EARLY01") == [] and _events(engine, "DONE001") == []
    with Session(engine) as s:
        levels = dict(s.execute(select(Ticket.code, Ticket.escalation_level)).all())
    assert levels == {"LATE001": 2, "EARLY01": 0, "DONE001": 0, "DARURT1": 3, "SOON001": 1}
    # running again changes nothing
    assert escalate_once(engine, seeded, NOW) == {"overdue": 0, "escalated": 0, "lost_race": 0}
    # a day later: LATE001 49 h overdue (still level 2), SOON001 just overdue (marked, level 1)
    assert escalate_once(engine, seeded, NOW + timedelta(days=1)) == {"overdue": 1, "escalated": 0, "lost_race": 0}
    assert _events(engine, "SOON001") == [("escalated", 1), ("overdue", None)]
    # two days later: LATE001 73 h overdue -> regional head; SOON001 24 h overdue -> OPD head
    assert escalate_once(engine, seeded, NOW + timedelta(days=2))["escalated"] == 2
    assert _events(engine, "LATE001")[-1] == ("escalated", 3)
    assert _events(engine, "SOON001")[-1] == ("escalated", 2)
    # EARLY01: 3 of 5 days elapsed is below the 75% reminder point; at 4 days it is reminded
    assert _events(engine, "EARLY01") == []
    escalate_once(engine, seeded, NOW + timedelta(days=3))
    assert _events(engine, "EARLY01") == [("escalated", 1)]


def test_many_processes_step_each_level_once(engine, seeded):
    with session_scope() as s:
        for i in range(30):
            _t(s, f"RACE{i:03d}", "PUPR", timedelta(days=7), -timedelta(hours=25))
    barrier = threading.Barrier(4)
    results = []

    def run():
        barrier.wait()
        results.append(escalate_once(engine, seeded, NOW))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["escalated"] for r in results) == 30
    assert sum(r["overdue"] for r in results) == 30
    with Session(engine) as s:
        evs = Counter((e.ticket_id, e.kind, (e.data or {}).get("level"))
                      for e in s.scalars(select(TicketEvent)))
        outs = Counter((o.ticket_id, o.kind) for o in s.scalars(select(Outbox)))
    assert set(evs.values()) == {1} and len(evs) == 30 * 3  # overdue, level 1, level 2: once each
    assert set(outs.values()) == {1} and len(outs) == 30 * 2  # one reminder, one head e-mail each


def test_job_is_registered():
    """hub.wiring wires hub.escalation's periodic job into every app and worker."""
    from hub.escalation import escalation_job, feature
    from hub.parts import Periodic
    from hub.settings import get_settings
    from hub.wiring import FEATURES, wire

    assert feature in FEATURES
    assert Periodic("sla_escalation", get_settings().escalation_interval_s, escalation_job) in wire(get_settings()).periodic
