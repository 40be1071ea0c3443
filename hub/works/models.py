"""Tables of the public-works register (issue #16): projects (RUP), tenders, contracts, their
change history, progress and payment events, red flags, citizens' reports linked to projects,
and the scope of contractor API keys.

Money is stored as whole sen (BigInteger, rupiah x 100): exact on SQLite and PostgreSQL alike;
hub.works.money turns it into Decimal rupiah. Officials' personal fields (NIP, bank accounts)
have no column here on purpose: the importer drops them (hub/works/importer.py).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.models import utcnow


def _money() -> Any:
    return Field(default=None, sa_column=Column(BigInteger, nullable=True))


class WorksProject(SQLModel, table=True):
    """A package of the procurement plan (RUP): one kd_rup."""

    __tablename__ = "works_projects"
    __table_args__ = (Index("ix_works_projects_opd", "opd_code"), Index("ix_works_projects_kec", "kecamatan_code"))
    id: Optional[int] = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True)  # kd_rup
    name: str = Field(sa_column=Column(Text, nullable=False))
    opd_code: Optional[str] = Field(default=None, max_length=32)  # executor (satker) as an OPD code
    satker: Optional[str] = Field(default=None, max_length=300)  # the satker's name as the file gives it
    ppk: Optional[str] = Field(default=None, max_length=200)  # PPK's name (public in SiRUP); never a NIP
    kecamatan_code: Optional[str] = Field(default=None, max_length=16)
    desa_code: Optional[str] = Field(default=None, max_length=20)
    location_text: Optional[str] = Field(default=None, sa_column=Column(Text))
    latitude: Optional[float] = None
    longitude: Optional[float] = None
    line: Optional[list[list[float]]] = Field(default=None, sa_column=Column(JSON, nullable=True))  # [[lat, lon], ...]
    buffer_m: Optional[float] = None  # half-width of a road line
    funding_source: Optional[str] = Field(default=None, max_length=60)  # APBD, DAK, Dana Desa, ...
    fiscal_year: Optional[int] = None
    pagu_sen: Optional[int] = _money()
    method: Optional[str] = Field(default=None, max_length=80)  # metode_pengadaan
    planned_start: Optional[date] = None
    planned_end: Optional[date] = None
    schedule: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WorksTender(SQLModel, table=True):
    """A tender result (SPSE): one kd_tender, joined to its RUP package by kd_rup."""

    __tablename__ = "works_tenders"
    id: Optional[int] = Field(default=None, primary_key=True)
    kd_tender: str = Field(max_length=40, unique=True)
    kd_rup: Optional[str] = Field(default=None, max_length=40, index=True)
    name: Optional[str] = Field(default=None, sa_column=Column(Text))
    pagu_sen: Optional[int] = _money()
    hps_sen: Optional[int] = _money()
    value_sen: Optional[int] = _money()
    winner_name: Optional[str] = Field(default=None, max_length=300)
    winner_npwp: Optional[str] = Field(default=None, max_length=32)
    award_date: Optional[date] = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WorksContract(SQLModel, table=True):
    """A contract (e-kontrak): one no_kontrak, joined to its tender by kd_tender (or kd_rup)."""

    __tablename__ = "works_contracts"
    __table_args__ = (Index("ix_works_contracts_npwp", "winner_npwp"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    number: str = Field(max_length=120, unique=True)  # no_kontrak
    kd_tender: Optional[str] = Field(default=None, max_length=40, index=True)
    kd_rup: Optional[str] = Field(default=None, max_length=40, index=True)
    value_sen: Optional[int] = _money()  # current value (after addenda)
    original_value_sen: Optional[int] = _money()
    winner_name: Optional[str] = Field(default=None, max_length=300)
    winner_npwp: Optional[str] = Field(default=None, max_length=32)
    signed_on: Optional[date] = None
    start_on: Optional[date] = None  # SPMK
    planned_end: Optional[date] = None  # current (after addenda)
    original_end: Optional[date] = None
    bast_on: Optional[date] = None  # provisional hand-over (PHO)
    terminated: bool = False
    addenda: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    schedule: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WorksHistory(SQLModel, table=True):
    """Every change of a project, tender or contract: who, when, from which file row, old -> new."""

    __tablename__ = "works_history"
    __table_args__ = (Index("ix_works_history_entity", "entity", "entity_key"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    entity: str = Field(max_length=16)  # project | tender | contract
    entity_key: str = Field(max_length=120)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=120)
    kind: str = Field(max_length=16)  # created | updated
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    source: Optional[str] = Field(default=None, max_length=300)


class WorksProgress(SQLModel, table=True):
    """A physical progress report. Never updated: a correction is a new row naming the old one."""

    __tablename__ = "works_progress"
    __table_args__ = (Index("ix_works_progress_contract", "contract_id", "as_of"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    contract_id: int = Field(foreign_key="works_contracts.id")
    pct: float
    as_of: date
    note: Optional[str] = Field(default=None, sa_column=Column(Text))
    photos: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    actor: str = Field(max_length=120)
    at: datetime = Field(default_factory=utcnow)
    corrects_id: Optional[int] = Field(default=None, foreign_key="works_progress.id")
    source: str = Field(default="api", max_length=120)  # api | form | import:<file>:<row>


class WorksPayment(SQLModel, table=True):
    """A disbursement. Never updated: a correction is a new row naming the old one
    (amount 0 cancels it)."""

    __tablename__ = "works_payments"
    __table_args__ = (Index("ix_works_payments_contract", "contract_id", "paid_on"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    contract_id: int = Field(foreign_key="works_contracts.id")
    amount_sen: int = Field(sa_column=Column(BigInteger, nullable=False))
    paid_on: date
    term: str = Field(max_length=20)  # uang_muka | termin | retensi
    term_no: Optional[int] = None
    note: Optional[str] = Field(default=None, sa_column=Column(Text))
    actor: str = Field(max_length=120)
    at: datetime = Field(default_factory=utcnow)
    corrects_id: Optional[int] = Field(default=None, foreign_key="works_payments.id")
    source: str = Field(default="api", max_length=120)


class WorksFlag(SQLModel, table=True):
    """A red flag of one rule on one contract (or project). One open flag per (contract, rule);
    it names its numbers and sources, is worked as a ticket (escalation), and closes only with
    a reason."""

    __tablename__ = "works_flags"
    __table_args__ = (Index("ix_works_flags_open", "state", "rule"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="works_projects.id", index=True)
    contract_id: Optional[int] = Field(default=None, foreign_key="works_contracts.id", index=True)
    rule: str = Field(max_length=40)
    state: str = Field(default="open", max_length=10)  # open | closed
    message: str = Field(sa_column=Column(Text, nullable=False))
    numbers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    sources: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    still_true: bool = True  # the condition held at the last computation
    opened_at: datetime = Field(default_factory=utcnow)
    checked_at: datetime = Field(default_factory=utcnow)
    closed_at: Optional[datetime] = None
    closed_by: Optional[str] = Field(default=None, max_length=120)
    close_reason: Optional[str] = Field(default=None, sa_column=Column(Text))
    ticket_id: Optional[int] = Field(default=None, foreign_key="tickets.id")


class WorksReport(SQLModel, table=True):
    """A citizen's ticket linked to a project (by code, name or distance; staff can relink)."""

    __tablename__ = "works_reports"
    id: Optional[int] = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", unique=True)
    project_id: int = Field(foreign_key="works_projects.id", index=True)
    method: str = Field(max_length=16)  # code | name | distance | manual
    distance_m: Optional[float] = None
    no_work_claim: bool = False  # the citizen says nothing is being built
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(default="system", max_length=120)


class WorksContractorKey(SQLModel, table=True):
    """Scope of a contractor API key (api_keys.role = 'contractor'): the contracts won by this NPWP."""

    __tablename__ = "works_contractor_keys"
    __table_args__ = (UniqueConstraint("key_prefix"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    key_prefix: str = Field(max_length=16)
    npwp: str = Field(max_length=32, index=True)
