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


# "password=..." / "'token': '...'" written into an exception message or a URL query
_KEYED_SECRET = re.compile(r"""(?i)\b((?:password|passwd|sandi|secret|token|api_key|apikey|auth_token)['"]?\s*[=:]\s*['"]?)"""
                           r"""[^\s'",&;)}\]]+""")


def mask_text(text: str) -> str:
    text = _KEYED_SECRET.sub(lambda m: m.group(1) + "***", text)
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


# stdlib loggers that libraries configure for themselves (own handlers, no propagation):
# their records are sent to the one masking handler on the root logger instead.
STDLIB_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler", "apscheduler.scheduler",
                  "apscheduler.executors.default", "sqlalchemy", "alembic", "httpx", "httpcore", "asyncio",
                  "telegram", "twilio", "py.warnings")


def _drop_meta(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    event_dict.pop("_record", None)
    event_dict.pop("_from_structlog", None)
    return event_dict


class _CurrentStderr:
    """sys.stderr as it is when a line is written, not when logging was configured (a test
    runner swaps it per test and closes the old one)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _MaskingHandler(logging.StreamHandler):
    """The root handler: every stdlib record (uvicorn, APScheduler, asyncio, tracebacks)
    becomes one JSON line through the same masking processor as structlog's own lines.
    Writes to whatever sys.stderr is at the time (a test runner swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _route_stdlib(level: str, json: bool) -> None:
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)],
        processors=[_drop_meta, structlog.processors.format_exc_info, mask_processor, renderer])
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _MaskingHandler) or type(h) is logging.StreamHandler:
            root.removeHandler(h)
    handler = _MaskingHandler()
    handler.setFormatter(formatter)
    root.addHandler(handler)
    # libraries' own INFO chatter (httpx logs every request it sends) stays out, as before;
    # their warnings, errors and tracebacks come through, masked
    root.setLevel(max(logging.WARNING, getattr(logging, level.upper(), logging.INFO)))
    for name in STDLIB_LOGGERS:
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.propagate = True
    logging.captureWarnings(True)
    # "job skipped: maximum number of running instances reached" on every tick of a job that is
    # still running (max_instances=1 is the intent): a line every 0.2 s during a long batch
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)

    def excepthook(exc_type, exc, tb):  # an exception nobody caught, in the main thread
        logging.getLogger("hub.uncaught").error("uncaught exception", exc_info=(exc_type, exc, tb))

    def thread_excepthook(args):  # ... or in another thread
        if args.exc_type is SystemExit:
            return
        logging.getLogger("hub.uncaught").error(
            "uncaught exception in thread %s", getattr(args.thread, "name", "?"),
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    import threading

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook


# uvicorn.run(log_config=...): uvicorn's loggers without handlers of their own, propagating
# to the masking root handler (uvicorn's default config prints tracebacks unmasked).
UVICORN_LOG_CONFIG: dict[str, Any] = {
    "version": 1, "disable_existing_loggers": False,
    "loggers": {"uvicorn": {"handlers": [], "propagate": True},
                "uvicorn.error": {"handlers": [], "propagate": True},
                "uvicorn.access": {"handlers": [], "propagate": True}},
}


def configure_logging(level: str = "INFO", json: bool | None = True) -> None:
    """`json=None`: JSON lines unless stderr is a terminal, where people read readable lines.
    Masking runs before either renderer."""
    if json is None:
        json = not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    _route_stdlib(level, json)
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
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
