"""Issue #15, item 10: every log path (structlog, uvicorn, APScheduler, asyncio, uncaught
tracebacks, a failed write's SQL parameters) goes through the masking processor. A real
`simpul serve` run gets traffic full of personal data and secrets, and all of its log output
is grepped for any of them in full."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.core.test_serve import ROOT, _free_port

NIK = "3503114506900002"
PHONE_LOCAL = "081234567890"
PHONE_E164 = "+6281234567890"
PASSWORD = "Rahasia-Sekali-987"
TG_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"


def _secrets(api_key: str) -> list[str]:
    return [NIK, PHONE_LOCAL, PHONE_E164, "6281234567890", PASSWORD, TG_TOKEN, api_key]


def _found(text: str, secrets: list[str]) -> list[str]:
    digits = re.sub(r"[\s.-]", "", text)
    return [s for s in secrets if s in text or (s.isdigit() and s in digits)]


SNIPPET = r"""
import asyncio, logging, threading, warnings
from hub.logging import configure_logging, get_logger
configure_logging("INFO", True)
secret = "NIK {nik} HP {phone} sandi password={pw} token {tok}"
try:
    raise ValueError(secret)
except ValueError:
    logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    logging.getLogger("apscheduler.executors.default").exception("Job raised an exception")
    get_logger("hub").exception("hub.failed", detail=secret)
logging.getLogger("sqlalchemy.engine").warning("[parameters: ('%s', '%s')]", "{phone}", "{nik}")
warnings.warn(secret)
t = threading.Thread(target=lambda: (_ for _ in ()).throw(RuntimeError(secret)))
t.start(); t.join()
async def boom():
    raise RuntimeError(secret)
loop = asyncio.new_event_loop()
task = loop.create_task(boom()); loop.run_until_complete(asyncio.sleep(0)); del task
loop.close()
raise SystemError(secret)
"""


def test_every_stdlib_log_path_is_masked(tmp_path):
    code = SNIPPET.replace("{nik}", NIK).replace("{phone}", PHONE_E164).replace("{pw}", PASSWORD) \
        .replace("{tok}", TG_TOKEN)
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    err = p.stderr
    assert "uncaught exception" in err and "Exception in ASGI application" in err and "Job raised" in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    for ln in lines:  # every line is one JSON object: no raw traceback printed around the masking
        json.loads(ln)
    assert not _found(err, [NIK, PHONE_E164, "6281234567890", TG_TOKEN, PASSWORD]), err
    assert "3503**********02" in err


def _worked_off(db: Path) -> bool:
    """Every accepted message processed and every outbox row tried at least once."""
    import sqlite3

    c = sqlite3.connect(db)
    try:
        pending = c.execute("SELECT count(*) FROM raw_messages WHERE state = 'pending'").fetchone()[0]
        untried = c.execute("SELECT count(*) FROM outbox WHERE state = 'pending' AND attempts = 0").fetchone()[0]
        tickets = c.execute("SELECT count(*) FROM tickets").fetchone()[0]
    finally:
        c.close()
    return pending == 0 and untried == 0 and tickets >= 1


def test_a_serve_run_logs_no_personal_data_or_secret(tmp_path, sqlite_url, make_key):
    from hub.auth import create_user
    from hub.db import session_scope

    db = Path(sqlite_url.removeprefix("sqlite:///"))  # a copy of the migrated template (conftest)
    env = {**os.environ, "SIMPUL_DATABASE_URL": sqlite_url, "SIMPUL_LOG_LEVEL": "DEBUG",
           "SIMPUL_LOG_JSON": "true", "SIMPUL_TELEGRAM_BOT_TOKEN": TG_TOKEN,
           "SIMPUL_TELEGRAM_WEBHOOK_SECRET": "tg-secret-0123456789abcdef", "SIMPUL_TELEGRAM_MODE": "webhook",
           "SIMPUL_TWILIO_AUTH_TOKEN": "twilio-token-0123456789abcdef", "SIMPUL_TWILIO_ACCOUNT_SID": "AC" + "1" * 32}
    key = make_key("admin", name="t")["Authorization"].removeprefix("Bearer ")
    with session_scope() as s:
        create_user(s, "admin1", "Benar-Sekali-123", "admin")
    import sqlite3

    with sqlite3.connect(db) as c:  # a failed write: the store refuses some messages
        c.execute("CREATE TRIGGER refuse BEFORE INSERT ON raw_messages WHEN NEW.text LIKE '%GAGAL%' "
                  "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    port = _free_port()
    log_path = tmp_path / "serve.log"
    server = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--port", str(port), "--in-process"],
                              env=env, cwd=ROOT, stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    h = {"Authorization": f"Bearer {key}"}
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        text = f"Saya NIK {NIK} HP {PHONE_LOCAL} jalan rusak di Pogalan"
        assert httpx.post(f"{base}/api/v1/intake/api", headers=h, json={
            "text": text, "id": "m1", "sender": PHONE_E164, "fields": {"nik": NIK, "catatan": text}}).status_code == 202
        failed = httpx.post(f"{base}/api/v1/intake/api", headers=h, json={
            "text": "GAGAL " + text, "id": "m2", "sender": PHONE_E164})
        assert failed.status_code == 503
        with httpx.Client(base_url=base) as c:  # a wrong password, then a right one
            page = c.get("/masuk")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            c.post("/masuk", data={"csrf": csrf, "username": "admin1", "password": PASSWORD})
        httpx.post(f"{base}/webhooks/twilio/sms", data={"From": PHONE_E164, "Body": text, "MessageSid": "SM1"},
                   headers={"X-Twilio-Signature": "bm90"})
        httpx.post(f"{base}/webhooks/telegram", json={"update_id": 1}, headers={"X-Telegram-Bot-Api-Secret-Token": "x"})
        httpx.get(f"{base}/api/v1/tickets", headers={"Authorization": f"Bearer {key}x"})
        deadline = time.time() + 60  # processing and the outbox run on the scheduler
        while time.time() < deadline and not _worked_off(db):
            time.sleep(0.1)
        assert _worked_off(db), "the scheduler did not work off the accepted message"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    out = log_path.read_text()
    assert "intake.message_refused_by_store" in out or "intake.store_failed" in out, out[-3000:]
    leaked = _found(out, _secrets(key))
    assert not leaked, f"found in the log: {leaked}"
    assert len(out.splitlines()) > 5
