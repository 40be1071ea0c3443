"""A local fake of Twilio's REST API (Messages.json, and the media of incoming messages) on
127.0.0.1: answers like Twilio, including its error bodies and codes, and records every request
for the tests to assert.

Media as Twilio serves them: GET /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/
{MediaSid} needs HTTP Basic auth (Account SID / Auth Token) and answers 307 with a Location on a
separate media host (Twilio's CDN / S3), which serves the bytes without auth and refuses a
request that still carries the Authorization header (as S3 does: one auth mechanism only).

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

MEDIA_RE = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-zA-Z]+)/Messages/(?P<msg>[A-Z]{2}[0-9a-f]{32})"
                      r"/Media/(?P<media>ME[0-9a-f]{32})$")
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

    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # MediaSid -> (bytes, type)
    media_failures: list[int] = field(default_factory=list)  # statuses for the next media GETs
    media_gets: list[Recorded] = field(default_factory=list)  # GETs at the API and at the media host

    def add_media(self, message_sid: str, data: bytes, content_type: str = "image/jpeg") -> str:
        """A media of an incoming message; returns its MediaUrl as Twilio puts it in the webhook."""
        sid = "ME" + uuid.uuid4().hex
        self.media[sid] = (data, content_type)
        return f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}/Messages/{message_sid}/Media/{sid}"

    def delete_media(self, url: str) -> None:
        self.media.pop(url.rsplit("/", 1)[-1], None)

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

            def _authorized(self) -> bool:
                auth = self.headers.get("Authorization", "")
                return auth == "Basic " + base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()

            def do_GET(self):
                fake.media_gets.append(Recorded("GET", self.path, {}, dict(self.headers)))
                m = MEDIA_RE.match(self.path)
                if not m:
                    return self._error(404, 20404, "The requested resource was not found")
                if not self._authorized() or m.group("sid") != fake.account_sid:
                    return self._error(401, 20003, "Authenticate")
                if fake.media_failures:
                    status = fake.media_failures.pop(0)
                    return self._error(status, 20500 if status >= 500 else 20429, "error")
                if m.group("media") not in fake.media:
                    return self._error(404, 20404, f"The requested resource {self.path} was not found")
                self.send_response(307)
                self.send_header("Location", f"{fake.media_url}/{fake.account_sid}/{uuid.uuid4().hex}"
                                             f"?media={m.group('media')}&Expires=9999999999&Signature=x")
                self.send_header("Content-Length", "0")
                self.end_headers()

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

        class MediaHost(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.media_gets.append(Recorded("GET", self.path, {}, dict(self.headers)))
                if "Authorization" in self.headers:
                    data = b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>"
                    self.send_response(400)
                    self.send_header("Content-Type", "application/xml")
                else:
                    sid = dict(parse_qsl(self.path.partition("?")[2])).get("media", "")
                    if sid not in fake.media:
                        data = b"<Error><Code>NoSuchKey</Code></Error>"
                        self.send_response(404)
                        self.send_header("Content-Type", "application/xml")
                    else:
                        data, ctype = fake.media[sid]
                        self.send_response(200)
                        self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True  # stop() does not wait for a request held by delay_s
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self._media_server = ThreadingHTTPServer(("127.0.0.1", 0), MediaHost)
        threading.Thread(target=self._media_server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    @property
    def media_url(self) -> str:
        host, port = self._media_server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        for server in (self._server, self._media_server):
            server.shutdown()
            server.server_close()
