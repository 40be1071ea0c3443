"""Issue #15, item 5: Open311 push is idempotent. The OPD accepts the first POST but answers
after the client's timeout; the retry looks the request up (GeoReport requests.json, matched by
the simpul_code attribute / "[Simpul CODE]" description) and does not create a second one. What
the OPD answered is recorded in the ticket's history."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from sqlalchemy import select
from sqlmodel import Session

from hub import outbox
from hub.db import get_engine, session_scope, writer
from hub.models import Opd, Outbox, TicketEvent
from hub.tickets import queue_delivery
from tests.delivery.helpers import make_ticket


class SlowGeoReport:
    """Creates a service request per POST; the first POST is answered late (after the client
    gave up). GET requests.json lists what it holds, as GeoReport v2 servers do."""

    def __init__(self, late_s: float):
        self.posts: list[dict] = []
        self.gets = 0
        self.requests: list[dict] = []
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _json(self, status, doc):
                data = json.dumps(doc).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["content-length"])).decode()).items()}
                fake.posts.append(form)
                sr = {"service_request_id": f"SR-{len(fake.posts)}", "description": form["description"],
                      "status": "open", "service_code": form["service_code"]}
                fake.requests.append(sr)  # accepted, whatever happens to the answer
                if len(fake.posts) == 1:
                    time.sleep(late_s)
                self._json(201, [{"service_request_id": sr["service_request_id"], "service_notice": "Diterima DLH"}])

            def do_GET(self):
                fake.gets += 1
                q = parse_qs(urlparse(self.path).query)
                if q.get("api_key") != ["k-123"]:
                    return self._json(403, [{"code": 403, "description": "invalid api_key"}])
                self._json(200, fake.requests)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/open311/v2"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


async def test_retry_after_a_late_answer_does_not_post_twice(db_url, seeded, monkeypatch):
    import hub.delivery  # noqa: F401  (registers the deliver sender)

    monkeypatch.setenv("SIMPUL_TEST_OPEN311_KEY", "k-123")
    geo = SlowGeoReport(late_s=1.0)
    try:
        with session_scope() as s:
            opd = s.get(Opd, "DLH")
            opd.delivery = {"type": "open311", "endpoint": geo.endpoint, "api_key_env": "SIMPUL_TEST_OPEN311_KEY",
                            "service_code": "042", "timeout_s": 0.3}
            t = make_ticket(s, opd="DLH", code="O3B2345", text="Sampah menumpuk di sungai", address="Ngemplak")
            queue_delivery(s, t, "ticket.created")
        assert await outbox.run_once(get_engine(), kinds=["deliver"]) == 1  # times out: retry later
        with Session(writer(get_engine())) as s:
            row = s.scalars(select(Outbox)).one()
            assert row.state == "pending" and row.attempts == 1 and "timeout" in row.last_error
            row.next_attempt_at = row.created_at  # due now
            s.add(row)
            s.commit()
        time.sleep(1.0)  # the OPD has made the request by now
        assert await outbox.run_once(get_engine(), kinds=["deliver"]) == 1
    finally:
        geo.close()
    assert len(geo.posts) == 1 and geo.gets == 1
    with Session(get_engine()) as s:
        assert s.scalars(select(Outbox)).one().state == "done"
        ev = s.scalars(select(TicketEvent).where(TicketEvent.kind == "delivered")).one()
    assert ev.data["provider_id"] == "SR-1" and ev.data["answer"]["found_by_lookup"] is True


async def test_first_post_records_what_the_opd_answered(db_url, seeded, monkeypatch):
    import hub.delivery  # noqa: F401

    monkeypatch.setenv("SIMPUL_TEST_OPEN311_KEY", "k-123")
    geo = SlowGeoReport(late_s=0)
    try:
        with session_scope() as s:
            opd = s.get(Opd, "DLH")
            opd.delivery = {"type": "open311", "endpoint": geo.endpoint, "api_key_env": "SIMPUL_TEST_OPEN311_KEY",
                            "service_code": "042"}
            t = make_ticket(s, opd="DLH", code="O3C2345", text="Sampah", address="Ngemplak")
            queue_delivery(s, t, "ticket.created")
        assert await outbox.run_once(get_engine(), kinds=["deliver"]) == 1
    finally:
        geo.close()
    assert geo.gets == 0 and geo.posts[0]["attribute[simpul_code]"] == "O3C2345"
    with Session(get_engine()) as s:
        ev = s.scalars(select(TicketEvent).where(TicketEvent.kind == "delivered")).one()
    assert ev.data["answer"]["service_notice"] == "Diterima DLH"
