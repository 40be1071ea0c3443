"""Downloads of the ticket list (Excel, CSV) with the list's own filters, and the printable
monthly report per OPD for the regional head's meeting.

Rows come through the list's TicketFilter and visibility rule (an OPD user gets its own OPD's
tickets only); every NIK in the text is masked; phone numbers are left out for OPD users and
for anonymous or confidential reports, as on the ticket page.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sqlmodel import Session

from hub import reports
from hub.db import get_engine
from hub.logging import get_logger
from hub.models import OPEN_STATUSES, Ticket
from hub.web import pages
from hub.web.pages import render, user
from hub.web.routes import SORTS, STAFF, sort_key, ticket_query
from normalizer.reporter import mask_niks

log = get_logger(__name__)
router = APIRouter(include_in_schema=False)
MAX_ROWS = 100_000
HEADER = ["Kode", "Diterima (WIB)", "Status", "Urgensi", "OPD", "Kanal", "Kecamatan", "Desa", "Kategori",
          "Laporan", "Nama pelapor", "Telepon pelapor", "Tenggat (WIB)", "Selesai (WIB)", "Lewat tenggat",
          "Digabung ke"]


def _rows(who, params) -> Iterator[list[Any]]:
    q, _ = ticket_query(who, params)
    q = q.order_by(*SORTS[sort_key(params)][1]).limit(MAX_ROWS)
    wil, chans = pages.wilayah(), pages.channel_labels()
    now = datetime.now(timezone.utc)
    show_phone = who.role != "opd"
    with Session(get_engine()) as s:
        for t in s.scalars(q).yield_per(1000):
            hidden = t.anonymous or t.confidential
            due = t.due_at if t.due_at is None or t.due_at.tzinfo else t.due_at.replace(tzinfo=timezone.utc)
            yield [t.code, pages.wib(t.created_at), pages.STATUS_LABELS.get(t.status, t.status),
                   pages.URGENCY_LABELS.get(t.urgency, t.urgency), t.opd_code, chans.get(t.channel, t.channel),
                   wil.name(t.kecamatan_code) if t.kecamatan_code else "", wil.name(t.desa_code) if t.desa_code else "",
                   t.category or "", mask_niks(t.text_original),
                   "" if hidden else mask_niks(t.reporter_name or ""),
                   (t.reporter_phone or "") if show_phone and not hidden else "",
                   pages.wib(t.due_at) if t.due_at else "", pages.wib(t.closed_at) if t.closed_at else "",
                   "ya" if due is not None and t.status in OPEN_STATUSES and due < now else "",
                   t.merged_into or ""]


def _filename(ext: str) -> str:
    return f"tiket-simpul-{datetime.now(timezone.utc).astimezone(reports.WIB):%Y%m%d-%H%M}.{ext}"


def _safe_cell(v: Any, starts: tuple[str, ...] = ("=", "+", "-", "@")) -> Any:
    """No formula injection: a CSV cell starting with = + - @ is kept as text. In a workbook
    only "=" makes a formula (openpyxl), so phone numbers keep their "+" there."""
    return "'" + v if isinstance(v, str) and v[:1] in starts else v


@router.get("/unduh/tiket.csv")
def download_csv(request: Request):
    who = user(request, *STAFF)
    log.info("web.export", fmt="csv", actor=who.actor)

    def body() -> Iterator[str]:
        buf = io.StringIO()
        w = csv.writer(buf)
        buf.write("\ufeff")  # Excel opens UTF-8 with a BOM correctly
        w.writerow(HEADER)
        for r in _rows(who, request.query_params):
            w.writerow([_safe_cell(v) for v in r])
            if buf.tell() > 64 * 1024:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()
    return StreamingResponse(body(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{_filename("csv")}"', "Cache-Control": "no-store"})


@router.get("/unduh/tiket.xlsx")
def download_xlsx(request: Request):
    from openpyxl import Workbook
    from openpyxl.styles import Font

    who = user(request, *STAFF)
    log.info("web.export", fmt="xlsx", actor=who.actor)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Tiket")
    ws.freeze_panes = "A2"
    for col, width in zip("ABCDEFGHIJKLMNOP", (10, 17, 11, 9, 12, 14, 16, 18, 20, 60, 20, 16, 17, 17, 8, 10)):
        ws.column_dimensions[col].width = width
    from openpyxl.cell import WriteOnlyCell

    head = []
    for h in HEADER:
        c = WriteOnlyCell(ws, value=h)
        c.font = Font(bold=True)
        head.append(c)
    ws.append(head)
    for r in _rows(who, request.query_params):
        ws.append([_safe_cell(v, ("=",)) for v in r])
    out = io.BytesIO()
    wb.save(out)
    return Response(out.getvalue(),
                    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{_filename("xlsx")}"',
                             "Cache-Control": "no-store"})


MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
          "November", "Desember")


@router.get("/laporan/bulanan")
def monthly_report(request: Request):
    who = user(request, *STAFF)
    key, start, end = reports.month_range(request.query_params.get("bulan"))
    opd = request.query_params.get("opd") or None
    with Session(get_engine()) as s:
        rows = reports.monthly(s, who, start, end, opd=opd)
    y, m = (int(x) for x in key.split("-"))
    prev = f"{y - (m == 1)}-{(m - 2) % 12 + 1:02d}"
    nxt = f"{y + (m == 12)}-{m % 12 + 1:02d}"
    return render(request, "report_monthly.html", {
        "rows": rows, "tot": reports.totals(rows), "bulan": key, "label": f"{MONTHS[m - 1]} {y}", "opd": opd,
        "prev": prev, "next": nxt, "made": pages.wib(datetime.now(timezone.utc)), "title": "Laporan bulanan"})
