"""GeoReport v2 (Open311) over our tickets: services, requests, one request, and POST intake.

Read routes are public and carry no personal data: no reporter, no free-text address, digit
runs long enough to be a phone number or NIK masked, coordinates rounded to about 100 m.
Thin routes: intake goes through hub.intake like every other line.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import and_, or_, select
from sqlmodel import Session

from hub.api.deps import db_session, regency_config
from hub.api.open311_format import FORMATS, install_error_lists, respond
from hub.api.open311_format import error as fmt_error
from hub.auth import principal_for_key
from hub.config import RegencyConfig, load_yaml
from hub.parts import Line
from hub.models import OPEN_STATUSES, Opd, Ticket, TicketEvent
from normalizer.types import Attachment, InboundMessage

router = APIRouter(prefix="/open311/v2", tags=["open311"])
CLOSED = ("selesai", "ditolak", "digabung")
OTHER = "lainnya"
_DIGITS = re.compile(r"(?<!\d)(\+?\d[\d\s.-]{6,}\d)(?!\d)")


def error(status: int, description: str, fmt: str = "json"):
    """GeoReport v2 errors are a list of {code, description} (XML: <errors><error>)."""
    return fmt_error(status, description, fmt)


@lru_cache(maxsize=4)
def _rules(config_dir: str) -> tuple[dict[str, Any], ...]:
    path = Path(config_dir) / "routing.yaml"
    if not path.exists():
        return ()
    data = load_yaml(path) or {}
    return tuple(r for r in data.get("rules") or () if isinstance(r, dict) and r.get("id") and r.get("opd"))


def services(cfg: RegencyConfig) -> list[dict[str, Any]]:
    names = {o.code: o.name for o in cfg.opds}
    out = []
    for r in _rules(str(cfg.directory)):
        label = (r.get("subcategory") or r.get("category") or r["id"]).title()
        out.append({"service_code": r["id"], "service_name": label,
                    "description": f"{(r.get('category') or '').title()}; ditangani {names.get(r['opd'], r['opd'])}",
                    "metadata": False, "type": "realtime",
                    "keywords": ", ".join((r.get("keywords") or [])[:8]), "group": names.get(r["opd"], r["opd"])})
    out.append({"service_code": OTHER, "service_name": "Lainnya",
                "description": "Laporan lain; diteruskan ke OPD yang berwenang setelah ditelaah",
                "metadata": False, "type": "realtime", "keywords": "", "group": names.get(cfg.triage_opd, "")})
    return out


def service_of(t: Ticket, cfg: RegencyConfig) -> dict[str, Any]:
    rules = _rules(str(cfg.directory))
    for r in rules:
        if r["opd"] == t.opd_code and r.get("category") == t.category and r.get("subcategory") == t.subcategory:
            return r
    for r in rules:
        if r["opd"] == t.opd_code and r.get("category") == t.category:
            return r
    return {"id": OTHER, "subcategory": "Lainnya"}


def redact(text: str) -> str:
    """Mask digit runs that could be a phone number or NIK (keep the last two digits)."""
    return _DIGITS.sub(lambda m: re.sub(r"\d", "*", m.group(1)[:-2]) + m.group(1)[-2:], text)


def _iso(d: datetime | None) -> str | None:
    return d.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if d else None


def request_dict(t: Ticket, cfg: RegencyConfig, opd_names: dict[str, str], notes: dict[int, str],
                 places: dict[str, str]) -> dict[str, Any]:
    svc = service_of(t, cfg)
    place = ", ".join(p for p in (places.get(t.desa_code or ""),
                                  f"Kec. {places[t.kecamatan_code]}" if t.kecamatan_code in places else None) if p)
    note = notes.get(t.id)
    if t.status == "digabung" and t.merged_into:
        note = f"Digabung dengan laporan {t.merged_into}"
    return {
        "service_request_id": t.code, "status": "open" if t.status in OPEN_STATUSES else "closed",
        "status_notes": redact(note) if note else None,
        "service_name": (svc.get("subcategory") or svc.get("category") or svc["id"]).title(),
        "service_code": svc["id"], "description": redact(t.text_clean),
        "agency_responsible": opd_names.get(t.opd_code, t.opd_code), "service_notice": None,
        "requested_datetime": _iso(t.created_at), "updated_datetime": _iso(t.updated_at),
        "expected_datetime": _iso(t.due_at), "address": place or None, "address_id": t.desa_code,
        "zipcode": None, "lat": round(t.latitude, 3) if t.latitude is not None else None,
        "long": round(t.longitude, 3) if t.longitude is not None else None, "media_url": None,
    }


def _render(session: Session, ts: list[Ticket], cfg: RegencyConfig) -> list[dict[str, Any]]:
    names = dict(session.execute(select(Opd.code, Opd.name)).all())
    notes: dict[int, str] = {}
    if ts:
        evs = session.execute(select(TicketEvent.ticket_id, TicketEvent.note)
                              .where(TicketEvent.ticket_id.in_([t.id for t in ts]),
                                     TicketEvent.kind == "status", TicketEvent.note.is_not(None))
                              .order_by(TicketEvent.id))
        notes = {tid: note for tid, note in evs}  # the latest status note wins
    places = cfg.place_names  # wilayah.csv, read once by the regency config
    return [request_dict(t, cfg, names, notes, places) for t in ts]


def _fmt_ok(fmt: str) -> JSONResponse | None:
    return None if fmt in FORMATS else error(400, f"format {fmt!r} is not served: use .xml or .json")


@router.get("/services.{fmt}")
def list_services(fmt: str, cfg: RegencyConfig = Depends(regency_config)):
    return _fmt_ok(fmt) or respond(fmt, "services", services(cfg))


def discovery(request: Request) -> dict[str, Any]:
    from hub.settings import get_settings

    base = get_settings().public_url.rstrip("/") + "/open311/v2/"
    return {"changeset": "2026-11-30T00:00:00Z", "contact": "Diskominfo (admin Simpul)",
            "key_service": "Kunci API dari admin Simpul (peran intake)",
            "endpoints": [{"specification": "http://wiki.open311.org/GeoReport_v2", "url": base,
                           "changeset": "2026-11-30T00:00:00Z", "type": "production",
                           "formats": ["text/xml", "application/json"]}]}


@router.get("/discovery.{fmt}")
def discovery_doc(fmt: str, request: Request):
    """GeoReport v2 service discovery (also at /open311/discovery.{xml,json})."""
    return _fmt_ok(fmt) or respond(fmt, "discovery", discovery(request))


def _parse_date(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        d = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be a W3C date-time such as 2026-11-28T00:00:00Z") from None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


@router.get("/requests.{fmt}")
def list_requests(fmt: str, request: Request, session: Session = Depends(db_session),
                  cfg: RegencyConfig = Depends(regency_config)):
    """Standard filters: service_request_id (comma list; overrides the others), service_code,
    start_date, end_date (default: the last 90 days), status (open, closed). At most 1000."""
    if (bad := _fmt_ok(fmt)) is not None:
        return bad
    p = request.query_params
    q = select(Ticket)
    if p.get("service_request_id"):
        codes = [c.strip().upper() for c in p["service_request_id"].split(",") if c.strip()][:1000]
        rows = list(session.scalars(q.where(Ticket.code.in_(codes)).order_by(Ticket.id.desc())))
        return respond(fmt, "requests", _render(session, rows, cfg))
    try:
        start, end = _parse_date(p.get("start_date"), "start_date"), _parse_date(p.get("end_date"), "end_date")
    except ValueError as exc:
        return error(400, str(exc), fmt)
    if start is None and end is None:
        start = datetime.now(timezone.utc) - timedelta(days=90)
    if start:
        q = q.where(Ticket.created_at >= start)
    if end:
        q = q.where(Ticket.created_at <= end)
    status = p.get("status")
    if status:
        wanted = {s.strip() for s in status.split(",") if s.strip()}
        if wanted - {"open", "closed"}:
            return error(400, "status must be open or closed", fmt)
        if wanted == {"open"}:
            q = q.where(Ticket.status.in_(OPEN_STATUSES))
        elif wanted == {"closed"}:
            q = q.where(Ticket.status.in_(CLOSED))
    wanted_codes = [c.strip() for c in (p.get("service_code") or "").split(",") if c.strip()]  # a comma list
    if wanted_codes:
        by_id = {r["id"]: r for r in _rules(str(cfg.directory))}
        unknown = [c for c in wanted_codes if c not in by_id and c != OTHER]
        if unknown:
            return error(400, f"unknown service_code {', '.join(repr(c) for c in unknown)}; see services.{fmt}", fmt)
        if OTHER not in wanted_codes:
            q = q.where(or_(*[and_(Ticket.opd_code == by_id[c]["opd"], Ticket.category == by_id[c].get("category"))
                              for c in wanted_codes]))
    rows = list(session.scalars(q.order_by(Ticket.id.desc()).limit(1000)))
    if wanted_codes:  # the SQL filter is coarse (OPD + category); the service of a ticket decides
        rows = [t for t in rows if service_of(t, cfg)["id"] in wanted_codes]
    return respond(fmt, "requests", _render(session, rows, cfg))


@router.get("/requests/{code}.{fmt}")
def one_request(code: str, fmt: str, session: Session = Depends(db_session),
                cfg: RegencyConfig = Depends(regency_config)):
    if (bad := _fmt_ok(fmt)) is not None:
        return bad
    t = session.scalars(select(Ticket).where(Ticket.code == code.strip().upper())).first()
    if t is None:
        return error(404, f"service request {code} not found", fmt)
    return respond(fmt, "requests", _render(session, [t], cfg))


@router.post("/requests.{fmt}")
async def create_request(fmt: str, request: Request, cfg: RegencyConfig = Depends(regency_config)):
    """Intake from another system (form-encoded per GeoReport v2; JSON accepted too). Needs an
    intake or admin API key in `api_key` (or a Bearer header). Answers the ticket code at once."""
    if (bad := _fmt_ok(fmt)) is not None:
        return bad
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            form = await request.json()
        except ValueError:
            return error(400, "body is not valid JSON", fmt)
        if not isinstance(form, dict):
            return error(400, "body must be a JSON object", fmt)
    else:
        form = dict(await request.form())
    key = str(form.get("api_key") or "") or (request.headers.get("authorization", "")[7:].strip()
                                             if request.headers.get("authorization", "").lower().startswith("bearer ")
                                             else "")
    if not key:
        return error(403, "api_key is required", fmt)
    from hub.db import get_engine

    with Session(get_engine()) as s:
        who = principal_for_key(s, key)
    if who is None or who.role not in ("intake", "admin"):
        return error(403, "api_key is invalid or may not submit requests", fmt)
    service_code = str(form.get("service_code") or "").strip()
    if not service_code:
        return error(400, "service_code is required (see services.json)", fmt)
    if service_code != OTHER and not any(r["id"] == service_code for r in _rules(str(cfg.directory))):
        return error(400, f"unknown service_code {service_code!r}; see services.json", fmt)
    description = str(form.get("description") or "").strip()
    if not description:
        return error(400, "description is required", fmt)
    if len(description) > 4000:
        return error(400, "description is longer than 4000 characters", fmt)
    try:
        lat = float(form["lat"]) if form.get("lat") not in (None, "") else None
        lon = float(form["long"]) if form.get("long") not in (None, "") else None
    except (TypeError, ValueError):
        return error(400, "lat and long must be numbers", fmt)
    if (lat is None) != (lon is None) or (lat is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180)):
        return error(400, "give both lat and long, in WGS84 degrees", fmt)
    address = str(form.get("address_string") or "").strip() or None
    if lat is None and not address and not form.get("address_id"):
        return error(400, "a location is required: lat and long, address_string or address_id", fmt)
    media = str(form.get("media_url") or "").strip()
    if media and not media.startswith(("http://", "https://")):
        return error(400, "media_url must be an http(s) URL", fmt)
    name = " ".join(str(form.get(k) or "").strip() for k in ("first_name", "last_name")).strip() or None
    text = description if not address else f"{description}\nLokasi: {address}"
    msg = InboundMessage(
        channel="api", text=text,  # channels.yaml: "Sistem lain (API)"; fields.source says Open311
        sender=str(form.get("phone") or form.get("email") or "").strip() or None,
        received_at=datetime.now(timezone.utc), sender_name=name,
        attachments=(Attachment(url=media, kind="photo"),) if media else (), latitude=lat, longitude=lon,
        fields={k: v for k, v in {"source": "open311", "open311_service_code": service_code, "address": address,
                                  "address_id": form.get("address_id"), "email": form.get("email"),
                                  "submitted_by": who.name}.items() if v},
    )
    accepted = await request.app.state.intake_writer.submit(msg)
    return respond(fmt, "requests", [{"service_request_id": accepted.ticket_code, "service_notice": "Laporan "
                                      "diterima dan akan diteruskan ke OPD yang berwenang.", "account_id": None}])


discovery_router = APIRouter(prefix="/open311", tags=["open311"])
discovery_router.add_api_route("/discovery.{fmt}", discovery_doc, methods=["GET"])


def feature(settings) -> Line:
    """GeoReport v2 under /open311/v2/, discovery also at /open311/discovery.{fmt}; 4xx under
    /open311/ as GeoReport error lists (install)."""
    return Line("hub.api.open311", routers=[router, discovery_router], install=install_error_lists)
