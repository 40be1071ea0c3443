"""`simpul import psc119|bpbd`: CSV and XLSX logs (written here with openpyxl), Indonesian column
names under a title block, bad rows named by row number, re-import adds nothing, mapping file,
historic calls closed with their own time and never texted or delivered."""
from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

WIB = ZoneInfo("Asia/Jakarta")
HEADER = ["No", "Tanggal", "Jam", "Pelapor", "No. Telp", "Kecamatan", "Desa", "Lokasi", "Kejadian",
          "Keterangan", "Tindakan", "Korban", "Triase"]
ROWS = [  # spreadsheet rows 4.. (after a two-row title block and the header)
    ["1", "20 Agustus 2021", "07.15", "Slamet", "081234567890", "Pogalan", "Ngulankulon", "depan pasar",
     "Laka lantas", "Motor vs truk", "Dibawa ke RSUD", "2 orang", "merah"],
    ["2", "20/08/2021", "08.30", "Bu Sri", "085733221100", "Kec. Dongko", "Ds. Dongko", "", "Ibu melahirkan",
     "Ketuban pecah", "Rujuk puskesmas", "1", "kuning"],
    ["3", "31/02/2021", "09.00", "Tono", "", "Pogalan", "", "", "Stroke", "", "", "", ""],  # no 31 February
    ["4", "21/08/2021", "10.00", "Yanti", "", "Tulungagung", "", "", "Stroke", "", "", "", ""],  # not ours
    ["", "", "", "", "", "", "", "", "", "", "", "", ""],  # an empty row is skipped, not an error
    ["5", "22/08/2021", "11.00", "Joko", "", "Karangan", "", "", "Stroke", "", "", "", "ungu"],  # bad colour
    ["6", "23/08/2021", "12.00", "Dewi", "", "Karangan", "", "", "", "", "", "", ""],  # nothing happened?
    ["7", "Jumat, 24 Agustus 2021 pukul 21.40 WIB", "", "Pak RT", "0813 1111 2222", "Trenggalek", "Sumbergedong",
     "", "kejang-kejang", "Anak demam tinggi lalu kejang", "Ambulans", "1", "merah"],
]
BAD = {6: "day is out of range", 7: "unknown kecamatan 'Tulungagung'", 9: "triage_colour 'ungu'",
       10: "nothing to import"}


def write_csv(path: Path, rows=ROWS, header=HEADER, delimiter=";") -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(["REKAP PANGGILAN PSC 119 TRENGGALEK"] + [""] * (len(header) - 1))
        w.writerow([""] * len(header))
        w.writerow(header)
        w.writerows(rows)
    return path


def write_xlsx(path: Path, sheet: str = "Agustus 2021") -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(["Rekap Pusdalops BPBD Kab. Trenggalek"])
    ws.append(["Waktu", "Pelapor", "No HP", "Kecamatan", "Desa", "Jenis Kejadian", "Keterangan", "Tindakan",
               "Jumlah Korban", "Tim"])
    ws.append([datetime(2021, 11, 3, 2, 10), "Kades Prigi", 81234000111, "Watulimo", "Prigi", "Banjir",
               "Air masuk rumah 50 cm", "Evakuasi warga", "12 KK", "TRC"])
    ws.append([44504.75, "Warga", None, "Pule", "", "Tanah longsor", "Tebing longsor menutup jalan",
               "Kerja bakti", "nihil", "TRC + relawan"])  # an Excel serial date: 4 Nov 2021 18:00
    ws.append(["kemarin", "Warga", None, "Pule", "", "Pohon tumbang", "", "", "", ""])  # bad date
    ws.append([datetime(2021, 11, 5, 6, 0), "Warga", None, "Bendungan", "", "Sesuatu yang aneh",
               "Suara gemuruh dari bukit", "", "", ""])  # unknown kejadian: imported, classified from text
    wb.save(path)
    return path


def count(engine, model, *where) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def run_import(path, line="psc119", **kw):
    from hub.lines.hotline.importer import import_file

    bad: list[tuple[int, str]] = []
    rep = import_file(path, line, on_bad_row=lambda n, r: bad.append((n, r)), **kw)
    assert bad == rep.bad
    return rep


def test_csv_import_bad_rows_and_reimport(tmp_path, engine, seeded):
    from hub.models import Outbox, RawMessage, Ticket, TicketEvent

    path = write_csv(tmp_path / "psc119_agustus_2021.csv")
    rep = run_import(path)
    assert (rep.rows, rep.imported, rep.already, rep.empty) == (7, 3, 0, 1)
    assert [n for n, _ in rep.bad] == sorted(BAD)
    for n, reason in rep.bad:
        assert BAD[n] in reason
    assert rep.columns["date"] == "Tanggal" and rep.columns["caller_phone"] == "No. Telp"
    assert rep.ignored_columns == ["No"]
    with Session(engine) as s:
        tickets = {t.reporter_name: t for t in s.scalars(select(Ticket))}
    assert set(tickets) == {"Slamet", "Bu Sri", "Pak RT"}
    t = tickets["Slamet"]
    created = t.created_at if t.created_at.tzinfo else t.created_at.replace(tzinfo=ZoneInfo("UTC"))
    assert created == datetime(2021, 8, 20, 7, 15, tzinfo=WIB)  # the call's own time
    assert t.status == "selesai" and t.due_at is None and t.fields["imported"] is True
    assert t.fields["hotline_type"] == "kecelakaan" and t.fields["incident_text"] == "Laka lantas"
    assert t.urgency == "darurat" and t.kecamatan_code == "35.03.12" and "depan pasar" in (t.address or "")
    assert t.fields["people_affected"] == 2 and t.reporter_phone == "+6281234567890"
    assert tickets["Pak RT"].fields["hotline_type"] == "tidak sadarkan diri"
    assert tickets["Bu Sri"].desa_code == "35.03.04.2007" and tickets["Bu Sri"].fields["kecamatan"] == "Dongko"
    # historic calls: nobody is texted about a 2021 call, nothing is delivered to an OPD
    assert count(engine, Outbox) == 0
    before = [count(engine, m) for m in (RawMessage, Ticket, TicketEvent)]
    again = run_import(path)
    assert (again.imported, again.already, len(again.bad)) == (0, 3, 4)
    assert [count(engine, m) for m in (RawMessage, Ticket, TicketEvent)] == before
    # fixing the bad rows and importing again adds exactly those
    fixed = [list(r) for r in ROWS]
    fixed[2][1], fixed[3][5] = "28/02/2021", "Gandusari"
    rep3 = run_import(write_csv(tmp_path / "fixed.csv", fixed))
    assert (rep3.imported, rep3.already, len(rep3.bad)) == (2, 3, 2)


def test_reopening_an_imported_ticket_texts_nobody(tmp_path, engine, seeded, cfg):
    from hub.db import session_scope
    from hub.models import Outbox, Ticket
    from hub.tickets import change_status

    run_import(write_csv(tmp_path / "log.csv", ROWS[:1]))
    with session_scope(engine) as s:
        t = s.scalars(select(Ticket)).one()
        change_status(s, t, "menunggu", "user:admin", cfg, note="dibuka lagi")
    assert count(engine, Outbox) == 0


def test_xlsx_import_excel_dates_and_sheet(tmp_path, engine, seeded):
    from hub.lines.hotline.importer import ImportError_
    from hub.models import Ticket

    path = write_xlsx(tmp_path / "bpbd.xlsx")
    rep = run_import(path, "bpbd", sheet="Agustus 2021")
    assert (rep.rows, rep.imported) == (4, 3) and [n for n, _ in rep.bad] == [5]
    assert "not a date" in rep.bad[0][1]
    with Session(engine) as s:
        got = {t.fields.get("hotline_type") or t.fields.get("incident_text"): t for t in s.scalars(select(Ticket))}
    flood = got["banjir"]
    assert flood.opd_code == "BPBD" and flood.reporter_phone == "+6281234000111"  # leading 0 lost in a number cell
    assert flood.fields["people_affected"] == 12 and flood.status == "selesai"
    slide = got["tanah longsor"]
    c = slide.created_at if slide.created_at.tzinfo else slide.created_at.replace(tzinfo=ZoneInfo("UTC"))
    assert c == datetime(2021, 11, 4, 18, 0, tzinfo=WIB) and slide.fields["people_affected"] == 0
    assert "Sesuatu yang aneh" in got["Sesuatu yang aneh"].text_original
    with pytest.raises(ImportError_, match="no sheet 'Mei'"):
        run_import(path, "bpbd", sheet="Mei")


def test_mapping_file_for_other_column_names(tmp_path, engine, seeded):
    from hub.lines.hotline.importer import ImportError_, load_mapping
    from hub.models import Ticket

    header = ["Tgl Lapor", "Penelpon", "Kontak Person", "Kec.", "Jenis Kasus", "Uraian Singkat", "No Register"]
    rows = [["2021-08-20 07:15", "Slamet", "081234567890", "Pogalan", "Stroke", "Jatuh di kamar mandi", "R-0001"],
            ["2021-08-20 09:00", "Sri", "085733221100", "Durenan", "Sesak napas", "Riwayat asma", "R-0002"]]
    path = write_csv(tmp_path / "other.csv", rows, header, delimiter=",")
    from hub.lines.hotline.importer import find_columns

    cols, ignored = find_columns(header, {}, None)  # without a mapping: read by meaning
    assert {k: header[i] for k, i in cols.items()} == {
        "date": "Tgl Lapor", "caller_name": "Penelpon", "caller_phone": "Kontak Person", "kecamatan": "Kec.",
        "incident": "Jenis Kasus", "description": "Uraian Singkat"}
    assert ignored == ["No Register"]
    mfile = tmp_path / "map.yaml"
    mfile.write_text("columns:\n  waktu: Tgl Lapor\n  pelapor: Penelpon\n  caller_phone: Kontak Person\n"
                     "  kejadian: Jenis Kasus\n  description: Uraian Singkat\n")
    mapping = load_mapping(mfile)
    rep = run_import(path, mapping=mapping, id_column="No Register")
    assert rep.imported == 2 and rep.columns["time"] == "Tgl Lapor" and rep.columns["kecamatan"] == "Kec."
    with Session(engine) as s:
        ids = sorted(t.channel_message_id for t in s.scalars(select(Ticket)))
    assert ids == ["imp-no-R-0001", "imp-no-R-0002"]
    # the office corrects a typo in row R-0001: the sheet's own number keeps it the same call
    rows[0][5] = "Jatuh di kamar mandi, tidak bisa bicara"
    rep = run_import(write_csv(tmp_path / "other2.csv", rows, header, delimiter=","), mapping=mapping,
                     id_column="No Register")
    assert (rep.imported, rep.already) == (0, 2)
    mfile.write_text("columns:\n  waktu: Tanggal Laporan\n")
    with pytest.raises(ImportError_, match="'Tanggal Laporan'.*not in the sheet"):
        run_import(path, mapping=load_mapping(mfile))


@pytest.mark.parametrize("text,problem", [("columns:\n  umur: Umur\n", "unknown column 'umur'"),
                                          ("- a\n- b\n", "expected a mapping")])
def test_bad_mapping_file(tmp_path, text, problem):
    from hub.config import ConfigError
    from hub.lines.hotline.importer import load_mapping

    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_mapping(tmp_path / "m.yaml")


def test_cli(tmp_path, sqlite_url):
    from typer.testing import CliRunner

    from hub.cli import app

    runner = CliRunner()
    path = write_csv(tmp_path / "log.csv")
    res = runner.invoke(app, ["import", "psc119", str(path), "--no-progress"])
    assert res.exit_code == 1, res.output
    err = res.stderr
    for n in BAD:
        assert f"row {n}:" in err
    assert "3 imported" in " ".join(err.split()) and "4 bad" in err
    res = runner.invoke(app, ["import", "psc119", str(path), "--no-progress"])
    assert "0 imported, 3 already there" in " ".join(res.stderr.split())
    ok = write_csv(tmp_path / "ok.csv", ROWS[:2])
    res = runner.invoke(app, ["import", "psc119", str(ok)])  # with the progress bar
    assert res.exit_code == 0, res.stderr
    res = runner.invoke(app, ["import", "bpbd", str(tmp_path / "missing.xlsx")])
    assert res.exit_code == 2 and "file not found" in res.stderr
    (tmp_path / "log.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    res = runner.invoke(app, ["import", "bpbd", str(tmp_path / "log.xls")])
    assert res.exit_code == 2 and ".xlsx" in res.stderr


def test_a_row_with_an_impossible_time_is_a_bad_row_not_a_failed_import(tmp_path, engine, seeded):
    """hub.guard refuses times before 2000: the importer names the row, imports the rest."""
    rows = [ROWS[0], ["9", "01/01/1899", "07.00", "Lama", "", "Pogalan", "", "", "Stroke", "", "", "", ""]]
    rep = run_import(write_csv(tmp_path / "old.csv", rows=rows))
    assert rep.imported == 1
    assert [n for n, _ in rep.bad] == [5] and "received_at" in rep.bad[0][1]


# --- files people really have (issue #13 item 9) -------------------------------------------
LOGS = Path(__file__).parent / "fixtures" / "logs"


def _tickets(engine):
    from hub.models import Ticket

    with Session(engine) as s:
        return sorted(s.scalars(select(Ticket)), key=lambda t: t.created_at)


def test_utf16_log_with_multi_word_headers_and_separate_date_and_time(engine, seeded):
    rep = run_import(LOGS / "psc119_utf16_tab.csv")
    assert rep.bad == [] and rep.imported == 2
    assert rep.columns == {"date": "Tgl Kejadian", "clock": "Jam Lapor", "caller_name": "Nama Pelapor",
                           "caller_phone": "No. HP/WA", "address": "Lokasi Kejadian", "kecamatan": "Kecamatan",
                           "incident": "Jenis Kejadian", "description": "Keterangan", "team": "Petugas Jaga"}
    assert rep.ignored_columns == ["No."] and rep.notes == []
    a, b = _tickets(engine)
    assert a.created_at.astimezone(WIB).replace(tzinfo=None) == datetime(2021, 8, 20, 7, 15)
    assert b.created_at.astimezone(WIB).replace(tzinfo=None) == datetime(2021, 8, 21, 22, 40)
    assert a.reporter_phone == "+6281234567890" and b.reporter_phone == "+6285733221100"
    assert "Pasar Pon" in (a.address or "") and "🙏" in b.text_original


def test_two_row_header_from_merged_cells_and_excel_serial_dates_in_csv(engine, seeded):
    rep = run_import(LOGS / "bpbd_two_row_header_serial.csv", "bpbd")
    assert rep.bad == [] and rep.imported == 2
    assert rep.columns["date"] == "Waktu / Tanggal" and rep.columns["clock"] == "Waktu / Jam"
    assert rep.columns["caller_phone"] == "Pelapor / No. HP/WA" and rep.columns["desa"] == "Lokasi Kejadian / Desa"
    a, b = _tickets(engine)
    assert a.created_at.astimezone(WIB).replace(tzinfo=None) == datetime(2021, 11, 4, 18, 0)  # not midnight
    assert b.created_at.astimezone(WIB).replace(tzinfo=None) == datetime(2021, 11, 5, 7, 30)  # serial with time
    assert a.reporter_phone == "+6281234000111"


def test_two_row_header_in_xlsx_with_merged_cells(tmp_path, engine, seeded):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Rekap Pusdalops"])
    ws.append(["No", "Waktu Kejadian", None, "Pelapor", None, "Kejadian"])
    ws.append([None, "Tanggal", "Jam", "Nama", "No. HP/WA", None])
    ws.merge_cells("B2:C2")
    ws.merge_cells("D2:E2")
    ws.merge_cells("A2:A3")
    ws.merge_cells("F2:F3")
    ws.append([1, datetime(2021, 11, 3), "02.10", "Kades Prigi", "081234000111", "Banjir di desa Prigi kecamatan Watulimo"])
    wb.save(tmp_path / "merged.xlsx")
    rep = run_import(tmp_path / "merged.xlsx", "bpbd")
    assert rep.bad == [] and rep.imported == 1, rep
    assert rep.columns["clock"] == "Waktu Kejadian / Jam" and rep.columns["incident"] == "Kejadian"
    [t] = _tickets(engine)
    assert t.created_at.astimezone(WIB).replace(tzinfo=None) == datetime(2021, 11, 3, 2, 10)


def test_a_needed_column_not_found_stops_with_what_was_looked_for(engine, seeded):
    from hub.lines.hotline.importer import ImportError_
    from hub.models import RawMessage

    with pytest.raises(ImportError_) as exc:
        run_import(LOGS / "psc119_unknown_what.csv")
    msg = str(exc.value)
    assert "no what happened column found" in msg and "kejadian" in msg and "keterangan" in msg
    assert "'Perihal'" in msg and "--mapping" in msg
    assert count(engine, RawMessage) == 0


def test_cli_summary_lists_used_and_ignored_columns_and_a_missing_time(tmp_path, sqlite_url):
    from typer.testing import CliRunner

    from hub.cli import app

    path = tmp_path / "no_time.csv"
    path.write_text("Tanggal;Pelapor;Kecamatan;Kejadian;Operator\n20/08/2021;Slamet;Pogalan;Stroke;Andi\n",
                    encoding="utf-8")
    res = CliRunner().invoke(app, ["import", "psc119", str(path), "--no-progress"])
    err = " ".join(res.stderr.split())
    assert res.exit_code == 0, res.output
    assert "date <- 'Tanggal'" in err and "ignored columns: 'Operator'" in err
    assert "no time-of-day column" in err and "00:00" in err


# --- the bulk path (issue #15): same tickets as the usual path, batch boundaries, re-runs ----

def _messages(path, line="psc119"):
    """The messages the importer makes of a file's good rows (the stored form of each row)."""
    from hub.guard import check_message
    from hub.lines.hotline.calls import hotline_adapter
    from hub.lines.hotline.importer import find_columns, pick_header, read_sheet

    rows, _ = read_sheet(path)
    rows = list(rows)
    last, header = pick_header(rows[:10])
    cols, _ = find_columns(header, {}, None)
    out = []
    for n, cells in rows:
        row = {k: (cells[i] if i < len(cells) else None) for k, i in cols.items()}
        if n <= last or not any(row.values()):
            continue
        if row.get("address"):
            row["landmark"] = ", ".join(str(x) for x in (row.get("landmark"), row["address"]) if x)
        try:
            out.append(check_message(hotline_adapter().from_row(line, row)))
        except Exception:
            continue
    return out


def _shape(engine, where):
    """Every ticket column and its events, minus what differs per raw message (ids, codes)."""
    from hub.models import Ticket, TicketEvent

    skip = {"id", "code", "raw_message_id", "channel_message_id"}
    with Session(engine) as s:
        out = []
        for t in s.scalars(select(Ticket).where(where).order_by(Ticket.reporter_name)):
            cols = {k: v for k, v in t.model_dump().items() if k not in skip}
            events = [(e.actor, e.kind, e.from_status, e.to_status, e.from_opd, e.to_opd, e.note,
                       {k: v for k, v in e.data.items() if k != "raw_id"})
                      for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id)
                                         .order_by(TicketEvent.id))]
            out.append((cols, events))
        return out


def test_bulk_tickets_are_the_tickets_the_usual_path_makes(tmp_path, engine, seeded, cfg):
    """create_historic_many writes exactly what create_many (process_pending) writes."""
    import dataclasses

    from hub.intake import accept_many
    from hub.models import Ticket
    from hub.processing import drain

    path = write_csv(tmp_path / "log.csv")
    rep = run_import(path)  # the bulk path
    assert rep.imported == 3
    # the same rows once more under other provider ids, through intake + process_pending
    usual = [dataclasses.replace(m, provider_id="usual-" + m.provider_id) for m in _messages(path)]
    assert len(usual) == 3 and not any(a.duplicate for a in accept_many(usual, engine))
    assert drain(engine) == 3
    bulk = _shape(engine, Ticket.channel_message_id.like("imp-%"))
    assert len(bulk) == 3 and bulk == _shape(engine, Ticket.channel_message_id.like("usual-%"))
    assert [len(ev) for _, ev in bulk] == [3, 3, 3]


@pytest.mark.parametrize("chunk", [1, 2, 1000])
def test_bad_rows_inside_a_chunk_leave_the_rest_of_it(tmp_path, engine, seeded, chunk):
    from hub.models import RawMessage, Ticket, TicketEvent

    rep = run_import(write_csv(tmp_path / "log.csv"), chunk=chunk)
    assert (rep.rows, rep.imported, rep.already) == (7, 3, 0) and [n for n, _ in rep.bad] == sorted(BAD)
    assert count(engine, Ticket) == 3 and count(engine, TicketEvent) == 9
    assert count(engine, RawMessage, RawMessage.state != "done") == 0


def test_a_rerun_after_a_crash_between_storing_and_tickets_loses_and_doubles_nothing(tmp_path, engine, seeded):
    """A run that died after storing a chunk (accept_many committed, its tickets not): the raw
    rows are pending. The next run counts them as already there and still makes their tickets,
    once; the rows the dead run never reached are imported."""
    from hub.intake import accept_many
    from hub.models import RawMessage, Ticket, TicketEvent

    path = write_csv(tmp_path / "log.csv")
    accept_many(_messages(path)[:2], engine)  # what the dead run left behind
    assert count(engine, RawMessage, RawMessage.state == "pending") == 2 and count(engine, Ticket) == 0
    rep = run_import(path, chunk=2)
    assert (rep.imported, rep.already) == (1, 2)
    assert count(engine, Ticket) == 3 and count(engine, TicketEvent) == 9
    assert count(engine, RawMessage, RawMessage.state != "done") == 0
    with Session(engine) as s:
        assert len({t.raw_message_id for t in s.scalars(select(Ticket))}) == 3


def test_rows_another_processor_already_took_are_not_made_twice(tmp_path, engine, seeded, cfg):
    """process_imported claims each raw row (pending -> done) before writing its ticket, so a
    hub's own processing that got there first wins and nothing is doubled."""
    from hub.intake import accept_many
    from hub.models import Ticket, TicketEvent
    from hub.processing import drain, process_imported

    msgs = _messages(write_csv(tmp_path / "log.csv"))
    accepted = accept_many(msgs, engine)
    stored = [(a.raw_id, a.ticket_code, m) for a, m in zip(accepted, msgs)]
    assert process_imported(engine, stored[:1], cfg) == 1  # the bulk path itself made this one
    assert drain(engine) == 2  # the running hub's processor took the other two
    assert process_imported(engine, stored, cfg) == 0
    assert count(engine, Ticket) == 3 and count(engine, TicketEvent) == 9


def _many_rows(n: int) -> list[list[str]]:
    """`n` good rows in the office's spelling, each with its own caller, place and words."""
    places = [("Pogalan", "Ngulankulon"), ("Kec. Dongko", "Ds. Dongko"), ("Trenggalek", "Sumbergedong"),
              ("Watulimo", "Prigi"), ("Karangan", "Kayen"), ("Munjungan", "Bendoroto")]
    what = ["Laka lantas", "Ibu melahirkan", "kejang-kejang", "sesak napas", "Stroke", "keracunan makanan"]
    out = []
    for i in range(n):
        kec, desa = places[i % len(places)]
        out.append([str(i + 1), f"{1 + i % 28}/0{1 + i % 9}/2022", f"{i % 24:02d}.{i % 60:02d}", f"Pelapor {i}",
                    f"0812{i:08d}", kec, desa, f"RT {i % 9 + 1:02d}", what[(i * 7) % len(what)],
                    f"laporan nomor {i} dari warga", "Ambulans", str(i % 4), ["merah", "kuning", "hijau"][i % 3]])
    return out


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_ticket_is_its_own_rows_draft_in_one_process_or_two(tmp_path, engine, seeded, jobs):
    """With `jobs` 2 the drafts are made in a second process while this one stores the next
    chunk: every ticket must still be exactly the normalizer's draft of its own row (not a
    neighbour's), across many chunks, and a re-import adds nothing."""
    from hub.models import RawMessage, Ticket, TicketEvent
    from hub.normalizer_loader import current_regency
    from normalizer import normalize

    path = write_csv(tmp_path / "many.csv", _many_rows(230))
    rep = run_import(path, chunk=25, jobs=jobs)
    assert (rep.rows, rep.imported, rep.bad, rep.processes) == (230, 230, [], jobs)
    with Session(engine) as s:
        reg = current_regency(s)
        tickets = {t.channel_message_id: t for t in s.scalars(select(Ticket))}
    assert len(tickets) == 230 and count(engine, TicketEvent) == 3 * 230
    assert count(engine, RawMessage, RawMessage.state != "done") == 0
    for m in _messages(path):
        t, d = tickets[m.provider_id], normalize(m, reg, datetime.now(WIB))
        assert (t.text_clean, t.reporter_name, t.reporter_phone, t.category, t.opd_code, t.urgency,
                t.kecamatan_code, t.desa_code) == (d.text_clean, d.reporter.name, d.reporter.phone, d.category,
                                                   d.routing.opd, d.urgency.value, d.place.kecamatan_code,
                                                   d.place.desa_code)
    again = run_import(path, chunk=25, jobs=jobs)
    assert (again.imported, again.already) == (0, 230) and count(engine, Ticket) == 230


def test_xlsx_rows_are_numbered_as_the_sheet_numbers_them_when_it_starts_lower_right(tmp_path, engine, seeded):
    """A sheet whose table starts at C4 (a title in the office's habit of leaving rows and
    columns free): bad rows are named by the sheet's own row numbers, and every column is read."""
    import openpyxl

    from hub.models import Ticket

    wb = openpyxl.Workbook()
    ws = wb.active
    table = [["Tanggal", "Jam", "Pelapor", "No HP", "Kecamatan", "Kejadian"],
             [datetime(2022, 1, 5), "07.15", "Slamet", 81234567890, "Pogalan", "Banjir"],
             ["bukan tanggal", "08.00", "Sri", None, "Pogalan", "Longsor"],
             [datetime(2022, 1, 6), "09.30", "Joko", None, "Tulungagung", "Banjir"]]
    for r, row in enumerate(table, start=4):
        for c, v in enumerate(row, start=3):
            ws.cell(row=r, column=c, value=v)
    wb.save(tmp_path / "kanan.xlsx")
    rep = run_import(tmp_path / "kanan.xlsx", "bpbd")
    assert rep.imported == 1 and [n for n, _ in rep.bad] == [6, 7]
    assert "not a date" in rep.bad[0][1] and "Tulungagung" in rep.bad[1][1]
    with Session(engine) as s:
        t = s.scalars(select(Ticket)).one()
    c = t.created_at if t.created_at.tzinfo else t.created_at.replace(tzinfo=ZoneInfo("UTC"))
    assert c == datetime(2022, 1, 5, 7, 15, tzinfo=WIB) and t.reporter_phone == "+6281234567890"


def test_a_second_process_that_dies_costs_nothing(tmp_path, engine, seeded, monkeypatch):
    """The second process is killed (as the kernel's OOM killer would) as soon as it starts:
    the chunk it held and every later one are drafted in this process; all rows become their
    own tickets, once."""
    import os

    from hub.lines.hotline import importer
    from hub.models import RawMessage, Ticket, TicketEvent

    monkeypatch.setattr(importer, "_child_start", lambda: os._exit(3))  # the child dies at birth
    rep = run_import(write_csv(tmp_path / "many.csv", _many_rows(120)), chunk=20, jobs=2)
    assert (rep.rows, rep.imported, rep.bad, rep.processes) == (120, 120, [], 2)
    assert count(engine, Ticket) == 120 and count(engine, TicketEvent) == 3 * 120
    assert count(engine, RawMessage, RawMessage.state != "done") == 0
    with Session(engine) as s:
        assert len({t.raw_message_id for t in s.scalars(select(Ticket))}) == 120
