"""`simpul works import jadwal`: a contract's time schedule as offices lay it out (title block,
two-row BULAN / Minggu ke header, sections, decimal commas, JUMLAH and KUMULATIF rows) becomes
its weighted schedule; the planned S-curve then passes through the sheet's cumulative plan at
the end of every week. Bad sheets are rejected whole with the row (and column); a re-import
changes nothing."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from hub.lines.hotline.importer import read_sheet
from hub.works import curve
from hub.works import service as W
from hub.works.jadwal import ScheduleRejected, import_schedule, pct, read_schedule
from hub.works.models import WorksContract, WorksHistory
from tests.works import jadwal_sheets as J

C1 = "027/1/406.011/2026"
SPMK = date(2026, 3, 2)  # the register fixture's contract start (a Monday)


def _read(path, start=SPMK, relative=False):
    rows, _ = read_sheet(path)
    return read_schedule(rows, start, relative)


def _week_end(n: int, start: date = SPMK) -> date:
    """The end of week n: the end of day start + 7n - 1, which is where week n + 1 begins."""
    return start + timedelta(days=7 * n)


def _history(engine) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(WorksHistory).where(
            WorksHistory.entity_key == C1, WorksHistory.kind == "schedule"))


def test_percentages_as_offices_write_them():
    assert pct("12,5", "b") == 12.5 and pct("12.5%", "b") == 12.5 and pct("12,50 %", "b") == 12.5
    assert pct(12.5, "b") == 12.5 and pct("1.250,5", "b") == 1250.5 and pct("-", "b") is None
    assert pct("0,125", "b") == 0.125  # a single separator is decimal: no percentage has thousands
    with pytest.raises(Exception, match="bukan angka"):
        pct("1,6a", "kolom F")


def test_import_gives_the_sheets_curve_and_reimport_changes_nothing(engine, register, tmp_path):
    f = J.write_xlsx(tmp_path / "time schedule.xlsx")
    r = import_schedule(f, C1, register, engine=engine)
    assert r.changed and r.schedule.rows == 15 and not r.schedule.notes
    assert r.schedule.split == ["Mobilisasi dan Demobilisasi", "Lapis Pondasi Agregat Kelas B"]
    with Session(engine) as s:
        c = s.scalars(select(WorksContract).where(WorksContract.number == C1)).one()
        p = W.project_of(s, c)
        by_name = {i["name"]: i for i in c.schedule}
        # weeks 2-5 of an SPMK on 2 March: from 9 March to the end of 5 April (= 6 April, week 6's start)
        assert by_name["Galian Tanah Biasa"] == {"name": "Galian Tanah Biasa", "weight": 6.4,
                                                 "start": "2026-03-09", "end": "2026-04-06"}
        assert by_name["Lapis Pondasi Agregat Kelas B (2/2)"]["weight"] == 12.0
        assert round(sum(i["weight"] for i in c.schedule), 4) == 100
        sheet = J.cumulative()  # the sheet's RENCANA KUMULATIF row
        assert W.plan_at(_week_end(4), c, p) == pytest.approx(20.40, abs=0.005)  # by hand: see jadwal_sheets.JOB
        for week, said in enumerate(sheet, start=1):
            assert W.plan_at(_week_end(week), c, p) == pytest.approx(said, abs=0.005), week
        assert W.plan_at(SPMK, c, p) == 0 and W.plan_at(_week_end(12), c, p) == 100
        # within a week the curve runs straight between the sheet's points
        mid = W.plan_at(_week_end(4) - timedelta(days=3), c, p)
        assert sheet[2] < mid < sheet[3]
        hist = s.scalars(select(WorksHistory).where(WorksHistory.entity_key == C1,
                                                    WorksHistory.kind == "schedule")).all()
    assert len(hist) == 1 and hist[0].actor == "cli" and hist[0].source == "import:time schedule.xlsx"
    assert hist[0].changes["schedule"][0] == [] and len(hist[0].changes["schedule"][1]) == 17

    again = import_schedule(f, C1, register, engine=engine)
    assert not again.changed and _history(engine) == 1


@pytest.mark.parametrize("style,of_item,fmt", [("m", False, "xlsx"), ("bulan", True, "xlsx"),
                                               ("tanggal", False, "xlsx"), ("bulan", False, "csv"),
                                               ("tanggal", True, "csv")])
def test_other_layouts_give_the_same_curve(tmp_path, style, of_item, fmt):
    write = J.write_xlsx if fmt == "xlsx" else J.write_csv
    f = write(tmp_path / f"jadwal.{fmt}", style=style, of_item=of_item, start=SPMK)
    # real dates in the header need no SPMK
    sc = _read(f, start=None if style == "tanggal" else SPMK)
    assert sc.dated == (style == "tanggal") and sc.rows == 15
    assert bool(sc.of_item) == of_item
    its = curve.items_from(sc.items)
    got = [curve.planned_pct(_week_end(w), None, None, its) for w in range(1, J.WEEKS + 1)]
    assert got == pytest.approx(J.cumulative(), abs=0.005)


def test_weights_not_adding_up_are_named_unless_relative(tmp_path):
    def halve_aspal(cells):  # AC-WC's weight and its weeks halved: the items add up to 90.25 %
        row = next(r for r in cells if r[1] == "Laston Lapis Aus (AC-WC)")
        row[3] = "9,75"
        for j in range(4, 4 + J.WEEKS):
            if row[j] is not None:
                row[j] = "3,25"

    f = J.with_rows(tmp_path / "j.xlsx", halve_aspal)
    with pytest.raises(ScheduleRejected) as exc:
        _read(f)
    msg = exc.value.problems[0][1]
    assert "jumlah bobot item (baris 10-28) 90,25 %, bukan 100 %" in msg and "--relatif" in msg
    assert "baris 29 (JUMLAH) menulis 100 %" in msg
    sc = _read(f, relative=True)  # the weights are then shares: they are scaled to 100
    assert round(sum(i["weight"] for i in sc.items), 4) == 100
    assert sc.notes and "RENCANA KUMULATIF" in sc.notes[0]  # the sheet's own cumulative row no longer fits


def test_bad_rows_are_named_with_row_and_column(tmp_path):
    def spoil(cells):
        for r in cells:
            if r[1] == "Galian Tanah Biasa":
                r[6] = "1,6a"  # column G, week 3
            if r[1] == "Papan Nama Proyek":
                r[4] = None  # a weight and no week left
            if r[1] == "Laston Lapis Antara (AC-BC)":
                r[11] = "5,00"  # the weeks add up to 17 %, the weight says 18 %
            if r[1] == "Rambu Jalan Tunggal dengan Permukaan Pemantul":
                r[3] = None  # weeks without a weight

    f = J.with_rows(tmp_path / "j.xlsx", spoil)
    with pytest.raises(ScheduleRejected) as exc:
        _read(f)
    got = dict(exc.value.problems)
    assert 0 not in got  # the unreadable row's weight still counts: the weights add up to 100
    assert "kolom G (minggu 3): '1,6a' bukan angka" in got[14]
    assert "'Papan Nama Proyek': bobot 0,25 % tanpa rencana mingguan (kolom E-P kosong)" in got[11]
    assert "rencana mingguan berjumlah 17 %, tidak sama dengan bobotnya 18 %" in got[23]
    assert "'Rambu Jalan Tunggal dengan Permukaan Pemantul': bobot kosong (kolom D)" in got[27]


def test_no_header_or_no_start_is_a_clear_error(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("Daftar hadir\nnama;tanggal\nBudi;1/3/2026\n", encoding="utf-8")
    with pytest.raises(ScheduleRejected, match="URAIAN PEKERJAAN"):
        _read(p)
    with pytest.raises(ScheduleRejected, match="SPMK"):
        _read(J.write_xlsx(tmp_path / "j.xlsx"), start=None)


def test_unknown_contract_and_rejected_file_write_nothing(engine, register, tmp_path):
    good = J.write_xlsx(tmp_path / "good.xlsx")
    with pytest.raises(ScheduleRejected, match="kontrak '027/9/406.011/2026' tidak ditemukan"):
        import_schedule(good, "027/9/406.011/2026", register, engine=engine)
    import_schedule(good, C1, register, engine=engine)
    with Session(engine) as s:
        before = s.scalars(select(WorksContract.schedule).where(WorksContract.number == C1)).one()

    def spoil(cells):
        next(r for r in cells if r[1] == "Galian Tanah Biasa")[3] = "6,4x"

    with pytest.raises(ScheduleRejected, match="bobot"):
        import_schedule(J.with_rows(tmp_path / "bad.xlsx", spoil), C1, register, engine=engine)
    with Session(engine) as s:
        assert s.scalars(select(WorksContract.schedule).where(WorksContract.number == C1)).one() == before
    assert _history(engine) == 1


def test_cli(register, tmp_path):
    from typer.testing import CliRunner

    from hub.cli import app

    f = J.write_xlsx(tmp_path / "jadwal.xlsx")
    res = CliRunner().invoke(app, ["works", "import", "jadwal", str(f), "--kontrak", C1])
    assert res.exit_code == 0, res.output
    assert "15 items, 12 periods (weeks from 2026-03-02) -> 17 schedule items" in res.output
    assert "schedule updated (history kept)" in res.output
    res = CliRunner().invoke(app, ["works", "import", "jadwal", str(f), "--kontrak", C1])
    assert res.exit_code == 0 and "unchanged" in res.output
    res = CliRunner().invoke(app, ["works", "import", "jadwal", str(f), "--kontrak", "027/404"])
    assert res.exit_code == 2 and "tidak ditemukan" in res.output


def test_api_put_of_the_same_schedule_adds_no_history(client, register, make_key):
    opd = make_key("opd", "PUPR")
    items = [{"name": "Persiapan", "weight": 10, "start": "2026-03-02", "end": "2026-03-16"},
             {"name": "Pengaspalan", "weight": 90, "start": "2026-03-16", "end": "2026-08-29"}]
    first = client.put(f"/api/v1/works/contracts/{C1}/schedule", headers=opd, json=items)
    again = client.put(f"/api/v1/works/contracts/{C1}/schedule", headers=opd, json=items)
    assert first.json()["changed"] is True and again.json()["changed"] is False
    from hub.db import get_engine

    assert _history(get_engine()) == 1
    bad = client.put(f"/api/v1/works/contracts/{C1}/schedule", headers=opd,
                     json=[{"name": "x", "weight": 5, "start": "2026-03-16", "end": "2026-03-02"}])
    assert bad.status_code == 422


def test_three_header_rows_letter_sections_and_excel_percent_cells():
    """'Jenis Pekerjaan | Bobot', 'Waktu Pelaksanaan' over 'Minggu ke-' over 1 2 3, sections A/B,
    and cells formatted as percent in Excel (0.1 = 10 %)."""
    rows = [(1, ["JADWAL WAKTU PELAKSANAAN", None, None, None, None, None, None]),
            (2, ["Kegiatan : Pembangunan Talud Desa Sumberingin", None, None, None, None, None, None]),
            (4, ["No", "Jenis Pekerjaan", "Bobot", "Waktu Pelaksanaan", None, None, "Ket"]),
            (5, [None, None, None, "Minggu ke-", None, None, None]),
            (6, [None, None, None, 1, 2, 3, None]),
            (7, ["A", "PEKERJAAN PERSIAPAN", None, None, None, None, None]),
            (8, [1, "Pembersihan Lokasi dan Bouwplank", 0.1, 0.1, None, None, "-"]),
            (9, ["B", "PEKERJAAN TALUD", 0.9, 0.3, 0.3, 0.3, None]),
            (10, [2, "Pasangan Batu Kali 1PC : 4PP", 0.9, 0.3, 0.3, 0.3, None]),
            (11, ["Jumlah", None, 1, 0.4, 0.3, 0.3, None]),
            (12, ["Rencana Kumulatif", None, None, 0.4, 0.7, 1, None])]
    sc = read_schedule(iter(rows), SPMK)
    assert sc.rows == 2 and not sc.notes and sc.columns["periode"] == "D-F (3 kolom)"
    assert [(i["name"], i["weight"], i["start"], i["end"]) for i in sc.items] == [
        ("Pembersihan Lokasi dan Bouwplank", 10.0, "2026-03-02", "2026-03-09"),
        ("Pasangan Batu Kali 1PC : 4PP", 90.0, "2026-03-02", "2026-03-23")]
