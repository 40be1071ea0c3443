"""Hub side of SP4N-LAPOR!: the periodic pull that turns dispositioned reports into tickets, the
status sync, LAPOR!'s service levels, and the outbox sender that pushes our changes back.

Line health (last success, last error, failures, cursor) lives in channel_state row "lapor"
(hub.lines.health); `health_check` turns it into running / degraded / stopped for /readyz,
/metrics and the admin page (hub.readiness). A report the pull cannot parse is stored first (a
triage ticket, or a dead intake row) and the cursor moves past it. Never echoes a status that came from LAPOR! back to LAPOR!, and never stores the
identity of an anonymous or confidential reporter (the adapter drops it before it gets here).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update
from sqlmodel import Session

from adapters.base import DeliveryError, OutboundMessage, RetryableError, SendResult, backoff_delay
from adapters.lapor import (LaporAdapter, LaporAuthError, LaporReport, UnreadableResponse, salvage_report,
                            updated_at_of)
from hub import readiness
from hub.config import ConfigError, RegencyConfig, load_yaml, regency_config
from hub.db import get_engine, writer
from hub.intake import accept_many
from hub.logging import get_logger
from hub.models import OPEN_STATUSES, ChannelState, Outbox, Ticket
from hub.lines import health
from hub.parts import Line, OutboxSender, Periodic
from hub.settings import Settings, get_settings
from hub.sla import WorkCalendar
from hub.tickets import TicketError, add_event, change_status
from hub.unreadable import mark_for_triage, store_unreadable

log = get_logger(__name__)
CHANNEL = "lapor"
STATE = ChannelState.__table__
DEFAULTS: dict[str, Any] = {
    "instansi": None,
    "service_levels": {"verify_working_days": 3, "follow_up_working_days": 5, "auto_close_working_days": 10},
    "pull": {"per_page": 50, "max_pages_per_run": 40, "overlap_s": 120, "backoff_base_s": 30,
             "backoff_cap_s": 1800, "lease_s": 300},
}


# --- configuration ------------------------------------------------------------------------

def lapor_config(config_dir: Path | str | None = None) -> dict[str, Any]:
    """config/<regency>/lapor.yaml merged over the defaults; wrong types stop with the file named."""
    path = Path(config_dir or get_settings().config_dir) / "lapor.yaml"
    data = load_yaml(path) if path.exists() else {}
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(path, 1, "lapor.yaml must be a mapping")
    out = {"instansi": data.get("instansi", DEFAULTS["instansi"])}
    for section in ("service_levels", "pull"):
        given = data.get(section) or {}
        if not isinstance(given, dict):
            raise ConfigError(path, None, f"{section} must be a mapping")
        merged = dict(DEFAULTS[section])
        for k, v in given.items():
            if k not in merged:
                raise ConfigError(path, None, f"{section}.{k}: unknown setting; known: {', '.join(merged)}")
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ConfigError(path, None, f"{section}.{k} must be a non-negative number, got {v!r}")
            merged[k] = v
        out[section] = merged
    return out


def make_adapter(settings: Settings | None = None) -> LaporAdapter:
    s = settings or get_settings()
    return LaporAdapter(base_url=s.lapor_base_url or "", token=s.lapor_token or "", timeout_s=s.lapor_timeout_s)


# --- line health in channel_state (hub.lines.health) ----------------------------------------

def _utc(d: datetime | None) -> datetime | None:
    if d is None:
        return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def _iso(d: datetime) -> str:
    return d.astimezone(timezone.utc).isoformat()


def _parse(v: Any) -> datetime | None:
    return _utc(datetime.fromisoformat(v)) if v else None


def _ensure_state(engine: Engine) -> None:
    health.ensure_row(engine, CHANNEL)


def record_ok(engine: Engine, **values: Any) -> None:
    health.record_ok(engine, CHANNEL, **values)


def record_failure(engine: Engine, error: str) -> None:
    health.record_failure(engine, CHANNEL, error)


def line_state(engine: Engine | None = None) -> dict[str, Any] | None:
    """What the dashboard shows for the LAPOR! line."""
    return health.line_state(CHANNEL, engine)


def _claim(engine: Engine, now: datetime, lease_s: float, force: bool) -> dict[str, Any] | None:
    """Take the pull lease if a pull is due. The database decides between hub processes."""
    _ensure_state(engine)
    with Session(writer(engine), expire_on_commit=False) as s:
        q = select(ChannelState).where(ChannelState.channel == CHANNEL)
        if engine.dialect.name == "postgresql":
            q = q.with_for_update()
        st = s.scalars(q).one()
        cur = dict(st.cursor or {})
        lease = _parse(cur.get("lease_until"))
        due = _parse(cur.get("next_pull_at"))
        if (lease and lease > now) or (not force and due and due > now):
            s.rollback()
            return None
        cur["lease_until"] = _iso(now + timedelta(seconds=lease_s))
        st.cursor = cur
        s.add(st)
        s.commit()
        return cur


def _release(engine: Engine, cursor: dict[str, Any]) -> None:
    cursor = {k: v for k, v in cursor.items() if k != "lease_until"}
    with writer(engine).begin() as conn:
        conn.execute(update(STATE).where(STATE.c.channel == CHANNEL).values(cursor=cursor))


# --- the pull ------------------------------------------------------------------------------

@dataclass
class PullResult:
    pulled: int = 0
    new: int = 0
    duplicates: int = 0
    synced: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    pages: int = 0
    error: str | None = None
    skipped: bool = False  # not due, or another process holds the lease


def _process_new(engine: Engine) -> None:
    from hub.processing import process_pending

    while process_pending(engine, 500) == 500:
        pass


def _quiet_change(s: Session, t: Ticket, to: str, cfg: RegencyConfig, note: str) -> bool:
    """Follow a change LAPOR! made, without pushing it back to LAPOR!."""
    try:
        change_status(s, t, to, f"channel:{CHANNEL}", cfg, note=note, from_line=CHANNEL)
    except TicketError as exc:
        log.info("lapor.sync_skipped", ticket=t.code, to=to, reason=str(exc))
        return False
    return True


def _apply_sla(t: Ticket, rep: LaporReport, cfg: RegencyConfig, lcfg: dict[str, Any]) -> dict[str, Any]:
    """LAPOR!'s follow-up deadline is our due time (unless ours is sooner); note the verify SLA."""
    levels = lcfg["service_levels"]
    cal = WorkCalendar(cfg.sla)
    f = rep.message.fields
    disposed = _parse(f.get("lapor_dispositioned_at")) or _utc(t.created_at)
    reported = _parse(f.get("lapor_reported_at"))
    follow_due = cal.add_working_days(disposed, int(levels["follow_up_working_days"]))
    current = _utc(t.due_at)
    t.due_at = min(current, follow_due) if current else follow_due
    verify_due = cal.add_working_days(reported, int(levels["verify_working_days"])) if reported else None
    return {"follow_up_due": _iso(follow_due), "verify_due": _iso(verify_due) if verify_due else None,
            "verified_in_time": (disposed <= verify_due) if verify_due else None,
            "auto_close_working_days": int(levels["auto_close_working_days"])}


def _sync(engine: Engine, reports: list[LaporReport], cfg: RegencyConfig, lcfg: dict[str, Any]) -> int:
    """Apply SLA to new LAPOR! tickets and follow LAPOR!'s status changes on known ones."""
    tids = [r.tracking_id for r in reports]
    changed = 0
    with Session(writer(engine), expire_on_commit=False) as s:
        tickets = {t.channel_message_id: t for t in s.scalars(
            select(Ticket).where(Ticket.channel == CHANNEL, Ticket.channel_message_id.in_(tids)))}
        for rep in reports:
            t = tickets.get(rep.tracking_id)
            if t is None:  # still pending or linked as a repeat: the next pull looks again
                continue
            fields = dict(t.fields or {})
            first = "lapor_sla" not in fields
            if first:
                fields["lapor_sla"] = _apply_sla(t, rep, cfg, lcfg)
            seen_status = None if first else fields.get("lapor_status")
            from_reporter = [r for r in rep.responses if r.get("dari") == "pelapor"]
            seen_n = int(fields.get("lapor_reporter_responses", 0))
            for r in from_reporter[seen_n:]:
                add_event(s, t, f"channel:{CHANNEL}", "note",
                          note=f"Tanggapan pelapor di LAPOR!: {str(r.get('isi') or '').strip()}",
                          data={"lapor_time": r.get("waktu")})
            fields["lapor_reporter_responses"] = len(from_reporter)
            if rep.status_text != seen_status:
                fields["lapor_status"] = rep.status_text
                if not first:
                    add_event(s, t, f"channel:{CHANNEL}", "note", note=f"Status LAPOR!: {rep.status_text}",
                              data={"lapor_status": rep.status_text})
                if rep.status in ("selesai", "ditolak") and t.status in OPEN_STATUSES:
                    _quiet_change(s, t, rep.status, cfg, f"Status LAPOR!: {rep.status_text}")
                elif rep.status_text.lower().startswith("ditanggapi oleh pelapor") and t.status == "selesai":
                    _quiet_change(s, t, "menunggu", cfg, "Pelapor menanggapi tindak lanjut di LAPOR!")
                changed += 0 if first else 1
            if fields != t.fields:
                t.fields = fields
                s.add(t)
        s.commit()
    return changed


async def pull_once(engine: Engine | None = None, settings: Settings | None = None,
                    adapter: LaporAdapter | None = None, force: bool = False) -> PullResult:
    """One pull run: all pages changed since the cursor, stored, processed and synced."""
    engine = engine or get_engine()
    settings = settings or get_settings()
    adapter = adapter or make_adapter(settings)
    cfg = regency_config(str(settings.config_dir))
    lcfg = lapor_config(settings.config_dir)
    pull = lcfg["pull"]
    now = datetime.now(timezone.utc)
    cursor = await asyncio.to_thread(_claim, engine, now, pull["lease_s"], force)
    if cursor is None:
        return PullResult(skipped=True)
    res = PullResult()
    since = _parse(cursor.get("since"))
    query_since = since - timedelta(seconds=pull["overlap_s"]) if since else None
    newest = since
    page, more = 1, True
    try:
        while more and res.pages < pull["max_pages_per_run"]:
            got = await adapter.fetch_page(query_since, page, int(pull["per_page"]))
            res.pages += 1
            for (tid, reason), item in zip(got.rejected, got.rejected_items or [None] * len(got.rejected)):
                await asyncio.to_thread(_keep_rejected, engine, settings, tid, reason, item)
                changed = updated_at_of(item)  # stored: the cursor may move past it
                if changed and (newest is None or changed > newest):
                    newest = changed
            res.rejected.extend(got.rejected)
            reports = list(got.reports)
            if reports:
                accepted = await asyncio.to_thread(accept_many, [r.message for r in reports], engine,
                                                   settings.dedup_window_s)
                res.pulled += len(reports)
                res.new += sum(not a.duplicate for a in accepted)
                res.duplicates += sum(a.duplicate for a in accepted)
                await asyncio.to_thread(_process_new, engine)
                res.synced += await asyncio.to_thread(_sync, engine, reports, cfg, lcfg)
                for r in reports:
                    if r.updated_at and (newest is None or r.updated_at > newest):
                        newest = r.updated_at
            more = got.next_page is not None
            page = got.next_page or page
    except Exception as exc:  # LAPOR! down, refusing the token, answering garbage; or our store
        await _pull_failed(engine, settings, cursor, now, since, newest, exc, res)
        return res
    except BaseException:
        await asyncio.to_thread(_release, engine, cursor)
        raise
    interval = 0 if more else settings.lapor_pull_interval_s  # pages left: go on at the next tick
    cursor.pop("auth_failed", None)
    cursor.update(pull_failures=0, next_pull_at=_iso(now + timedelta(seconds=interval)),
                  last_pull={"at": _iso(now), "pulled": res.pulled, "new": res.new,
                             "synced": res.synced, "rejected": len(res.rejected)})
    if newest:
        cursor["since"] = _iso(newest)
    await asyncio.to_thread(_release, engine, cursor)
    extra = {"last_message_at": now} if res.new else {}
    await asyncio.to_thread(record_ok, engine, **extra)
    log.info("lapor.pulled", pages=res.pages, pulled=res.pulled, new=res.new, synced=res.synced,
             rejected=len(res.rejected))
    return res


def _keep_rejected(engine: Engine, settings: Settings, tid: str, reason: str, item: Any) -> None:
    """A report parse_report refused is stored before anything else: a ticket for triage when its
    tracking id and text can be read by hand, else a dead intake row an admin sees (hub.unreadable),
    once per version of the report."""
    problem = f"LAPOR! report {tid}: {reason}"
    log.warning("lapor.report_rejected", tracking_id=tid, reason=reason[:200])
    msg = salvage_report(item, reason)
    if msg is None:
        store_unreadable(CHANNEL, item, problem, engine=engine, dedup_window_s=settings.dedup_window_s)
        return
    accept_many([mark_for_triage(msg, problem)], engine, settings.dedup_window_s)
    _process_new(engine)


async def _pull_failed(engine: Engine, settings: Settings, cursor: dict[str, Any], now: datetime,
                       since: datetime | None, newest: datetime | None, exc: Exception, res: PullResult) -> None:
    """Back off, keep what was stored (the cursor moves past it), and record the failure in the
    line's health row: /readyz, /metrics and the admin page show the line degraded, then stopped
    (at once when LAPOR! refuses the token)."""
    pull = lapor_config(settings.config_dir)["pull"]
    auth = isinstance(exc, LaporAuthError)
    text = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, UnreadableResponse):  # raw first: what LAPOR! sent is kept for an admin
        try:
            await asyncio.to_thread(store_unreadable, CHANNEL, exc.body, text, engine=engine,
                                    dedup_window_s=settings.dedup_window_s)
        except Exception:
            log.exception("lapor.unreadable_not_stored")
    elif not isinstance(exc, DeliveryError):
        log.exception("lapor.pull_crashed")
    failures = int(cursor.get("pull_failures", 0)) + 1
    delay = backoff_delay(failures, pull["backoff_base_s"], pull["backoff_cap_s"])
    res.error = text
    cursor.update(pull_failures=failures, next_pull_at=_iso(now + timedelta(seconds=delay)))
    if auth:
        cursor["auth_failed"] = True
    else:
        cursor.pop("auth_failed", None)
    if newest and newest != since:  # pages already stored stay stored; go on from there
        cursor["since"] = _iso(newest)
    try:
        await asyncio.to_thread(_release, engine, cursor)
        await asyncio.to_thread(record_failure, engine, f"pull: {text}")
    except Exception:  # the store itself is down: the lease runs out, the next tick tries again
        log.warning("lapor.health_write_failed")
    log.warning("lapor.pull_failed", error=text[:300], failures=failures, retry_in_s=round(delay, 1),
                auth=auth)


def health_check(settings: Settings) -> readiness.Check:
    """Stopped when LAPOR! refuses the token (until the configuration is fixed), after
    FAILURES_STOPPED failed pulls in a row, or when no pull succeeded for a while; degraded
    while fewer failed pulls are being retried. Recovers with the next good pull."""
    stale = readiness.stale_check(CHANNEL, settings.lapor_pull_interval_s * 3 + 600)

    def check() -> readiness.Status:
        st = line_state() or {}
        cur = st.get("cursor") or {}
        err = (st.get("last_error") or "")[:200]
        n = int(cur.get("pull_failures") or 0)
        if cur.get("auth_failed"):
            return readiness.Status(readiness.STOPPED, f"LAPOR! refuses the token; fix SIMPUL_LAPOR_TOKEN: {err}",
                                    f"LAPOR! menolak token (401/403); perbaiki SIMPUL_LAPOR_TOKEN lalu mulai "
                                    f"ulang hub. {err}")
        if n >= readiness.FAILURES_STOPPED:
            return readiness.Status(readiness.STOPPED, f"{n} pulls failed in a row: {err}",
                                    f"{n}× tarik laporan gagal berturut-turut: {err}")
        if n:
            return readiness.Status(readiness.DEGRADED, f"{n} pull(s) failed in a row, retrying: {err}",
                                    f"{n}× tarik laporan gagal, dicoba lagi: {err}")
        return stale()

    return check


def _due_now_after_auth_failure(engine: Engine) -> None:
    """A restart is how a token gets fixed: after a refused token, pull at once, not after the back-off."""
    st = line_state(engine)
    if st and st["cursor"].get("auth_failed"):
        cur = {k: v for k, v in st["cursor"].items() if k != "next_pull_at"}
        with writer(engine).begin() as conn:
            conn.execute(update(STATE).where(STATE.c.channel == CHANNEL).values(cursor=cur))


async def on_startup(app: Any, settings: Settings) -> None:
    if not (settings.lapor_base_url and settings.lapor_token):
        return
    readiness.register(CHANNEL, health_check(settings))
    try:
        await asyncio.to_thread(_due_now_after_auth_failure, get_engine())
    except Exception:  # the store is down: the pull job finds out soon enough
        log.warning("lapor.startup_state_unreadable")


async def on_shutdown(app: Any, settings: Settings) -> None:
    readiness.unregister(CHANNEL)


async def pull_job() -> None:
    settings = get_settings()
    if not (settings.lapor_base_url and settings.lapor_token):
        return
    await pull_once(settings=settings)


# --- the push ------------------------------------------------------------------------------

async def push_sender(row: Outbox) -> dict[str, Any] | None:
    """Outbox sender for kind lapor_push: our status change and the OPD's reply, to LAPOR!."""
    p = row.payload
    engine = get_engine()
    try:
        res = await make_adapter().push(str(p["tracking_id"]), p["status"], p.get("text") or "",
                                        p.get("note"), p.get("ticket_code"))
    except RetryableError as exc:  # LAPOR! unreachable: the outbox retries; the dashboard shows it
        await asyncio.to_thread(record_failure, engine, f"push: {exc}")
        raise
    await asyncio.to_thread(record_ok, engine)
    return {"provider_id": res.provider_id, **res.detail}


async def reply_sender(message: OutboundMessage) -> SendResult:
    return await make_adapter().send(message)


def line(settings: Settings) -> Line:
    """The pull job (it decides itself when a pull is due), the push of our status changes,
    and replies to reporters through LAPOR!."""
    return Line(CHANNEL, reply_senders={CHANNEL: reply_sender},
                outbox_senders={"lapor_push": OutboxSender(push_sender)},
                periodic=[Periodic("lapor_pull", float(min(settings.lapor_pull_interval_s, 15)), pull_job)],
                startup=[on_startup], shutdown=[on_shutdown])
