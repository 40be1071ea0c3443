"""Shared pieces of the web pages: templates and their filters, who is logged in, role
checks, period filters, labels. Renders and checks only; never changes a ticket itself.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from hub.auth import Principal
from hub.config import regency_config
from hub.settings import get_settings
from hub.web.gazetteer import wilayah
from hub.web.security import csrf_ok, csrf_token, session_user

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
WIB = timezone(timedelta(hours=7))
templates = Jinja2Templates(directory=str(HERE / "templates"))

STATUS_LABELS = {"menunggu": "Menunggu", "diproses": "Diproses", "selesai": "Selesai",
                 "ditolak": "Ditolak", "digabung": "Digabung"}
URGENCY_LABELS = {"darurat": "Darurat", "tinggi": "Tinggi", "normal": "Normal"}
ROLE_LABELS = {"admin": "Admin", "pimpinan": "Pimpinan", "operator": "Operator", "opd": "Staf OPD"}
PERIODS = {"semua": ("Semua waktu", None), "hari": ("Hari ini", 0), "7h": ("7 hari", 7), "30h": ("30 hari", 30),
           "90h": ("90 hari", 90), "1t": ("1 tahun", 365)}
EVENT_LABELS = {"received": "Diterima", "routed": "Diteruskan ke OPD", "rerouted": "Dialihkan",
                "status": "Status diubah", "delivered": "Terkirim ke OPD", "reply": "Balasan ke pelapor",
                "merged": "Digabung", "escalated": "Eskalasi", "note": "Catatan", "repeat": "Pesan ulang",
                "acknowledged": "Diterima OPD", "overdue": "Lewat tenggat", "reminder": "Pengingat",
                "lapor_sync": "Sinkron SP4N-LAPOR!", "imported": "Diimpor"}


class LoginRequired(Exception):
    def __init__(self, next_path: str):
        self.next_path = next_path


class PageError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def install_error_pages(app) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired):
        return RedirectResponse("/masuk?" + urlencode({"lanjut": exc.next_path}), status_code=303)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError):
        return render(request, "error.html", {"status": exc.status, "message": exc.message}, status=exc.status)


def user(request: Request, *roles: str) -> Principal:
    """The logged-in person; redirects to the login page, 403 when the role may not."""
    p = getattr(request.state, "web_user", None) or session_user(request)
    if p is None:
        path = request.url.path + (("?" + request.url.query) if request.url.query else "")
        raise LoginRequired(path)
    request.state.web_user = p
    if roles and p.role not in roles:
        raise PageError(403, "Halaman ini tidak tersedia untuk peran Anda.")
    return p


def check_csrf(request: Request, form) -> None:
    if not csrf_ok(request, form.get("csrf")):
        raise PageError(403, "Formulir sudah kedaluwarsa atau tidak sah. Muat ulang halaman lalu coba lagi.")


def cfg():
    return regency_config(str(get_settings().config_dir))


def channel_labels() -> dict[str, str]:
    chans = (cfg().channels.get("channels") or {})
    return {k: (v or {}).get("label", k) for k, v in chans.items()}


def opd_names() -> dict[str, str]:
    return {o.code: o.name for o in cfg().opds}


def period_range(key: str | None, now: datetime | None = None) -> tuple[datetime | None, str]:
    key = key if key in PERIODS else "semua"
    days = PERIODS[key][1]
    if days is None:
        return None, key
    now = now or datetime.now(timezone.utc)
    if days == 0:
        local = now.astimezone(WIB)
        return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(timezone.utc), key
    return now - timedelta(days=days), key


def wib(d: datetime | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
    if d is None:
        return "-"
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.astimezone(WIB).strftime(fmt)


def age(d: datetime | None, now: datetime | None = None) -> str:
    if d is None:
        return "-"
    now = now or datetime.now(timezone.utc)
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    s = (now - d).total_seconds()
    late = s < 0
    s = abs(s)
    if s < 3600:
        txt = f"{max(1, int(s // 60))} mnt"
    elif s < 86400:
        txt = f"{int(s // 3600)} jam"
    else:
        txt = f"{int(s // 86400)} hari"
    return ("dalam " + txt) if late else (txt + " lalu")


def hours(h: float | None) -> str:
    if h is None:
        return "-"
    if h < 1:
        return f"{int(round(h * 60))} mnt"
    if h < 48:
        return f"{h:.1f} jam".replace(".", ",")
    return f"{h / 24:.1f} hari".replace(".", ",")


def qs(base: dict[str, Any], **extra: Any) -> str:
    """Query string of the current filters plus/minus some keys (None removes)."""
    merged = {k: v for k, v in {**base, **extra}.items() if v not in (None, "", False)}
    return urlencode(merged)


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    who = getattr(request.state, "web_user", None)
    if who is None and "session" in request.scope:
        who = session_user(request)
    ctx = {"request": request, "who": who, "csrf": csrf_token(request) if "session" in request.scope else "",
           "wil": wilayah(), "STATUS_LABELS": STATUS_LABELS, "URGENCY_LABELS": URGENCY_LABELS,
           "ROLE_LABELS": ROLE_LABELS, "channels": channel_labels(), "opds": opd_names(),
           "EVENT_LABELS": EVENT_LABELS, "PERIODS": PERIODS, **context}
    resp = templates.TemplateResponse(request, name, ctx, status_code=status)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
                                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'")
    return resp


def safe_link(url: Any) -> str | None:
    """The URL when a staff page may render it as a link, else None (shown as text): the hub's
    own media (/lampiran/...), or http(s) to public_url's host or a host in settings.link_hosts.
    Never javascript:, data: or any other scheme, nor a protocol-relative //host."""
    if not isinstance(url, str):
        return None
    u = url.strip()
    if any(ord(c) < 33 for c in u):  # control characters and spaces hide schemes from browsers
        return None
    if u.startswith("/lampiran/") and "//" not in u and "\\" not in u:
        return u
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(u)
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host or "\\" in u:
        return None
    settings = get_settings()
    own = (urlsplit(settings.public_url).hostname or "").lower()
    allowed = [h.strip().lower() for h in settings.link_hosts.split(",") if h.strip()]
    ok = host == own or any(host == h or (h.startswith(".") and host.endswith(h)) for h in allowed)
    return u if ok else None


templates.env.filters.update(wib=wib, age=age, hours=hours, safe_link=safe_link)
templates.env.globals.update(qs=qs)
