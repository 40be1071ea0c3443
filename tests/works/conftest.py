"""Fixtures of the works tests: a small register (plan, tender, contract) in the test database."""
from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session


def make_project(s: Session, code: str = "41000000", opd: str = "PUPR", number: str | None = "027/1/406.011/2026",
                 value: int = 1_000_000_000, hps: int | None = 1_100_000_000, start: date = date(2026, 3, 2),
                 end: date = date(2026, 8, 29), npwp: str = "012345678654000", lat: float | None = -8.05,
                 lon: float | None = 111.71, line=None, buffer_m=None, name: str | None = None,
                 kec: str = "35.03.11", year: int = 2026):
    from hub.works.models import WorksContract, WorksProject, WorksTender

    p = WorksProject(code=code, name=name or f"Rehabilitasi Jalan Ruas Ngadirejo Sumberingin {code}", opd_code=opd,
                     kecamatan_code=kec, latitude=lat, longitude=lon, line=line, buffer_m=buffer_m,
                     funding_source="APBD", fiscal_year=year, pagu_sen=(hps or value) * 100 + 5_000_000_00,
                     planned_start=start, planned_end=end, method="Tender")
    s.add(p)
    t = WorksTender(kd_tender="9" + code, kd_rup=code, hps_sen=hps * 100 if hps else None, value_sen=value * 100,
                    winner_name="CV Maju Jaya", winner_npwp=npwp, award_date=start)
    s.add(t)
    c = None
    if number:
        c = WorksContract(number=number, kd_tender="9" + code, kd_rup=code, value_sen=value * 100,
                          original_value_sen=value * 100, winner_name="CV Maju Jaya", winner_npwp=npwp,
                          signed_on=start, start_on=start, planned_end=end, original_end=end)
        s.add(c)
    s.flush()
    return p, t, c


@pytest.fixture
def register(engine, seeded):
    from hub.db import session_scope

    with session_scope() as s:
        make_project(s)
        make_project(s, code="41000007", opd="PKPP", number="027/2/406.011/2026", npwp="023456789654000",
                     lat=-8.10, lon=111.60)
    return seeded
