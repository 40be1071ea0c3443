"""Citizen commands shared by the lines: `CEK <code>` (SMS/WhatsApp), `/status <code>` (Telegram),
and the answer to a finished ticket: `BERES <code> [1-5]` / `BELUM <code>` (`/beres`, `/belum`).

A status is told only to the phone or chat that reported the ticket; to anyone else the code
looks unknown, so codes cannot be used to read other people's reports.
"""
from __future__ import annotations

import re

import phonenumbers
from sqlmodel import Session

from hub.config import RegencyConfig
from hub.replies import opd_name, status_answer
from hub.tickets import resolve_code

CEK_RE = re.compile(r"^\s*(?:CEK|STATUS|/status(?:@\w+)?)\s*[#*,:\s]\s*([A-Za-z0-9 -]{4,14})\s*$", re.I)


def parse_status_query(text: str) -> str | None:
    """The code from 'CEK K7X2M9P' / '/status K7X2M9P', or None if the text is not such a query."""
    m = CEK_RE.match(text or "")
    if not m:
        return None
    code = re.sub(r"[\s-]", "", m.group(1)).upper()
    return code if 5 <= len(code) <= 10 else None


FEEDBACK_RE = re.compile(r"^\s*(SUDAH\s+BERES|BELUM\s+BERES|BERES|BELUM|/beres(?:@\w+)?|/belum(?:@\w+)?)"
                         r"\s*[#*,:\s]\s*([A-Za-z0-9]{5,10})(?:\s*[#*,:\s]\s*([1-5]))?\s*$", re.I)


def parse_feedback(text: str) -> tuple[str, str, int | None] | None:
    """("beres"|"belum", code, rating) from 'BERES K7X2M9P 5' / 'BELUM K7X2M9P' / '/beres K7X2M9P',
    or None if the text is not such an answer."""
    m = FEEDBACK_RE.match(text or "")
    if not m:
        return None
    word = m.group(1).lower().lstrip("/").split("@")[0]
    answer = "belum" if word.startswith("belum") else "beres"
    return answer, m.group(2).upper(), int(m.group(3)) if m.group(3) else None


def parse_citizen_command(text: str) -> tuple[str, str, int | None] | None:
    """("cek", code, None) or a feedback answer (parse_feedback), or None: a report."""
    fb = parse_feedback(text)
    if fb is not None:
        return fb
    code = parse_status_query(text)
    return ("cek", code, None) if code else None


def _is_reporter(ticket, channel: str, sender: str) -> bool:
    if channel == "telegram":
        return ticket.reporter_chat_id is not None and ticket.reporter_chat_id == str(sender)
    return ticket.reporter_phone is not None and ticket.reporter_phone == e164(sender)


def answer_feedback(session: Session, cfg: RegencyConfig, channel: str, sender: str, code: str,
                    answer: str, rating: int | None = None) -> str:
    """Record the reporter's answer (the same rule as /cek: hub.tickets.citizen_feedback); the
    caller commits. Only the phone or chat that reported may answer; to others the code is unknown."""
    from hub.tickets import TicketError, citizen_feedback

    ticket = resolve_code(session, code)
    if ticket is None or not _is_reporter(ticket, channel, sender):
        return cfg.template("unknown_code", code=code)
    try:
        citizen_feedback(session, ticket, answer, cfg, "sms" if channel != "telegram" else "telegram",
                         rating=rating)
    except TicketError as exc:
        return exc.for_people()
    if answer == "belum":
        return (f"Terima kasih. Laporan {ticket.code} dibuka kembali dan diteruskan lagi ke "
                f"{opd_name(session, ticket.opd_code)}.")
    return f"Terima kasih, jawaban Anda untuk laporan {ticket.code} tercatat."


def answer_citizen_command(session: Session, cfg: RegencyConfig, channel: str, sender: str,
                           cmd: tuple[str, str, int | None]) -> str:
    kind, code, rating = cmd
    if kind == "cek":
        return answer_status_query(session, cfg, channel, sender, code)
    return answer_feedback(session, cfg, channel, sender, code, kind, rating)


def e164(phone: str | None) -> str | None:
    if not phone:
        return None
    raw = phone.split(":", 1)[1] if phone.startswith("whatsapp:") else phone
    try:
        num = phonenumbers.parse(raw, "ID")
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def answer_status_query(session: Session, cfg: RegencyConfig, channel: str, sender: str, code: str) -> str:
    ticket = resolve_code(session, code)
    if ticket is not None and _is_reporter(ticket, channel, sender):
        return status_answer(session, ticket, cfg)
    return cfg.template("unknown_code", code=code)
