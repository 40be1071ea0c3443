"""A local fake of Twilio's Content API (https://content.twilio.com/v1) on 127.0.0.1: creating
templates and WhatsApp approval requests, answering in Twilio's documented shapes and error
bodies, with HTTP Basic auth (Account SID / Auth Token). Tests point
`twilio_content_base_url` at `FakeContentApi.url` and decide WhatsApp's verdict themselves
(`approve`, `reject`). Never reaches the real Twilio.
"""
from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CONTENT_RE = re.compile(r"^/v1/Content/?$")
APPROVAL_CREATE_RE = re.compile(r"^/v1/Content/(?P<sid>HX[0-9a-f]{32})/ApprovalRequests/whatsapp$")
APPROVAL_FETCH_RE = re.compile(r"^/v1/Content/(?P<sid>HX[0-9a-f]{32})/ApprovalRequests$")
NAME_RE = re.compile(r"^[a-z0-9_]{1,512}$")
CATEGORIES = {"UTILITY", "MARKETING", "AUTHENTICATION"}


@dataclass
class FakeContentApi:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "test-auth-token"
    contents: dict[str, dict[str, Any]] = field(default_factory=dict)
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_after: int | None = None  # answer 500 once this many templates exist

    def approve(self, sid: str) -> None:
        self.approvals[sid]["status"] = "approved"

    def reject(self, sid: str, reason: str) -> None:
        self.approvals[sid].update(status="rejected", rejection_reason=reason)

    def start(self) -> "FakeContentApi":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, code: int, message: str) -> None:
                self._json(status, {"code": code, "message": message, "status": status,
                                    "more_info": f"https://www.twilio.com/docs/errors/{code}"})

            def _auth(self) -> bool:
                want = "Basic " + base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
                if self.headers.get("Authorization") != want:
                    self._error(401, 20003, "Authenticate")
                    return False
                return True

            def _body(self) -> Any:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                fake.requests.append({"method": self.command, "path": self.path,
                                      "content_type": self.headers.get("Content-Type"), "body": raw.decode()})
                return json.loads(raw) if raw else {}

            def do_POST(self):
                try:
                    body = self._body()
                except ValueError:
                    return self._error(400, 20001, "Invalid JSON")
                if not self._auth():
                    return
                now = datetime.now(timezone.utc).isoformat()
                if CONTENT_RE.match(self.path):
                    if fake.fail_after is not None and len(fake.contents) >= fake.fail_after:
                        return self._error(500, 20500, "Internal Server Error")
                    name, lang = body.get("friendly_name"), body.get("language")
                    text = ((body.get("types") or {}).get("twilio/text") or {}).get("body")
                    if not name or not lang or not text:
                        return self._error(400, 20001, "friendly_name, language and a type are required")
                    used = set(re.findall(r"\{\{(\d+)\}\}", text))
                    samples = body.get("variables") or {}
                    if used != set(samples):  # every {{n}} needs a sample value, and no extra ones
                        return self._error(400, 20001, "Variables must match the placeholders of the body")
                    sid = "HX" + uuid.uuid4().hex
                    types = {k: v for k, v in (body.get("types") or {}).items() if v is not None}
                    fake.contents[sid] = {"sid": sid, "account_sid": fake.account_sid, "friendly_name": name,
                                          "language": lang, "variables": samples, "types": types,
                                          "date_created": now, "date_updated": now,
                                          "url": f"https://content.twilio.com/v1/Content/{sid}",
                                          "links": {"approval_create": f"https://content.twilio.com/v1/Content/{sid}/ApprovalRequests/whatsapp",
                                                    "approval_fetch": f"https://content.twilio.com/v1/Content/{sid}/ApprovalRequests"}}
                    return self._json(201, fake.contents[sid])
                m = APPROVAL_CREATE_RE.match(self.path)
                if m:
                    sid = m.group("sid")
                    if sid not in fake.contents:
                        return self._error(404, 20404, "The requested resource was not found")
                    if not NAME_RE.match(str(body.get("name") or "")):
                        return self._error(400, 20001, "name: lowercase alphanumeric characters and underscores only")
                    if body.get("category") not in CATEGORIES:
                        return self._error(400, 20001, "category is invalid")
                    fake.approvals[sid] = {"name": body["name"], "category": body["category"], "status": "received",
                                           "rejection_reason": "", "content_type": "twilio/text",
                                           "allow_category_change": True}
                    return self._json(201, fake.approvals[sid])
                return self._error(404, 20404, "The requested resource was not found")

            def do_GET(self):
                self._body()
                if not self._auth():
                    return
                m = APPROVAL_FETCH_RE.match(self.path)
                if not m or m.group("sid") not in fake.contents:
                    return self._error(404, 20404, "The requested resource was not found")
                sid = m.group("sid")
                wa = fake.approvals.get(sid) or {"status": "unsubmitted", "name": "", "category": "",
                                                 "rejection_reason": "", "content_type": "twilio/text"}
                self._json(200, {"sid": sid, "account_sid": fake.account_sid,
                                 "url": f"https://content.twilio.com/v1/Content/{sid}/ApprovalRequests",
                                 "whatsapp": {"type": "whatsapp", **wa}})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
