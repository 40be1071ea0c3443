"""Every project as OC4IDS 0.9.5 (a project package): the plan's budget, the executor as
public authority, locations with the Kemendagri gazetteer codes and GeoJSON (point, or the road
line), the tender as a contracting process summary (HPS as cost estimate, winner as supplier,
addenda as modifications, payments as transactions), planned physical progress as `forecasts`
and reported progress as `metrics` (physicalProgress). Validated against the schema in tests."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from hub.works import curve
from hub.works import service as W
from hub.works.geo import kecamatan_names
from hub.works.models import WorksProject

WIB = timezone(timedelta(hours=7))
STATUS = {"perencanaan": "preparation", "tender": "implementation", "berkontrak": "implementation",
          "pelaksanaan": "implementation", "kritis": "implementation", "selesai": "completion",
          "putus": "implementation"}
METHOD = {"tender": "open", "tender cepat": "open", "seleksi": "selective", "pengadaan langsung": "direct",
          "penunjukan langsung": "limited", "e-purchasing": "direct", "swakelola": "direct"}
PREFIX = "oc4ids-simpul"


def _dt(d: date | None) -> str | None:
    return datetime.combine(d, time(0, 0), WIB).isoformat() if d else None


def _value(sen: int | None) -> dict[str, Any] | None:
    return {"amount": round(sen / 100, 2), "currency": "IDR"} if sen is not None else None


def _clean(d: Any) -> Any:
    """Drop None and empty containers: OC4IDS wants absent fields, not nulls."""
    if isinstance(d, dict):
        out = {k: _clean(v) for k, v in d.items()}
        return {k: v for k, v in out.items() if v not in (None, [], {}, "")}
    if isinstance(d, list):
        return [x for x in (_clean(v) for v in d) if x not in (None, [], {}, "")]
    return d


def project(s: Session, p: WorksProject, cfg, today: date, names: dict[str, str], opd_names: dict[str, str]) -> dict:
    cs = W.contracts_of(s, p)
    status = W.project_status(s, p, today)
    region = "3503"
    authority = {"id": f"ID-OPD-{region}-{p.opd_code or 'X'}", "name": opd_names.get(p.opd_code or "", p.satker or "-")}
    parties = [{**authority, "roles": ["publicAuthority", "buyer", "procuringEntity", "payer"],
                "address": {"region": "Kabupaten Trenggalek", "countryName": "Indonesia"}}]
    loc: dict[str, Any] = {"id": "1", "description": p.location_text or names.get(p.desa_code or p.kecamatan_code or "", "")}
    if p.line:
        loc["geometry"] = {"type": "LineString", "coordinates": [[x[1], x[0]] for x in p.line]}
    elif p.latitude is not None and p.longitude is not None:
        loc["geometry"] = {"type": "Point", "coordinates": [p.longitude, p.latitude]}
    codes = [c for c in (p.desa_code, p.kecamatan_code) if c]
    if codes:
        loc["gazetteer"] = {"scheme": "ID-KEMENDAGRI", "identifiers": codes[:1]}
    loc["address"] = {"locality": names.get(p.desa_code) if p.desa_code else None,
                      "region": f"Kecamatan {names.get(p.kecamatan_code)}" if p.kecamatan_code else None,
                      "countryName": "Indonesia"}
    forecasts, metrics, processes = [], [], []
    seen_suppliers = set()
    for c in cs:
        v = W.contract_view(s, c, p, today)
        t = v.tender
        supplier = None
        if c.winner_name:
            sid = f"ID-NPWP-{c.winner_npwp}" if c.winner_npwp else f"ID-NAMA-{c.winner_name}"
            supplier = {"id": sid, "name": c.winner_name}
            if sid not in seen_suppliers:
                seen_suppliers.add(sid)
                parties.append({**supplier, "roles": ["supplier", "payee"],
                                "identifier": {"scheme": "ID-NPWP", "id": c.winner_npwp, "legalName": c.winner_name}
                                if c.winner_npwp else None})
        plan = curve.planned_points(c.start_on, c.planned_end, W.schedule_items(c, p), n=12)
        if plan:
            forecasts.append({"id": f"physicalProgress-{c.id}", "title": f"physicalProgress: rencana kontrak {c.number}",
                              "observations": [{"id": f"{c.id}-r{i}", "period": {"endDate": _dt(d)}, "measure": round(pct, 2),
                                                "unit": {"name": "percent", "scheme": "UNCEFACT", "id": "P1"}}
                                               for i, (d, pct) in enumerate(plan)]})
        eff = W.effective(v.progress)
        if eff:
            metrics.append({"id": f"physicalProgress-{c.id}", "title": f"physicalProgress: realisasi kontrak {c.number}",
                            "observations": [{"id": f"{c.id}-a{r.id}", "period": {"endDate": _dt(r.as_of)},
                                              "measure": round(r.pct, 2),
                                              "unit": {"name": "percent", "scheme": "UNCEFACT", "id": "P1"},
                                              "notes": f"dilaporkan oleh {r.actor} ({r.source})"} for r in eff]})
        mods = []
        value = c.original_value_sen
        end = c.original_end
        for i, a in enumerate(c.addenda or []):
            delta, days = int(a.get("value_delta_sen") or 0), int(a.get("days") or 0)
            m = {"id": str(a.get("number") or i + 1), "date": _dt(date.fromisoformat(a["signed_on"])) if a.get("signed_on") else None,
                 "description": a.get("reason") or "Adendum kontrak", "type": "value" if delta else "duration"}
            if delta and value is not None:
                m.update(oldContractValue=_value(value), newContractValue=_value(value + delta))
                value += delta
            if days and end is not None:
                m.update(oldContractPeriod={"startDate": _dt(c.start_on), "endDate": _dt(end)},
                         newContractPeriod={"startDate": _dt(c.start_on), "endDate": _dt(end + timedelta(days=days))})
                end += timedelta(days=days)
            mods.append(m)
        method = (p.method or "").strip().lower()
        processes.append({"id": c.kd_tender or c.number, "summary": {
            "externalReference": c.number, "nature": ["construction"], "title": p.name,
            "status": "closed" if (c.bast_on or c.terminated) else "active",
            "tender": {"procurementMethod": METHOD.get(method, "open"), "procurementMethodDetails": p.method,
                       "costEstimate": _value(t.hps_sen if t else None), "procuringEntity": authority,
                       "datePublished": _dt(t.award_date) if t and t.award_date else None},
            "suppliers": [supplier] if supplier else None, "contractValue": _value(c.value_sen),
            "contractPeriod": {"startDate": _dt(c.start_on), "endDate": _dt(c.planned_end)},
            "finalValue": _value(c.value_sen) if c.bast_on else None, "modifications": mods,
            "transactions": [{"id": str(r.id), "source": f"{_base(cfg)}/proyek/{p.code}", "date": _dt(r.paid_on),
                              "value": _value(r.amount_sen), "payer": authority, "payee": supplier}
                             for r in W.effective(v.payments) if r.amount_sen > 0]}})
    if not cs:
        t = W.tender_of(s, None, p)
        if t is not None:
            processes.append({"id": t.kd_tender, "summary": {"externalReference": t.kd_tender, "nature": ["construction"],
                                                             "title": p.name, "status": "pre-award",
                                                             "tender": {"procurementMethod": METHOD.get((p.method or "").lower(), "open"),
                                                                        "costEstimate": _value(t.hps_sen),
                                                                        "procuringEntity": authority}}})
    return _clean({
        "id": f"{PREFIX}-{region}-{p.code}", "updated": p.updated_at.astimezone(timezone.utc).isoformat(),
        "language": "id", "title": p.name, "status": STATUS.get(status, "implementation"),
        "type": "rehabilitation" if any(w in p.name.lower() for w in ("rehab", "pemeliharaan", "perbaikan")) else "construction",
        "sector": ["transport.road"] if any(w in p.name.lower() for w in ("jalan", "jembatan")) else None,
        "identifiers": [{"id": p.code, "scheme": "ID-SIRUP"}],
        "publicAuthority": authority, "parties": parties,
        "budget": {"description": f"{p.funding_source or 'APBD'} {p.fiscal_year or ''}".strip(),
                   "amount": _value(p.pagu_sen)},
        "period": {"startDate": _dt(p.planned_start), "endDate": _dt(p.planned_end)},
        "locations": [loc], "forecasts": forecasts, "metrics": metrics, "contractingProcesses": processes,
    })


def _base(cfg) -> str:
    from hub.settings import get_settings

    return str(get_settings().public_url).rstrip("/")


def package(s: Session, cfg, today: date | None = None) -> dict[str, Any]:
    today = today or W.today_local(cfg)
    names = kecamatan_names(cfg)
    opd_names = {o.code: o.name for o in cfg.opds}
    projects = [project(s, p, cfg, today, names, opd_names)
                for p in s.scalars(select(WorksProject).order_by(WorksProject.id))]
    latest = max((p.get("updated") for p in projects), default=datetime.now(timezone.utc).isoformat())
    return {"uri": f"{_base(cfg)}/open/oc4ids/projects.json", "publishedDate": latest, "version": "0.9",
            "publisher": {"name": "Pemerintah Kabupaten Trenggalek (Simpul)", "uri": _base(cfg)},
            "license": "https://creativecommons.org/licenses/by/4.0/", "projects": projects}
