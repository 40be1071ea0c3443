"""Admin pages: people and roles (add, unlock, deactivate), OPD delivery targets (read-only,
from config), API keys (create, shown once; revoke), dead letters with replay, channel health.

Every change is a CSRF-checked form calling hub.auth / hub.outbox; never shows a secret twice.
"""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import func, select
from sqlmodel import Session

from hub import auth, guard, outbox, readiness, unreadable
from hub.db import get_engine, writer
from hub.logging import get_logger
from hub.models import ApiKey, ChannelState, RawMessage, User
from hub.web import pages
from hub.web import security
from hub.web.pages import PageError, check_csrf, render, user

log = get_logger(__name__)
router = APIRouter(include_in_schema=False)


def _redirect(request: Request, msg: str | None = None, err: str | None = None, anchor: str = "",
              field: str | None = None) -> RedirectResponse:
    """Back to /admin with a flash message (kept in the session: no text ever comes from the URL)."""
    if err:
        pages.flash(request, err, "err", field)
    elif msg:
        pages.flash(request, msg, "ok")
    return RedirectResponse("/admin" + anchor, status_code=303)


def _in_indonesian(exc: ValueError) -> tuple[str, str | None]:
    """hub.auth's refusals (English, for the CLI) as the admin page says them, and their field."""
    text = str(exc)
    if "needs --opd" in text or "needs an OPD" in text:
        return "Pengguna dengan peran OPD harus memilih OPD-nya.", "opd"
    if "at least 8" in text:
        return "Kata sandi minimal 8 karakter.", "password"
    if "already exists" in text:
        return "Nama pengguna itu sudah dipakai.", "username"
    if text.startswith("role must be"):
        return "Pilih peran yang tersedia.", "role"
    return text, None


def _delivery_summary(d: dict) -> str:
    kind = (d or {}).get("type", "pull")
    if kind == "webhook":
        return f"webhook → {d.get('url', '?')}"
    if kind == "email":
        return f"e-mail → {d.get('to', d.get('address', '?'))}"
    if kind == "open311":
        return f"Open311 → {d.get('url', d.get('endpoint', '?'))}"
    return "tarik lewat API (pull)"


def _last_received(s: Session, channel: str):
    """Newest message time of a line; a failed row with a time the driver cannot load
    (hub.guard) must not take the admin page down with it."""
    q = select(func.max(RawMessage.received_at)).where(RawMessage.channel == channel, RawMessage.state != "failed")
    try:
        with s.begin_nested():
            return s.execute(q).scalar_one()
    except Exception:  # a poison row still pending: shown once it is parked
        return None


def channel_health(s: Session) -> list[dict]:
    """Last message per line (raw store), and the line's own state row (LAPOR! sync, modem)."""
    states = {c.channel: c for c in s.scalars(select(ChannelState))}
    running = readiness.report()  # lines that should be polling: running or stopped
    out = []
    for code, label in pages.channel_labels().items():
        last = _last_received(s, code)
        st = states.pop(code, None)
        out.append({"code": code, "label": label, "last": last, "state": st, "run": running.pop(code, None)})
    for code, st in states.items():  # lines with state but no channel entry (gammu modem, ...)
        out.append({"code": code, "label": code, "last": None, "state": st, "run": running.pop(code, None)})
    for code, run in running.items():
        out.append({"code": code, "label": code, "last": None, "state": None, "run": run})
    return out


@router.get("/admin")
def admin_page(request: Request):
    user(request, "admin")
    with Session(get_engine()) as s:
        users = list(s.scalars(select(User).order_by(User.role, User.username)))
        keys = list(s.scalars(select(ApiKey).order_by(ApiKey.revoked_at.is_not(None), ApiKey.id.desc())))
        dead = outbox.list_rows(s, state="dead", limit=50).rows
        counts = outbox.counts(s)
        health = channel_health(s)
        from hub.router_learning import router_status
        router = router_status(s)
        failed_intake, failed_intake_count = guard.list_failed(s), guard.count_failed(s)
        unread = unreadable.recent(s, 20)
        unread_n = unreadable.count()
    from hub import held as ratelimit

    held = ratelimit.list_held()
    locks = security.lockouts()
    locked_names = {r["username"] for r in locks}
    new_key = request.session.pop("new_key", None)  # shown once, then gone from the session
    opds = [{"code": o.code, "name": o.name, "kind": o.kind, "delivery": _delivery_summary(o.delivery)}
            for o in pages.cfg().opds]
    return render(request, "admin.html", {"users": users, "keys": keys, "dead": dead, "counts": counts,
                                          "health": health, "held": held, "opd_list": opds, "router": router,
                                          "failed_intake": failed_intake, "failed_intake_count": failed_intake_count,
                                          "unreadable": unread, "unreadable_n": unread_n,
                                          "lockouts": locks, "locked_names": locked_names,
                                          "new_key": new_key, "now": datetime.now(timezone.utc)})


@router.post("/admin/pengguna")
async def add_user(request: Request):
    who = user(request, "admin")
    form = await request.form()
    check_csrf(request, form)
    username = str(form.get("username") or "").strip()[:80]
    role = str(form.get("role") or "")
    opd = str(form.get("opd") or "").strip() or None
    if role != "opd":
        opd = None
    if opd and opd not in pages.opd_names():
        return _redirect(request, err=f"OPD {opd} tidak dikenal.", anchor="#pengguna", field="opd")
    if not username or not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
        return _redirect(request, err="Nama pengguna hanya huruf, angka, titik, garis bawah atau strip.",
                         anchor="#pengguna", field="username")
    try:
        with Session(writer(), expire_on_commit=False) as s:
            auth.create_user(s, username, str(form.get("password") or ""), role, opd,
                             str(form.get("full_name") or "").strip()[:200] or None)
            s.commit()
    except ValueError as exc:
        text, field = _in_indonesian(exc)
        return _redirect(request, err=text, anchor="#pengguna", field=field)
    log.info("web.user_added", user=username, role=role, actor=who.actor)
    return _redirect(request, msg=f"Pengguna {username} ditambahkan.", anchor="#pengguna")


@router.post("/admin/pengguna/{uid}/{action}")
async def user_action(request: Request, uid: int, action: str):
    who = user(request, "admin")
    form = await request.form()
    check_csrf(request, form)
    with Session(writer(), expire_on_commit=False) as s:
        u = s.get(User, uid)
        if u is None:
            raise PageError(404, "Pengguna tidak ditemukan.")
        if action == "buka":
            u.locked_until, u.failed_logins = None, 0
            msg = f"Akun {u.username} dibuka."
        elif action == "nonaktif":
            if u.id == who.user_id:
                return _redirect(request, err="Anda tidak dapat menonaktifkan akun sendiri.", anchor="#pengguna")
            u.active = False
            msg = f"Akun {u.username} dinonaktifkan."
        elif action == "aktif":
            u.active = True
            msg = f"Akun {u.username} diaktifkan."
        else:
            raise PageError(404, "Tindakan tidak dikenal.")
        s.add(u)
        s.commit()
    if action == "buka":  # after the commit: the limiter writes in its own transaction
        security.unlock(username=u.username)
    log.info("web.user_action", user=u.username, action=action, actor=who.actor)
    return _redirect(request, msg=msg, anchor="#pengguna")


@router.post("/admin/kunci-masuk/buka")
async def lift_lockout(request: Request):
    """Lift one login lockout or limit (a row of the lockout list)."""
    who = user(request, "admin")
    form = await request.form()
    check_csrf(request, form)
    key = str(form.get("key") or "")[:200]
    n = security.unlock(key=key) if key.startswith("login:") else 0
    log.info("web.lockout_lifted", actor=who.actor, found=n)
    return _redirect(request, msg="Kunci masuk dibuka." if n else None, err=None if n else "Kunci tidak ditemukan.",
                     anchor="#kunci-masuk")


@router.post("/admin/kunci")
async def create_key(request: Request):
    who = user(request, "admin")
    form = await request.form()
    check_csrf(request, form)
    name = str(form.get("name") or "").strip()[:120]
    role = str(form.get("role") or "opd")
    opd = str(form.get("opd") or "").strip() or None
    if not name:
        return _redirect(request, err="Beri nama kunci (siapa pemakainya).", anchor="#kunci")
    if opd and opd not in pages.opd_names():
        return _redirect(request, err=f"OPD {opd} tidak dikenal.", anchor="#kunci")
    try:
        with Session(writer(), expire_on_commit=False) as s:
            secret = auth.create_api_key(s, name, role, opd if role == "opd" else None)
            s.commit()
    except ValueError as exc:
        return _redirect(request, err=_in_indonesian(exc)[0], anchor="#kunci")
    request.session["new_key"] = {"name": name, "key": secret}
    log.info("web.key_created", name=name, role=role, opd=opd, actor=who.actor)
    return _redirect(request, msg="Kunci API dibuat. Salin sekarang: kunci hanya ditampilkan sekali.", anchor="#kunci")


async def _admin_act(request: Request, act, missing: str, done: str, anchor: str, event: str, **ids):
    """One admin button on a row: CSRF-checked form, `act(session)` committed, a missing row is
    a 404 page, a refused change (ValueError) the page with its reason, then back to `anchor`."""
    who = user(request, "admin")
    form = await request.form()
    check_csrf(request, form)
    try:
        with Session(writer(), expire_on_commit=False) as s:
            act(s)
            s.commit()
    except LookupError:
        raise PageError(404, missing) from None
    except ValueError as exc:
        return _redirect(request, err=str(exc), anchor=anchor)
    log.info(event, actor=who.actor, **ids)
    return _redirect(request, msg=done, anchor=anchor)


@router.post("/admin/kunci/{prefix}/cabut")
async def revoke_key(request: Request, prefix: str):
    return await _admin_act(request, lambda s: auth.revoke_api_key(s, prefix), "Kunci tidak ditemukan.",
                            f"Kunci {prefix} dicabut.", "#kunci", "web.key_revoked", prefix=prefix)


@router.post("/admin/outbox/{outbox_id}/ulang")
async def replay(request: Request, outbox_id: int):
    return await _admin_act(request, lambda s: outbox.replay(s, outbox_id), "Baris outbox tidak ditemukan.",
                            f"Pesan #{outbox_id} dijadwalkan kirim ulang.", "#gagal", "web.outbox_replay",
                            outbox_id=outbox_id)


@router.post("/admin/masuk/{raw_id}/ulang")
async def replay_intake(request: Request, raw_id: int):
    """A message that failed processing (hub.guard) goes through processing again."""
    return await _admin_act(request, lambda s: guard.replay_failed(s, raw_id), "Pesan masuk tidak ditemukan.",
                            f"Pesan masuk #{raw_id} diolah ulang.", "#gagal-olah", "web.intake_replay", raw_id=raw_id)


@router.post("/admin/ditahan/lepas")
async def release_held(request: Request):
    """Release messages the flood limiter holds (hub.lines.ratelimit): all, one line and sender,
    or one message. They become tickets like any other."""
    who = user(request, "admin")
    form = await request.form()
    check_csrf(request, form)
    from hub import held as ratelimit

    one = str(form.get("id") or "").strip()
    channel = str(form.get("channel") or "").strip()[:32] or None
    sender = str(form.get("sender") or "").strip()[:200] or None
    if one:
        if not one.isdigit():
            return _redirect(request, err="Pesan tidak dikenal.", anchor="#ditahan")
        n = ratelimit.release_held(raw_ids=[int(one)])
    elif str(form.get("semua") or "") == "1":
        n = ratelimit.release_held()
    elif channel and sender:
        n = ratelimit.release_held(channel=channel, sender=sender)
    else:
        return _redirect(request, err="Pilih pesan yang akan dilepas.", anchor="#ditahan")
    log.info("web.held_released", actor=who.actor, count=n, channel=channel, one=bool(one))
    if n == 0:
        return _redirect(request, err="Tidak ada pesan tertahan yang cocok (mungkin sudah dilepas).", anchor="#ditahan")
    return _redirect(request, msg=f"{n} pesan tertahan dilepas dan akan menjadi tiket.", anchor="#ditahan")


@router.get("/admin/kotak-keluar-demo")
def demo_outbox_page(request: Request):
    """Demo mode: what lines without credentials would have sent (hub/demo_outbox.py)."""
    from hub.demo_outbox import missing_credentials
    from hub.models import DemoMessage

    user(request, "admin")
    settings = request.app.state.settings
    kanal = request.query_params.get("kanal") or None
    with Session(get_engine()) as s:
        q = select(DemoMessage).order_by(DemoMessage.id.desc()).limit(200)
        if kanal:
            q = q.where(DemoMessage.channel == kanal)
        rows = list(s.scalars(q))
        counts = dict(s.execute(select(DemoMessage.channel, func.count()).group_by(DemoMessage.channel)).all())
    return pages.render(request, "demo_outbox.html", {
        "rows": rows, "counts": counts, "kanal": kanal, "demo_on": settings.demo,
        "missing": missing_credentials(settings) if settings.demo else [], "title": "Kotak keluar demo"})
