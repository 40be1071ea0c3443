"""WhatsApp templates for replies outside the 24-hour window (issue #13, item 8): what the
regency's operator needs to create them in the regency's own Twilio account, and the hub
saying when they are missing or not approved.

- `create`: one Content API template per reply kind (KINDS: the texts in Bahasa Indonesia,
  {{1}}-style variables matching the values hub/whatsapp.py sends), each submitted to WhatsApp
  for approval (category UTILITY), their ContentSids written into the regency's
  whatsapp_templates.yaml (its comments kept).
- `refresh`: WhatsApp's verdict per template (GET …/ApprovalRequests), kept in the
  channel_state row `whatsapp_templates` (cursor {kind: {sid, status, rejection_reason}}), so
  every hub process can tell; the job `whatsapp_templates` refreshes it hourly.
- `check`: the readiness check of the WhatsApp line: *degraded* (never stopped: replies inside
  the window still go) while a kind has no template or one is not approved.
"""
from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hub import readiness, whatsapp
from hub.db import get_engine
from hub.lines import health
from hub.logging import get_logger
from hub.settings import Settings, get_settings

log = get_logger(__name__)
STATE_ROW = "whatsapp_templates"
CHECK = "whatsapp"
CATEGORY = "UTILITY"
LANGUAGE = "id"
# reply kind -> (body, {variable: value name}); value names are those hub/whatsapp.py fills in:
# code, opd_name, note ("-" without one), merged_into, text (the whole reply as sent in the window)
KINDS: dict[str, tuple[str, dict[str, str]]] = {
    "receipt": ("Laporan Anda diterima dengan kode {{1}} dan diteruskan ke {{2}}. Cek status dengan "
                "membalas CEK diikuti kode laporan.", {"1": "code", "2": "opd_name"}),
    "status_diproses": ("Laporan {{1}} sedang diproses oleh {{2}}. Keterangan: {{3}}. Terima kasih.",
                        {"1": "code", "2": "opd_name", "3": "note"}),
    "status_selesai": ("Laporan {{1}} telah selesai ditangani oleh {{2}}. Keterangan: {{3}}. Terima kasih.",
                       {"1": "code", "2": "opd_name", "3": "note"}),
    "status_ditolak": ("Laporan {{1}} tidak dapat ditindaklanjuti oleh {{2}}. Keterangan: {{3}}. Terima kasih.",
                       {"1": "code", "2": "opd_name", "3": "note"}),
    "status_menunggu": ("Laporan {{1}} menunggu tindak lanjut dari {{2}}. Kami akan mengabari Anda lagi.",
                        {"1": "code", "2": "opd_name"}),
    "status_digabung": ("Laporan {{1}} digabung dengan laporan {{2}} tentang kejadian yang sama. Terima kasih.",
                        {"1": "code", "2": "merged_into"}),
    "status_dialihkan": ("Laporan {{1}} sedang ditinjau ulang oleh {{2}} untuk diteruskan ke instansi yang "
                         "berwenang. Terima kasih.", {"1": "code", "2": "opd_name"}),
    "default": ("Kabar terbaru untuk laporan {{1}}: {{2}} Terima kasih.", {"1": "code", "2": "text"}),
}
# sample values WhatsApp's reviewers see (the Content API's `variables`)
SAMPLES = {"code": "K7X2M9P", "opd_name": "Dinas Pekerjaan Umum dan Penataan Ruang",
           "note": "Tim menuju lokasi besok pagi", "merged_into": "K7X2M9Q",
           "text": "Laporan K7X2M9P sedang diproses oleh Dinas Pekerjaan Umum dan Penataan Ruang."}
_NAME = re.compile(r"[^a-z0-9_]")


def template_name(regency: str, kind: str) -> str:
    """friendly_name and WhatsApp template name: lowercase letters, digits and underscores."""
    return _NAME.sub("_", f"simpul_{regency}_{kind}".lower())


def config_path(config_dir: str | Path) -> Path:
    return Path(config_dir) / whatsapp.FILE


def _flow(variables: dict[str, str]) -> str:
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in sorted(variables.items(), key=lambda kv: int(kv[0])
                                                                       if kv[0].isdigit() else 0)) + "}"


def write_templates(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    """Set `templates:` of whatsapp_templates.yaml to `entries`, keeping every comment and the
    other keys of the file as they were."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else ["window_hours: 24"]
    start = next((i for i, line in enumerate(lines) if re.match(r"^templates\s*:", line)), None)
    if start is None:
        lines.append("templates: {}")
        start = len(lines) - 1
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][:1] in (" ", "\t", "#")):
        end += 1
    kept = [line for line in lines[start + 1:end] if line.lstrip().startswith("#") or not line.strip()]
    if entries:
        block = ["templates:"] + [f"  {kind}: {{content_sid: {t['content_sid']}, variables: {_flow(t['variables'])}}}"
                                  for kind, t in entries.items()]
    else:
        block = ["templates: {}"]
    text = "\n".join(lines[:start] + block + kept + lines[end:]) + "\n"
    tmp = path.with_suffix(".yaml.part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    whatsapp.templates.cache_clear()


def create(config_dir: str | Path, adapter, regency: str, kinds: list[str] | None = None,
           on_created=None) -> dict[str, dict[str, Any]]:
    """Create (and submit for approval) the templates of `kinds` (default: every kind without
    one). Each ContentSid is written into the file as soon as it exists, so a failure half-way
    loses nothing already created. Returns {kind: {content_sid, variables, approval}}."""
    path = config_path(config_dir)
    current = dict(whatsapp.templates(str(config_dir))["templates"])
    todo = [k for k in (kinds or KINDS) if kinds or k not in current]
    for k in todo:
        if k not in KINDS:
            raise ValueError(f"unknown reply kind {k!r}; known: {', '.join(KINDS)}")
    made: dict[str, dict[str, Any]] = {}
    for kind in todo:
        body, variables = KINDS[kind]
        name = template_name(regency, kind)
        sid = adapter.create_text_template(name, LANGUAGE, body, {k: SAMPLES[v] for k, v in variables.items()})
        current[kind] = {"content_sid": sid, "variables": dict(variables)}
        write_templates(path, current)
        status = adapter.request_whatsapp_approval(sid, name, CATEGORY)
        made[kind] = {**current[kind], "approval": status}
        log.info("whatsapp.template_created", kind=kind, content_sid=sid, approval=status)
        if on_created:
            on_created(kind, sid, status)
    return made


def refresh(config_dir: str | Path, adapter, engine=None) -> dict[str, dict[str, Any]]:
    """WhatsApp's verdict on every configured template, stored for the readiness check."""
    got: dict[str, dict[str, Any]] = {}
    for kind, t in whatsapp.templates(str(config_dir))["templates"].items():
        verdict = adapter.whatsapp_approval(t["content_sid"])
        got[kind] = {"sid": t["content_sid"], "status": verdict["status"],
                     "rejection_reason": verdict.get("rejection_reason")}
    try:
        health.record_ok(engine or get_engine(), STATE_ROW,
                         cursor={"checked_at": datetime.now(timezone.utc).isoformat(), "templates": got})
    except Exception as exc:  # the verdicts are still shown; the hub's hourly job stores them later
        log.warning("whatsapp.templates_state_not_stored", error=type(exc).__name__)
    return got


def problems(config_dir: str | Path, engine=None) -> tuple[list[str], list[str]]:
    """(kinds without a template, kinds whose template is not approved or not checked yet)."""
    configured = whatsapp.templates(str(config_dir))["templates"]
    missing = [k for k in KINDS if k not in configured]
    st = health.line_state(STATE_ROW, engine or get_engine()) or {}
    seen = (st.get("cursor") or {}).get("templates") or {}
    unapproved = [k for k, t in configured.items()
                  if (seen.get(k) or {}).get("sid") != t["content_sid"] or seen[k].get("status") != "approved"]
    return missing, unapproved


def check(settings: Settings) -> readiness.Check:
    def run() -> readiness.Status:
        missing, unapproved = problems(settings.config_dir)
        if not (missing or unapproved):
            return readiness.Status(readiness.RUNNING, "ok")
        en, idn = [], []
        if missing:
            en.append(f"no template for {', '.join(missing)}")
            idn.append(f"belum ada template untuk {', '.join(missing)}")
        if unapproved:
            en.append(f"not approved (or not checked yet): {', '.join(unapproved)}")
            idn.append(f"belum disetujui WhatsApp (atau belum dicek): {', '.join(unapproved)}")
        return readiness.Status(
            readiness.DEGRADED,
            "WhatsApp templates: " + "; ".join(en) + ". Replies more than 24 h after the citizen's last "
            "message will fail (63016); run `simpul whatsapp templates create` / `status`.",
            "Template WhatsApp: " + "; ".join(idn) + ". Balasan lebih dari 24 jam setelah pesan terakhir "
            "warga akan gagal terkirim. Jalankan `simpul whatsapp templates create` lalu `status` "
            "(docs/sms.md).")

    return run


def enabled(settings: Settings) -> bool:
    return bool(settings.twilio_whatsapp_from and settings.twilio_account_sid and settings.twilio_auth_token)


async def on_startup(app: Any, settings: Settings) -> None:
    if not enabled(settings):
        return
    readiness.register(CHECK, check(settings))
    try:
        missing, unapproved = await asyncio.to_thread(problems, settings.config_dir)
    except Exception as exc:  # a broken file stops start-up elsewhere; the store may be down
        log.warning("whatsapp.templates_unchecked", error=type(exc).__name__)
        return
    if missing or unapproved:  # one warning at start-up; the admin page and /readyz keep saying it
        log.warning("whatsapp.templates_incomplete", missing=missing, not_approved=unapproved,
                    hint="simpul whatsapp templates create / status (docs/sms.md)")


async def on_shutdown(app: Any, settings: Settings) -> None:
    readiness.unregister(CHECK)


async def refresh_job() -> None:
    settings = get_settings()
    if not enabled(settings) or not whatsapp.templates(str(settings.config_dir))["templates"]:
        return
    from hub.lines.twilio import adapter_for

    try:
        await asyncio.to_thread(refresh, settings.config_dir, adapter_for(settings))
    except Exception as exc:  # Twilio unreachable: the last verdict stays; the next run tries again
        log.warning("whatsapp.templates_refresh_failed", error=str(exc)[:200])
