"""The "Proyek terkait" section of the staff ticket page (/tiket/{code}, hub.web.routes): which
project the ticket is linked to and how (the project's code or name in the report, the distance
from it, or a staff member's relink), and for the roles the works API lets relink a form to link
it to another project: the nearest few projects (by the ticket's coordinates, else its desa or
kecamatan) or a typed project code.

Wired as a `ticket_panels` entry of hub.works.wiring.feature. Posting the form goes through the
same service function as POST /api/v1/works/reports/{code}/link (hub.works.linking.relink_ticket)
under the same authorization as that endpoint (hub.works.api.relink).
"""
from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import Text, cast, or_, select
from sqlmodel import Session

from hub import tickets as T
from hub.db import writer
from hub.logging import get_logger
from hub.models import Ticket
from hub.web import pages
from hub.web.pages import check_csrf, user
from hub.works.geo import distance_to_project_m, haversine_m
from hub.works.models import WorksProject, WorksReport
from hub.works.service import WorksError

log = get_logger(__name__)
router = APIRouter(include_in_schema=False)
RELINKERS = ("admin", "operator", "opd")  # as hub.works.api.relink; an OPD only for tickets it sees
NEAREST = 5
BOX = 0.1  # degrees around the ticket searched first for projects with a point
FIELD = "proyek"
HOW = {"code": "kode proyek disebut dalam laporan", "name": "nama proyek disebut dalam laporan",
       "manual": "ditautkan petugas"}


def _distance_words(m: float | None) -> str:
    if m is None:
        return ""
    return f"{m:.0f} m" if m < 1000 else f"{m / 1000:.1f} km".replace(".", ",")


def how_words(link: WorksReport) -> str:
    if link.method == "distance":
        return f"jarak: {_distance_words(link.distance_m)} dari lokasi proyek"
    return HOW.get(link.method, link.method)


def _nearest(s: Session, lat: float, lon: float, skip: int | None) -> list[dict[str, Any]]:
    """The NEAREST projects to (lat, lon): roads by their line (every one: a line's extent is not
    in the table), others by their point, first those within BOX degrees (~11 km) and all of them
    only when that finds too few. The line is read as text and decoded only for roads: decoding
    the JSON "null" of every point project cost half the time with 5,000 projects."""
    line_text = cast(WorksProject.line, Text)
    no_line = or_(WorksProject.line.is_(None), line_text == "null")
    near: list[tuple[float, str, str]] = []
    for pid, code, name, text, buf, la, lo in s.execute(select(
            WorksProject.id, WorksProject.code, WorksProject.name, line_text, WorksProject.buffer_m,
            WorksProject.latitude, WorksProject.longitude).where(~no_line)):
        d = distance_to_project_m(lat, lon, la, lo, json.loads(text), buf)
        if d is not None and pid != skip:
            near.append((d, code, name))
    points = select(WorksProject.id, WorksProject.code, WorksProject.name, WorksProject.latitude,
                    WorksProject.longitude).where(no_line, WorksProject.latitude.is_not(None),
                                                  WorksProject.longitude.is_not(None))
    boxed = points.where(WorksProject.latitude.between(lat - BOX, lat + BOX),
                         WorksProject.longitude.between(lon - BOX, lon + BOX))
    for q in (boxed, points):
        found = [(haversine_m(lat, lon, la, lo), code, name) for pid, code, name, la, lo in s.execute(q)
                 if pid != skip]
        if len(found) >= NEAREST or q is points:
            near += found
            break
    near.sort()
    return [{"code": c, "name": n, "where": _distance_words(d)} for d, c, n in near[:NEAREST]]


def candidates(s: Session, t: Ticket, current: WorksProject | None) -> list[dict[str, Any]]:
    """The nearest projects by the ticket's coordinates; without them (or no project located) the
    projects of its desa, then of its kecamatan. The current project is not among them (the
    template shows it apart)."""
    skip = current.id if current is not None else None
    if t.latitude is not None and t.longitude is not None:
        near = _nearest(s, t.latitude, t.longitude, skip)
        if near:
            return near
    out: list[dict[str, Any]] = []
    if t.desa_code or t.kecamatan_code:
        cols = (WorksProject.id, WorksProject.code, WorksProject.name, WorksProject.desa_code)
        q = select(*cols).where(WorksProject.kecamatan_code == t.kecamatan_code) if t.kecamatan_code else \
            select(*cols).where(WorksProject.desa_code == t.desa_code)
        rows = [r for r in s.execute(q.order_by(WorksProject.id.desc()).limit(200)) if r[0] != skip]
        rows.sort(key=lambda r: (not (t.desa_code and r[3] == t.desa_code)))  # the same desa first
        for r in rows[:NEAREST]:
            same = bool(t.desa_code and r[3] == t.desa_code)
            out.append({"code": r[1], "name": r[2], "where": "desa yang sama" if same else "kecamatan yang sama"})
    return out


def panel(s: Session, t: Ticket, who) -> dict[str, Any] | None:
    """The section's context; None (no section) while the works register is empty."""
    if s.scalars(select(WorksProject.id).limit(1)).first() is None:
        return None
    row = s.execute(select(WorksReport, WorksProject).join(WorksProject, WorksProject.id == WorksReport.project_id)
                    .where(WorksReport.ticket_id == t.id)).first()
    link, project = (row[0], row[1]) if row is not None else (None, None)
    can = who.role in RELINKERS and T.can_see(t, who)
    return {"template": "works_ticket_panel.html", "link": link, "project": project,
            "how": how_words(link) if link is not None else None,
            "by": pages.actor_words(link.actor) if link is not None and link.method == "manual" else None,
            "can_relink": can, "candidates": candidates(s, t, project) if can else []}


@router.post("/tiket/{code}/proyek")
async def relink_form(request: Request, code: str):
    """Staff link (or relink) the ticket to a project: a candidate from the select or a typed
    code (the typed one wins). Refused (unknown project, already linked there): the ticket page
    again with the reason next to the field, status 400. Done: back to the ticket page with a
    notice (or to the OPD's list when the ticket moved to another OPD it may not see)."""
    who = user(request, *RELINKERS)  # 403 page for other roles
    form = await request.form()
    check_csrf(request, form)
    from hub.web.routes import show_ticket
    from hub.works.linking import relink_ticket

    typed = str(form.get("kode") or "").strip()[:40]
    wanted = typed or str(form.get("pilihan") or "").strip()[:40]
    err = None
    with Session(writer(), expire_on_commit=False) as s:
        try:
            t = T.get_visible(s, code, who)  # an OPD links only its own tickets; others' look absent
        except T.NotFound:
            raise pages.PageError(404, f"Tiket {code} tidak ditemukan.") from None
        tcode, before = t.code, t.opd_code
        if not wanted:
            err = "Pilih proyek atau tulis kode proyeknya."
        else:
            try:
                out = relink_ticket(s, tcode, wanted, who.actor, request.app.state.regency)
                s.commit()
            except WorksError as exc:
                s.rollback()
                err = _refusal(exc, wanted, tcode)
            else:
                name = s.scalars(select(WorksProject.name).where(WorksProject.code == out["project"])).first()
                still = T.can_see(t, who)
    if err is not None:
        return show_ticket(request, who, tcode, 400, err=err, err_field=FIELD)
    log.info("web.ticket_action", code=tcode, actor=who.actor, path="proyek", project=out["project"])
    msg = f"Tiket {tcode} ditautkan ke proyek {out['project']}" + (f" ({name})" if name else "") + "."
    if out["opd"] != before:
        msg += f" Tiket dialihkan ke {pages.opd_names().get(out['opd'], out['opd'])}."
    if not still:
        pages.flash(request, msg + " Tiket ini tidak lagi tampil untuk OPD Anda.")
        return RedirectResponse("/opd", status_code=303)
    pages.flash(request, msg)
    return RedirectResponse(f"/tiket/{tcode}", status_code=303)


def _refusal(exc: WorksError, wanted: str, code: str) -> str:
    text = str(exc)
    if text.startswith("proyek "):
        return f"Proyek dengan kode {wanted} tidak ditemukan. Periksa kode pada papan proyek atau di /proyek."
    if "sudah tertaut" in text:
        return f"Tiket {code} sudah tertaut ke proyek {wanted}."
    return text
