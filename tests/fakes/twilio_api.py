"""A local fake of Twilio's REST API (Messages.json) on 127.0.0.1: answers like Twilio,
including its error bodies and codes, and records every request for the tests to assert.

Never reaches the real Twilio; tests point `twilio_base_url` at `FakeTwilio.url`.
"""
from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

MESSAGES_RE = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-zA-Z]+)/Messages\.json$")
E164_RE = re.compile(r"^(whatsapp:)?\+[1-9]\d{6,14}$")


@dataclass
class Recorded:
    method: str
    path: str
    form: dict[str, str]
    headers: dict[str, str]


@dataclass
class Failure:
    status: int
    code: int
    message: str
    retry_after: str | None = None


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "test-auth-token"
    requests: list[Recorded] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    delay_s: float = 0.0
    # WhatsApp numbers whose 24-hour customer-service window is closed: a free-form Body to
    # them is refused with 63016, as Twilio does; a ContentSid (approved template) goes through.
    window_closed: set[str] = field(default_factory=set)

    def fail_next(self, status: int, code: int, message: str = "error", retry_after: str | None = None) -> None:
        """The next Messages.json call answers this error (calls after that succeed again)."""
        self.failures.append(Failure(status, code, message, retry_after))

    @property
    def sent(self) -> list[dict[str, str]]:
        return [r.form for r in self.requests if r.method == "POST"]

    # -- server ----------------------------------------------------------------------------
    def start(self) -> "FakeTwilio":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _json(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, code: int, message: str, headers=None) -> None:
                self._json(status, {"code": code, "message": message, "status": status,
                                    "more_info": f"https://www.twilio.com/docs/errors/{code}"}, headers)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                fake.requests.append(Recorded("POST", self.path, form, dict(self.headers)))
                if fake.delay_s:
                    import time

                    time.sleep(fake.delay_s)
                m = MESSAGES_RE.match(self.path)
                if not m:
                    return self._error(404, 20404, "The requested resource was not found")
                auth = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
                if auth != expected or m.group("sid") != fake.account_sid:
                    return self._error(401, 20003, "Authenticate")
                if fake.failures:
                    f = fake.failures.pop(0)
                    headers = {"Retry-After": f.retry_after} if f.retry_after else None
                    return self._error(f.status, f.code, f.message, headers)
                to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
                if not E164_RE.match(to):
                    return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
                if not sender:
                    return self._error(400, 21603, "The 'From' phone number is required.")
                if to.startswith("whatsapp:") != sender.startswith("whatsapp:"):
                    return self._error(400, 63007, "Twilio could not find a Channel with the specified From address")
                content_sid = form.get("ContentSid", "")
                if content_sid:
                    if not re.fullmatch(r"HX[0-9a-f]{32}", content_sid):
                        return self._error(400, 21656, "The ContentSid is Invalid.")
                    try:
                        json.loads(form.get("ContentVariables") or "{}")
                    except ValueError:
                        return self._error(400, 21656, "The ContentVariables Parameter is invalid.")
                    body = body or f"[template {content_sid}]"
                elif not body:
                    return self._error(400, 21602, "Message body is required.")
                elif to in fake.window_closed:
                    return self._error(400, 63016, "Failed to send freeform message because you are outside "
                                                   "the allowed window. Please use a Template.")
                now = format_datetime(datetime.now(timezone.utc), usegmt=True)
                sid = "SM" + uuid.uuid4().hex
                self._json(201, {
                    "account_sid": fake.account_sid, "api_version": "2010-04-01", "body": body,
                    "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
                    "error_code": None, "error_message": None, "from": sender, "messaging_service_sid": None,
                    "num_media": "0", "num_segments": str(1 + len(body) // 160), "price": None,
                    "price_unit": "USD", "sid": sid, "status": "queued", "subresource_uris": {},
                    "to": to, "uri": f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{sid}.json"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
