"""Nobody writes or reads where they do not belong (issue #15 items 6-9), on SQLite and
PostgreSQL: an OPD key and an OPD user try every route that addresses a ticket with another
OPD's code; API keys are scoped by what they do; logout ends the session server-side;
attachment links are only rendered for allowed http(s) targets."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from tests.web.conftest import PASSWORD, csrf_of, login, make_ticket, seed_known

OWN, FOREIGN, MISSING = "PUPR001", "DINS001", "ZZZZ999"

# Every route with a ticket code in its path, and a body that would change the caller's own
# ticket: the test fails when a new one appears, so it must be added here (and pass).
TICKET_ROUTES = {
    ("GET", "/api/v1/tickets/{code}"): None,
    ("PATCH", "/api/v1/tickets/{code}"): {"json": {"status": "diproses", "note": "x"}},
    ("GET", "/api/v1/opd/tickets/{code}"): None,
    ("POST", "/api/v1/opd/tickets/{code}/status"): {"json": {"status": "selesai", "note": "x"}},
    ("GET", "/tiket/{code}"): None,
    ("POST", "/tiket/{code}/status"): {"data": {"status": "diproses", "note": "x"}},
    ("POST", "/tiket/{code}/terima"): {"data": {"note": "x"}},
    ("POST", "/tiket/{code}/rute"): {"data": {"opd": "PUPR", "note": "x"}},
    ("POST", "/tiket/{code}/gabung"): {"data": {"into": OWN, "note": "x"}},
    ("POST", "/tiket/{code}/nik"): {"data": {}},
    ("POST", "/tiket/{code}/proyek"): {"data": {"kode": "X"}},
    ("POST", "/api/v1/works/reports/{code}/link"): {"json": {"project": "X"}},
}
# Public by design: GeoReport v2 (status and description, never the reporter); the citizen's
# own /cek page, its after-photo and answer (whoever holds the code; answers by SMS/Telegram
# are checked against the reporter); attachments at signed, expiring URLs; the public
# project pages (a project's code, not a ticket's; "belum beres" asks the reporter's phone;
# payments only by the project's own OPD, tests/works).
PUBLIC = {("GET", "/open311/v2/requests/{code}.{fmt}"), ("GET", "/cek/{code}/foto/{name}"),
          ("POST", "/cek/{code}/jawab"), ("GET", "/media/{code}/{index}"), ("GET", "/proyek/{code}"),
          ("POST", "/proyek/{code}/belum-beres"), ("POST", "/proyek/{code}/bayar")}


def all_routes(routes):
    """Every route of the app, also inside included routers (FastAPI keeps those nested)."""
    for r in routes:
        if hasattr(r, "effective_candidates"):
            yield from all_routes(r.effective_candidates())
        elif hasattr(r, "routes") and not getattr(r, "path", None):
            yield from all_routes(r.routes)
        else:
            yield r


def ticket_routes(app) -> set[tuple[str, str]]:
    out = set()
    for r in all_routes(app.routes):
        path = getattr(r, "path", "")
        if "{code}" in path:
            out |= {(m, path) for m in (getattr(r, "methods", None) or ()) if m not in ("HEAD", "OPTIONS")}
    return out


def snapshot():
    from hub.db import session_scope
    from hub.models import Outbox, Ticket, TicketEvent

    with session_scope() as s:
        tickets = [(t.code, t.status, t.opd_code, t.merged_into, t.updated_at)
                   for t in s.scalars(select(Ticket).order_by(Ticket.id))]
        return tickets, s.scalar(select(func.count()).select_from(TicketEvent)), \
            s.scalar(select(func.count()).select_from(Outbox))


@pytest.fixture
def world(client, cfg):
    """The web tests' known tickets, plus a DINSOS ticket in the same incident as PUPR001."""
    from hub.db import session_scope
    from hub.models import Ticket

    seed_known(cfg)
    with session_scope() as s:
        own = s.scalars(select(Ticket).where(Ticket.code == OWN)).one()
        make_ticket(s, FOREIGN, "DINSOS", incident_id=own.incident_id, phone="+6281299900011")
    return client


def _call(client, method, path, code, spec, headers=None, csrf=None):
    url = path.replace("{code}", code).replace("{fmt}", "json")
    kw = dict(spec or {})
    if "data" in kw and csrf:
        kw["data"] = {**kw["data"], "csrf": csrf}
    h = dict(headers or {})
    if csrf and "json" in kw:
        h["X-CSRF-Token"] = csrf
    return client.request(method, url, headers=h, follow_redirects=False, **kw)


def test_every_ticket_route_is_in_the_list(world):
    assert ticket_routes(world.app) == set(TICKET_ROUTES) | PUBLIC


def test_an_opd_key_cannot_reach_another_opds_ticket_by_any_route(world, make_key):
    key = make_key("opd", "PUPR", name="SIMDA PUPR")
    before = snapshot()
    tried = 0
    for (method, path), spec in TICKET_ROUTES.items():
        if path.startswith("/tiket/"):
            continue  # pages take a session, not a key
        for code in (FOREIGN, MISSING):
            r = _call(world, method, path, code, spec, key)
            assert r.status_code in (403, 404), (method, path, code, r.status_code, r.text)
            tried += 1
        # the foreign code and a code that does not exist get the very same answer
        a, b = (_call(world, method, path, c, spec, key) for c in (FOREIGN, MISSING))
        assert (a.status_code, a.json()["detail"].replace(FOREIGN, "X")) == \
            (b.status_code, b.json()["detail"].replace(MISSING, "X"))
    assert snapshot() == before
    print(f"opd key: {tried} foreign/missing requests, 0 reached")


def test_an_opd_user_cannot_reach_another_opds_ticket_by_any_route(world):
    assert login(world, "pupr").status_code == 303
    csrf = csrf_of(world.get("/opd").text)
    before = snapshot()
    for (method, path), spec in TICKET_ROUTES.items():
        for code in (FOREIGN, MISSING):
            r = _call(world, method, path, code, spec, csrf=csrf)
            assert r.status_code in (403, 404), (method, path, code, r.status_code)
            assert "Laporan uji DINS001" not in r.text and "+62812999" not in r.text
    assert snapshot() == before


@pytest.mark.parametrize("who", ["key", "user"])
def test_merge_into_another_opds_ticket_is_the_same_404_as_a_missing_code(world, make_key, who):
    headers, csrf = {}, None
    if who == "key":
        headers = make_key("opd", "PUPR")
    else:
        login(world, "pupr")
        csrf = csrf_of(world.get("/opd").text)
        headers = {"X-CSRF-Token": csrf}
    before = snapshot()
    answers = []
    for into in (FOREIGN, MISSING):
        r = world.patch(f"/api/v1/tickets/{OWN}", json={"merge_into": into, "note": "sama"}, headers=headers)
        answers.append((r.status_code, r.json()["detail"].replace(into, "X")))
    assert answers[0] == answers[1] and answers[0][0] == 404
    assert snapshot() == before  # no note in the DINSOS ticket's history, nothing queued


def test_incident_tickets_lists_only_what_the_caller_may_see(world, make_key, admin_headers):
    mine = world.get(f"/api/v1/tickets/{OWN}", headers=make_key("opd", "PUPR")).json()
    assert FOREIGN not in mine.get("incident_tickets", [])
    assert FOREIGN in world.get(f"/api/v1/tickets/{OWN}", headers=admin_headers).json()["incident_tickets"]
    login(world, "pupr")
    assert FOREIGN not in world.get(f"/tiket/{OWN}").text


def test_the_opd_pull_and_lists_do_not_leak_other_opds(world, make_key):
    key = make_key("opd", "PUPR")
    assert world.get("/api/v1/opd/tickets?opd=DINSOS", headers=key).status_code == 403
    assert world.get(f"/api/v1/tickets?q={FOREIGN}", headers=key).json()["items"] == []
    codes = {t["code"] for t in world.get("/api/v1/opd/tickets", headers=key).json()["items"]}
    assert codes and all(c.startswith("PUPR") for c in codes)


# --- keys scoped by what they do ---------------------------------------------------------------

def test_an_intake_key_submits_but_reads_nothing(world, make_key):
    key = make_key("intake", name="kiosk")
    r = world.post("/api/v1/intake/web", json={"text": "Jalan berlubang di depan pasar Pogalan",
                                               "sender": "081234567890", "id": "kiosk-1"}, headers=key)
    assert r.status_code == 202, r.text
    code = r.json()["code"]
    for path in ("/api/v1/tickets", f"/api/v1/tickets/{OWN}", f"/api/v1/tickets/{code}", "/api/v1/stats/summary",
                 "/api/v1/stats/trend", "/api/v1/hotline/lookup?phone=081234500001", "/api/v1/opd/tickets",
                 f"/api/v1/opd/tickets/{OWN}", "/api/v1/admin/outbox"):
        r = world.get(path, headers=key)
        assert r.status_code == 403, (path, r.status_code)
        assert "+6281234" not in r.text
    assert world.patch(f"/api/v1/tickets/{OWN}", json={"status": "diproses"}, headers=key).status_code == 403


def test_cli_still_creates_an_intake_key(world):
    from typer.testing import CliRunner

    from hub.cli import app

    res = CliRunner().invoke(app, ["opd", "key", "create", "Kiosk", "--role", "intake"])
    assert res.exit_code == 0, res.output
    key = re.search(r"sk_\S+", res.output).group(0)
    headers = {"Authorization": f"Bearer {key}"}
    assert world.get("/api/v1/tickets", headers=headers).status_code == 403
    assert world.post("/api/v1/intake/web", json={"text": "Lampu jalan mati di Durenan", "id": "k2"},
                      headers=headers).status_code == 202


# --- logout ends the session server-side -------------------------------------------------------

def test_a_cookie_kept_from_before_logout_no_longer_works(world):
    assert login(world, "operator").status_code == 303
    page = world.get("/tiket")
    assert page.status_code == 200
    kept = dict(world.cookies)
    assert world.post("/keluar", data={"csrf": csrf_of(page.text)}, follow_redirects=False).status_code == 303
    world.cookies.clear()
    for k, v in kept.items():
        world.cookies.set(k, v)
    assert world.get("/tiket", follow_redirects=False).status_code == 303  # back to the login page
    assert world.get("/api/v1/tickets").status_code == 401
    world.cookies.clear()
    assert login(world, "operator", PASSWORD).status_code == 303  # a new login works
    assert world.get("/tiket").status_code == 200


# --- attachment links --------------------------------------------------------------------------

def test_only_allowed_http_links_are_rendered_as_links(world):
    from hub.db import session_scope
    from hub.models import Ticket

    bad = ["javascript:alert(1)", "JaVaScRiPt:alert(2)", " javascript:alert(3)", "data:text/html,<b>x</b>",
           "java\tscript:alert(4)", "//evil.example/x.png", "https://evil.example/x.png", "vbscript:x",
           "/lampiran/../../etc/passwd".replace("..", "..//.."), "http:\\\\evil.example"]
    good = ["/lampiran/abc123.jpg", "https://api.twilio.com/2010-04-01/Media/ME1", "http://127.0.0.1:8000/lampiran/x.png"]
    with session_scope() as s:
        t = s.scalars(select(Ticket).where(Ticket.code == OWN)).one()
        t.attachments = [{"url": u, "kind": "photo"} for u in bad + good]
    login(world, "admin")
    html = world.get(f"/tiket/{OWN}").text
    hrefs = re.findall(r'href="([^"]*)"', html)
    for u in good:
        assert u in hrefs
    for h in hrefs:
        low = h.strip().lower()
        assert not low.startswith(("javascript", "data:", "vbscript", "//", "java")), h
        assert "evil.example" not in h


def test_safe_link_rules():
    from hub.web.pages import safe_link

    assert safe_link("javascript:alert(1)") is None
    assert safe_link("data:image/png;base64,AAAA") is None
    assert safe_link("https://api.twilio.com/x") == "https://api.twilio.com/x"
    assert safe_link("https://www.lapor.go.id/x") == "https://www.lapor.go.id/x"
    assert safe_link("https://lapor.go.id.evil.example/x") is None
    assert safe_link("ftp://api.twilio.com/x") is None
    assert safe_link(None) is None
