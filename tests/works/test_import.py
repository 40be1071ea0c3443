"""LKPP import: the three shapes, joined kd_rup -> kd_tender -> contract, idempotent with
history, personal columns dropped, Indonesian numbers and dates, row-numbered errors."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import inspect, select
from sqlmodel import Session

from hub.lines.hotline.importer import ImportError_
from hub.works import parse as P
from hub.works.importer import import_works, personal_column
from hub.works.models import (WorksContract, WorksHistory, WorksPayment, WorksProgress, WorksProject,
                              WorksTender)
from tests.works.lkpp import generate, write_csv, write_xlsx


def test_numbers_and_dates_as_offices_write_them():
    assert P.sen("1.250.000.000,00") == 125_000_000_000
    assert P.sen("Rp 1.250.000.000") == 125_000_000_000
    assert P.sen("1,250,000,000.50") == 125_000_000_050
    assert P.sen(1250000000.0) == 125_000_000_000
    assert P.sen("1.250") == 125_000
    assert P.percent("35,50") == 35.5 and P.percent("100%") == 100.0
    assert P.day("12/03/2026") == date(2026, 3, 12)
    assert P.day("12 Maret 2026") == date(2026, 3, 12)
    assert P.day("Kamis, 12 Maret 2026") == date(2026, 3, 12)
    assert P.day("2026-03-12") == date(2026, 3, 12)
    assert P.day("12-Mar-2026") == date(2026, 3, 12)
    assert P.npwp("01.234.567.8-654.000") == "012345678654000"
    with pytest.raises(P.CellError):
        P.day("besok")
    with pytest.raises(P.CellError):
        P.sen("satu juta")
    with pytest.raises(P.CellError):
        P.percent("120")


def test_personal_columns_are_recognised():
    for name in ("nip_ppk", "NIP PPK", "no_rekening_ppk", "nomor_rekening_penyedia", "Nama Bank", "nik_pejabat",
                 "npwp_ppk", "no_hp_ppk"):
        assert personal_column(name), name
    for name in ("npwp_penyedia", "nama_ppk", "kd_rup", "nilai_kontrak", "nama_penyedia"):
        assert not personal_column(name), name


def _files(tmp_path, plans=162):
    rup, tender, kontrak = generate(plans)
    return (write_csv(rup, tmp_path / "rup.csv"), write_csv(tender, tmp_path / "tender.csv"),
            write_xlsx(kontrak, tmp_path / "kontrak.xlsx"), len(rup) + len(tender) + len(kontrak))


def test_500_rows_twice_second_adds_nothing(engine, seeded, tmp_path):
    rup, tender, kontrak, total = _files(tmp_path)
    assert total >= 500
    first = [import_works(rup, "rup", seeded), import_works(tender, "tender", seeded),
             import_works(kontrak, "kontrak", seeded)]
    assert all(not r.bad for r in first), [r.bad[:3] for r in first]
    assert sum(r.rows for r in first) == total
    t = first[1]
    assert t.joined / t.rows >= 0.99 and not t.unjoined
    assert first[2].joined == first[2].added and not first[2].unjoined
    assert set(first[0].dropped_personal) == {"nip_ppk"}
    assert set(first[2].dropped_personal) == {"nip_pptk", "nomor_rekening_penyedia"}
    with Session(engine) as s:
        counts = [len(s.scalars(select(m)).all()) for m in (WorksProject, WorksTender, WorksContract,
                                                             WorksProgress, WorksPayment, WorksHistory)]
    second = [import_works(rup, "rup", seeded), import_works(tender, "tender", seeded),
              import_works(kontrak, "kontrak", seeded)]
    assert sum(r.added + r.updated + r.events_added for r in second) == 0
    with Session(engine) as s:
        assert counts == [len(s.scalars(select(m)).all()) for m in (WorksProject, WorksTender, WorksContract,
                                                                    WorksProgress, WorksPayment, WorksHistory)]
        # no column anywhere holds an official's personal data
        values = []
        for m in (WorksProject, WorksTender, WorksContract, WorksProgress, WorksPayment, WorksHistory):
            for row in s.scalars(select(m)):
                values.append(repr(row.model_dump()))
        blob = "\n".join(values)
        assert "19700101 199503" not in blob and "19800202" not in blob and "0123000" not in blob
        cols = {c["name"] for t in ("works_projects", "works_tenders", "works_contracts")
                for c in inspect(engine).get_columns(t)}
        assert not {c for c in cols if "nip" in c.split("_") or "rekening" in c}
        p = s.scalars(select(WorksProject).where(WorksProject.code == "41000000")).one()
        assert p.opd_code == "PUPR" and p.kecamatan_code == "35.03.01" and p.pagu_sen and p.fiscal_year == 2026
        c = s.scalars(select(WorksContract).where(WorksContract.number == "027/100/406.011/2026")).one()
        assert c.kd_rup == "41000000" and c.winner_npwp == "012345678654000" and c.bast_on is not None
        prog = s.scalars(select(WorksProgress).where(WorksProgress.contract_id == c.id)).all()
        assert sorted(r.pct for r in prog) == [35.5, 100.0]


def test_changed_value_is_updated_with_history(engine, seeded, tmp_path):
    rup, tender, _ = generate(5)
    import_works(write_csv(rup, tmp_path / "a.csv"), "rup", seeded)
    rup[0]["pagu"] = "2.000.000.000,00"
    rup[0]["nama_paket"] = "Rehabilitasi Jalan Ruas Ngadirejo - Sumberingin (revisi)"
    r = import_works(write_csv(rup, tmp_path / "b.csv"), "rup", seeded)
    assert (r.added, r.updated, r.unchanged) == (0, 1, 4)
    with Session(engine) as s:
        h = s.scalars(select(WorksHistory).where(WorksHistory.entity_key == "41000000",
                                                 WorksHistory.kind == "updated")).one()
        assert h.changes["pagu_sen"][1] == 200_000_000_000 and h.source == "b.csv:4"
        assert "revisi" in h.changes["name"][1]


def test_tender_before_plan_joins_later_and_contract_before_tender(engine, seeded, tmp_path):
    rup, tender, kontrak = generate(3)
    import_works(write_csv(kontrak, tmp_path / "k.csv"), "kontrak", seeded)
    r = import_works(write_csv(tender, tmp_path / "t.csv"), "tender", seeded)
    assert r.joined == 0 and len(r.unjoined) == 3
    import_works(write_csv(rup, tmp_path / "r.csv"), "rup", seeded)
    with Session(engine) as s:
        c = s.scalars(select(WorksContract)).first()
        assert c.kd_rup == "41000000"


def test_bad_rows_are_named_and_skipped(sqlite_engine, seeded, tmp_path):
    rup, _, _ = generate(4)
    rup[1]["pagu"] = "satu miliar"
    rup[2]["tgl_awal_kontrak"] = "31/02/2026"
    rup[3]["kd_rup"] = ""
    r = import_works(write_csv(rup, tmp_path / "r.csv"), "rup", seeded)
    rows = dict(r.bad)
    # title line, blank line, header: data starts at row 4
    assert set(rows) == {5, 6, 7} and "pagu" in rows[5] and "tanggal" in rows[6] and "kd_rup" in rows[7]
    assert r.added == 1


def test_missing_key_column_is_a_clear_error(sqlite_engine, seeded, tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("nama;nilai\nA;1\n", encoding="utf-8")
    with pytest.raises(ImportError_, match="kd_rup"):
        import_works(p, "rup", seeded)


def test_cli_import_summary(sqlite_url, tmp_path):
    from typer.testing import CliRunner

    from hub.cli import app

    rup, tender, _ = generate(12)
    f = write_csv(rup, tmp_path / "rup.csv")
    res = CliRunner().invoke(app, ["works", "import", "rup", str(f)])
    assert res.exit_code == 0, res.output
    assert "12 added" in res.output and "personal columns dropped, not stored: nip_ppk" in res.output
    res = CliRunner().invoke(app, ["works", "import", "rup", str(f)])
    assert "0 added, 0 updated" in res.output


def test_cli_key_and_flags(sqlite_url):
    from typer.testing import CliRunner

    from hub.cli import app

    res = CliRunner().invoke(app, ["works", "key", "CV Maju Jaya", "--npwp", "01.234.567.8-654.000"])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1].startswith("ck_")
    assert CliRunner().invoke(app, ["works", "key", "X", "--npwp", "123"]).exit_code == 2
    res = CliRunner().invoke(app, ["works", "flags"])
    assert res.exit_code == 0 and "flags: 0 opened" in res.output
