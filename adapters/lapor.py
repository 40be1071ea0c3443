"""SP4N-LAPOR! integration: pull the reports dispositioned to the regency, push follow-ups back.

The whole HTTP shape (endpoints, auth header, field names, status texts) is in the tables at
the top of this file, because LAPOR!'s integration API is documented only to registered
developer accounts (see docs/lapor.md). Never imports hub; never lets a reporter's identity
out of an anonymous or confidential ("rahasia") report.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from adapters.base import (InvalidPayload, OutboundMessage, PermanentError, RetryableError, SendResult, http_call,
                           http_error)
from normalizer.types import Attachment, InboundMessage

# --- The assumed HTTP shape: change it here, and only here, once checked against LAPOR!'s docs ---

ENDPOINTS = {
    # GET: reports dispositioned to the instansi the token belongs to, oldest change first.
    "list_reports": "/api/v1/instansi/laporan",
    # POST: a follow-up (tindak lanjut) from the instansi, optionally with a closing flag.
    "follow_up": "/api/v1/instansi/laporan/{tracking_id}/tindak-lanjut",
    # POST: an admin action of the instansi (Verifikasi, Tunda, Bukan Wewenang, Arsipkan).
    "admin_action": "/api/v1/instansi/laporan/{tracking_id}/aksi",
}
AUTH_HEADER = "Authorization"
AUTH_VALUE = "Bearer {token}"
QUERY = {"since": "diperbarui_sejak", "page": "halaman", "per_page": "per_halaman"}
PAGE = {"items": "data", "next_page": "halaman_berikutnya"}

# Our name -> LAPOR!'s field name in one report object.
FIELDS = {
    "tracking_id": "tracking_id",
    "title": "judul",
    "body": "isi",
    "report_type": "jenis",  # aspirasi | pengaduan | permintaan_informasi
    "category": "kategori",
    "anonymous": "anonim",
    "confidential": "rahasia",
    "reporter": "pelapor",  # {"nama", "telepon"}; absent/null for anonymous reports
    "reporter_name": "nama",
    "reporter_phone": "telepon",
    "location": "lokasi",
    "instansi": "instansi_tujuan",
    "status": "status",
    "reported_at": "tanggal_lapor",
    "dispositioned_at": "tanggal_disposisi",
    "updated_at": "diperbarui",
    "attachments": "lampiran",
    "responses": "tanggapan",  # [{"dari": "pelapor"|"instansi"|"admin", "isi", "waktu"}]
}
REPORT_TYPES = {"aspirasi": "aspirasi", "pengaduan": "pengaduan",
                "permintaan_informasi": "permintaan informasi", "permintaan informasi": "permintaan informasi"}

# LAPOR!'s public status texts -> our lifecycle status (None: not ours to act on yet).
# First matching pattern wins; the named group "instansi" is kept as the disposition target.
INBOUND_STATUS: tuple[tuple[str, str | None], ...] = (
    (r"^belum terverifikasi", None),
    (r"^terdisposisi ke (?P<instansi>.+)$", "menunggu"),
    (r"^ditunda", "menunggu"),
    (r"^ditindaklanjuti oleh instansi", "diproses"),
    (r"^ditanggapi oleh pelapor", "diproses"),
    (r"^selesai otomatis dalam 10 hari", "selesai"),
    (r"^selesai", "selesai"),
    (r"^bukan wewenang", "ditolak"),
    (r"^diarsipkan", "ditolak"),
)

# Our status change -> what we send to LAPOR!: ("follow_up", closing?) or ("admin_action", action).
OUTBOUND_STATUS: dict[str, tuple[str, Any]] = {
    "diproses": ("follow_up", False),
    "selesai": ("follow_up", True),  # LAPOR! closes it after 10 working days without a reply
    "menunggu": ("follow_up", False),  # re-opened by staff: tell the reporter we are on it again
    "digabung": ("follow_up", False),
    "ditolak": ("admin_action", "bukan_wewenang"),
}
ADMIN_ACTIONS = {"verifikasi": "Verifikasi", "tunda": "Tunda", "bukan_wewenang": "Bukan Wewenang",
                 "arsipkan": "Arsipkan"}
_TRUE = {"1", "true", "ya", "yes", "y"}


def map_status(text: str | None) -> tuple[str | None, str | None]:
    """LAPOR! status text -> (our status, disposition instansi named in the text)."""
    t = " ".join((text or "").split()).lower()
    for pattern, ours in INBOUND_STATUS:
        m = re.match(pattern, t)
        if m:
            inst = m.groupdict().get("instansi")
            if inst:  # keep the instansi as LAPOR! wrote it
                inst = " ".join((text or "").split())[m.start("instansi"):].strip()
            return ours, inst
    return None, None


def _flag(v: Any) -> bool:
    return v is True or str(v).strip().lower() in _TRUE


def _when(v: Any, what: str) -> datetime | None:
    if v in (None, ""):
        return None
    try:
        d = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidPayload(f"{what}: not an ISO 8601 time: {v!r}") from None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class LaporReport:
    """One report as pulled: the message for the hub plus what the sync needs."""

    tracking_id: str
    status_text: str
    status: str | None  # ours, from INBOUND_STATUS
    updated_at: datetime | None
    message: InboundMessage
    responses: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Page:
    reports: tuple[LaporReport, ...]
    next_page: int | None
    rejected: tuple[tuple[str, str], ...] = ()  # (tracking id or "?", reason)
    rejected_items: tuple[Any, ...] = ()  # the rejected report objects as LAPOR! sent them


def parse_report(item: dict[str, Any]) -> LaporReport:
    """One LAPOR! report object -> LaporReport. Raises InvalidPayload when it cannot be keyed."""
    if not isinstance(item, dict):
        raise InvalidPayload("report is not an object")
    tid = item.get(FIELDS["tracking_id"])
    if tid in (None, "") or not str(tid).strip().isdigit():
        raise InvalidPayload(f"report without a numeric tracking id: {tid!r}")
    tid = str(tid).strip()
    title = str(item.get(FIELDS["title"]) or "").strip()
    body = str(item.get(FIELDS["body"]) or "").strip()
    text = "\n\n".join(p for p in (title, body) if p)
    if not text:
        raise InvalidPayload(f"report {tid} has neither title nor text")
    kind = str(item.get(FIELDS["report_type"]) or "pengaduan").strip().lower()
    report_type = REPORT_TYPES.get(kind)
    if report_type is None:
        raise InvalidPayload(f"report {tid}: unknown report type {kind!r}")
    anonymous = _flag(item.get(FIELDS["anonymous"]))
    confidential = _flag(item.get(FIELDS["confidential"]))
    status_text = " ".join(str(item.get(FIELDS["status"]) or "").split())
    status, instansi = map_status(status_text)
    dispositioned = _when(item.get(FIELDS["dispositioned_at"]), "dispositioned_at")
    reported = _when(item.get(FIELDS["reported_at"]), "reported_at")
    updated = _when(item.get(FIELDS["updated_at"]), "updated_at")
    name = None
    if not (anonymous or confidential):  # identity never enters the hub for these reports
        who = item.get(FIELDS["reporter"]) or {}
        if isinstance(who, dict):
            name = (str(who.get(FIELDS["reporter_name"]) or "").strip() or None)
    fields: dict[str, Any] = {
        "tracking_id": tid,
        "report_type": report_type,
        "category": item.get(FIELDS["category"]),
        "anonymous": anonymous,
        "rahasia": confidential,
        "disposition": instansi or item.get(FIELDS["instansi"]),
        "lapor_status": status_text,
        "lapor_reported_at": reported.isoformat() if reported else None,
        "lapor_dispositioned_at": dispositioned.isoformat() if dispositioned else None,
    }
    if item.get(FIELDS["location"]):
        fields["lokasi"] = str(item[FIELDS["location"]]).strip()
    if not (anonymous or confidential):
        who = item.get(FIELDS["reporter"]) or {}
        if isinstance(who, dict) and who.get(FIELDS["reporter_phone"]):
            fields["phone"] = str(who[FIELDS["reporter_phone"]]).strip()
    attachments = tuple(Attachment(url=str(u), kind="file") for u in (item.get(FIELDS["attachments"]) or [])
                        if isinstance(u, str) and u.startswith(("http://", "https://")))
    raw = dict(item)
    if anonymous or confidential:
        raw.pop(FIELDS["reporter"], None)
    responses = tuple(r for r in (item.get(FIELDS["responses"]) or []) if isinstance(r, dict))
    msg = InboundMessage(channel="lapor", text=text, sender=tid, provider_id=tid,
                         received_at=dispositioned or reported or updated, sender_name=name,
                         attachments=attachments, fields=fields, raw=raw)
    return LaporReport(tracking_id=tid, status_text=status_text, status=status, updated_at=updated,
                       message=msg, responses=responses)


def updated_at_of(item: Any) -> datetime | None:
    """The report's own change time when it can be read (never raises): the pull's cursor moves
    past a report it could not parse as well as past one it could."""
    try:
        return _when(item.get(FIELDS["updated_at"]), "updated_at") if isinstance(item, dict) else None
    except InvalidPayload:
        return None


def salvage_report(item: Any, reason: str) -> InboundMessage | None:
    """A report parse_report refused, read by hand: its tracking id and its text, so it becomes a
    ticket for triage (the hub marks it). None when even that cannot be read (no numeric
    tracking id, no text): then it is kept as a dead intake row. The reporter's identity is kept
    only when the report says plainly that it is neither anonymous nor confidential."""
    if not isinstance(item, dict):
        return None
    tid = str(item.get(FIELDS["tracking_id"]) or "").strip()
    if not tid.isdigit():
        return None
    parts = [item.get(FIELDS["title"]), item.get(FIELDS["body"])]
    text = "\n\n".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    if not text:
        return None
    hidden = not (item.get(FIELDS["anonymous"]) in (False, None, 0, "0", "false")
                  and item.get(FIELDS["confidential"]) in (False, None, 0, "0", "false"))
    raw = dict(item)
    fields: dict[str, Any] = {"tracking_id": tid, "anonymous": hidden, "rahasia": False,
                              "lapor_status": " ".join(str(item.get(FIELDS["status"]) or "").split())}
    name = None
    if hidden:
        raw.pop(FIELDS["reporter"], None)
    else:
        who = item.get(FIELDS["reporter"])
        if isinstance(who, dict):
            name = str(who.get(FIELDS["reporter_name"]) or "").strip() or None
            if who.get(FIELDS["reporter_phone"]):
                fields["phone"] = str(who[FIELDS["reporter_phone"]]).strip()
    if isinstance(item.get(FIELDS["location"]), str) and item[FIELDS["location"]].strip():
        fields["lokasi"] = item[FIELDS["location"]].strip()
    return InboundMessage(channel="lapor", text=text, sender=tid, provider_id=tid, received_at=None,
                          sender_name=name, fields=fields, raw=raw)


class LaporAuthError(PermanentError):
    """LAPOR! refused the token (401/403): nothing pulls until the configuration is fixed."""


class UnreadableResponse(RetryableError):
    """LAPOR! answered 2xx with a body we cannot read as a page; `body` is what it sent."""

    def __init__(self, message: str, body: str):
        super().__init__(message)
        self.body = body


def _raise_for(resp: httpx.Response, what: str) -> None:
    if resp.status_code < 300:
        return
    detail = resp.text[:200].replace("\n", " ")
    message = f"LAPOR! {what}: HTTP {resp.status_code} {detail}"
    if resp.status_code in (401, 403):
        raise LaporAuthError(message)
    raise http_error(resp.status_code, message, resp.headers.get("retry-after"))


@dataclass
class LaporAdapter:
    """Client of the LAPOR! integration API, pointed at a configurable base URL."""

    base_url: str
    token: str
    timeout_s: float = 15.0
    name: str = field(default="lapor", init=False)

    def _client(self) -> httpx.AsyncClient:
        if not self.base_url or not self.token:
            raise PermanentError("LAPOR! is not configured: set SIMPUL_LAPOR_BASE_URL and SIMPUL_LAPOR_TOKEN")
        return httpx.AsyncClient(base_url=self.base_url.rstrip("/"), timeout=self.timeout_s,
                                 headers={AUTH_HEADER: AUTH_VALUE.format(token=self.token),
                                          "Accept": "application/json"})

    async def _request(self, method: str, path: str, what: str, **kw: Any) -> dict[str, Any]:
        with http_call(f"LAPOR! {what}"):
            async with self._client() as c:
                resp = await c.request(method, path, **kw)
        _raise_for(resp, what)
        try:
            data = resp.json() if resp.content else {}
        except ValueError:
            raise UnreadableResponse(f"LAPOR! {what}: response is not JSON", resp.text) from None
        if not isinstance(data, dict):
            raise UnreadableResponse(f"LAPOR! {what}: response is not a JSON object", resp.text)
        return data

    async def fetch_page(self, since: datetime | None, page: int = 1, per_page: int = 50) -> Page:
        """One page of dispositioned reports changed since `since` (inclusive)."""
        params: dict[str, Any] = {QUERY["page"]: page, QUERY["per_page"]: per_page}
        if since is not None:
            params[QUERY["since"]] = since.astimezone(timezone.utc).isoformat()
        data = await self._request("GET", ENDPOINTS["list_reports"], "pull", params=params)
        items = data.get(PAGE["items"])
        if not isinstance(items, list):
            raise UnreadableResponse(f"LAPOR! pull: response has no list {PAGE['items']!r}",
                                     json.dumps(data, ensure_ascii=False, default=str))
        reports, rejected, rejected_items = [], [], []
        for item in items:
            try:
                reports.append(parse_report(item))
            except Exception as exc:  # one odd report must not stall the whole pull
                tid = item.get(FIELDS["tracking_id"]) if isinstance(item, dict) else None
                reason = str(exc) if isinstance(exc, InvalidPayload) else f"{type(exc).__name__}: {exc}"
                rejected.append((str(tid or "?"), reason))
                rejected_items.append(item)
        nxt = data.get(PAGE["next_page"])
        if nxt not in (None, "", 0) and not str(nxt).strip().isdigit():
            raise UnreadableResponse(f"LAPOR! pull: next page is not a number: {str(nxt)[:40]!r}",
                                     json.dumps(data, ensure_ascii=False, default=str))
        return Page(tuple(reports), int(nxt) if nxt not in (None, "", 0) else None, tuple(rejected),
                    tuple(rejected_items))

    async def push(self, tracking_id: str, status: str, text: str, note: str | None = None,
                   reference: str | None = None) -> SendResult:
        """Send one of our status changes (with the OPD's reply) to LAPOR!."""
        if not str(tracking_id).isdigit():
            raise PermanentError("the destination is not a LAPOR! tracking id")  # not echoed: could be a phone
        how = OUTBOUND_STATUS.get(status)
        if how is None:
            raise PermanentError(f"no LAPOR! mapping for status {status!r}")
        message = (note or "").strip() or text
        if how[0] == "admin_action":
            return await self.admin_action(tracking_id, how[1], message)
        body = {"isi": message, "selesai": bool(how[1]), "referensi": reference, "status_internal": status}
        data = await self._request("POST", ENDPOINTS["follow_up"].format(tracking_id=tracking_id),
                                   "follow-up", json=body)
        return SendResult(provider_id=str(data.get("id") or "") or None, detail={"lapor_status": data.get("status")})

    async def admin_action(self, tracking_id: str, action: str, reason: str) -> SendResult:
        if action not in ADMIN_ACTIONS:
            raise PermanentError(f"unknown LAPOR! admin action {action!r}; known: {sorted(ADMIN_ACTIONS)}")
        data = await self._request("POST", ENDPOINTS["admin_action"].format(tracking_id=tracking_id),
                                   f"action {action}", json={"aksi": action, "alasan": reason})
        return SendResult(provider_id=str(data.get("id") or "") or None, detail={"lapor_status": data.get("status")})

    async def send(self, message: OutboundMessage) -> SendResult:
        """A plain reply (no status change) to the reporter of a LAPOR! report."""
        if not str(message.to).isdigit():
            raise PermanentError("the destination is not a LAPOR! tracking id")  # not echoed: could be a phone
        data = await self._request("POST", ENDPOINTS["follow_up"].format(tracking_id=message.to),
                                   "reply", json={"isi": message.text, "selesai": False,
                                                  "referensi": message.ticket_code})
        return SendResult(provider_id=str(data.get("id") or "") or None)
