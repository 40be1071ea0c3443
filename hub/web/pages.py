"""Shared pieces of the web pages: templates and their filters, who is logged in, role
checks, period filters, labels. Renders and checks only; never changes a ticket itself.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

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
                "lapor_sync": "Sinkron SP4N-LAPOR!", "imported": "Diimpor", "feedback": "Jawaban pelapor",
                "nik_revealed": "NIK dibuka", "handed_back": "Dikembalikan (bukan kewenangan)"}


def actor_words(actor: str | None) -> str:
    """Who did it, in words: "sistem", "pelapor (SMS)", "admin", ..."""
    a = actor or "sistem"
    if a in ("system", "sistem") or a.startswith("system:"):
        return "sistem" + (" (SLA)" if a == "system:sla" else "")
    if a.startswith("channel:"):
        ch = a.split(":", 1)[1]
        return "saluran " + channel_labels().get(ch, ch)
    if a.startswith("pelapor:"):
        ch = a.split(":", 1)[1]
        return "pelapor (" + {"web": "halaman cek", "sms": "SMS", "telegram": "Telegram"}.get(ch, ch) + ")"
    return a.split(":", 1)[1] if a.startswith(("user:", "key:")) else a


def _rule_words(rule: str | None) -> str:
    r = rule or ""
    if r.startswith("field incident_type"):
        return "menurut jenis kejadian yang dicatat operator"
    if r.startswith("channel "):
        return "menurut saluran laporan"
    if r.startswith("manual:"):
        return "oleh petugas"
    if r in ("", "empty message"):
        return "pesan kosong: perlu triase" if r else ""
    if "triage" in r or "triase" in r:
        return "belum pasti: perlu triase"
    return "menurut isi laporan"


def event_words(e: dict[str, Any]) -> str:
    """One history row in words ("Dialihkan dari PUPR ke BPBD oleh admin"), not a field dump."""
    names = opd_names()
    kind, who = e.get("kind"), actor_words(e.get("actor"))
    data = e.get("data") or {}
    opd = lambda c: names.get(c, c) if c else "-"  # noqa: E731
    st = lambda x: STATUS_LABELS.get(x, x) if x else "-"  # noqa: E731
    if kind == "received":
        return f"Laporan diterima melalui {who.removeprefix('saluran ')}"
    if kind == "routed":
        why = _rule_words(e.get("note"))
        return f"Diteruskan ke {opd(e.get('to_opd'))}" + (f" ({why})" if why else "")
    if kind == "rerouted":
        return f"Dialihkan dari {opd(e.get('from_opd'))} ke {opd(e.get('to_opd'))} oleh {who}"
    if kind == "handed_back":
        return f"Dikembalikan oleh {opd(e.get('from_opd'))} (bukan kewenangan) ke {opd(e.get('to_opd'))}"
    if kind == "status":
        if data.get("reopen"):
            return f"Dibuka kembali ({st(e.get('from_status'))} → {st(e.get('to_status'))}) oleh {who}"
        if e.get("from_status"):
            return f"Status diubah dari {st(e.get('from_status'))} ke {st(e.get('to_status'))} oleh {who}"
        return f"Status {st(e.get('to_status'))} ({who})"
    if kind == "merged":
        return f"Digabung ke laporan {data.get('into', '-')} oleh {who}"
    if kind == "note":
        return f"Catatan dari {who}"
    if kind == "acknowledged":
        return f"Diterima OPD ({who})"
    if kind == "escalated":
        return f"Eskalasi level {data.get('level', '?')}: {e.get('note') or ''}".rstrip(": ")
    if kind == "overdue":
        return "Melewati tenggat penyelesaian"
    if kind == "feedback":
        ans = "sudah beres" if data.get("answer") == "beres" else "belum beres"
        return f"Pelapor menjawab {ans}" + (f", nilai {data['rating']}/5" if data.get("rating") else "") + f" ({who})"
    if kind == "nik_revealed":
        return f"NIK ditampilkan lengkap oleh {who}"
    if kind == "repeat":
        return "Pelapor mengirim pesan yang sama lagi"
    return f"{EVENT_LABELS.get(kind, kind)} ({who})"


# paths whose errors stay JSON (API clients, providers' webhooks, other systems)
MACHINE_PREFIXES = ("/api/", "/webhooks/", "/open311/", "/healthz", "/readyz", "/metrics", "/docs", "/openapi",
                    "/redoc")


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

    from fastapi.exception_handlers import http_exception_handler
    from starlette.exceptions import HTTPException as StarletteHTTPException

    # another part may have answered HTTP errors on its own paths already (Open311's GeoReport
    # error lists): machine paths go on to that handler, whatever order the parts were wired in
    previous = app.exception_handlers.get(StarletteHTTPException) or http_exception_handler

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        """Unknown URLs (and 405) get an Indonesian page; machine paths keep their JSON."""
        if exc.status_code not in (404, 405) or request.url.path.startswith(MACHINE_PREFIXES):
            return await previous(request, exc)
        text = ("Halaman yang Anda cari tidak ada. Periksa alamatnya, atau kembali ke beranda."
                if exc.status_code == 404 else "Cara membuka halaman ini tidak didukung.")
        return render(request, "error.html", {"status": exc.status_code, "message": text}, status=exc.status_code)


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


def flash(request: Request, text: str, kind: str = "ok", field: str | None = None) -> None:
    """A message for the next page this browser shows (kept in the signed session, never taken
    from the URL): kind "ok" (notice) or "err" (alert; `field` names the form field it is about)."""
    request.session["flash"] = {"kind": kind, "text": text[:500], "field": field}


def _take_flash(request: Request) -> dict[str, Any]:
    if "session" not in request.scope:
        return {}
    f = request.session.pop("flash", None)
    if not isinstance(f, dict):
        return {}
    if f.get("kind") == "err":
        return {"err": f.get("text"), "err_field": f.get("field")}
    return {"msg": f.get("text")}


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    context = {**_take_flash(request), **{k: v for k, v in context.items()
                                          if v is not None or k not in ("msg", "err")}}
    who = getattr(request.state, "web_user", None)
    if who is None and "session" in request.scope:
        who = session_user(request)
    ctx = {"request": request, "who": who, "csrf": csrf_token(request) if "session" in request.scope else "",
           "wil": wilayah(), "STATUS_LABELS": STATUS_LABELS, "URGENCY_LABELS": URGENCY_LABELS,
           "ROLE_LABELS": ROLE_LABELS, "channels": channel_labels(), "opds": opd_names(),
           "EVENT_LABELS": EVENT_LABELS, "PERIODS": PERIODS,
           "demo": bool(getattr(getattr(request.app.state, "settings", None), "demo", False)), **context}
    resp = templates.TemplateResponse(request, name, ctx, status_code=status)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "same-origin"
    img = "'self' data: blob:" + (f" {context['img_origin']}" if context.get("img_origin") else "")  # map tiles
    resp.headers["Content-Security-Policy"] = (f"default-src 'self'; img-src {img}; style-src 'self' 'unsafe-inline'; "
                                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'")
    return resp


def nik(text: str | None) -> str:
    """Every NIK in the text masked (3503**********12): what every page shows."""
    from normalizer.reporter import mask_niks

    return mask_niks(text or "")




def tile_origin(url: str) -> str | None:
    """The tile server's origin for the page's Content-Security-Policy (img-src)."""
    parts = urlsplit(url.replace("{s}", "a"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    host = parts.netloc.replace("a.", "*.", 1) if "{s}" in url else parts.netloc
    return f"{parts.scheme}://{host}"


def asset_version() -> str:
    """A short hash of the static files: in their URLs (`?v=`), so they can be cached for a year."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(STATIC_DIR.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(STATIC_DIR)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:10]


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



templates.env.filters.update(wib=wib, age=age, hours=hours, nik=nik, safe_link=safe_link)
templates.env.globals.update(qs=qs, asset_v=asset_version())
