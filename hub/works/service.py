"""State changes of the works register: progress and payment events (corrections never
overwrite), addenda, red flags (filed as tickets of the executing OPD so they escalate through
the SLA machinery, copied to the Inspektorat, closed only with a reason), and the projects'
derived status. HTTP routes, pages, the CLI and the periodic job call these."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlmodel import Session

from hub import tickets as T
from hub.codes import new_code
from hub.config import RegencyConfig
from hub.logging import get_logger
from hub.models import OPEN_STATUSES, Opd, RawMessage, Status, Ticket, utcnow
from hub.outbox import enqueue
from hub.sla import WorkCalendar, compute_due
from hub.works import curve
from hub.works.flags import RULES, Facts, Thresholds, evaluate
from hub.works.models import (WorksContract, WorksFlag, WorksHistory, WorksPayment, WorksProgress,
                              WorksProject, WorksReport, WorksTender)
from hub.works.settings import WorksSettings, works_settings

log = get_logger(__name__)
TERMS = ("uang_muka", "termin", "retensi")
STATUS_LABELS = {"perencanaan": "Perencanaan", "tender": "Tender", "berkontrak": "Berkontrak",
                 "pelaksanaan": "Pelaksanaan", "kritis": "Kritis", "selesai": "Selesai (BAST)",
                 "putus": "Putus kontrak"}


class WorksError(Exception):
    status_code = 400


class WorksNotFound(WorksError):
    status_code = 404


class ScheduleInvalid(WorksError):
    status_code = 422


def today_local(cfg: RegencyConfig) -> date:
    tz = ZoneInfo((cfg.sla or {}).get("timezone", "Asia/Jakarta"))
    return datetime.now(timezone.utc).astimezone(tz).date()


# --- reading --------------------------------------------------------------------------------

def effective(rows: Iterable[Any]) -> list[Any]:
    """Rows not replaced by a later correction (a correction names the row it replaces)."""
    rows = list(rows)
    replaced = {r.corrects_id for r in rows if r.corrects_id}
    return [r for r in rows if r.id not in replaced]


def progress_rows(s: Session, contract_id: int) -> list[WorksProgress]:
    return list(s.scalars(select(WorksProgress).where(WorksProgress.contract_id == contract_id)
                          .order_by(WorksProgress.as_of, WorksProgress.id)))


def payment_rows(s: Session, contract_id: int) -> list[WorksPayment]:
    return list(s.scalars(select(WorksPayment).where(WorksPayment.contract_id == contract_id)
                          .order_by(WorksPayment.paid_on, WorksPayment.id)))


def series(rows: list[WorksProgress]) -> list[tuple[date, float]]:
    return [(r.as_of, r.pct) for r in effective(rows)]


def tender_of(s: Session, c: WorksContract | None, project: WorksProject | None = None) -> WorksTender | None:
    if c is not None and c.kd_tender:
        t = s.scalars(select(WorksTender).where(WorksTender.kd_tender == c.kd_tender)).first()
        if t is not None:
            return t
    code = (c.kd_rup if c is not None else None) or (project.code if project else None)
    if code:
        return s.scalars(select(WorksTender).where(WorksTender.kd_rup == code).order_by(WorksTender.id.desc())).first()
    return None


def contracts_of(s: Session, p: WorksProject) -> list[WorksContract]:
    tenders = list(s.scalars(select(WorksTender.kd_tender).where(WorksTender.kd_rup == p.code)))
    cond = [WorksContract.kd_rup == p.code]
    if tenders:
        cond.append(WorksContract.kd_tender.in_(tenders))
    return list(s.scalars(select(WorksContract).where(or_(*cond)).order_by(WorksContract.id)))


def project_of(s: Session, c: WorksContract) -> WorksProject | None:
    code = c.kd_rup
    if not code and c.kd_tender:
        t = s.scalars(select(WorksTender).where(WorksTender.kd_tender == c.kd_tender)).first()
        code = t.kd_rup if t else None
    return s.scalars(select(WorksProject).where(WorksProject.code == code)).first() if code else None


def schedule_items(c: WorksContract | None, p: WorksProject | None) -> list[curve.Item]:
    return curve.items_from((c.schedule if c is not None and c.schedule else None) or (p.schedule if p else None) or [])


def plan_at(d: date, c: WorksContract, p: WorksProject | None) -> float | None:
    return curve.planned_pct(d, c.start_on, c.planned_end, schedule_items(c, p))


def project_status(s: Session, p: WorksProject, today: date) -> str:
    cs = contracts_of(s, p)
    if not cs:
        t = tender_of(s, None, p)
        return "tender" if t is not None else "perencanaan"
    c = cs[-1]
    if c.terminated:
        return "putus"
    if c.bast_on:
        return "selesai"
    if s.scalars(select(WorksFlag.id).where(WorksFlag.contract_id == c.id, WorksFlag.rule == "kontrak_kritis",
                                            WorksFlag.state == "open")).first():
        return "kritis"
    if s.scalars(select(WorksProgress.id).where(WorksProgress.contract_id == c.id)).first():
        return "pelaksanaan"
    return "berkontrak"


# --- progress, payments, addenda ------------------------------------------------------------

def _contract(s: Session, number_or_id: str | int) -> WorksContract:
    if isinstance(number_or_id, int):
        c = s.get(WorksContract, number_or_id)
    else:
        c = s.scalars(select(WorksContract).where(WorksContract.number == number_or_id)).first()
    if c is None:
        raise WorksNotFound(f"kontrak {number_or_id} tidak ditemukan")
    return c


def _check_correction(s: Session, model, contract_id: int, corrects_id: int | None) -> None:
    if corrects_id is None:
        return
    old = s.get(model, corrects_id)
    if old is None or old.contract_id != contract_id:
        raise WorksError(f"laporan {corrects_id} yang dikoreksi tidak ada pada kontrak ini")
    if s.scalars(select(model.id).where(model.corrects_id == corrects_id)).first() is not None:
        raise WorksError(f"laporan {corrects_id} sudah dikoreksi; koreksi laporan koreksinya")


def record_progress(s: Session, c: WorksContract, pct: float, as_of: date, actor: str, note: str | None = None,
                    photos: list[str] | None = None, corrects_id: int | None = None, source: str = "api",
                    today: date | None = None) -> WorksProgress:
    if pct is None or not (0 <= float(pct) <= 100):
        raise WorksError("progres harus 0-100 %")
    if today is not None and as_of > today + timedelta(days=1):
        raise WorksError("tanggal progres tidak boleh di masa depan")
    if c.start_on and as_of < c.start_on - timedelta(days=31):
        raise WorksError("tanggal progres jauh sebelum SPMK")
    _check_correction(s, WorksProgress, c.id, corrects_id)
    row = WorksProgress(contract_id=c.id, pct=float(pct), as_of=as_of, note=(note or None), photos=photos or [],
                        actor=actor, corrects_id=corrects_id, source=source)
    s.add(row)
    s.flush([row])
    return row


def record_payment(s: Session, c: WorksContract, amount_sen: int, paid_on: date, term: str, actor: str,
                   term_no: int | None = None, note: str | None = None, corrects_id: int | None = None,
                   source: str = "api") -> WorksPayment:
    if term not in TERMS:
        raise WorksError(f"jenis pembayaran harus salah satu dari {', '.join(TERMS)}")
    if amount_sen is None or amount_sen < 0 or (amount_sen == 0 and corrects_id is None):
        raise WorksError("jumlah pembayaran harus lebih dari 0 (0 hanya untuk membatalkan lewat koreksi)")
    _check_correction(s, WorksPayment, c.id, corrects_id)
    row = WorksPayment(contract_id=c.id, amount_sen=int(amount_sen), paid_on=paid_on, term=term, term_no=term_no,
                       note=note or None, actor=actor, corrects_id=corrects_id, source=source)
    s.add(row)
    s.flush([row])
    return row


def add_addendum(s: Session, c: WorksContract, actor: str, number: str | None = None, signed_on: date | None = None,
                 new_value_sen: int | None = None, new_end: date | None = None, reason: str | None = None) -> dict:
    if new_value_sen is None and new_end is None:
        raise WorksError("adendum harus mengubah nilai atau tanggal selesai")
    entry = {"number": number, "signed_on": signed_on.isoformat() if signed_on else None, "reason": reason,
             "value_delta_sen": (new_value_sen - (c.value_sen or 0)) if new_value_sen is not None else 0,
             "days": (new_end - c.planned_end).days if new_end is not None and c.planned_end else 0,
             "actor": actor, "at": utcnow().isoformat()}
    changes = {}
    if new_value_sen is not None:
        changes["value_sen"] = [c.value_sen, new_value_sen]
        c.value_sen = new_value_sen
    if new_end is not None:
        changes["planned_end"] = [c.planned_end.isoformat() if c.planned_end else None, new_end.isoformat()]
        c.planned_end = new_end
    c.addenda = [*(c.addenda or []), entry]
    c.updated_at = utcnow()
    s.add(c)
    s.add(WorksHistory(entity="contract", entity_key=c.number, actor=actor, kind="addendum", changes=changes,
                       source=number))
    return entry


def _schedule_item(it: dict[str, Any]) -> dict[str, Any]:
    name = " ".join(str(it.get("name") or "").split())[:200]
    try:
        weight = round(float(it.get("weight")), 4)
        start, end = curve._d(it.get("start")), curve._d(it.get("end"))
    except (TypeError, ValueError):
        raise ScheduleInvalid(f"item jadwal {name or '-'!r}: bobot atau tanggal tidak terbaca") from None
    if not name:
        raise ScheduleInvalid("item jadwal tanpa nama")
    if weight <= 0:
        raise ScheduleInvalid(f"item jadwal {name!r}: bobot harus lebih dari 0")
    if end < start:
        raise ScheduleInvalid(f"item jadwal {name!r} selesai sebelum mulai")
    return {"name": name, "weight": weight, "start": start.isoformat(), "end": end.isoformat()}


def set_schedule(s: Session, c: WorksContract, items: Iterable[dict[str, Any]], actor: str,
                 source: str | None = None) -> bool:
    """Replace the contract's weighted schedule (the planned S-curve). One history row (old ->
    new) when it changed; the same schedule again changes nothing. The API's PUT and
    `simpul works import jadwal` both come here. True when it changed."""
    new = [_schedule_item(dict(it)) for it in items]
    if new == _normalized(c.schedule):
        return False
    s.add(WorksHistory(entity="contract", entity_key=c.number, actor=actor, kind="schedule",
                       changes={"schedule": [c.schedule, new]}, source=source))
    c.schedule = new
    c.updated_at = utcnow()
    s.add(c)
    return True


def _normalized(schedule: Any) -> list[dict[str, Any]] | None:
    """The stored schedule in set_schedule's form, or None when it is not readable as one."""
    try:
        return [_schedule_item(dict(it)) for it in (schedule or [])]
    except (ScheduleInvalid, TypeError, ValueError):
        return None


# --- red flags --------------------------------------------------------------------------------

def _working_days_between(cal: WorkCalendar, after: date, until: date) -> int:
    n, d = 0, after
    while d < until:
        d += timedelta(days=1)
        if cal.is_working_day(d):
            n += 1
    return n


def facts(s: Session, c: WorksContract, p: WorksProject | None, today: date, cal: WorkCalendar) -> Facts:
    prog = effective(progress_rows(s, c.id))
    pays = effective(payment_rows(s, c.id))
    ser = [(r.as_of, r.pct) for r in prog]
    last = max(prog, key=lambda r: (r.as_of, r.id), default=None)
    t = tender_of(s, c, p)
    claims = []
    if p is not None:
        claims = list(s.scalars(select(Ticket.code).join(WorksReport, WorksReport.ticket_id == Ticket.id)
                                .where(WorksReport.project_id == p.id, WorksReport.no_work_claim.is_(True),
                                       Ticket.status.in_(OPEN_STATUSES))))
    silent_since = last.as_of if last else c.start_on
    return Facts(
        number=c.number, today=today, value_sen=c.value_sen, hps_sen=t.hps_sen if t else None,
        start=c.start_on, planned_end=c.planned_end, bast_on=c.bast_on, terminated=c.terminated,
        fiscal_year=(p.fiscal_year if p and p.fiscal_year else (c.start_on.year if c.start_on else None)),
        plan_pct=plan_at(today, c, p), actual_pct=curve.actual_at(today, ser),
        last_report=last.as_of if last else None,
        last_report_source=(f"laporan progres #{last.id} oleh {last.actor} ({last.as_of.isoformat()})" if last else None),
        projected_end=curve.projected_end(c.start_on, [x for x in ser if x[0] <= today]),
        paid_sen=sum(r.amount_sen for r in pays), advance_sen=sum(r.amount_sen for r in pays if r.term == "uang_muka"),
        payment_sources=[f"pembayaran #{r.id} {r.term} oleh {r.actor}" for r in pays][:10],
        addenda=list(c.addenda or []),
        working_days_silent=(_working_days_between(cal, silent_since, today) if silent_since and silent_since <= today
                             else None),
        no_work_claims=claims)


def thresholds(ws: WorksSettings) -> Thresholds:
    return Thresholds(paid_ahead_margin_pct=ws.paid_ahead_margin_pct, silent_working_days=ws.silent_working_days,
                      claim_vs_ground_pct=ws.claim_vs_ground_pct, addenda_min_count=ws.addenda_min_count)


def _executor(p: WorksProject | None, cfg: RegencyConfig) -> str:
    codes = cfg.opd_codes()
    if p is not None and p.opd_code in codes:
        return p.opd_code
    return "PUPR" if "PUPR" in codes else cfg.triage_opd


def copy_to_inspektorat(s: Session, ticket: Ticket, ws: WorksSettings, event: str) -> str | None:
    """The Inspektorat hears of it: the copy is an event on the ticket and, when the
    Inspektorat's system takes deliveries, an outbox row to it (pull: it reads the works API)."""
    target = ws.copy_to
    opd = s.get(Opd, target)
    if opd is None:
        return None
    kind = (opd.delivery or {}).get("type", "pull")
    if kind != "pull":
        enqueue(s, "deliver", target, {"event": event, "code": ticket.code, "type": kind, "copy": True},
                ticket_id=ticket.id)
    T.add_event(s, ticket, "system:works", "note", note=f"Tembusan ke {opd.name}", data={"copy_to": target})
    return target


def _flag_ticket(s: Session, flag: WorksFlag, p: WorksProject | None, c: WorksContract, cfg: RegencyConfig,
                 ws: WorksSettings, now: datetime) -> Ticket:
    opd = _executor(p, cfg)
    code = new_code()
    name = p.name if p else c.number
    text = f"[Bendera merah] {RULES[flag.rule]} - {name} (kontrak {c.number}). {flag.message}"
    raw = RawMessage(idempotency_key=f"works:flag:{flag.id}", ticket_code=code, channel="works",
                     provider_id=f"flag-{flag.id}", text=text, message={"works_flag": flag.id}, received_at=now,
                     state="done")
    s.add(raw)
    s.flush([raw])
    t = Ticket(code=code, raw_message_id=raw.id, channel="works", channel_message_id=f"flag-{flag.id}",
               text_original=text, text_clean=text, fields={"works_flag": flag.id, "rule": flag.rule,
                                                            "project": p.code if p else None, "contract": c.number},
               kecamatan_code=p.kecamatan_code if p else None, desa_code=p.desa_code if p else None,
               latitude=p.latitude if p else None, longitude=p.longitude if p else None,
               category="Pengawasan Proyek", subcategory=RULES[flag.rule], urgency=ws.flag_urgency,
               opd_code=opd, routing_confidence=1.0, routing_rule=f"works:flag:{flag.rule}",
               due_at=compute_due(cfg.sla, ws.flag_urgency, None, now), created_at=now, updated_at=now)
    s.add(t)
    s.flush([t])
    T.add_event(s, t, "system:works", "received", to_status=Status.MENUNGGU.value, note=flag.message,
                data={"flag": flag.id, "numbers": flag.numbers, "sources": flag.sources})
    T.add_event(s, t, "system:works", "routed", to_opd=opd, note="OPD pelaksana proyek")
    T.queue_delivery(s, t, "ticket.created")
    copy_to_inspektorat(s, t, ws, "ticket.created")
    return t


def recompute_flags(s: Session, cfg: RegencyConfig, today: date | None = None,
                    contract_ids: list[int] | None = None, tickets: bool = True) -> dict[str, int]:
    """Evaluate every rule on (some) contracts and file the flags. An open flag is refreshed;
    a flag whose condition cleared stays open (still_true false) until someone closes it with a
    reason; after a close the rule reopens only once the condition has cleared in between."""
    ws = works_settings(cfg)
    th = thresholds(ws)
    today = today or today_local(cfg)
    cal = WorkCalendar(cfg.sla)
    now = utcnow()
    q = select(WorksContract).order_by(WorksContract.id)
    if contract_ids is not None:
        q = q.where(WorksContract.id.in_(contract_ids))
    stats = {"opened": 0, "refreshed": 0, "cleared": 0}
    for c in list(s.scalars(q)):
        p = project_of(s, c)
        found = {f.rule: f for f in evaluate(facts(s, c, p, today, cal), th)}
        latest: dict[str, WorksFlag] = {}
        for f in s.scalars(select(WorksFlag).where(WorksFlag.contract_id == c.id).order_by(WorksFlag.id)):
            latest[f.rule] = f
        for rule, old in latest.items():
            if rule not in found and old.still_true:
                old.still_true, old.checked_at = False, now
                s.add(old)
                stats["cleared"] += 1
        for rule, new in found.items():
            old = latest.get(rule)
            if old is not None and (old.state == "open" or old.still_true):
                old.message, old.numbers, old.sources = new.message, new.numbers, new.sources
                old.still_true, old.checked_at = True, now
                s.add(old)
                stats["refreshed"] += 1
                continue
            if p is None:
                continue  # a contract whose plan is not imported yet: nothing to route it by
            flag = WorksFlag(project_id=p.id, contract_id=c.id, rule=rule, message=new.message,
                             numbers=new.numbers, sources=new.sources, opened_at=now, checked_at=now)
            s.add(flag)
            s.flush([flag])
            if tickets:
                flag.ticket_id = _flag_ticket(s, flag, p, c, cfg, ws, now).id
                s.add(flag)
            stats["opened"] += 1
            log.info("works.flag_opened", rule=rule, contract=c.number, project=p.code)
    return stats


def recompute_all(engine, cfg: RegencyConfig, today: date | None = None, chunk: int = 10) -> dict[str, int]:
    """recompute_flags over every contract in short write transactions (`chunk` contracts
    each): on SQLite a write transaction holds the one write lock, and intake must not wait
    behind a whole pass."""
    from hub.db import writer

    with Session(engine) as r:
        ids = list(r.scalars(select(WorksContract.id).order_by(WorksContract.id)))
    total = {"opened": 0, "refreshed": 0, "cleared": 0}
    for i in range(0, len(ids), chunk):
        with Session(writer(engine)) as s:
            for k, v in recompute_flags(s, cfg, today=today, contract_ids=ids[i:i + chunk]).items():
                total[k] += v
            s.commit()
    return total


def close_flag(s: Session, flag_id: int, actor: str, reason: str | None, cfg: RegencyConfig) -> WorksFlag:
    reason = (reason or "").strip()
    if len(reason) < 5:
        raise WorksError("bendera hanya dapat ditutup dengan alasan (minimal 5 huruf)")
    flag = s.get(WorksFlag, flag_id)
    if flag is None:
        raise WorksNotFound(f"bendera {flag_id} tidak ditemukan")
    if flag.state != "open":
        raise WorksError(f"bendera {flag_id} sudah ditutup")
    flag.state, flag.closed_at, flag.closed_by, flag.close_reason = "closed", utcnow(), actor, reason
    s.add(flag)
    if flag.ticket_id:
        t = s.get(Ticket, flag.ticket_id)
        if t is not None and t.status in OPEN_STATUSES:
            T.change_status(s, t, Status.SELESAI.value, actor, cfg, note=f"Bendera ditutup: {reason}")
    return flag


def flag_dict(f: WorksFlag, ticket_code: str | None = None) -> dict[str, Any]:
    return {"id": f.id, "rule": f.rule, "label": RULES.get(f.rule, f.rule), "state": f.state, "message": f.message,
            "numbers": f.numbers, "sources": f.sources, "still_true": f.still_true,
            "opened_at": f.opened_at.isoformat(), "closed_at": f.closed_at.isoformat() if f.closed_at else None,
            "closed_by": f.closed_by, "close_reason": f.close_reason, "ticket": ticket_code}


@dataclass
class ContractView:
    contract: WorksContract
    tender: WorksTender | None
    progress: list[WorksProgress]
    payments: list[WorksPayment]
    plan_today: float | None
    actual: float
    paid_sen: int


def contract_view(s: Session, c: WorksContract, p: WorksProject | None, today: date) -> ContractView:
    prog, pays = progress_rows(s, c.id), payment_rows(s, c.id)
    return ContractView(c, tender_of(s, c, p), prog, pays, plan_at(today, c, p), curve.actual_at(today, series(prog)),
                        sum(r.amount_sen for r in effective(pays)))
