"""Helpers for the web tests: known tickets straight into the store, demo-style users, and a
login that goes through the real form (CSRF token included)."""
from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta, timezone

import pytest

PASSWORD = "rahasia-uji-123"
USERS = [("admin", "admin", None), ("bupati", "pimpinan", None), ("operator", "operator", None),
         ("pupr", "opd", "PUPR"), ("dukcapil", "opd", "DUKCAPIL")]
KEC_POGALAN, KEC_DURENAN, KEC_PANGGUL = "35.03.12", "35.03.13", "35.03.01"


def make_ticket(s, code: str, opd: str, status: str = "menunggu", channel: str = "sms",
                kecamatan: str | None = None, urgency: str = "normal", text: str | None = None,
                due_in: timedelta = timedelta(days=3), age: timedelta = timedelta(hours=2),
                incident_id: int | None = None, phone: str | None = None):
    from hub.models import Incident, Ticket, TicketEvent

    now = datetime.now(timezone.utc)
    if status in ("selesai", "ditolak"):
        age = max(age, timedelta(hours=8))  # finished 5 hours after it came in, in the past
    created = now - age
    if incident_id is None:
        inc = Incident(kecamatan_code=kecamatan, urgency=urgency, first_at=created, last_at=created, ticket_count=1,
                       is_open=status in ("menunggu", "diproses"))
        s.add(inc)
        s.flush()
        incident_id = inc.id
    t = Ticket(code=code, channel=channel, text_original=text or f"Laporan uji {code}", text_clean=text or code,
               kecamatan_code=kecamatan, urgency=urgency, opd_code=opd, status=status, incident_id=incident_id,
               due_at=created + due_in, created_at=created, updated_at=created, reporter_phone=phone,
               reporter_name="Warga Uji" if phone else None,
               closed_at=created + timedelta(hours=5) if status in ("selesai", "ditolak") else None)
    s.add(t)
    s.flush()
    s.add(TicketEvent(ticket_id=t.id, actor=f"channel:{channel}", kind="received", to_status="menunggu", at=created))
    s.add(TicketEvent(ticket_id=t.id, actor="system", kind="routed", to_opd=opd, at=created))
    return t


# The known set every web test starts from: what the overview must count.
KNOWN = [
    # code, opd, status, channel, kecamatan, urgency, due_in
    ("PUPR001", "PUPR", "menunggu", "sms", KEC_POGALAN, "normal", timedelta(days=3)),
    ("PUPR002", "PUPR", "menunggu", "telegram", KEC_POGALAN, "normal", timedelta(hours=-5)),  # overdue
    ("PUPR003", "PUPR", "diproses", "lapor", KEC_DURENAN, "tinggi", timedelta(days=1)),
    ("PUPR004", "PUPR", "selesai", "lapor", KEC_DURENAN, "normal", timedelta(days=3)),
    ("DUKC001", "DUKCAPIL", "menunggu", "sms", KEC_PANGGUL, "normal", timedelta(days=3)),
    ("DUKC002", "DUKCAPIL", "selesai", "sms", None, "normal", timedelta(days=3)),
    ("BPBD001", "BPBD", "menunggu", "bpbd", KEC_DURENAN, "darurat", timedelta(minutes=-10)),  # overdue
    ("BPBD002", "BPBD", "diproses", "bpbd", KEC_DURENAN, "darurat", timedelta(hours=2, minutes=20)),
]


@functools.lru_cache(maxsize=1)
def password_hash() -> str:
    """One argon2 hash for all test users, with light parameters (a check reads them from the
    hash): production's cost is ~1 s per check on the loaded test machine, and the login tests
    make dozens. Unknown users are still checked against the hub's full-cost dummy hash."""
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)


def seed_known(cfg) -> None:
    from hub.db import session_scope
    from hub.models import User
    from hub.seed import sync_opds

    with session_scope() as s:
        sync_opds(s, cfg)
        for username, role, opd in USERS:
            s.add(User(username=username, password_hash=password_hash(), role=role, opd_code=opd,
                       full_name=username.capitalize()))
    with session_scope() as s:
        for code, opd, status, channel, kec, urgency, due_in in KNOWN:
            make_ticket(s, code, opd, status, channel, kec, urgency, due_in=due_in,
                        phone="+6281234500001" if code == "PUPR001" else None)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "page has no CSRF field"
    return m.group(1)


def login(client, username: str, password: str = PASSWORD, follow: bool = False):
    page = client.get("/masuk")
    return client.post("/masuk", data={"csrf": csrf_of(page.text), "username": username, "password": password,
                                       "lanjut": "/"}, follow_redirects=follow)


@pytest.fixture
def web(sqlite_client, cfg):
    seed_known(cfg)
    return sqlite_client
