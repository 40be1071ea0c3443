"""The map: kecamatan shaded by open reports, and a point per report with coordinates.

`/peta` (a page, with the ticket list's filters), `/peta/data.json` (the counts and points,
through the list's TicketFilter and visibility rule: an OPD user sees its own tickets only),
`/peta/kecamatan.geojson` (the boundaries from the regency config, config/<regency>/
kecamatan.geojson). The map library is Leaflet, bundled under static/vendor/leaflet (BSD-2-Clause).
Tiles come from SIMPUL_MAP_TILES_URL; without it the map shows the boundaries only.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select
from sqlmodel import Session

from hub.db import get_engine
from hub.models import OPEN_STATUSES
from hub.web import pages
from hub.web.pages import PageError, render, tile_origin, user
from hub.web.routes import STAFF, _describe, ticket_query

router = APIRouter(include_in_schema=False)
MAX_POINTS = 2000


@lru_cache(maxsize=4)
def _geojson(path: str) -> bytes | None:
    p = Path(path)
    return p.read_bytes() if p.is_file() else None


def boundaries(request: Request) -> bytes | None:
    return _geojson(str(Path(request.app.state.settings.config_dir) / "kecamatan.geojson"))


def tiles(request: Request) -> str:
    return (request.app.state.settings.map_tiles_url or "").strip()


def map_data(who, params) -> dict:
    q, f = ticket_query(who, params)
    sub = q.order_by(None).subquery()
    wil = pages.wilayah()
    by_kec: dict[str, dict[str, int]] = {}
    with Session(get_engine()) as s:
        for kec, status, n in s.execute(select(sub.c.kecamatan_code, sub.c.status, func.count())
                                        .group_by(sub.c.kecamatan_code, sub.c.status)):
            d = by_kec.setdefault(kec or "-", {"open": 0, "total": 0})
            d["total"] += n
            if status in OPEN_STATUSES:
                d["open"] += n
        pts = s.execute(select(sub.c.code, sub.c.latitude, sub.c.longitude, sub.c.status, sub.c.urgency,
                               sub.c.opd_code).where(sub.c.latitude.is_not(None), sub.c.longitude.is_not(None))
                        .order_by(sub.c.id.desc()).limit(MAX_POINTS + 1)).all()
    return {"filters": f, "kecamatan": {k: {**v, "name": wil.name(k) if k != "-" else "tanpa lokasi"}
                                        for k, v in by_kec.items()},
            "points": [{"code": c, "lat": round(la, 5), "lng": round(lo, 5), "status": st, "urgency": u, "opd": o,
                        "status_label": pages.STATUS_LABELS.get(st, st)} for c, la, lo, st, u, o in pts[:MAX_POINTS]],
            "points_truncated": len(pts) > MAX_POINTS}


@router.get("/peta/data.json")
def map_json(request: Request):
    who = user(request, *STAFF)
    return JSONResponse(map_data(who, request.query_params), headers={"Cache-Control": "no-store"})


@router.get("/peta/kecamatan.geojson")
def map_boundaries(request: Request):
    user(request, *STAFF)
    body = boundaries(request)
    if body is None:
        raise PageError(404, "Batas kecamatan belum tersedia untuk kabupaten ini.")
    return Response(body, media_type="application/geo+json", headers={"Cache-Control": "private, max-age=86400"})


@router.get("/peta")
def map_page(request: Request):
    who = user(request, *STAFF)
    _, f = ticket_query(who, request.query_params)
    data = map_data(who, request.query_params)
    rows = sorted(({"code": k, **v} for k, v in data["kecamatan"].items()), key=lambda r: (-r["open"], r["name"]))
    return render(request, "map.html", {"f": f, "desc": _describe(f), "rows": rows, "data": data,
                                        "tiles": tiles(request), "title": "Peta laporan",
                                        "img_origin": tile_origin(tiles(request))})

