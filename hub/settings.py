"""Process settings from SIMPUL_* environment variables and an optional .env file.

The regency itself (OPDs, routing, SLA, templates) is data in the config directory, not here.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config import DEFAULT_CONFIG_DIR


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIMPUL_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./data/simpul.db"
    config_dir: Path = DEFAULT_CONFIG_DIR
    data_dir: Path = Path("./data")
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON lines unless stderr is a terminal (then readable lines)
    demo: bool = False  # demo mode (`make run`): lines without credentials go to the demo outbox page
    map_tiles_url: str = ""  # XYZ tile URL for the maps, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png; empty: boundaries only
    public_url: str = "http://127.0.0.1:8000"  # as the providers see us (Twilio signature)
    secret_key: str = "dev-insecure-change-me"  # sessions, CSRF, signed media URLs
    media_url_ttl_s: int = 14 * 24 * 3600  # how long a signed attachment URL (hub/media.py) works
    max_body_bytes: int = 64 * 1024
    otel_telemetry: bool = False  # FastAPI's OpenTelemetry instrumentation (needs a configured SDK)
    # Background work in `simpul serve`: the intake processor, outbox workers, scheduler.
    workers: bool = True
    process_batch: int = 500
    process_interval_s: float = 0.2
    worker_nice: int = 10  # CPU priority of the `simpul worker` that `simpul serve` starts
    outbox_batch: int = 50
    outbox_interval_s: float = 1.0
    outbox_max_attempts: int = 12
    outbox_lease_s: int = 60
    dedup_window_s: int = 600
    # Providers. Base URLs are settable so tests point them at local fakes.
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_base_url: str | None = None
    twilio_content_base_url: str | None = None  # Content API (WhatsApp templates); tests: a local fake
    telegram_bot_token: str | None = None
    telegram_webhook_secret: str | None = None
    telegram_base_url: str | None = None
    telegram_mode: str = "webhook"  # webhook | polling | off
    telegram_set_webhook: bool = True  # webhook mode: setWebhook at start-up when public_url is https
    telegram_poll_timeout_s: int = 25  # polling mode: getUpdates long-poll seconds
    telegram_ask_timeout_s: int = 900  # a report still waiting for its place is submitted without it
    lapor_base_url: str | None = None
    lapor_token: str | None = None
    lapor_pull_interval_s: int = 300
    lapor_timeout_s: float = 15.0
    gammu_database_url: str | None = None
    gammu_poll_interval_s: float = 2.0
    gammu_phone_id: str | None = None  # Gammu PhoneID that sends our replies (several modems, one database)
    sms_provider: str | None = None  # gammu | twilio: who sends SMS replies (default: gammu if its URL is set)
    trust_proxy: bool = False  # honour X-Forwarded-Proto/Host: only behind our own reverse proxy
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_tls: str = "none"  # none | starttls | tls
    smtp_from: str = "simpul@trenggalekkab.go.id"
    smtp_reply_to: str | None = None  # Reply-To of OPD e-mails (default: smtp_from); an OPD may set its own
    smtp_ca_file: Path | None = None  # extra CA for the SMTP server's certificate (a self-signed one)
    escalation_interval_s: float = 60.0  # how often the SLA escalation job looks for overdue tickets
    outbox_retention_days: int = 30  # sent outbox rows are deleted after this (ticket events keep the record)
    # Attachment links on staff pages: besides the hub's own media (/lampiran/..., public_url),
    # only http(s) links to these hosts (comma-separated; a leading "." allows subdomains) are
    # rendered as links. Anything else (javascript:, data:, unknown hosts) is shown as text.
    link_hosts: str = "api.twilio.com,.lapor.go.id,lapor.go.id"
    # The rate limiter's counts (hub.limiter): in Redis when set (e.g. redis://127.0.0.1:6379/0),
    # else in the database; both are shared by every process. Redis down: the database counts.
    redis_url: str | None = None
    redis_key_prefix: str = "simpul:"  # several hubs on one Redis: one prefix each
    rate_limit_per_sender: int = Field(default=20, description="messages per sender per 10 minutes")
    # a citizen's follow-up text this soon after their last message on an open ticket joins it
    # (hub/pieces.py, normalizer/followup.py); 0 turns joining off
    follow_up_window_s: int = 300

    @model_validator(mode="after")
    def _sms_provider(self) -> "Settings":
        if not self.sms_provider:
            self.sms_provider = "gammu" if self.gammu_database_url else "twilio"
        if self.sms_provider not in ("gammu", "twilio"):
            raise ValueError(f"sms_provider must be gammu or twilio, not {self.sms_provider!r}")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()
