"""Citizen commands shared by the lines: `CEK <code>` (SMS/WhatsApp), `/status <code>` (Telegram).

A status is told only to the phone or chat that reported the ticket; to anyone else the code
looks unknown, so codes cannot be used to read other people's reports.
"""
from __future__ import annotations

import re

import phonenumbers
from sqlmodel import Session

from hub.config import RegencyConfig
from hub.replies import status_answer
from hub.tickets import resolve_code

CEK_RE = re.compile(r"^\s*(?:CEK|STATUS|/status(?:@\w+)?)\s*[#*,:\s]\s*([A-Za-z0-9 -]{4,14})\s*$", re.I)


def parse_status_query(text: str) -> str | None:
    """The code from 'CEK K7X2M9P' / '/status K7X2M9P', or None if the text is not such a query."""
    m = CEK_RE.match(text or "")
    if not m:
        return None
    code = re.sub(r"[\s-]", "", m.group(1)).upper()
    return code if 5 <= len(code) <= 10 else None


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
    if ticket is not None:
        if channel == "telegram":
            mine = ticket.reporter_chat_id is not None and ticket.reporter_chat_id == str(sender)
        else:
            mine = ticket.reporter_phone is not None and ticket.reporter_phone == e164(sender)
        if mine:
            return status_answer(session, ticket, cfg)
    return cfg.template("unknown_code", code=code)
