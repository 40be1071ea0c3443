"""structlog set-up: JSON lines, a request id on every line, and masking of personal data.

Nothing that leaves this module may carry a full NIK, phone number, token or password.
"""
from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

# 16-digit NIK (possibly spaced), Indonesian phones in any written form, bearer/API tokens.
_NIK = re.compile(r"(?<!\d)(\d{4})[ .-]?(\d{4})[ .-]?(\d{4})[ .-]?(\d{2})(\d{2})(?!\d)")
_PHONE = re.compile(r"(?<![\w])(?:\+?62|0)[\s.-]?8\d(?:[\s.-]?\d){6,11}(?!\d)")
_INTL_PHONE = re.compile(r"\+\d{9,15}(?!\d)")
_TOKEN = re.compile(r"(?i)(?<![A-Za-z0-9])(sk_[a-z0-9]+_)[A-Za-z0-9_-]{8,}|(?<!\d)(\d{6,12}:)[A-Za-z0-9_-]{30,}"
                    r"|(bearer\s+)\S+")
SECRET_KEYS = {"password", "token", "secret", "authorization", "api_key", "apikey", "auth_token",
               "x-api-key", "cookie", "set-cookie", "x-twilio-signature",
               "x-telegram-bot-api-secret-token", "webhook-signature", "key"}
PERSONAL_KEYS = {"nik", "phone", "sender", "from", "to", "reporter_phone", "caller_phone", "msisdn"}


def mask_phone(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    if len(digits) < 6:
        return "***"
    return f"{value[:4]}***{digits[-3:]}" if value.startswith("+") else f"{digits[:4]}***{digits[-3:]}"


def mask_nik(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    if len(digits) != 16:
        return "****************"
    return digits[:4] + "*" * 10 + digits[-2:]


def _mask_token(m: re.Match) -> str:
    keep = m.group(1) or m.group(2) or m.group(3) or ""
    return keep + "***"


def mask_text(text: str) -> str:
    text = _TOKEN.sub(_mask_token, text)
    text = _NIK.sub(lambda m: m.group(1) + "*" * 10 + m.group(5), text)
    text = _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    text = _INTL_PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    return text


def _mask_value(key: str, value: Any) -> Any:
    lk = key.lower()
    if lk in SECRET_KEYS or lk.endswith(("_token", "_secret", "_password", "_key")):
        return "***" if value else value
    if isinstance(value, str):
        if lk in PERSONAL_KEYS:
            return mask_nik(value) if lk == "nik" else mask_phone(value)
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_value(key, v) for v in value]
    return value


def mask_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: _mask_value(k, v) for k, v in event_dict.items()}


def configure_logging(level: str = "INFO", json: bool | None = True) -> None:
    """`json=None`: JSON lines unless stderr is a terminal, where people read readable lines.
    Masking runs before either renderer."""
    if json is None:
        json = not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_processor,
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
