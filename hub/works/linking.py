"""Citizens as auditors: at ticket creation, a report about a project (its code, its name, or
coordinates within works.yaml link_distance_m of its point or road line) is routed to the
executing OPD, linked to the project (works_reports) and copied to the Inspektorat.

Wired as a draft hook of hub.tickets.create_many (a `draft_hooks` entry of hub.works.wiring.feature): it sees a batch
of (raw, draft) before the tickets are made, so the ticket is created at the right OPD and
delivered once. A geotagged report only counts as about the project when it talks about works
(a KTP question sent from beside a road works is not about the road).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from hub import tickets as T
from hub.logging import get_logger
from hub.models import Ticket
from hub.works import match as M
from hub.works.models import WorksContract, WorksProject, WorksReport, WorksTender
from hub.works.settings import works_settings

log = get_logger(__name__)


def project_refs(s: Session) -> list[M.ProjectRef]:
    contracts: dict[str, list[str]] = {}
    tender_rup = dict(s.execute(select(WorksTender.kd_tender, WorksTender.kd_rup)).all())
    for number, kd_rup, kd_tender in s.execute(select(WorksContract.number, WorksContract.kd_rup,
                                                      WorksContract.kd_tender)):
        code = kd_rup or tender_rup.get(kd_tender)
        if code:
            contracts.setdefault(code, []).append(number)
    out = []
    for p in s.scalars(select(WorksProject).order_by(WorksProject.id)):
        out.append(M.ProjectRef(p.id, p.code, p.name, p.opd_code, p.latitude, p.longitude,
                                tuple(tuple(x) for x in p.line) if p.line else None, p.buffer_m,
                                tuple(contracts.get(p.code, ()))))
    return out


def _executor(code: str | None, cfg) -> str:
    if code in cfg.opd_codes():
        return code
    return "PUPR" if "PUPR" in cfg.opd_codes() else cfg.triage_opd


def find(s_or_refs, text: str, lat: float | None, lon: float | None, cfg) -> M.Match | None:
    refs = s_or_refs if isinstance(s_or_refs, list) else project_refs(s_or_refs)
    ws = works_settings(cfg)
    m = M.match(text, lat, lon, refs, ws.link_distance_m, ws.default_road_buffer_m)
    if m is not None and m.method == "distance" and not M.about_works(text):
        return None
    return m


def draft_hook(session: Session, items: list, cfg, ctx) -> list:
    """A draft hook (hub.parts.Line.draft_hooks): re-route drafts about a project, link after the flush.
    A failure here never costs a ticket: the batch goes on unlinked, and the error is logged."""
    try:
        return _draft_hook(session, items, cfg, ctx)
    except Exception:
        log.exception("works.link_failed", n=len(items))
        return items


def _draft_hook(session: Session, items: list, cfg, ctx) -> list:
    live = [(i, raw, d) for i, (raw, d) in enumerate(items)
            if not d.is_empty and d.channel != "works" and not (d.fields or {}).get("imported")]
    if not live:
        return items
    with session.no_autoflush:
        if session.scalars(select(WorksProject.id).limit(1)).first() is None:
            return items
        refs = project_refs(session)
    if not refs:
        return items
    out = list(items)
    links = []
    for i, raw, d in live:
        m = find(refs, d.text_original, d.place.latitude, d.place.longitude, cfg)
        if m is None:
            continue
        opd = _executor(m.project.opd_code, cfg)
        how = (f"{m.distance_m:.0f} m dari lokasi proyek" if m.method == "distance"
               else {"code": "kode proyek", "name": "nama proyek"}[m.method])
        routing = replace(d.routing, opd=opd, confidence=1.0, needs_triage=False,
                          rule=f"works:{m.method}: proyek {m.project.code} ({how})")
        out[i] = (raw, replace(d, routing=routing))
        links.append((raw.ticket_code, m, M.says_no_work(d.text_original)))
    if links:
        ctx.after_flush.append(lambda: _link_all(session, links, cfg))
    return out


def _link_all(session: Session, links: list, cfg) -> None:
    from hub.works.service import copy_to_inspektorat

    ws = works_settings(cfg)
    codes = [c for c, _, _ in links]
    tickets = {t.code: t for t in session.scalars(select(Ticket).where(Ticket.code.in_(codes)))}
    for code, m, no_work in links:
        t = tickets.get(code)
        if t is None:
            continue
        session.add(WorksReport(ticket_id=t.id, project_id=m.project.id, method=m.method, distance_m=m.distance_m,
                                no_work_claim=no_work))
        T.add_event(session, t, "system:works", "note",
                    note=f"Tertaut ke proyek {m.project.code}: {m.project.name}",
                    data={"project": m.project.code, "method": m.method, "distance_m": m.distance_m,
                          "no_work_claim": no_work})
        copy_to_inspektorat(session, t, ws, "ticket.created")
    log.info("works.reports_linked", n=len(links))


def relink_ticket(s: Session, code: str, project_code: str, actor: str, cfg) -> dict[str, Any]:
    from hub.works.service import WorksError, WorksNotFound, copy_to_inspektorat

    t = T.resolve_code(s, code)
    if t is None:
        raise WorksNotFound(f"tiket {code} tidak ditemukan")
    p = s.scalars(select(WorksProject).where(WorksProject.code == project_code)).first()
    if p is None:
        raise WorksNotFound(f"proyek {project_code} tidak ditemukan")
    link = s.scalars(select(WorksReport).where(WorksReport.ticket_id == t.id)).first()
    old = None
    if link is None:
        link = WorksReport(ticket_id=t.id, project_id=p.id, method="manual", actor=actor,
                           no_work_claim=M.says_no_work(t.text_original))
        copy_to_inspektorat(s, t, works_settings(cfg), "ticket.created")
    else:
        if link.project_id == p.id:
            raise WorksError(f"tiket {t.code} sudah tertaut ke proyek {p.code}")
        old = link.project_id
        link.project_id, link.method, link.distance_m, link.actor = p.id, "manual", None, actor
    s.add(link)
    T.add_event(s, t, actor, "note", note=f"Ditautkan ke proyek {p.code}: {p.name}",
                data={"project": p.code, "method": "manual", "previous_project_id": old})
    opd = _executor(p.opd_code, cfg)
    if t.opd_code != opd and t.status in ("menunggu", "diproses"):
        T.reroute(s, t, opd, actor, cfg, note=f"Proyek {p.code} dikerjakan {opd}", learn=False)
    return {"ticket": t.code, "project": p.code, "opd": t.opd_code}
