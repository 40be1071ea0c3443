"""Pages for citizens, without an account: /lapor (report with text, photo, place, optional name
and number, anonymous allowed) and /cek (follow a ticket by its code). Only the status and a
public timeline are ever shown here: no names, numbers, internal notes of staff, or other
tickets; notes staff marked public and the "after" photo of a finished ticket are shown, and
the citizen answers "sudah beres" / "belum beres" with a rating.
"""
from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timezone

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse
from sqlalchemy import select
from sqlmodel import Session

from hub import tickets as T
from hub.unavailable import log_throttled
from hub.db import get_engine
from hub.limiter import REFUSE, Rule, limiter
from hub.logging import get_logger
from hub.models import RawMessage, TicketEvent
from hub.web import pages
from hub.web.pages import PageError, render, user
from hub.web.security import csrf_ok
from hub.web.uploads import UploadRejected, mime_of, save_upload, upload_dir

log = get_logger(__name__)
router = APIRouter(include_in_schema=False)
PUBLIC_EVENTS = {"received": "Laporan diterima", "routed": "Diteruskan ke", "rerouted": "Dialihkan ke",
                 "acknowledged": "Diterima oleh OPD", "merged": "Digabung dengan laporan lain"}


class RateLimit:
    """At most `n` hits per `window` seconds per client address, counted by the hub's one
    limiter (hub.limiter, REFUSE policy) in the database: every process shares the count. Sync
    (a database write): async routes call it through asyncio.to_thread."""

    def __init__(self, n: int, window: int, name: str = "lapor"):
        self.rule, self.name = Rule(n, int(window), REFUSE), name

    def allow(self, key: str) -> bool:
        return limiter.hit(f"{self.name}:{key}", self.rule).allowed


REPORT_LIMIT = RateLimit(5, 600, "lapor")
CHECK_LIMIT = RateLimit(60, 600, "cek")


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _blank_report() -> dict:
    return {"text": "", "kecamatan": "", "desa": "", "alamat": "", "nama": "", "telepon": "", "anonim": False,
            "lat": "", "lon": ""}


@router.get("/lapor")
def report_page(request: Request):
    return render(request, "lapor.html", {"form": _blank_report(), "report_id": secrets.token_urlsafe(12),
                                          "errors": [], "done": None})


def _float(v, lo: float, hi: float) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if lo <= f <= hi else None


@router.post("/lapor")
async def report_submit(request: Request):
    form = await request.form()
    data = {k: str(form.get(k) or "").strip() for k in ("text", "kecamatan", "desa", "alamat", "nama", "telepon",
                                                          "lat", "lon")}
    data["anonim"] = form.get("anonim") in ("1", "on", "ya")
    report_id = str(form.get("report_id") or secrets.token_urlsafe(12))[:40]
    errors = []
    if not csrf_ok(request, form.get("csrf")):
        errors.append("Formulir kedaluwarsa. Silakan kirim ulang.")
    if len(data["text"]) < 10:
        errors.append("Tuliskan laporan Anda (paling sedikit 10 huruf): apa yang terjadi dan di mana.")
    if len(data["text"]) > 4000:
        errors.append("Laporan terlalu panjang (maksimal 4000 huruf).")
    wil = pages.wilayah()
    if data["kecamatan"] and data["kecamatan"] not in wil.names:
        errors.append("Kecamatan tidak dikenal.")
    if data["desa"] and not data["desa"].startswith((data["kecamatan"] or "-") + "."):
        errors.append("Desa tidak berada di kecamatan yang dipilih.")
    lat, lon = _float(data["lat"], -90, 90), _float(data["lon"], -180, 180)
    from normalizer.reporter import to_e164

    phone = None
    if data["telepon"] and not data["anonim"]:
        phone = to_e164(data["telepon"][:30])
        if phone is None:
            errors.append("Nomor HP tidak dikenali (contoh: 081234567890).")
    photo = form.get("foto")
    has_photo = photo is not None and getattr(photo, "filename", None)
    if not errors and not await asyncio.to_thread(REPORT_LIMIT.allow, _client(request)):
        errors.append("Terlalu banyak laporan dari perangkat ini. Coba lagi dalam beberapa menit.")
    attachments = ()
    if not errors and has_photo:
        try:
            url = await save_upload(photo)
        except UploadRejected as exc:
            errors.append(str(exc))
        else:
            from normalizer.types import Attachment

            attachments = (Attachment(url=url, kind="photo", mime=mime_of(url), name=None),)
    if errors:
        return render(request, "lapor.html", {"form": data, "report_id": report_id, "errors": errors, "done": None},
                      status=429 if any("Terlalu banyak" in e for e in errors) else 400)
    from normalizer.types import InboundMessage

    fields = {"kecamatan": wil.name(data["kecamatan"]) if data["kecamatan"] else None,
              "desa": wil.name(data["desa"]) if data["desa"] else None,
              "alamat": data["alamat"][:300] or None, "anonymous": data["anonim"],
              "phone": phone}
    msg = InboundMessage(channel="web", text=data["text"], sender=phone,
                         sender_name=None if data["anonim"] else (data["nama"][:100] or None),
                         provider_id=f"lapor-{report_id}", received_at=datetime.now(timezone.utc),
                         attachments=attachments, latitude=lat if lon is not None else None,
                         longitude=lon if lat is not None else None,
                         fields={k: v for k, v in fields.items() if v not in (None, "")})
    try:
        accepted = await request.app.state.intake_writer.submit(msg)
    except Exception as exc:
        log_throttled("web.report_store_failed", exc)
        return render(request, "lapor.html", {"form": data, "report_id": report_id, "done": None,
                                              "errors": ["Laporan belum tersimpan karena gangguan. Silakan kirim ulang."]},
                      status=503)
    log.info("web.report", code=accepted.ticket_code, duplicate=accepted.duplicate, photo=bool(attachments))
    return RedirectResponse(f"/cek?kode={accepted.ticket_code}&baru=1", status_code=303)


@router.get("/cek")
def check_page(request: Request, kode: str = "", baru: str = ""):
    code = "".join(ch for ch in kode.upper() if ch.isalnum())[:10]
    if not code:
        return render(request, "cek.html", {"code": "", "t": None, "pending": False, "steps": [], "new": False})
    if not CHECK_LIMIT.allow(_client(request)):
        raise PageError(429, "Terlalu banyak pencarian dari perangkat ini. Coba lagi dalam beberapa menit.")
    steps, t, pending = [], None, False
    with Session(get_engine()) as s:
        t = T.resolve_code(s, code)
        if t is None:
            raw = s.scalars(select(RawMessage).where(RawMessage.ticket_code == code)).first()
            pending = raw is not None and raw.state == "pending"
        else:
            names = pages.opd_names()
            feedback = None
            for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id).order_by(TicketEvent.id)):
                data = e.data or {}
                public_note = e.note if (e.note and data.get("public") is True and e.kind in ("status", "note")) else None
                photo = _public_photo(t.code, data) if e.kind == "status" and e.to_status == "selesai" else None
                if e.kind == "status":
                    label = f"Status: {pages.STATUS_LABELS.get(e.to_status, e.to_status)}"
                    if data.get("reopen"):
                        label = "Dibuka kembali" + (" atas jawaban pelapor" if data.get("citizen") else "")
                    steps.append({"at": e.at, "label": label, "note": public_note, "photo": photo})
                elif e.kind == "note" and public_note:
                    steps.append({"at": e.at, "label": "Catatan petugas", "note": public_note, "photo": None})
                elif e.kind == "feedback":
                    feedback = data
                    steps.append({"at": e.at, "label": "Jawaban Anda: " + (
                        "sudah beres" if data.get("answer") == "beres" else "belum beres")
                        + (f" (nilai {data['rating']}/5)" if data.get("rating") else ""), "note": None, "photo": None})
                elif e.kind in PUBLIC_EVENTS:
                    label = PUBLIC_EVENTS[e.kind]
                    if e.kind in ("routed", "rerouted") and e.to_opd:
                        label += " " + names.get(e.to_opd, e.to_opd)
                    steps.append({"at": e.at, "label": label, "note": None, "photo": None})
            # a finished ticket takes one answer per closing (the last step after it is selesai)
            ask = t.status == "selesai" and not (steps and steps[-1]["label"].startswith("Jawaban Anda"))
            t = {"code": t.code, "status": t.status, "opd": names.get(t.opd_code, t.opd_code),
                 "created_at": t.created_at, "updated_at": t.updated_at, "merged_into": t.merged_into,
                 "kecamatan": pages.wilayah().name(t.kecamatan_code) if t.kecamatan_code else None,
                 "ask_feedback": ask, "feedback": feedback}
    status = 200 if (t is not None or pending) else 404
    return render(request, "cek.html", {"code": code, "t": t, "pending": pending, "steps": steps,
                                        "new": baru == "1"}, status=status)


def _public_photo(code: str, data: dict) -> dict | None:
    """The "after" photo staff attached when finishing: a page of its own for the citizen
    (the report's own photos stay staff-only)."""
    if data.get("photo") and str(data["photo"]).startswith("/lampiran/"):
        return {"url": f"/cek/{code}/foto/{str(data['photo']).rsplit('/', 1)[-1]}", "external": False}
    link = data.get("photo_link")
    if link and str(link).startswith(("https://", "http://")):
        return {"url": link, "external": True}
    return None


@router.get("/cek/{code}/foto/{name}")
def after_photo(code: str, name: str):
    """Only a photo attached to this ticket's "selesai" by staff is served here."""
    if "/" in name or "\\" in name or name.startswith(".") or len(name) > 64:
        raise PageError(404, "Foto tidak ditemukan.")
    with Session(get_engine()) as s:
        t = T.resolve_code(s, code)
        ok = t is not None and any(
            (e.data or {}).get("photo") == f"/lampiran/{name}" for e in s.scalars(
                select(TicketEvent).where(TicketEvent.ticket_id == t.id, TicketEvent.kind == "status",
                                          TicketEvent.to_status == "selesai")))
    path = upload_dir() / name
    if not ok or not path.is_file():
        raise PageError(404, "Foto tidak ditemukan.")
    return FileResponse(path, media_type=mime_of(name), headers={"Cache-Control": "private, max-age=3600",
                                                                  "X-Content-Type-Options": "nosniff"})


@router.post("/cek/{code}/jawab")
async def citizen_answer(request: Request, code: str):
    """The citizen's answer to a finished ticket: sudah beres (with a 1-5 rating) or belum
    beres (reopens it). The ticket code is the citizen's key, as for reading /cek."""
    form = await request.form()
    if not csrf_ok(request, form.get("csrf")):
        raise PageError(403, "Formulir sudah kedaluwarsa. Muat ulang halaman lalu coba lagi.")
    if not CHECK_LIMIT.allow(_client(request)):
        raise PageError(429, "Terlalu banyak permintaan dari perangkat ini. Coba lagi dalam beberapa menit.")
    answer = str(form.get("jawaban") or "")
    rating_s = str(form.get("nilai") or "").strip()
    rating = int(rating_s) if rating_s.isdigit() else None
    comment = str(form.get("komentar") or "")[:500]
    from hub.db import writer

    with Session(writer(), expire_on_commit=False) as s:
        t = T.resolve_code(s, code)
        if t is None:
            raise PageError(404, f"Kode {code[:10]} tidak ditemukan.")
        try:
            T.citizen_feedback(s, t, answer, pages.cfg(), "web", rating=rating, comment=comment)
            s.commit()
        except T.TicketError as exc:
            s.rollback()
            pages.flash(request, exc.for_people(), "err")
            return RedirectResponse(f"/cek?kode={t.code}", status_code=303)
    log.info("web.citizen_feedback", code=t.code, answer=answer, rating=rating)
    pages.flash(request, "Terima kasih. " + ("Laporan dibuka kembali dan diteruskan lagi ke OPD."
                                            if answer == "belum" else "Jawaban Anda tercatat."))
    return RedirectResponse(f"/cek?kode={t.code}", status_code=303)


@router.get("/lampiran/{name}")
def attachment(request: Request, name: str):
    """Photos are for staff: a citizen's picture may show their house or face."""
    user(request, "admin", "pimpinan", "operator", "opd")
    if "/" in name or "\\" in name or name.startswith(".") or len(name) > 64:
        raise PageError(404, "Lampiran tidak ditemukan.")
    path = upload_dir() / name
    if not path.is_file():
        raise PageError(404, "Lampiran tidak ditemukan.")
    return FileResponse(path, media_type=mime_of(name), headers={"Cache-Control": "private, max-age=86400",
                                                                  "X-Content-Type-Options": "nosniff"})
