"""Works API (/api/v1/works): contractors report physical progress with a contractor key that
sees only the contracts won by its NPWP; the budget executor (an OPD key or user) reports
disbursements and addenda; red flags are listed and closed with a reason. Every report is an
event with who and when; a correction is a new report naming the one it replaces."""
from __future__ import annotations

import hmac
import secrets
from datetime import date
from typing import Any, Callable, Optional

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import Session

from hub.api.deps import db_session, principal, write_session
from hub.auth import Principal, _key_hash, presented_key
from hub import tickets as T
from hub.models import ApiKey, Ticket
from hub.works import parse as P
from hub.works.models import WorksContract, WorksContractorKey, WorksFlag
from hub.works import service as W

router = APIRouter(prefix="/api/v1/works", tags=["works"])
READ_ALL = ("admin", "pimpinan", "operator")
CONTRACTOR = "contractor"


def create_contractor_key(s: Session, name: str, npwp: str) -> str:
    """A key of role 'contractor' scoped to one NPWP (table works_contractor_keys).

    It is written 'ck_<prefix>_<secret>': the hub's general key check (hub.auth) only accepts
    'sk_' keys, so a contractor key opens the works API and nothing else (the ticket API lets
    every key role but 'opd' read all tickets)."""
    digits = P.npwp(npwp)
    prefix = secrets.token_hex(4)
    full = f"ck_{prefix}_{secrets.token_urlsafe(24)}"
    s.add(ApiKey(prefix=prefix, key_hash=_key_hash(full), name=name, role=CONTRACTOR))
    s.add(WorksContractorKey(key_prefix=prefix, npwp=digits))
    return full


def contractor_for_key(s: Session, key: str | None) -> tuple[Principal, str] | None:
    """(principal, NPWP) of a valid, unrevoked contractor key, else None."""
    parts = (key or "").strip().split("_")
    if len(parts) < 3 or parts[0] != "ck":
        return None
    row = s.scalars(select(ApiKey).where(ApiKey.prefix == parts[1])).first()
    if row is None or row.revoked_at is not None or row.role != CONTRACTOR:
        return None
    if not hmac.compare_digest(row.key_hash, _key_hash(key.strip())):
        return None
    npwp = s.scalars(select(WorksContractorKey.npwp).where(WorksContractorKey.key_prefix == parts[1])).first()
    if npwp is None:
        return None
    return Principal(kind="key", name=row.name, role=CONTRACTOR), npwp


async def works_principal(request: Request) -> Principal:
    key = presented_key(request)
    if key and key.strip().startswith("ck_"):
        from hub.db import get_engine

        with Session(get_engine()) as s:
            found = contractor_for_key(s, key)
        if found is None:
            raise HTTPException(401, "invalid or revoked contractor key")
        request.state.works_npwp = found[1]
        return found[0]
    return await principal(request)


class Who:
    """The caller and what it may see of the works register."""

    def __init__(self, p: Principal, npwp: str | None, inspektorat: str):
        self.p, self.npwp, self.inspektorat = p, npwp, inspektorat

    @property
    def sees_all(self) -> bool:
        return self.p.role in READ_ALL or (self.p.role == "opd" and self.p.opd_code == self.inspektorat)

    def may_see(self, s: Session, c: WorksContract) -> bool:
        if self.sees_all:
            return True
        if self.p.role == CONTRACTOR:
            return bool(self.npwp) and c.winner_npwp == self.npwp
        if self.p.role == "opd":
            proj = W.project_of(s, c)
            return proj is not None and proj.opd_code == self.p.opd_code
        return False


def _who(request: Request, s: Session, p: Principal) -> Who:
    from hub.works.settings import works_settings

    npwp = getattr(request.state, "works_npwp", None) if p.role == CONTRACTOR else None
    return Who(p, npwp, works_settings(request.app.state.regency).copy_to)


def _contract(s: Session, who: Who, number: str) -> WorksContract:
    c = s.scalars(select(WorksContract).where(WorksContract.number == number)).first()
    if c is None or not who.may_see(s, c):
        raise HTTPException(404, f"kontrak {number} tidak ditemukan")  # same answer as another's contract
    return c


def _fail(exc: W.WorksError):
    raise HTTPException(exc.status_code, str(exc))


def contract_dict(s: Session, c: WorksContract, today: date) -> dict[str, Any]:
    p = W.project_of(s, c)
    v = W.contract_view(s, c, p, today)
    return {
        "number": c.number, "project": p.code if p else None, "project_name": p.name if p else None,
        "opd": p.opd_code if p else None, "kd_tender": c.kd_tender,
        "value": (c.value_sen or 0) / 100, "original_value": (c.original_value_sen or 0) / 100,
        "hps": (v.tender.hps_sen / 100) if v.tender and v.tender.hps_sen else None,
        "winner": {"name": c.winner_name, "npwp": c.winner_npwp},
        "signed_on": _iso(c.signed_on), "start_on": _iso(c.start_on), "planned_end": _iso(c.planned_end),
        "bast_on": _iso(c.bast_on), "addenda": c.addenda, "schedule": c.schedule,
        "plan_pct_today": v.plan_today, "actual_pct": v.actual, "paid": v.paid_sen / 100,
        "progress": [{"id": r.id, "pct": r.pct, "as_of": r.as_of.isoformat(), "note": r.note, "photos": r.photos,
                      "actor": r.actor, "at": r.at.isoformat(), "corrects": r.corrects_id, "source": r.source}
                     for r in v.progress],
        "payments": [{"id": r.id, "amount": r.amount_sen / 100, "paid_on": r.paid_on.isoformat(), "term": r.term,
                      "term_no": r.term_no, "actor": r.actor, "at": r.at.isoformat(), "corrects": r.corrects_id,
                      "source": r.source} for r in v.payments],
    }


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


@router.get("/contracts")
def list_contracts(request: Request, p: Principal = Depends(works_principal), s: Session = Depends(db_session)):
    who = _who(request, s, p)
    if p.role not in (*READ_ALL, "opd", CONTRACTOR):
        raise HTTPException(403, f"role {p.role} may not read contracts")
    q = select(WorksContract).order_by(WorksContract.id)
    if p.role == CONTRACTOR:
        q = q.where(WorksContract.winner_npwp == (who.npwp or "-"))
    today = W.today_local(request.app.state.regency)
    rows = [c for c in s.scalars(q) if who.may_see(s, c)]
    return {"contracts": [contract_dict(s, c, today) for c in rows]}


@router.get("/contracts/{number:path}")
def get_contract(number: str, request: Request, p: Principal = Depends(works_principal), s: Session = Depends(db_session)):
    who = _who(request, s, p)
    return contract_dict(s, _contract(s, who, number), W.today_local(request.app.state.regency))


class ProgressIn(BaseModel):
    pct: float = Field(ge=0, le=100)
    as_of: date
    note: Optional[str] = Field(default=None, max_length=2000)
    photos: list[str] = Field(default_factory=list, max_length=20)
    corrects: Optional[int] = None


class PaymentIn(BaseModel):
    amount: float | str
    paid_on: date
    term: str
    term_no: Optional[int] = None
    note: Optional[str] = Field(default=None, max_length=2000)
    corrects: Optional[int] = None


class AddendumIn(BaseModel):
    number: Optional[str] = Field(default=None, max_length=120)
    signed_on: Optional[date] = None
    new_value: Optional[float | str] = None
    new_end: Optional[date] = None
    reason: Optional[str] = Field(default=None, max_length=2000)


class ScheduleItem(BaseModel):
    name: str = Field(max_length=200)
    weight: float = Field(gt=0)
    start: date
    end: date


class CloseIn(BaseModel):
    reason: str = Field(min_length=5, max_length=2000)


def _after_change(s: Session, request: Request, c: WorksContract) -> None:
    W.recompute_flags(s, request.app.state.regency, contract_ids=[c.id])


def _contract_change(number: str, request: Request, p: Principal, s: Session, roles: tuple[str, ...],
                     refusal: str, act: Callable[[WorksContract], Any]) -> tuple[WorksContract, Any]:
    """One change to a contract by `roles`: the caller's own contract (404 otherwise), cell errors
    as 422, works rules as their status, then the project's map/index refresh and one commit."""
    who = _who(request, s, p)
    if p.role not in roles:
        raise HTTPException(403, refusal)
    c = _contract(s, who, number)
    try:
        result = act(c)
    except P.CellError as exc:
        raise HTTPException(422, str(exc))
    except W.WorksError as exc:
        _fail(exc)
    _after_change(s, request, c)
    s.commit()
    return c, result


@router.post("/contracts/{number:path}/progress", status_code=201)
def post_progress(number: str, body: ProgressIn, request: Request, p: Principal = Depends(works_principal),
                  s: Session = Depends(write_session)):
    """The contractor's physical progress (cumulative %). `corrects`: the id of the report it replaces."""
    c, row = _contract_change(
        number, request, p, s, (CONTRACTOR, "admin"), "only the contractor (contractor key) or an admin reports progress",
        lambda c: W.record_progress(s, c, body.pct, body.as_of, p.actor, body.note, body.photos, body.corrects,
                                    source="api", today=W.today_local(request.app.state.regency)))
    return {"id": row.id, "contract": c.number, "pct": row.pct, "as_of": row.as_of.isoformat(), "actor": row.actor,
            "at": row.at.isoformat(), "corrects": row.corrects_id}


@router.post("/contracts/{number:path}/payments", status_code=201)
def post_payment(number: str, body: PaymentIn, request: Request, p: Principal = Depends(works_principal),
                 s: Session = Depends(write_session)):
    """A disbursement by the budget executor (the project's OPD). amount in rupiah: 125000000 or "125.000.000,00"."""
    c, row = _contract_change(
        number, request, p, s, ("opd", "admin"), "only the budget executor (OPD) or an admin reports payments",
        lambda c: W.record_payment(s, c, P.sen(body.amount, "amount"), body.paid_on, body.term, p.actor,
                                   body.term_no, body.note, body.corrects, source="api"))
    return {"id": row.id, "contract": c.number, "amount": row.amount_sen / 100, "paid_on": row.paid_on.isoformat(),
            "term": row.term, "actor": row.actor, "at": row.at.isoformat(), "corrects": row.corrects_id}


@router.post("/contracts/{number:path}/addenda", status_code=201)
def post_addendum(number: str, body: AddendumIn, request: Request, p: Principal = Depends(works_principal),
                  s: Session = Depends(write_session)):
    """A contract addendum (new value and/or end date) by the OPD."""
    _c, entry = _contract_change(
        number, request, p, s, ("opd", "admin"), "only the OPD or an admin records addenda",
        lambda c: W.add_addendum(s, c, p.actor, body.number, body.signed_on,
                                 P.sen(body.new_value, "new_value") if body.new_value is not None else None,
                                 body.new_end, body.reason))
    return entry


@router.put("/contracts/{number:path}/schedule")
def put_schedule(number: str, items: list[ScheduleItem], request: Request, p: Principal = Depends(works_principal),
                 s: Session = Depends(write_session)):
    """The weighted schedule (time schedule / kurva S rencana) of a contract. The same schedule
    again changes nothing (no history row)."""
    c, changed = _contract_change(
        number, request, p, s, ("opd", "admin", CONTRACTOR), "role may not set the schedule",
        lambda c: W.set_schedule(s, c, [i.model_dump(mode="json") for i in items], p.actor, source="api"))
    return {"contract": c.number, "items": len(items), "changed": changed}


@router.get("/flags")
def list_flags(request: Request, state: str = "open", p: Principal = Depends(works_principal),
               s: Session = Depends(db_session)):
    who = _who(request, s, p)
    if p.role not in (*READ_ALL, "opd"):
        raise HTTPException(403, f"role {p.role} may not read flags")
    from hub.works.models import WorksProject

    q = select(WorksFlag, WorksProject.code, WorksProject.opd_code, Ticket.code).join(
        WorksProject, WorksProject.id == WorksFlag.project_id).outerjoin(Ticket, Ticket.id == WorksFlag.ticket_id)
    if state in ("open", "closed"):
        q = q.where(WorksFlag.state == state)
    if not who.sees_all:
        q = q.where(WorksProject.opd_code == p.opd_code)
    out = []
    for f, code, opd, tcode in s.execute(q.order_by(WorksFlag.id)):
        d = W.flag_dict(f, tcode)
        d.update(project=code, opd=opd)
        out.append(d)
    return {"flags": out}


@router.post("/flags/{flag_id}/close")
def close_flag(flag_id: int, body: CloseIn, request: Request, p: Principal = Depends(works_principal),
               s: Session = Depends(write_session)):
    who = _who(request, s, p)
    if p.role not in ("admin", "opd", "operator"):
        raise HTTPException(403, f"role {p.role} may not close flags")
    f = s.get(WorksFlag, flag_id)
    if f is None:
        raise HTTPException(404, "bendera tidak ditemukan")
    if not who.sees_all:
        from hub.works.models import WorksProject

        proj = s.get(WorksProject, f.project_id)
        if proj is None or proj.opd_code != p.opd_code:
            raise HTTPException(404, "bendera tidak ditemukan")
    try:
        f = W.close_flag(s, flag_id, p.actor, body.reason, request.app.state.regency)
    except W.WorksError as exc:
        _fail(exc)
    s.commit()
    return W.flag_dict(f)


class LinkIn(BaseModel):
    project: str = Field(max_length=40)


@router.post("/reports/{code}/link")
def relink(code: str, body: LinkIn, request: Request, p: Principal = Depends(works_principal),
           s: Session = Depends(write_session)):
    """Staff link (or relink) a citizen's ticket to a project."""
    if p.role not in ("admin", "operator", "opd"):
        raise HTTPException(403, f"role {p.role} may not link reports")
    from hub.works.linking import relink_ticket

    t = T.resolve_code(s, code)
    if t is None or not T.can_see(t, p):  # an OPD links only its own tickets; others' look absent
        raise HTTPException(404, f"ticket {code} not found")
    try:
        out = relink_ticket(s, code, body.project, p.actor, request.app.state.regency)
    except W.WorksError as exc:
        _fail(exc)
    s.commit()
    return out
