"""Where a delivery goes and with which secret: the OPD's `delivery` config turned into adapter
targets. Secrets come from environment variables named in the config, never from YAML, and
never reach a log line."""
from __future__ import annotations

import os
from typing import Any

from adapters import email_smtp, open311_client, opd_webhook
from adapters.base import PermanentError, RetryableError
from hub.settings import get_settings


def secret_from_env(name: str | None, what: str) -> str:
    if not name:
        raise PermanentError(f"{what}: no environment variable named in the delivery config")
    value = os.environ.get(name)
    if not value:
        # the message is fine; the hub's environment is not: retry, so fixing it lets it flow
        raise RetryableError(f"{what}: environment variable {name} is not set")
    return value


def webhook_target(delivery: dict[str, Any]) -> opd_webhook.WebhookTarget:
    return opd_webhook.WebhookTarget(url=delivery["url"],
                                     secret=secret_from_env(delivery.get("secret_env"), "webhook secret"),
                                     timeout_s=float(delivery.get("timeout_s", opd_webhook.DEFAULT_TIMEOUT_S)))


def open311_target(delivery: dict[str, Any]) -> open311_client.Open311Target:
    return open311_client.Open311Target(
        endpoint=delivery["endpoint"], api_key=secret_from_env(delivery.get("api_key_env"), "Open311 api_key"),
        service_code=str(delivery["service_code"]), jurisdiction_id=delivery.get("jurisdiction_id"),
        timeout_s=float(delivery.get("timeout_s", 15)))


def smtp_config() -> email_smtp.SmtpConfig:
    s = get_settings()
    return email_smtp.SmtpConfig(host=s.smtp_host, port=s.smtp_port, tls=s.smtp_tls, username=s.smtp_username,
                                 password=s.smtp_password, from_addr=s.smtp_from,
                                 ca_file=str(s.smtp_ca_file) if s.smtp_ca_file else None)


def recipients(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace(";", ",").split(",")]
    return tuple(v.strip() for v in value or () if v and v.strip())
