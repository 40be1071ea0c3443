"""E-mail to an OPD (or its head) over SMTP with aiosmtplib: plain text + HTML, STARTTLS or TLS.

Knows SMTP only: the caller gives the addresses, subject and both bodies. Never imports hub;
never logs the SMTP password.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formatdate

import aiosmtplib

from adapters.base import PermanentError, RetryableError, SendResult


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 25
    tls: str = "none"  # none | starttls | tls (implicit TLS, usually port 465)
    username: str | None = None
    password: str | None = None
    from_addr: str = "simpul@localhost"
    timeout_s: float = 20.0
    ca_file: str | None = None  # extra CA to trust (a regency's own mail server, a test CA)


@dataclass(frozen=True)
class Email:
    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None
    message_id: str | None = None  # stable across retries, so a mail server can drop a duplicate
    reply_to: str | None = None
    date: datetime | None = None  # an aware time: the Date header keeps its zone (+0700 in WIB)


def build_message(cfg: SmtpConfig, mail: Email) -> EmailMessage:
    if not mail.to:
        raise PermanentError("e-mail has no recipient")
    msg = EmailMessage()
    msg["From"] = cfg.from_addr
    msg["To"] = ", ".join(mail.to)
    msg["Subject"] = mail.subject
    msg["Date"] = format_datetime(mail.date) if mail.date is not None and mail.date.tzinfo else \
        formatdate(localtime=False)
    if mail.message_id:
        domain = cfg.from_addr.rsplit("@", 1)[-1] or "simpul"
        msg["Message-ID"] = f"<{mail.message_id}@{domain}>"
    if mail.reply_to:
        msg["Reply-To"] = mail.reply_to
    msg.set_content(mail.text)
    if mail.html:
        msg.add_alternative(mail.html, subtype="html")
    return msg


def _tls_context(cfg: SmtpConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if cfg.ca_file:
        ctx.load_verify_locations(cfg.ca_file)
    return ctx


async def send(cfg: SmtpConfig, mail: Email) -> SendResult:
    """Send one e-mail. 5xx answers are permanent, 4xx and connection trouble are retried."""
    if cfg.tls not in ("none", "starttls", "tls"):
        raise PermanentError(f"smtp_tls must be none, starttls or tls, not {cfg.tls!r}")
    msg = build_message(cfg, mail)
    kwargs: dict = {"hostname": cfg.host, "port": cfg.port, "timeout": cfg.timeout_s,
                    "username": cfg.username, "password": cfg.password}
    if cfg.tls == "tls":
        kwargs.update(use_tls=True, tls_context=_tls_context(cfg))
    elif cfg.tls == "starttls":
        kwargs.update(start_tls=True, tls_context=_tls_context(cfg))
    else:
        kwargs.update(start_tls=False)
    try:
        errors, response = await aiosmtplib.send(msg, **kwargs)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        err = f"recipients refused: {', '.join(f'{r.code} {r.message}' for r in exc.recipients)}"[:300]
        if all(400 <= c < 500 for c in codes):
            raise RetryableError(err) from None
        raise PermanentError(err) from None
    except aiosmtplib.SMTPAuthenticationError as exc:
        # a wrong password is the hub's configuration, not this message: retry once it is fixed
        raise RetryableError(f"SMTP authentication failed ({exc.code})") from None
    except aiosmtplib.SMTPResponseException as exc:
        err = f"SMTP {exc.code}: {exc.message}"[:300]
        if 500 <= exc.code < 600:
            raise PermanentError(err) from None
        raise RetryableError(err) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise RetryableError(f"SMTP connection failed: {type(exc).__name__}: {exc}"[:300]) from None
    return SendResult(provider_id=msg["Message-ID"], detail={"response": response[:200],
                                                             "refused": sorted(errors)})
