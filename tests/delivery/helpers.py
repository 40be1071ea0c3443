"""Test helpers for delivery: a real HTTP webhook receiver with scripted failures, and tickets.

The receiver verifies every Standard Webhooks signature with the reference `standardwebhooks`
library (not our own code) and counts deliveries by webhook-id, like an OPD system would.
"""
from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


SECRET = "whsec_" + base64.b64encode(b"simpul-test-secret-0123456789ab").decode()
SECRET_ENV = "SIMPUL_TEST_WEBHOOK_SECRET"


@dataclass(frozen=True)
class Act:
    """What the receiver does with one attempt."""

    status: int = 200
    retry_after: str | None = None
    sleep_s: float = 0.0  # answer late (the sender times out); the receiver still processes it
    drop: bool = False  # close the connection without an answer


Plan = Callable[[str, int, dict], Act]  # (webhook-id, attempt number from 1, JSON body) -> action


class Receiver:
    def __init__(self, plan: Plan | None = None, secret: str = SECRET):
        self.plan: Plan = plan or (lambda _id, _n, _doc: Act())
        self.verifier = Webhook(secret)
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        self.processed: Counter[str] = Counter()  # how often the OPD system *acted* on an id
        self.bodies: dict[str, dict] = {}
        self.raw: dict[str, list[bytes]] = {}
        self.bad_signatures = 0
        self.log: list[tuple[str, int, int]] = []  # (id, attempt, status answered)
        self.times: dict[str, list[float]] = defaultdict(list)
        recv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    recv.verifier.verify(body, headers)
                except WebhookVerificationError:
                    with recv.lock:
                        recv.bad_signatures += 1
                    return self._answer(401, {})
                mid = headers["webhook-id"]
                with recv.lock:
                    recv.raw.setdefault(mid, []).append(body)  # every attempt's body, as sent
                    recv.attempts[mid] += 1
                    n = recv.attempts[mid]
                    recv.times[mid].append(time.monotonic())
                act = recv.plan(mid, n, json.loads(body))
                if act.drop:
                    with recv.lock:
                        recv.log.append((mid, n, 0))
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if act.sleep_s:
                    time.sleep(act.sleep_s)
                if 200 <= act.status < 300:
                    with recv.lock:  # idempotent by webhook-id: a retry of a processed id is a no-op
                        if recv.processed[mid] == 0:
                            recv.bodies[mid] = json.loads(body)
                        recv.processed[mid] = 1 if recv.processed[mid] == 0 else recv.processed[mid]
                        recv.log.append((mid, n, act.status))
                    return self._answer(act.status, {"ok": True})
                with recv.lock:
                    recv.log.append((mid, n, act.status))
                extra = {"Retry-After": act.retry_after} if act.retry_after else {}
                return self._answer(act.status, {"error": "scripted"}, extra)

            def _answer(self, status, doc, extra=None):
                data = json.dumps(doc).encode()
                try:
                    self.send_response(status)
                    for k, v in (extra or {}).items():
                        self.send_header(k, v)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up (timeout): fine, it will retry with the same id

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/simpul"

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answered_2xx(self) -> Counter[str]:
        with self.lock:
            return Counter(mid for mid, _n, status in self.log if 200 <= status < 300)


def use_webhook(session, opd_code: str, url: str, timeout_s: float = 1.0) -> None:
    from hub.models import Opd

    opd = session.get(Opd, opd_code)
    opd.delivery = {"type": "webhook", "url": url, "secret_env": SECRET_ENV, "timeout_s": timeout_s}
    session.add(opd)


def make_ticket(session, opd: str = "PUPR", code: str | None = None, channel: str = "telegram",
                created_at: datetime | None = None, due_at: datetime | None = None, urgency: str = "normal",
                **kw):
    """A routed ticket written the way hub.tickets.create_from_draft leaves one (no normalizer)."""
    from hub.codes import new_code
    from hub.models import Ticket

    now = created_at or datetime.now(timezone.utc)
    t = Ticket(code=code or new_code(), channel=channel, text_original=kw.pop("text", "Jalan berlubang di depan SDN 1"),
               text_clean=kw.pop("text_clean", "jalan berlubang di depan sdn 1"), opd_code=opd, urgency=urgency,
               category=kw.pop("category", "PEKERJAAN UMUM DAN PENATAAN RUANG"),
               subcategory=kw.pop("subcategory", "JALAN BERLUBANG"),
               kecamatan_code=kw.pop("kecamatan_code", "35.03.11"), created_at=now, updated_at=now,
               due_at=due_at or now + timedelta(days=5), routing_confidence=0.9, routing_rule="test", **kw)
    session.add(t)
    session.flush()
    return t


def bulk_tickets(engine, n: int, opd: str = "PUPR") -> list[str]:
    """n tickets with their "deliver" outbox rows, in one transaction. Returns the codes."""
    from sqlmodel import Session

    from hub.db import writer
    from hub.tickets import queue_delivery

    codes = []
    with Session(writer(engine), expire_on_commit=False) as s:
        ts = [make_ticket(s, opd=opd, code=f"T{i:07d}", text=f"Laporan uji nomor {i}") for i in range(n)]
        for t in ts:
            queue_delivery(s, t, "ticket.created")
            codes.append(t.code)
        s.commit()
    return codes
