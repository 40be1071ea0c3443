"""E-mails to OPDs about a ticket, in Bahasa Indonesia, code in the subject; bodies (plain text
and HTML) come from the Jinja2 templates beside this module (templates/opd_email.*), so the
wording can change without touching code and HTML is escaped by the template engine."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from sqlmodel import Session

from adapters import email_smtp
from hub.config import RegencyConfig, regency_config
from hub.delivery.payloads import ticket_payload
from hub.delivery.targets import recipients
from hub.models import Opd, Outbox, Ticket
from normalizer.reporter import mask_niks
from hub.outbox import enqueue
from hub.settings import get_settings

SUBJECTS = {"ticket.created": "Laporan baru", "ticket.rerouted": "Laporan dialihkan kepada Anda",
            "ticket.reminder": "Pengingat tenggat laporan", "ticket.escalated": "Eskalasi laporan terlambat",
            "ticket.reopened": "Laporan dibuka kembali", "ticket.updated": "Tambahan keterangan laporan"}
INTROS = {"ticket.created": "Laporan warga berikut diteruskan kepada {opd} melalui Simpul.",
          "ticket.rerouted": "Laporan warga berikut dialihkan kepada {opd} melalui Simpul.",
          "ticket.reminder": "Laporan berikut mendekati atau melewati tenggat penyelesaian. Mohon segera ditindaklanjuti.",
          "ticket.escalated": "Laporan berikut telah melewati tenggat penyelesaian dan dieskalasi.",
          "ticket.reopened": "Laporan berikut dibuka kembali (pelapor menyatakan belum beres, atau admin membukanya) dan kembali kepada {opd}.",
          "ticket.updated": "Pelapor menambahkan keterangan pada laporan berikut, yang sudah diteruskan kepada {opd}."}
URGENCY_LABELS = {"darurat": "DARURAT", "tinggi": "tinggi", "normal": "normal"}


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        trim_blocks=True, undefined=jinja2.StrictUndefined)


def _local(d: datetime | None, cfg: RegencyConfig) -> str:
    tz = ZoneInfo(cfg.sla.get("timezone", "Asia/Jakarta"))
    return d.astimezone(tz).strftime("%d-%m-%Y %H:%M %Z") if d else "-"


def _links_expire(settings) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=settings.media_url_ttl_s)


def email_for(event: str, t: Ticket, opd: Opd, to: tuple[str, ...], message_id: str,
              note: str | None = None) -> email_smtp.Email:
    """The e-mail to an OPD about one ticket."""
    settings = get_settings()
    cfg = regency_config(str(settings.config_dir))
    data = ticket_payload(t)
    names = cfg.place_names
    place = ", ".join(p for p in (t.address, names.get(t.desa_code or ""),
                                  f"Kec. {names[t.kecamatan_code]}" if t.kecamatan_code in names else None) if p) or "-"
    reporter = data["reporter"]
    who = "dirahasiakan (pelapor anonim/rahasia)" if reporter is None else \
        ", ".join(v for v in (reporter.get("name"), reporter.get("phone")) if v) or "-"
    rows = [("Kode laporan", t.code), ("Diterima", _local(t.created_at, cfg)), ("Saluran", t.channel),
            ("Kategori", " / ".join(v for v in (t.category, t.subcategory) if v) or "-"),
            ("Urgensi", URGENCY_LABELS.get(t.urgency, t.urgency)), ("Status", t.status),
            ("Lokasi", place), ("Tenggat", _local(t.due_at, cfg)), ("Pelapor", who)]
    if t.latitude is not None and t.longitude is not None:
        rows.append(("Koordinat", f"{t.latitude:.6f}, {t.longitude:.6f}"))
    if event in ("ticket.reminder", "ticket.escalated"):
        rows.append(("Tingkat eskalasi", str(t.escalation_level)))
    base = settings.public_url.rstrip("/")
    values = {
        "opd_name": opd.name, "intro": INTROS.get(event, INTROS["ticket.created"]).format(opd=opd.name),
        "rows": [(k, str(v)) for k, v in rows], "width": max(len(k) for k, _ in rows), "note": note,
        "text": mask_niks(t.text_original),
        "links": [a["url"] for a in data["attachments"]],  # every attachment, at its signed hub URL
        "links_until": _local(_links_expire(settings), cfg),
        "how": (f"Perbarui status (diproses / selesai / bukan kewenangan) melalui API Simpul: "
                f"POST {base}/api/v1/opd/tickets/{t.code}/status, atau melalui dasbor Simpul."),
        "footer": f"Pesan ini dikirim otomatis oleh Simpul, Pemerintah {cfg.region_label}.",
    }
    env = _env()
    text = env.get_template("opd_email.txt").render(values)
    html_body = env.get_template("opd_email.html").render(values)
    subject = f"[Simpul {t.code}] {SUBJECTS.get(event, 'Laporan')}: {t.category or 'Laporan warga'}"
    if t.urgency == "darurat":
        subject = f"[DARURAT] {subject}"
    if values["links"]:
        subject = f"{subject} ({len(values['links'])} lampiran)"
    reply_to = (opd.delivery or {}).get("reply_to") or settings.smtp_reply_to or settings.smtp_from
    return email_smtp.Email(to=to, subject=subject, text=text, html=html_body, message_id=message_id,
                            reply_to=reply_to,  # Date in the regency's zone
                            date=datetime.now(ZoneInfo(cfg.sla.get("timezone", "Asia/Jakarta"))))


def queue_notify_email(session: Session, ticket: Ticket, to: str | list[str], subject: str, text: str,
                       html_body: str | None = None) -> Outbox | None:
    """An e-mail to a person (OPD head, regional head) about a ticket, as a "notify" outbox row."""
    if not recipients(to):
        return None
    return enqueue(session, "notify", ",".join(recipients(to))[:200],
                   {"channel": "email", "to": list(recipients(to)), "subject": subject, "text": text,
                    "html": html_body, "ticket_code": ticket.code}, ticket_id=ticket.id)
