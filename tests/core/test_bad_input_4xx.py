"""Issue #15, item 11: bad input is never a 500, on SQLite and PostgreSQL:
NUL in an Open311 code or query, oversized or garbled cursors, ids beyond the integer range."""
from __future__ import annotations

import pytest

HUGE = str(2 ** 70)
PATHS = [
    ("get", "/open311/v2/requests/AB%00CD.json", None),
    ("get", "/open311/v2/requests.json?service_request_id=AB%00CD", None),
    ("get", "/open311/v2/requests.json?service_code=a%00b", None),
    ("get", "/open311/v2/requests.json?status=open%00", None),
    ("get", "/open311/v2/requests.json?start_date=2026-01-01T00:00:00%00", None),
    ("get", "/open311/v2/services.json?jurisdiction_id=a%00", None),
    ("get", "/api/v1/tickets?cursor=" + "A" * 5000, "admin"),
    ("get", "/api/v1/tickets?cursor=" + "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkw", "admin"),  # 1234...890 (40 digits)
    ("get", "/api/v1/tickets?cursor=LTE", "admin"),  # "-1"
    ("get", "/api/v1/tickets?q=a%00b", "admin"),
    ("get", "/api/v1/tickets/AB%00CD", "admin"),
    ("get", "/api/v1/tickets?opd=PU%00PR", "admin"),
    ("get", "/api/v1/opd/tickets?cursor=" + "A" * 5000, "opd"),
    ("get", "/api/v1/opd/tickets?cursor=MjAyNi0wMS0wMXw5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "opd"),  # huge id
    ("get", "/api/v1/opd/tickets/AB%00CD", "opd"),
    ("get", "/api/v1/admin/outbox/" + HUGE, "admin"),
    ("post", "/api/v1/admin/outbox/" + HUGE + "/replay", "admin"),
    ("get", "/api/v1/admin/outbox?cursor=" + HUGE, "admin"),
    ("get", "/api/v1/admin/outbox?kind=a%00", "admin"),
    ("get", "/cek?kode=AB%00CD", None),
]


@pytest.mark.parametrize("method,path,who", PATHS, ids=[p[1][:60] for p in PATHS])
def test_bad_input_is_never_a_500(db_url, make_key, seeded, method, path, who):
    """A 4xx with the reason, or (a read with a NUL) the same answer as without it."""
    from fastapi.testclient import TestClient

    from hub.app import create_app

    headers = {"admin": make_key("admin"), "opd": make_key("opd", "PUPR"), None: {}}[who]
    with TestClient(create_app(workers=False), raise_server_exceptions=False) as c:
        r = getattr(c, method)(path, headers=headers)
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if "%00" not in path:
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
