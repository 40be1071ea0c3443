"""Hotline console for PSC 119 and BPBD call takers: one keyboard-first form per line, caller
history by phone number, kecamatan/desa pickers from the gazetteer, Ctrl+Enter saves.

Stores through the hotline line's own functions (hub.lines.hotline.calls) when they load,
else straight through hub.intake; never builds a ticket itself.
"""
from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlmodel import Session

from normalizer.reporter import mask_niks
from hub.db import get_engine
from hub.logging import get_logger
from hub.models import Ticket
from hub.web import pages
from hub.web.pages import PageError, check_csrf, render, user

log = get_logger(__name__)
router = APIRouter(include_in_schema=False)
LINES = {"psc119": "PSC 119", "bpbd": "BPBD Pusdalops"}
ROLES = ("operator", "admin")
FALLBACK_TYPES = {"psc119": ["kecelakaan", "ibu melahirkan", "penyakit jantung", "stroke", "sesak napas",
                             "keracunan", "pingsan", "sakit", "rujukan"],
                  "bpbd": ["banjir", "tanah longsor", "angin kencang", "pohon tumbang", "kebakaran",
                           "gempa bumi", "orang tenggelam", "orang hilang", "kekeringan"]}


def _hotline():
    """The hotline line's call functions (hub.lines.hotline.calls), or None if they do not load."""
    try:
        from hub.lines.hotline import calls
        return calls
    except ImportError:
        return None


def incident_types(line: str) -> tuple[list[dict[str, str]], list[str]]:
    hl = _hotline()
    if hl is not None:
        try:
            spec = hl.hotline_adapter().line(line)
            return ([{"key": t.key, "label": t.label} for t in spec.incident_types], list(spec.triage_colours))
        except Exception:  # a broken hotlines.yaml must not take the console down
            log.exception("console.incident_types_failed", line=line)
    colours = ["merah", "kuning", "hijau", "hitam"] if line == "psc119" else []
    return [{"key": k, "label": k.capitalize()} for k in FALLBACK_TYPES[line]], colours


def _line(line: str) -> str:
    if line not in LINES:
        raise PageError(404, f"Konsol {line} tidak ada. Pilih PSC 119 atau BPBD.")
    return line


def _desa_json() -> str:
    import json

    wil = pages.wilayah()
    data = {name: [n for _, n in wil.desa.get(code, ())] for code, name in wil.kecamatan}
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")


def _page(request: Request, line: str, *, call_id: str, saved=None, error=None, form=None, status: int = 200,
          errors: dict[str, str] | None = None):
    types, colours = incident_types(line)
    return render(request, "console.html", {"line": line, "line_label": LINES[line], "types": types,
                                            "colours": colours, "call_id": call_id, "saved": saved,
                                            "error": error, "errors": errors or {}, "form": form or {},
                                            "desa_json": _desa_json()},
                  status=status)


@router.get("/konsol")
def console_index(request: Request):
    user(request, *ROLES)
    return render(request, "console_pick.html", {"lines": LINES})


@router.get("/konsol/riwayat")
def caller_history(request: Request, phone: str = ""):
    """Earlier tickets from the same number (JSON for the console's lookup)."""
    user(request, *ROLES)
    from normalizer.reporter import to_e164

    e164 = to_e164(phone[:40]) if phone else None
    if not e164:
        return JSONResponse({"phone": None, "tickets": []})
    with Session(get_engine()) as s:
        hl = _hotline()
        if hl is not None and hasattr(hl, "earlier_calls"):
            items = hl.earlier_calls(s, e164, 10)
        else:
            rows = s.scalars(select(Ticket).where(Ticket.reporter_phone == e164).order_by(Ticket.id.desc()).limit(10))
            items = [{"code": t.code, "status": t.status, "text": mask_niks(t.text_original)[:160],
                      "created_at": t.created_at.isoformat()} for t in rows]
    out = []
    for it in items:
        created = it.get("created_at")
        when = pages.wib(datetime.fromisoformat(created)) if isinstance(created, str) else ""
        out.append({"code": it.get("code"), "status": it.get("status"),
                    "text": (it.get("text") or it.get("description") or "")[:160], "at": when})
    return JSONResponse({"phone": e164, "tickets": out}, headers={"Cache-Control": "no-store"})


@router.get("/konsol/{line}")
def console_page(request: Request, line: str):
    user(request, *ROLES)
    line = _line(line)
    return _page(request, line, call_id=secrets.token_urlsafe(12))


def closest(given: str, names: list[str]) -> str | None:
    """The name the operator probably meant ("Pogalam" -> "Pogalan")."""
    import difflib

    by_low = {n.lower(): n for n in names}
    hit = difflib.get_close_matches(given.strip().lower(), list(by_low), n=1, cutoff=0.6)
    return by_low[hit[0]] if hit else None


def field_errors(line: str, form: dict[str, Any]) -> dict[str, str]:
    """What is wrong with a console form, per field, in Bahasa Indonesia, with the closest
    known value for a typo. Empty when the form can be saved."""
    errors: dict[str, str] = {}
    types, _ = incident_types(line)
    hl = _hotline()
    try:
        adapter = hl.hotline_adapter() if hl is not None else None
        spec = adapter.line(line) if adapter is not None else None
    except Exception:  # a broken hotlines.yaml: the adapter reports it when saving
        adapter = spec = None
    wil = pages.wilayah()

    def known_type(v: str) -> bool:
        if spec is not None:
            return spec.incident(v) is not None
        return v.lower() in {t["key"].lower() for t in types} | {t["label"].lower() for t in types}

    def kec_of(v: str) -> str | None:
        if adapter is not None:
            hit = adapter.spec.places.find_kecamatan(v)
            return hit[0] if hit else None
        return wil.kecamatan_by_name(v)

    def desa_ok(kc: str, v: str) -> bool:
        if adapter is not None:
            return adapter.spec.places.find_desa(kc, v) is not None
        return wil.desa_by_name(kc, v) is not None

    it = (form.get("incident_type") or "").strip()
    if not it:
        errors["incident_type"] = "Jenis kejadian wajib diisi."
    elif not known_type(it):
        near = closest(it, [t["key"] for t in types])
        errors["incident_type"] = (f"Jenis kejadian “{it}” tidak dikenal untuk {LINES[line]}."
                                   + (f" Maksud Anda “{near}”?" if near else "")
                                   + " Pilihan: " + ", ".join(t["key"] for t in types) + ".")
    kec = (form.get("kecamatan") or "").strip()
    kec_code = kec_of(kec) if kec else None
    if not kec:
        errors["kecamatan"] = "Kecamatan wajib diisi."
    elif kec_code is None:
        near = closest(kec, [n for _, n in wil.kecamatan])
        errors["kecamatan"] = f"Kecamatan “{kec}” tidak dikenal." + (f" Maksud Anda “{near}”?" if near else "")
    desa = (form.get("desa") or "").strip()
    if desa and kec_code and not desa_ok(kec_code, desa):
        near = closest(desa, [n for _, n in wil.desa.get(kec_code, ())])
        errors["desa"] = (f"Desa “{desa}” tidak ada di Kecamatan {wil.name(kec_code)}."
                          + (f" Maksud Anda “{near}”?" if near else ""))
    n = (form.get("people_affected") or "").strip()
    if n and not n.isdigit():
        errors["people_affected"] = "Jumlah harus angka."
    return errors


FIELDS = ("caller_phone", "caller_name", "incident_type", "kecamatan", "desa", "landmark", "description",
          "people_affected", "triage_colour", "action_taken")


async def record(request: Request, line: str, form: dict[str, Any], call_id: str) -> dict[str, Any]:
    """Store one call; returns {code, duplicate, ticket?}. Raises ValueError with the reason."""
    hl = _hotline()
    if hl is not None:
        from adapters.base import InvalidPayload

        body = {k: v for k, v in form.items() if v not in (None, "")}
        body["id"] = f"konsol-{call_id}"
        if "people_affected" in body:
            try:
                body["people_affected"] = int(body["people_affected"])
            except ValueError:
                raise ValueError("Jumlah korban harus angka.") from None
        try:
            msg = hl.hotline_adapter().from_console(line, body)
        except InvalidPayload as exc:
            raise ValueError(str(exc)) from None
        accepted = await request.app.state.intake_writer.submit(msg)
        outcome = await asyncio.to_thread(hl.call_outcome, accepted)
        return {"code": accepted.ticket_code, "duplicate": accepted.duplicate, **outcome}
    # Fallback while hub.lines.hotline.calls is missing: plain intake with structured fields.
    from normalizer.types import InboundMessage

    if not form.get("kecamatan") or not form.get("incident_type"):
        raise ValueError("Jenis kejadian dan kecamatan wajib diisi.")
    text = " ".join(str(form.get(k) or "") for k in ("incident_type", "description", "landmark")).strip()
    fields = {k: form[k] for k in ("incident_type", "kecamatan", "desa", "triage_colour", "people_affected",
                                   "landmark", "action_taken") if form.get(k)}
    msg = InboundMessage(channel=line, text=text, sender=form.get("caller_phone") or None,
                         sender_name=form.get("caller_name") or None, provider_id=f"konsol-{call_id}",
                         received_at=datetime.now(timezone.utc), fields=fields)
    accepted = await request.app.state.intake_writer.submit(msg)
    return {"code": accepted.ticket_code, "duplicate": accepted.duplicate}


@router.post("/konsol/{line}")
async def console_save(request: Request, line: str):
    who = user(request, *ROLES)
    line = _line(line)
    form_data = await request.form()
    check_csrf(request, form_data)
    form = {k: str(form_data.get(k) or "").strip()[:4000] for k in FIELDS}
    call_id = str(form_data.get("call_id") or secrets.token_urlsafe(12))[:40]
    wants_json = "application/json" in request.headers.get("accept", "")
    errors = field_errors(line, form)
    if errors:
        if wants_json:
            return JSONResponse({"error": " ".join(errors.values()), "errors": errors}, status_code=422)
        return _page(request, line, call_id=call_id, error="Periksa kolom yang ditandai.", errors=errors,
                     form=form, status=422)
    try:
        result = await record(request, line, form, call_id)
    except ValueError as exc:
        if wants_json:
            return JSONResponse({"error": str(exc)}, status_code=422)
        return _page(request, line, call_id=call_id, error=str(exc), form=form, status=422)
    log.info("web.console_call", line=line, code=result["code"], actor=who.actor, duplicate=result["duplicate"])
    if wants_json:
        t = result.get("ticket") or {}
        return JSONResponse({"code": result["code"], "duplicate": result["duplicate"],
                             "opd": t.get("opd"), "urgency": t.get("urgency"),
                             "next_call_id": secrets.token_urlsafe(12)})
    return _page(request, line, call_id=secrets.token_urlsafe(12), saved=result)
