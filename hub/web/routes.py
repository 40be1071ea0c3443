"""Pages for staff: login/logout, the overview (dashboard), ticket list, ticket page with its
actions, and the OPD view. Thin: read through hub.stats / queries, change through hub.tickets.
An OPD user never sees another OPD's ticket (404, as in the API).
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import func, select
from sqlmodel import Session

from hub import stats
from hub import tickets as T
from hub import media
from hub.db import get_engine, writer
from hub.logging import get_logger
from hub.models import OPEN_STATUSES, Outbox, Ticket, TicketEvent
from hub.web import pages
from hub.web.pages import PageError, check_csrf, period_range, qs, render, user
from hub.web.security import LoginRefused, login, start_session

log = get_logger(__name__)
router = APIRouter(include_in_schema=False)
STAFF = ("admin", "pimpinan", "operator", "opd")
OVERVIEW = ("admin", "pimpinan", "operator")
CHANGERS = ("admin", "operator", "opd")
ROUTERS = ("admin", "operator")
PAGE_SIZE = 30
DUKCAPIL = "DUKCAPIL"  # the OPD whose staff may reveal a NIK (with admins)


def _read() -> Session:
    return Session(get_engine(), expire_on_commit=False)


def _write() -> Session:
    return Session(writer(), expire_on_commit=False)


def _home(role: str) -> str:
    return {"opd": "/opd", "operator": "/"}.get(role, "/")


# --- login -----------------------------------------------------------------------------------

@router.get("/masuk")
def login_page(request: Request, lanjut: str = "/"):
    return render(request, "login.html", {"lanjut": lanjut, "error": None})


@router.post("/masuk")
async def login_submit(request: Request):
    form = await request.form()
    check_csrf(request, form)
    lanjut = str(form.get("lanjut") or "/")
    if not lanjut.startswith("/") or lanjut.startswith("//"):
        lanjut = "/"  # never redirect off-site
    try:
        u = await login(str(form.get("username", ""))[:80], str(form.get("password", ""))[:200],
                        request.client.host if request.client else "?")
    except LoginRefused as exc:
        return render(request, "login.html", {"lanjut": lanjut, "error": str(exc),
                                              "username": str(form.get("username", ""))[:80]}, status=401)
    start_session(request, u)
    if lanjut == "/" and u.role == "opd":
        lanjut = "/opd"
    return RedirectResponse(lanjut, status_code=303)


@router.post("/keluar")
async def logout(request: Request):
    form = await request.form()
    check_csrf(request, form)
    uid = request.session.get("uid")
    if uid:  # end the session server-side: a copy of the cookie kept from before stops working
        await asyncio.to_thread(_end_sessions, uid, request.session.get("fp"))
    request.session.clear()
    return RedirectResponse("/masuk", status_code=303)


def _end_sessions(uid: int, fp: str | None) -> None:
    from hub.models import User
    from hub.web.security import end_sessions, fingerprint

    with _write() as s:
        u = s.get(User, uid)
        if u is not None and fp and fingerprint(u) == fp:  # only a live session may end them
            end_sessions(s, u)
            s.commit()
            log.info("web.logout", user=u.username)


# --- overview --------------------------------------------------------------------------------

def _filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    return {"periode": q.get("periode") if q.get("periode") in pages.PERIODS else "semua",
            "opd": q.get("opd") or None, "channel": q.get("channel") or None, "kecamatan": q.get("kecamatan") or None}


@router.get("/")
def overview(request: Request):
    who = user(request, *STAFF)
    if who.role == "opd":
        return RedirectResponse("/opd", status_code=303)
    f = _filters(request)
    since, _ = period_range(f["periode"])
    now = datetime.now(timezone.utc)
    with _read() as s:
        summ = stats.summary(s, since=since, opd=f["opd"], channel=f["channel"], kecamatan=f["kecamatan"])
        # No `now` here: only trend(now=None) may serve the cached default 12 weeks.
        tr = stats.trend(s, since=since, opd=f["opd"], channel=f["channel"], kecamatan=f["kecamatan"])
        urgent = _attention_groups(s, f, now)
        last_id = stats.max_ticket_id(s)
        reopened_n = stats.reopened(s, since=since, opd=f["opd"], channel=f["channel"], kecamatan=f["kecamatan"])
        triage, triage_n, escalated_n = [], 0, 0
        if who.role in ROUTERS:
            tq = T.TicketFilter(needs_triage=True, open_only=True).query(who)
            triage_n = s.execute(select(func.count()).select_from(tq.order_by(None).subquery())).scalar_one()
            triage = [(t, _suggestions(s, t)) for t in s.scalars(tq.order_by(Ticket.id).limit(10))]
        escalated_n = s.execute(select(func.count()).select_from(Ticket).where(
            Ticket.status.in_(OPEN_STATUSES), Ticket.escalation_level >= ESCALATION_HEAD)).scalar_one()
    wil = pages.wilayah()
    kec_rows = []
    for code, name in wil.kecamatan:
        d = summ["by_kecamatan"].get(code, {})
        kec_rows.append({"code": code, "name": name, **_counts(d)})
    kec_rows.sort(key=lambda r: (-r["total"], r["name"]))
    nowhere = summ["by_kecamatan"].get(stats.NO_PLACE)
    kec_max = max([r["total"] for r in kec_rows] + [1])
    opd_rows = sorted(({"code": c, "name": pages.opd_names().get(c, c), **_counts(d),
                        "median": d.get("median_finish_h")} for c, d in summ["by_opd"].items() if d.get("total")),
                      key=lambda r: (-r["open"], -r["total"]))
    chan_rows = sorted(({"code": c, "name": pages.channel_labels().get(c, c), **_counts(d)}
                        for c, d in summ["by_channel"].items() if d.get("total")), key=lambda r: -r["total"])
    base = {"periode": f["periode"] if f["periode"] != "semua" else None, "opd": f["opd"],
            "channel": f["channel"], "kecamatan": f["kecamatan"]}
    return render(request, "overview.html", {
        "f": f, "base": base, "s": summ, "trend": tr, "chart": _chart(tr), "urgent": urgent, "now": now,
        "kec_rows": kec_rows, "kec_max": kec_max, "nowhere": _counts(nowhere or {}), "opd_rows": opd_rows,
        "chan_rows": chan_rows, "last_id": last_id, "triage": triage, "triage_n": triage_n,
        "escalated_n": escalated_n, "reopened_n": reopened_n, "can_route": who.role in ROUTERS,
        **_map_context(request)})


ESCALATION_HEAD = 3  # hub.escalation level 3: "eskalasi ke kepala daerah"


def incident_title(t: Ticket) -> str:
    """"Banjir Ngadisuko": what happened, where (for grouping reports of one incident)."""
    wil = pages.wilayah()
    what = ((t.fields or {}).get("incident_type") or t.subcategory or t.category or "laporan")
    where = wil.name(t.desa_code) if t.desa_code else (wil.name(t.kecamatan_code) if t.kecamatan_code else "")
    return (str(what).strip().capitalize() + (" " + where if where else "")).strip()


def incident_groups(tickets: list[Ticket]) -> list[dict[str, Any]]:
    """Reports of one incident together, in the order of each group's first ticket:
    {title, lead, tickets, channels} ("Banjir Ngadisuko — 3 laporan: SMS, Telegram, BPBD")."""
    labels = pages.channel_labels()
    groups: dict[Any, dict[str, Any]] = {}
    for t in tickets:
        key = ("i", t.incident_id) if t.incident_id is not None else ("t", t.id)
        g = groups.get(key)
        if g is None:
            g = groups[key] = {"title": incident_title(t), "lead": t, "tickets": [], "channels": []}
        g["tickets"].append(t)
        lab = labels.get(t.channel, t.channel)
        if lab not in g["channels"]:
            g["channels"].append(lab)
    return list(groups.values())


def _attention_groups(s: Session, f: dict[str, Any], now: datetime, n: int = 10) -> list[dict[str, Any]]:
    """Ten incidents, not ten tickets: in a flood, a hundred reports of one incident would push
    every other emergency off the overview. Each incident shows its most urgent report and how
    many more of its reports are open; a window of tickets that held fewer than `n` incidents
    is followed by the next, past the incidents already seen."""
    scope = {"opd": f["opd"], "channel": f["channel"], "kecamatan": f["kecamatan"]}
    rows: list[Ticket] = []
    seen_ids: set[int] = set()
    for _ in range(4):
        skip = sorted({t.incident_id for t in rows if t.incident_id is not None})
        batch = [t for t in stats.attention(s, limit=60, now=now, skip_incidents=skip, **scope)
                 if t.id not in seen_ids]
        rows += batch
        seen_ids |= {t.id for t in batch}
        if not batch or len(incident_groups(rows)) >= n:
            break
    groups = incident_groups(rows)[:n]
    counts = stats.open_in_incidents(s, [g["lead"].incident_id for g in groups if g["lead"].incident_id], **scope)
    for g in groups:
        g["others"] = max(counts.get(g["lead"].incident_id, 1) - 1, len(g["tickets"]) - 1)
    return groups


def _urgent_list(request: Request, title: str, q, what: str, extra: dict[str, Any] | None = None):
    now = datetime.now(timezone.utc)
    with _read() as s:
        rows = list(s.scalars(q.order_by(Ticket.due_at.is_(None), Ticket.due_at, Ticket.created_at, Ticket.id)
                              .limit(500)))
    return render(request, "urgent.html", {"title": title, "groups": incident_groups(rows), "n": len(rows),
                                           "what": what, "now": now, **(extra or {})})


@router.get("/darurat")
def emergencies(request: Request):
    """Every open emergency the user may see, the most overdue first, reports of one incident
    grouped."""
    who = user(request, *STAFF)
    opd = request.query_params.get("opd") or None
    q = T.TicketFilter(urgency="darurat", open_only=True, opd=opd).query(who)
    return _urgent_list(request, "Darurat terbuka", q, "darurat")


@router.get("/eskalasi")
def escalations(request: Request):
    """Open tickets escalated to the regional head (level 3), or from `level` up."""
    who = user(request, *STAFF)
    lv = request.query_params.get("level", "")
    level = int(lv) if lv in ("1", "2", "3") else ESCALATION_HEAD
    q = T.TicketFilter(open_only=True).query(who).where(Ticket.escalation_level >= level)
    title = {3: "Eskalasi ke kepala daerah", 2: "Eskalasi ke kepala OPD ke atas", 1: "Semua eskalasi"}[level]
    return _urgent_list(request, title, q, "eskalasi", {"level": level})


def _map_context(request: Request) -> dict[str, Any]:
    tiles = (request.app.state.settings.map_tiles_url or "").strip()
    return {"tiles": tiles, "img_origin": pages.tile_origin(tiles) if tiles else None}


def _counts(d: dict[str, int]) -> dict[str, int]:
    m, p, sel = d.get("menunggu", 0), d.get("diproses", 0), d.get("selesai", 0)
    return {"total": d.get("total", 0), "menunggu": m, "diproses": p, "selesai": sel, "open": m + p,
            "other": d.get("ditolak", 0) + d.get("digabung", 0), "overdue": d.get("overdue", 0)}


def _chart(tr: dict[str, Any], w: int = 340, h: int = 120) -> dict[str, Any]:
    """Bars for the inline SVG trend chart (no script, no library)."""
    pts = tr["points"]
    top = max([p["n"] for p in pts] + [1])
    n = max(len(pts), 1)
    bw = w / n
    bars = []
    for i, p in enumerate(pts):
        bh = round((h - 16) * p["n"] / top, 1)
        bars.append({"x": round(i * bw + 0.5, 1), "y": round(h - 14 - bh, 1), "w": round(max(bw - 1, 1), 1),
                     "h": bh, "n": p["n"], "start": p["start"]})
    first, last = (pts[0]["start"], pts[-1]["start"]) if pts else ("", "")
    return {"w": w, "h": h, "bars": bars, "top": top, "first": first, "last": last,
            "total": sum(p["n"] for p in pts)}


@router.get("/dasbor/live")
def live(request: Request, after: int = 0):
    """Small JSON for the overview's polling: emergencies newer than ticket id `after`."""
    who = user(request, *STAFF)
    opd = who.opd_code if who.role == "opd" else (request.query_params.get("opd") or None)
    with _read() as s:
        items = stats.latest_darurat(s, after_id=after, opd=opd, limit=10) if after > 0 else []
        last = stats.max_ticket_id(s)
        open_darurat = s.execute(select(func.count()).select_from(Ticket).where(
            Ticket.status.in_(OPEN_STATUSES), Ticket.urgency == "darurat",
            *([Ticket.opd_code == opd] if opd else []))).scalar_one()
    wil = pages.wilayah()
    return JSONResponse({"last_id": last, "darurat_open": open_darurat,
                         "items": [{"code": t.code, "text": pages.nik(t.text_original)[:140], "opd": t.opd_code,
                                    "kecamatan": wil.name(t.kecamatan_code), "status": t.status,
                                    "at": pages.wib(t.created_at, "%H:%M")} for t in items]},
                        headers={"Cache-Control": "no-store"})


# --- ticket list -----------------------------------------------------------------------------

def ticket_query(who, params) -> tuple[Any, dict[str, Any]]:
    """The page's query parameters as a hub.tickets.TicketFilter, seen as `who` may see them;
    also the filters actually applied (for the page's description and links)."""
    f: dict[str, Any] = {}
    tf = T.TicketFilter()
    status = params.get("status")
    if status:
        wanted = [x for x in status.split(",") if x in pages.STATUS_LABELS]
        if wanted:
            tf.statuses, f["status"] = wanted, ",".join(wanted)
    for key in ("opd", "channel", "urgency"):
        v = params.get(key)
        if v:
            setattr(tf, key, v)
            f[key] = v
    desa = params.get("desa")
    if desa:
        tf.desa, f["desa"] = desa, desa
    kec = params.get("kecamatan")
    if kec:
        if kec == stats.NO_PLACE:
            tf.no_place = True
        else:
            tf.kecamatan = kec
        f["kecamatan"] = kec
    since, key = period_range(params.get("periode"))
    if since is not None:
        tf.created_since, f["periode"] = since, key
    if params.get("overdue") in ("1", "true"):
        tf.overdue, f["overdue"] = True, "1"
    if params.get("triase") in ("1", "true"):
        tf.needs_triage, tf.open_only, f["triase"] = True, True, "1"
    text = (params.get("q") or "").strip()[:200]
    if text:
        tf.text, f["q"] = text, text
    return tf.query(who), f


def _describe(f: dict[str, Any]) -> list[str]:
    out = []
    if f.get("status"):
        out.append(" atau ".join(pages.STATUS_LABELS[s] for s in f["status"].split(",")))
    if f.get("overdue"):
        out.append("lewat tenggat")
    if f.get("urgency"):
        out.append(pages.URGENCY_LABELS.get(f["urgency"], f["urgency"]))
    if f.get("opd"):
        out.append(f["opd"])
    if f.get("channel"):
        out.append(pages.channel_labels().get(f["channel"], f["channel"]))
    if f.get("kecamatan"):
        out.append("tanpa lokasi" if f["kecamatan"] == stats.NO_PLACE else "Kec. " + pages.wilayah().name(f["kecamatan"]))
    if f.get("desa"):
        out.append("Desa " + pages.wilayah().name(f["desa"]))
    if f.get("periode"):
        out.append(pages.PERIODS[f["periode"]][0])
    if f.get("triase"):
        out.append("perlu triase")
    if f.get("q"):
        out.append(f"“{f['q']}”")
    return out


# The list's sort orders: key -> (label, ORDER BY). "baru" pages by id (`sebelum`), the others by page.
SORTS = {"baru": ("Terbaru", (Ticket.id.desc(),)),
         "lama": ("Terlama", (Ticket.id.asc(),)),
         "tenggat": ("Tenggat terdekat", (Ticket.due_at.is_(None), Ticket.due_at.asc(), Ticket.id.asc())),
         "urgensi": ("Darurat dulu", ((Ticket.urgency != "darurat"), (Ticket.urgency != "tinggi"), Ticket.id.desc())),
         "diubah": ("Terakhir diubah", (Ticket.updated_at.desc(), Ticket.id.desc()))}


def sort_key(params) -> str:
    key = params.get("urut") or "baru"
    return key if key in SORTS else "baru"


@router.get("/tiket")
def ticket_list(request: Request):
    who = user(request, *STAFF)
    q, f = ticket_query(who, request.query_params)
    sort = sort_key(request.query_params)
    before = request.query_params.get("sebelum") if sort == "baru" else None
    page = request.query_params.get("hal", "1")
    page = max(1, min(int(page), 10_000)) if page.isdigit() else 1
    if before and before.isdigit():
        q = q.where(Ticket.id < int(before))
    with _read() as s:
        count_q = select(func.count()).select_from(q.order_by(None).subquery())
        total = s.execute(count_q).scalar_one() if not before else None
        ordered = q.order_by(*SORTS[sort][1])
        if sort != "baru":
            ordered = ordered.offset((page - 1) * PAGE_SIZE)
        rows = list(s.scalars(ordered.limit(PAGE_SIZE + 1)))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    fs = {**f, **({"urut": sort} if sort != "baru" else {})}
    nxt = None
    if more and rows:
        nxt = qs(fs, sebelum=rows[-1].id) if sort == "baru" else qs(fs, hal=page + 1)
    wil = pages.wilayah()
    kec = f.get("kecamatan") if f.get("kecamatan") != stats.NO_PLACE else None
    return render(request, "tickets.html", {
        "rows": rows, "f": f, "fs": fs, "total": total, "desc": _describe(f), "next": nxt,
        "sort": sort, "SORTS": {k: v[0] for k, v in SORTS.items()},
        "desa_list": wil.desa.get(kec, ()) if kec else (),
        "now": datetime.now(timezone.utc), "title": "Daftar tiket"})


# --- one ticket ------------------------------------------------------------------------------

def _visible(s: Session, code: str, who) -> Ticket:
    try:
        return T.get_visible(s, code, who)
    except T.NotFound:
        raise PageError(404, f"Tiket {code} tidak ditemukan.") from None


def timeline(s: Session, t: Ticket) -> list[dict[str, Any]]:
    """Events of the ticket plus what left the hub for it (deliveries, replies), by time."""
    items = []
    for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id).order_by(TicketEvent.id)):
        items.append({"at": e.at, "kind": e.kind, "actor": e.actor, "note": e.note, "from_status": e.from_status,
                      "to_status": e.to_status, "from_opd": e.from_opd, "to_opd": e.to_opd, "data": e.data or {}})
        items[-1]["words"] = pages.event_words(items[-1])
        if e.kind in ("routed", "escalated", "overdue", "received"):
            items[-1]["note"] = None  # said in the words (the router's rule is not for people)
    for o in s.scalars(select(Outbox).where(Outbox.ticket_id == t.id).order_by(Outbox.id)):
        label = {"deliver": "Pengiriman ke OPD", "reply": "Balasan ke pelapor",
                 "lapor_push": "Sinkron ke SP4N-LAPOR!", "notify": "Pemberitahuan"}.get(o.kind, o.kind)
        state = {"done": "terkirim", "pending": "antre", "dead": "gagal"}.get(o.state, o.state)
        items.append({"at": o.done_at or o.created_at, "kind": "outbox", "label": label, "state": o.state,
                      "actor": "sistem", "note": f"{state} · {o.target}" + (f" · {o.last_error[:120]}"
                                                                          if o.state == "dead" and o.last_error else ""),
                      "data": {}})
    items.sort(key=lambda x: x["at"])
    return items


@router.get("/tiket/{code}")
def ticket_page(request: Request, code: str):
    who = user(request, *STAFF)
    with _read() as s:
        t = _visible(s, code, who)
        if t.code != code.strip().upper():
            return RedirectResponse(f"/tiket/{t.code}", status_code=303)
        return _ticket_view(request, s, t, who)


def show_ticket(request: Request, who, code: str, status: int = 200, **extra: Any):
    """The ticket page for `who` (a 404 page when not theirs to see), for a form of a wired part
    that answers with the page again: `status` 4xx and `extra` (err, err_field) say what failed."""
    with _read() as s:
        return _ticket_view(request, s, _visible(s, code, who), who, status, **extra)


def _ticket_view(request: Request, s: Session, t: Ticket, who, status: int = 200, **extra: Any):
    items = timeline(s, t)
    others = []
    if t.incident_id:
        q = T.visible_to(select(Ticket).where(Ticket.incident_id == t.incident_id, Ticket.id != t.id), who)
        others = list(s.scalars(q.order_by(Ticket.id).limit(50)))
    suggested = _suggestions(s, t) if t.needs_triage else []
    panels = ticket_panels(request, s, t, who)
    return _ticket_render(request, who, t, items, others, suggested, panels=panels, status=status, **extra)


def ticket_panels(request: Request, s: Session, t: Ticket, who) -> list[dict[str, Any]]:
    """The sections wired parts add to this page (hub.parts.Line.ticket_panels), each a dict with
    its "template". A part that fails is left out and logged: the ticket page still shows."""
    out = []
    for panel in getattr(getattr(request.app.state, "wiring", None), "ticket_panels", ()):
        try:
            got = panel(s, t, who)
        except Exception:
            log.exception("web.ticket_panel_failed", code=t.code, panel=getattr(panel, "__module__", "?"))
            continue
        if got:
            out.append(got)
    return out


def can_reveal_nik(who) -> bool:
    return who.role == "admin" or (who.role == "opd" and who.opd_code == DUKCAPIL)


def _attachment_links(t: Ticket) -> list[dict[str, Any]]:
    """Each attachment with the link a staff page may show (`href`, else None: shown as text):
    media the hub stores (Telegram, Twilio) at its signed hub URL, else an allowed link (pages.safe_link)."""
    out = []
    for i, a in enumerate(t.attachments or ()):
        url = str(a.get("url") or "")
        href = media.signed_url(t.code, i) if media.hub_served(url) else pages.safe_link(url)
        out.append({"href": href, "url": url, "kind": a.get("kind")})
    return out


def _ticket_render(request: Request, who, t: Ticket, items, others, suggested, revealed: str | None = None,
                   panels: list[dict[str, Any]] | None = None, status: int = 200, **extra: Any):
    hide_reporter = who.role == "opd" or t.anonymous or t.confidential
    has_nik = pages.nik(t.text_original) != t.text_original
    return render(request, "ticket.html", {
        **extra, "panels": panels or [],
        "suggested": suggested, "opd_tasks": {o.code: "; ".join(o.tasks) for o in pages.cfg().opds},
        "t": t, "items": items, "others": others, "hide_reporter": hide_reporter,
        "attachments": _attachment_links(t),
        "overdue": bool(t.due_at and t.status in OPEN_STATUSES and t.due_at < datetime.now(timezone.utc)),
        "can_change": who.role in CHANGERS, "can_route": who.role in ROUTERS and t.status in OPEN_STATUSES,
        "can_merge": who.role in ROUTERS and t.status != "digabung",
        "can_ack": who.role in ("opd", "admin") and t.status in OPEN_STATUSES,
        "can_reveal": has_nik and can_reveal_nik(who) and revealed is None, "revealed": revealed,
        "moves": _moves(t.status, who.role), "is_admin": who.role == "admin"}, status=status)


def _suggestions(s, t) -> list[tuple[str, float]]:
    """The router's top three for a triage ticket (stored on its "routed" event)."""
    from hub.models import TicketEvent

    ev = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id, TicketEvent.kind == "routed")
                   .order_by(TicketEvent.id).limit(1)).first()
    cands = ((ev.data or {}).get("candidates") or []) if ev is not None else []
    names = pages.opd_names()
    return [(c[0], float(c[1])) for c in cands[:3] if isinstance(c, list) and len(c) == 2
            and c[0] in names and c[0] != t.opd_code]


def _moves(status: str, role: str | None = None) -> list[str]:
    """Statuses the page offers: forward moves; moving back (buka kembali) only for an admin."""
    from hub.models import ALLOWED_MOVES, Status

    cur = Status(status)
    return [m.value for m in sorted(ALLOWED_MOVES[cur], key=lambda x: list(Status).index(x))
            if m != Status.DIGABUNG and ((cur, m) not in T.BACKWARD_MOVES or role == "admin")]


def _back(code: str) -> RedirectResponse:
    return RedirectResponse(f"/tiket/{code}", status_code=303)


class _FieldError(T.TicketError):
    """A refusal about one form field (shown next to it)."""

    def __init__(self, text: str, field: str):
        super().__init__(text, user_message=text)
        self.field = field


async def _act(request: Request, code: str, roles: tuple[str, ...], fn) -> RedirectResponse:
    """Common shape of a ticket action: role, CSRF, one transaction through hub.tickets; the
    outcome is a flash message on the ticket page."""
    who = user(request, *roles)
    form = await request.form()
    check_csrf(request, form)
    cfg = pages.cfg()
    with _write() as s:
        t = _visible(s, code, who)
        try:
            msg = await fn(s, t, who, form, cfg)
            s.commit()
        except T.TicketError as exc:
            s.rollback()
            pages.flash(request, exc.for_people(), "err", getattr(exc, "field", None) or _field_of(exc))
            return _back(t.code)
    log.info("web.ticket_action", code=t.code, actor=who.actor, path=request.url.path.rsplit("/", 1)[-1])
    pages.flash(request, msg)
    return _back(t.code)


def _field_of(exc: T.TicketError) -> str | None:
    text = str(exc)
    return "note" if ("needs a reason" in text or "needs text" in text) else None


def _note(form) -> str | None:
    note = str(form.get("note") or "").strip()[:2000]
    return note or None


@router.post("/tiket/{code}/status")
async def ticket_status(request: Request, code: str):
    async def do(s, t, who, form, cfg):
        to = str(form.get("status") or "")
        public = str(form.get("publik") or "") in ("1", "on", "true")
        if not to or to == t.status:  # "tanpa perubahan": a note only
            if not _note(form):
                raise _FieldError("Pilih status baru atau tulis catatan.", "note")
            T.add_note(s, t, who.actor, _note(form), public=public)
            return "Catatan disimpan" + (" dan tampil untuk pelapor." if public else " (internal).")
        data = {}
        photo = form.get("foto")
        if photo is not None and getattr(photo, "filename", None):
            from hub.web.uploads import UploadRejected, save_upload

            try:
                data["photo"] = await save_upload(photo)
            except UploadRejected as exc:
                raise _FieldError(str(exc), "foto") from None
        link = str(form.get("foto_url") or "").strip()[:500]
        if link:
            if not link.startswith(("https://", "http://")):
                raise _FieldError("Tautan foto harus diawali https://", "foto")
            data["photo_link"] = link
        T.change_status(s, t, to, who.actor, cfg, _note(form), data=data, role=who.role, public=public)
        return f"Status diubah menjadi {pages.STATUS_LABELS.get(to, to)}."
    return await _act(request, code, CHANGERS, do)


@router.post("/tiket/{code}/nik")
async def ticket_reveal_nik(request: Request, code: str):
    """A Dukcapil user (or an admin) shows the report's NIK in full, on purpose: recorded as an
    event; shown in this response only (nothing kept in the session or the URL)."""
    who = user(request, "opd", "admin")
    form = await request.form()
    check_csrf(request, form)
    if not can_reveal_nik(who):
        raise PageError(403, "Hanya petugas Dukcapil atau admin yang boleh membuka NIK.")
    with _write() as s:
        t = _visible(s, code, who)
        text = T.reveal_nik(s, t, who.actor, who.role, who.opd_code, DUKCAPIL)
        s.commit()
        items = timeline(s, t)
        panels = ticket_panels(request, s, t, who)
    log.info("web.nik_revealed", code=t.code, actor=who.actor)
    return _ticket_render(request, who, t, items, [], [], revealed=text, panels=panels)


@router.post("/tiket/{code}/terima")
async def ticket_ack(request: Request, code: str):
    async def do(s, t, who, form, cfg):
        # the same rule as the OPD API (hub.tickets.opd_updates.acknowledge)
        try:
            fresh = T.acknowledge(s, t, who.actor, _note(form) or "Laporan diterima OPD")
        except T.IllegalMove:
            raise T.IllegalMove("only open tickets", user_message="Hanya tiket yang masih terbuka yang bisa "
                                                                   "ditandai diterima.") from None
        return "Tiket ditandai sudah diterima." if fresh else "Tiket sudah ditandai diterima sebelumnya."
    return await _act(request, code, ("opd", "admin"), do)


@router.post("/tiket/{code}/rute")
async def ticket_reroute(request: Request, code: str):
    async def do(s, t, who, form, cfg):
        to = str(form.get("opd") or "")
        T.reroute(s, t, to, who.actor, cfg, _note(form))
        return f"Tiket dialihkan ke {pages.opd_names().get(to, to)}. Router belajar dari koreksi ini."
    return await _act(request, code, ROUTERS, do)


@router.post("/tiket/{code}/gabung")
async def ticket_merge(request: Request, code: str):
    async def do(s, t, who, form, cfg):
        into_code = str(form.get("into") or "").strip().upper()[:10]
        try:  # the visibility rule for the second ticket too (hub.tickets.query)
            into = T.get_visible(s, into_code, who) if into_code else None
        except T.NotFound:
            into = None
        if into is None:
            raise _FieldError(f"Tiket {into_code or '(kosong)'} tidak ditemukan.", "into")
        T.merge(s, t, into, who.actor, cfg, _note(form))
        return f"Tiket digabung ke {into.code}."
    return await _act(request, code, ROUTERS, do)


# --- OPD view --------------------------------------------------------------------------------

@router.get("/opd")
def opd_view(request: Request):
    who = user(request, "opd", "admin")
    opd = who.opd_code if who.role == "opd" else (request.query_params.get("opd") or None)
    if opd is None:
        return render(request, "opd_pick.html", {})
    if opd not in pages.opd_names():
        raise PageError(404, f"OPD {opd} tidak dikenal.")
    tab = request.query_params.get("tab", "terbuka")
    now = datetime.now(timezone.utc)
    with _read() as s:
        base = T.TicketFilter(opd=opd).query(who)
        counts = dict(s.execute(select(Ticket.status, func.count()).where(Ticket.opd_code == opd)
                                .group_by(Ticket.status)).all())
        overdue = s.execute(select(func.count()).select_from(Ticket).where(
            Ticket.opd_code == opd, Ticket.status.in_(OPEN_STATUSES), Ticket.due_at < now)).scalar_one()
        if tab == "selesai":
            q = base.where(Ticket.status.in_(("selesai", "ditolak"))).order_by(Ticket.closed_at.desc())
        else:
            tab = "terbuka"
            # Emergencies and the nearest due time first: the order in which to work them.
            q = base.where(Ticket.status.in_(OPEN_STATUSES)).order_by(
                (Ticket.urgency != "darurat"), Ticket.due_at.is_(None), Ticket.due_at, Ticket.id)
        rows = list(s.scalars(q.limit(100)))
    return render(request, "opd.html", {"opd": opd, "opd_name": pages.opd_names().get(opd, opd), "rows": rows,
                                        "counts": counts, "overdue": overdue, "tab": tab, "now": now})
