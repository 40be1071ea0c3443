"""Works pages, Bahasa Indonesia, phone-first, server-rendered (no third-party front-end code):

- public, no login: /proyek (projects per kecamatan, with a Leaflet map of the kecamatan
  boundaries and a marker per project, a line for roads; the inline-SVG dot plot and the list stay
  as the no-JS fallback), /proyek/{code} (value, winner, a small map, plan vs actual curve as
  inline SVG, payments, photos, citizens' reports and answers); /proyek/peta.json (the projects'
  public fields and coordinates) and /proyek/kecamatan.geojson (the boundaries; the staff map's
  /peta/kecamatan.geojson needs a login) feed the maps;
- contractors: /mitra (sign in with the contractor key once; the session keeps only its
  prefix), a progress form per contract (%, date, note, photo; corrections are new reports);
- staff: /dasbor/proyek, the regional head's "Proyek" tab (projects by status, critical
  contracts, open flags with a close-with-reason form, money paid vs progress per OPD and
  kecamatan), and the payment form of the budget executor on the project page.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from jinja2 import ChoiceLoader, FileSystemLoader
from sqlalchemy import select
from sqlmodel import Session

from hub.db import get_engine, writer
from hub.models import ApiKey, Ticket, TicketEvent
from hub.web.pages import PageError, cfg, check_csrf, render, templates, user
from hub.works import curve
from hub.works import parse as P
from hub.works import service as W
from hub.works.flags import RULES
from hub.works.models import WorksContract, WorksContractorKey, WorksFlag, WorksProject, WorksReport

router = APIRouter(include_in_schema=False)
HERE = Path(__file__).resolve().parent
if not any(getattr(x, "searchpath", None) == [str(HERE / "templates")]
           for x in getattr(templates.env.loader, "loaders", [])):
    templates.env.loader = ChoiceLoader([templates.env.loader, FileSystemLoader(str(HERE / "templates"))])
templates.env.filters.update(rupiah=P.rupiah)
STAFF = ("admin", "pimpinan", "operator", "opd")


def _read() -> Session:
    return Session(get_engine(), expire_on_commit=False)


def _names() -> dict[str, str]:
    from hub.works.geo import kecamatan_names

    return kecamatan_names(cfg())


# --- shared views ------------------------------------------------------------------------------

def project_row(s: Session, p: WorksProject, today: date) -> dict[str, Any]:
    cs = W.contracts_of(s, p)
    c = cs[-1] if cs else None
    v = W.contract_view(s, c, p, today) if c else None
    t = W.tender_of(s, c, p)
    return {"p": p, "c": c, "v": v, "t": t, "status": W.project_status(s, p, today),
            "value": (c.value_sen if c else None) or (t.value_sen if t else None) or p.pagu_sen,
            "winner": (c.winner_name if c else None) or (t.winner_name if t else None)}


def curve_svg(c: WorksContract | None, p: WorksProject, v, today: date, w: int = 320, h: int = 160) -> dict | None:
    """Plan and actual as polylines in an SVG viewBox (x: days since start, y: 0-100 %)."""
    if c is None or c.start_on is None or c.planned_end is None:
        return None
    plan = curve.planned_points(c.start_on, c.planned_end, W.schedule_items(c, p))
    reps = W.series(v.progress)
    if not plan:
        return None
    x0 = min([plan[0][0], *[d for d, _ in reps]])
    x1 = max([plan[-1][0], *[d for d, _ in reps], min(today, plan[-1][0] + timedelta(days=60))])
    span = max(1, (x1 - x0).days)
    pad = 28

    def pt(d: date, pct: float) -> str:
        return f"{pad + (w - pad - 6) * (d - x0).days / span:.1f},{h - 18 - (h - 28) * pct / 100:.1f}"

    actual = [pt(c.start_on, 0.0)]
    last = 0.0
    for d, pct in sorted(reps):
        actual.append(pt(d, last))
        actual.append(pt(d, pct))
        last = pct
    today_x = pad + (w - pad - 6) * (min(max(today, x0), x1) - x0).days / span
    return {"w": w, "h": h, "plan": " ".join(pt(d, pct) for d, pct in plan), "actual": " ".join(actual),
            "today_x": f"{today_x:.1f}", "y": [(f"{h - 18 - (h - 28) * q / 100:.1f}", q) for q in (0, 50, 100)],
            "start": c.start_on, "end": c.planned_end, "base": h - 18}


def _reports(s: Session, p: WorksProject) -> list[dict[str, Any]]:
    rows = s.execute(select(Ticket, WorksReport).join(WorksReport, WorksReport.ticket_id == Ticket.id)
                     .where(WorksReport.project_id == p.id).order_by(Ticket.id.desc()).limit(50)).all()
    out = []
    for t, link in rows:
        answers = [e for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id,
                                                                  TicketEvent.kind == "status")
                                        .order_by(TicketEvent.id)) if e.note]
        out.append({"t": t, "link": link, "answers": answers,
                    "text": t.text_original if not t.confidential else "(laporan rahasia)"})
    return out


# --- public ------------------------------------------------------------------------------------

@router.get("/proyek")
def project_list(request: Request, kecamatan: str = "", status: str = ""):
    today = W.today_local(cfg())
    names = _names()
    with _read() as s:
        rows = _rows(s, today, kecamatan, status)
    groups: dict[str, list] = defaultdict(list)
    for r in rows:
        groups[r["p"].kecamatan_code or ""].append(r)
    pts = [(r["p"].latitude, r["p"].longitude, r) for r in rows if r["p"].latitude is not None]
    dots = []
    if pts:
        la0, la1 = min(x[0] for x in pts), max(x[0] for x in pts)
        lo0, lo1 = min(x[1] for x in pts), max(x[1] for x in pts)
        for la, lo, r in pts:
            dots.append({"x": 10 + 300 * (lo - lo0) / max(1e-6, lo1 - lo0), "y": 10 + 180 * (la1 - la) / max(1e-6, la1 - la0),
                         "r": r})
    kecs = sorted({c for c in (p for p in groups) if c}, key=lambda c: names.get(c, c))
    return render(request, "works_list.html", {"groups": groups, "names": names, "dots": dots,
                                               "f": {"kecamatan": kecamatan, "status": status}, "kecs": kecs,
                                               "LABELS": W.STATUS_LABELS, "count": len(rows),
                                               **_map_ctx(request)})


def _point(p: WorksProject) -> tuple[float, float] | None:
    """Where the project's marker goes: its coordinates, else the middle vertex of its line."""
    if p.latitude is not None and p.longitude is not None:
        return p.latitude, p.longitude
    if p.line:
        la, lo = p.line[len(p.line) // 2][:2]
        return float(la), float(lo)
    return None


def map_points(rows: list[dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    """Public fields only (what /proyek already shows): code, name, kecamatan, status, value, the point
    and a road's line. No contractor key, NPWP, payments or reports."""
    out = []
    for r in rows:
        p = r["p"]
        pt = _point(p)
        if pt is None:
            continue
        out.append({"code": p.code, "name": p.name, "kecamatan": p.kecamatan_code,
                    "kecamatan_name": names.get(p.kecamatan_code or "", None),
                    "status": r["status"], "status_label": W.STATUS_LABELS.get(r["status"], r["status"]),
                    "value": P.rupiah(r["value"]), "lat": round(pt[0], 6), "lng": round(pt[1], 6),
                    "line": [[round(float(a), 6), round(float(b), 6)] for a, b, *_ in p.line] if p.line else None,
                    "url": f"/proyek/{p.code}"})
    return out


def _rows(s: Session, today: date, kecamatan: str = "", status: str = "", code: str = "") -> list[dict[str, Any]]:
    q = select(WorksProject).order_by(WorksProject.kecamatan_code, WorksProject.name)
    if kecamatan:
        q = q.where(WorksProject.kecamatan_code == kecamatan)
    if code:
        q = q.where(WorksProject.code == code)
    rows = [project_row(s, p, today) for p in s.scalars(q)]
    return [r for r in rows if r["status"] == status] if status else rows


@router.get("/proyek/peta.json")
def project_points(request: Request, kecamatan: str = "", status: str = "", kode: str = ""):
    """The projects on the public map (no login; the list's filters, or one project by `kode`)."""
    from fastapi.responses import JSONResponse

    with _read() as s:
        rows = _rows(s, W.today_local(cfg()), kecamatan[:20], status[:20], kode[:40])
    pts = map_points(rows, _names())
    return JSONResponse({"projects": pts, "count": len(rows), "without_location": len(rows) - len(pts)},
                        headers={"Cache-Control": "public, max-age=300"})


@router.get("/proyek/kecamatan.geojson")
def project_boundaries(request: Request):
    """The kecamatan boundaries for the public map (the same file as the staff map's, without login)."""
    from fastapi.responses import Response

    from hub.web.maps import boundaries

    body = boundaries(request)
    if body is None:
        raise PageError(404, "Batas kecamatan belum tersedia untuk kabupaten ini.")
    return Response(body, media_type="application/geo+json", headers={"Cache-Control": "public, max-age=86400"})


def _map_ctx(request: Request) -> dict[str, Any]:
    from hub.web.maps import tiles
    from hub.web.pages import tile_origin

    t = tiles(request)
    return {"tiles": t, "img_origin": tile_origin(t)}


@router.get("/proyek/{code}")
def project_page(request: Request, code: str):
    today = W.today_local(cfg())
    with _read() as s:
        p = s.scalars(select(WorksProject).where(WorksProject.code == code)).first()
        if p is None:
            raise PageError(404, "Proyek tidak ditemukan.")
        row = project_row(s, p, today)
        svg = curve_svg(row["c"], p, row["v"], today) if row["v"] else None
        reports = _reports(s, p)
        who = getattr(request.state, "web_user", None)
        from hub.web.security import session_user

        who = who or (session_user(request) if "session" in request.scope else None)
        can_pay = who is not None and (who.role == "admin" or (who.role == "opd" and who.opd_code == p.opd_code))
        flags = []
        if who is not None and who.role in STAFF:
            flags = list(s.scalars(select(WorksFlag).where(WorksFlag.project_id == p.id).order_by(WorksFlag.id.desc())))
    return render(request, "works_project.html", {
        "r": row, "p": p, "svg": svg, "reports": reports, "names": _names(), "LABELS": W.STATUS_LABELS,
        "can_pay": can_pay, "flags": flags, "RULES": RULES, "msg": request.query_params.get("pesan"),
        "err": request.query_params.get("galat"), "today": today, "has_point": _point(p) is not None,
        **_map_ctx(request)})


@router.post("/proyek/{code}/belum-beres")
async def not_done(request: Request, code: str):
    """The citizen says a finished report about this project is not fixed: the ticket reopens.
    The reporter proves it is theirs with the last 4 digits of the phone that sent it."""
    from hub import tickets as T

    form = await request.form()
    check_csrf(request, form)
    ticket_code = str(form.get("tiket") or "").strip().upper()[:10]
    digits = "".join(ch for ch in str(form.get("hp4") or "") if ch.isdigit())
    with Session(writer(), expire_on_commit=False) as s:
        p = s.scalars(select(WorksProject).where(WorksProject.code == code)).first()
        t = s.scalars(select(Ticket).where(Ticket.code == ticket_code)).first()
        link = s.scalars(select(WorksReport).where(WorksReport.ticket_id == t.id)).first() if t else None
        if p is None or link is None or link.project_id != p.id:
            raise PageError(404, "Laporan tidak ditemukan.")
        if t.status != "selesai":
            return _back(code, err="Hanya laporan yang sudah selesai yang dapat dinyatakan belum beres.")
        if len(digits) != 4 or not t.reporter_phone or not t.reporter_phone.endswith(digits):
            return _back(code, err="4 angka terakhir nomor HP pelapor tidak cocok.")
        T.change_status(s, t, "menunggu", "warga:pelapor", cfg(), note="Warga: belum beres")
        s.commit()
    return _back(code, msg=f"Laporan {ticket_code} dibuka kembali dan diteruskan lagi ke OPD.")


@router.post("/proyek/{code}/bayar")
async def pay_submit(request: Request, code: str):
    who = user(request, "admin", "opd")
    form = await request.form()
    check_csrf(request, form)
    with Session(writer(), expire_on_commit=False) as s:
        p = s.scalars(select(WorksProject).where(WorksProject.code == code)).first()
        if p is None or (who.role == "opd" and p.opd_code != who.opd_code):
            raise PageError(404, "Proyek tidak ditemukan.")
        cs = W.contracts_of(s, p)
        if not cs:
            return _back(code, err="Proyek ini belum berkontrak.")
        c = cs[-1]
        try:
            amount = P.sen(str(form.get("jumlah") or ""), "jumlah")
            paid_on = P.day(str(form.get("tanggal") or ""), "tanggal")
            if amount is None or paid_on is None:
                raise P.CellError("isi jumlah dan tanggal")
            term_no = int(str(form.get("termin_ke") or "0") or 0) or None
            fix = int(str(form.get("koreksi") or "0") or 0) or None
            W.record_payment(s, c, amount, paid_on, str(form.get("jenis") or ""), who.actor, term_no,
                             str(form.get("catatan") or "")[:500] or None, fix, source="form")
        except (P.CellError, W.WorksError, ValueError) as exc:
            return _back(code, err=str(exc))
        W.recompute_flags(s, cfg(), contract_ids=[c.id])
        s.commit()
    return _back(code, msg="Pembayaran dicatat.")


def _back(code: str, msg: str | None = None, err: str | None = None) -> RedirectResponse:
    from urllib.parse import urlencode

    q = urlencode({k: v for k, v in (("pesan", msg), ("galat", err)) if v})
    return RedirectResponse(f"/proyek/{code}" + (f"?{q}" if q else ""), status_code=303)


# --- contractors -------------------------------------------------------------------------------

def _contractor(request: Request, s: Session) -> tuple[str, str] | None:
    """(name, NPWP) of the contractor signed in on this browser, while its key is valid."""
    prefix = request.session.get("works_ck") if "session" in request.scope else None
    if not prefix:
        return None
    key = s.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    npwp = s.scalars(select(WorksContractorKey.npwp).where(WorksContractorKey.key_prefix == prefix)).first()
    if key is None or key.revoked_at is not None or npwp is None:
        request.session.pop("works_ck", None)
        return None
    return key.name, npwp


@router.get("/mitra")
def contractor_home(request: Request):
    today = W.today_local(cfg())
    with _read() as s:
        me = _contractor(request, s)
        rows = []
        if me:
            for c in s.scalars(select(WorksContract).where(WorksContract.winner_npwp == me[1]).order_by(WorksContract.id)):
                p = W.project_of(s, c)
                rows.append({"c": c, "p": p, "v": W.contract_view(s, c, p, today)})
    return render(request, "works_mitra.html", {"me": me, "rows": rows, "msg": request.query_params.get("pesan"),
                                                "err": request.query_params.get("galat"), "today": today})


@router.post("/mitra/masuk")
async def contractor_login(request: Request):
    from hub.works.api import contractor_for_key

    form = await request.form()
    check_csrf(request, form)
    key = str(form.get("kunci") or "").strip()[:200]
    with _read() as s:
        found = contractor_for_key(s, key)
    if found is None:
        return RedirectResponse("/mitra?galat=Kunci+akses+tidak+sah+atau+sudah+dicabut.", status_code=303)
    request.session["works_ck"] = key.split("_")[1]
    return RedirectResponse("/mitra", status_code=303)


@router.post("/mitra/keluar")
async def contractor_logout(request: Request):
    form = await request.form()
    check_csrf(request, form)
    request.session.pop("works_ck", None)
    return RedirectResponse("/mitra", status_code=303)


@router.post("/mitra/progres")
async def contractor_progress(request: Request):
    from hub.web.uploads import UploadRejected, save_upload

    form = await request.form()
    check_csrf(request, form)
    number = str(form.get("kontrak") or "")
    with Session(writer(), expire_on_commit=False) as s:
        me = _contractor(request, s)
        if me is None:
            return RedirectResponse("/mitra?galat=Masuk+dengan+kunci+akses+dulu.", status_code=303)
        c = s.scalars(select(WorksContract).where(WorksContract.number == number)).first()
        if c is None or c.winner_npwp != me[1]:
            raise PageError(404, "Kontrak tidak ditemukan.")
        photos = []
        photo = form.get("foto")
        try:
            if photo is not None and getattr(photo, "filename", None):
                photos.append(await save_upload(photo))
            pct = P.percent(str(form.get("persen") or ""), "progres")
            when = P.day(str(form.get("tanggal") or ""), "tanggal")
            if pct is None or when is None:
                raise P.CellError("isi progres (%) dan tanggal")
            fix = int(str(form.get("koreksi") or "0") or 0) or None
            W.record_progress(s, c, pct, when, f"mitra:{me[0]}", str(form.get("catatan") or "")[:1000] or None,
                              photos, fix, source="form", today=W.today_local(cfg()))
        except (P.CellError, W.WorksError, ValueError, UploadRejected) as exc:
            from urllib.parse import quote

            return RedirectResponse(f"/mitra?galat={quote(str(exc))}", status_code=303)
        W.recompute_flags(s, cfg(), contract_ids=[c.id])
        s.commit()
    return RedirectResponse("/mitra?pesan=Progres+tersimpan.+Terima+kasih.", status_code=303)


# --- the regional head's "Proyek" tab ----------------------------------------------------------

def dashboard_data(s: Session, today: date, opd: str | None = None) -> dict[str, Any]:
    q = select(WorksProject)
    if opd:
        q = q.where(WorksProject.opd_code == opd)
    rows = [project_row(s, p, today) for p in s.scalars(q.order_by(WorksProject.id))]
    by_status: dict[str, int] = defaultdict(int)
    money: dict[str, dict[str, dict[str, float]]] = {"opd": {}, "kecamatan": {}}
    for r in rows:
        by_status[r["status"]] += 1
        v = r["v"]
        for dim, key in (("opd", r["p"].opd_code or "-"), ("kecamatan", r["p"].kecamatan_code or "-")):
            m = money[dim].setdefault(key, {"value": 0, "paid": 0, "earned": 0, "projects": 0})
            m["projects"] += 1
            if v is not None and r["c"] is not None and r["c"].value_sen:
                m["value"] += r["c"].value_sen
                m["paid"] += v.paid_sen
                m["earned"] += r["c"].value_sen * v.actual / 100
    critical = [r for r in rows if r["status"] == "kritis"]
    fq = (select(WorksFlag, WorksProject, Ticket.code).join(WorksProject, WorksProject.id == WorksFlag.project_id)
          .outerjoin(Ticket, Ticket.id == WorksFlag.ticket_id).where(WorksFlag.state == "open"))
    if opd:
        fq = fq.where(WorksProject.opd_code == opd)
    flags = s.execute(fq.order_by(WorksFlag.id.desc()).limit(200)).all()
    return {"rows": rows, "by_status": dict(by_status), "money": money, "critical": critical, "flags": flags}


@router.get("/dasbor/proyek")
def dashboard(request: Request, opd: str = ""):
    who = user(request, *STAFF)
    ins = _inspektorat()
    scope = who.opd_code if who.role == "opd" and who.opd_code != ins else (opd or None)
    with _read() as s:
        d = dashboard_data(s, W.today_local(cfg()), scope)
    return render(request, "works_dashboard.html", {**d, "LABELS": W.STATUS_LABELS, "RULES": RULES,
                                                    "names": _names(), "f": {"opd": scope or ""},
                                                    "msg": request.query_params.get("pesan"),
                                                    "err": request.query_params.get("galat")})


def _inspektorat() -> str:
    from hub.works.settings import works_settings

    return works_settings(cfg()).copy_to


@router.post("/dasbor/proyek/bendera/{flag_id}/tutup")
async def close_flag(request: Request, flag_id: int):
    who = user(request, "admin", "operator", "opd")
    form = await request.form()
    check_csrf(request, form)
    from urllib.parse import quote

    with Session(writer(), expire_on_commit=False) as s:
        f = s.get(WorksFlag, flag_id)
        p = s.get(WorksProject, f.project_id) if f else None
        if f is None or (who.role == "opd" and who.opd_code not in (p.opd_code, _inspektorat())):
            raise PageError(404, "Bendera tidak ditemukan.")
        try:
            W.close_flag(s, flag_id, who.actor, str(form.get("alasan") or "")[:2000], cfg())
        except W.WorksError as exc:
            return RedirectResponse(f"/dasbor/proyek?galat={quote(str(exc))}", status_code=303)
        s.commit()
    return RedirectResponse("/dasbor/proyek?pesan=Bendera+ditutup.", status_code=303)


@router.get("/open/oc4ids/projects.json", include_in_schema=True, tags=["open data"])
def oc4ids_projects(request: Request):
    """Every project as an OC4IDS 0.9.5 project package (open data, no login)."""
    from fastapi.responses import JSONResponse

    from hub.works.oc4ids import package

    with _read() as s:
        body = package(s, cfg())
    return JSONResponse(body, headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"})
