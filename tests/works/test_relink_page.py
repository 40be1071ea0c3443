"""The "Proyek terkait" section of the staff ticket page: it shows the project a citizen's
ticket is linked to and how, and the roles the works API lets relink (admin, operator, an OPD
for its own tickets) relink it there through the same service function, with CSRF; the others
get 403 (pimpinan) or 404 (another OPD's ticket) and nothing changes."""
from __future__ import annotations

import re
from datetime import datetime, timezone

from sqlalchemy import select

from tests.works.test_pages import _csrf, _login


def _citizen_ticket(text: str = "Proyek 41000000 tidak ada pekerjaan sama sekali") -> str:
    """A report naming project 41000000 through the real intake: linked by its code, at PUPR."""
    from hub.intake import accept_many
    from hub.processing import drain
    from hub.db import session_scope
    from hub.models import Ticket
    from normalizer.types import InboundMessage

    accept_many([InboundMessage(channel="sms", text=text, sender="+6281299990000", provider_id="rl1",
                                received_at=datetime.now(timezone.utc))])
    drain()
    with session_scope() as s:
        return s.scalars(select(Ticket.code)).one()


def _state(code: str) -> tuple[str | None, str | None, str, int]:
    """(linked project code, link method, ticket OPD, number of events) of the ticket."""
    from hub.db import session_scope
    from hub.models import Ticket, TicketEvent
    from hub.works.models import WorksProject, WorksReport

    with session_scope() as s:
        t = s.scalars(select(Ticket).where(Ticket.code == code)).one()
        row = s.execute(select(WorksProject.code, WorksReport.method).join(
            WorksReport, WorksReport.project_id == WorksProject.id).where(WorksReport.ticket_id == t.id)).first()
        n = len(s.scalars(select(TicketEvent.id).where(TicketEvent.ticket_id == t.id)).all())
        return (row[0] if row else None), (row[1] if row else None), t.opd_code, n


def test_operator_relinks_through_the_page_and_the_project_page_shows_it(client, register, make_key):
    code = _citizen_ticket()
    assert _state(code)[:3] == ("41000000", "code", "PUPR")
    from hub.db import session_scope
    from hub.models import Ticket, TicketEvent

    with session_scope() as s:  # the citizen stood next to project 41000007: it is the nearest candidate
        t = s.scalars(select(Ticket).where(Ticket.code == code)).one()
        t.latitude, t.longitude = -8.1003, 111.6002
    _login(client, "operator1", "operator")
    page = client.get(f"/tiket/{code}")
    assert page.status_code == 200 and "Proyek terkait" in page.text
    section = page.text[page.text.index('id="proyek-terkait"'):]
    assert "41000000" in section and "kode proyek disebut dalam laporan" in section
    options = re.findall(r'<option value="(\d+)"', section)
    assert options[0] == "41000007" and "(tertaut sekarang)" in section and "Tautkan" in section

    r = client.post(f"/tiket/{code}/proyek", data={"csrf": _csrf(client, f"/tiket/{code}"), "pilihan": "41000007"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/tiket/{code}"
    page = client.get(f"/tiket/{code}").text
    assert f"Tiket {code} ditautkan ke proyek 41000007" in page and "dialihkan ke" in page
    section = page[page.index('id="proyek-terkait"'):]
    assert "ditautkan petugas oleh operator1" in section
    assert _state(code)[:3] == ("41000007", "manual", "PKPP")
    with session_scope() as s:  # who did it, as the API records it
        ev = s.scalars(select(TicketEvent).where(TicketEvent.note.like("Ditautkan ke proyek 41000007%"))).one()
        assert ev.actor == "user:operator1" and ev.data["method"] == "manual"
    assert code in client.get("/proyek/41000007").text and code not in client.get("/proyek/41000000").text
    t = client.get(f"/api/v1/tickets/{code}", headers=make_key("admin")).json()
    assert t["opd"] == "PKPP"


def test_unknown_code_is_refused_in_indonesian_and_changes_nothing(client, register):
    code = _citizen_ticket()
    before = _state(code)
    _login(client, "admin1", "admin")
    tok = _csrf(client, f"/tiket/{code}")
    r = client.post(f"/tiket/{code}/proyek", data={"csrf": tok, "kode": "99999999"}, follow_redirects=False)
    assert r.status_code == 400
    assert "Proyek dengan kode 99999999 tidak ditemukan" in r.text and 'id="proyek-err"' in r.text
    assert f"Tiket {code}" in r.text  # the ticket page again, the form open next to the reason
    r = client.post(f"/tiket/{code}/proyek", data={"csrf": tok, "kode": "41000000"}, follow_redirects=False)
    assert r.status_code == 400 and "sudah tertaut ke proyek 41000000" in r.text
    r = client.post(f"/tiket/{code}/proyek", data={"csrf": tok}, follow_redirects=False)
    assert r.status_code == 400 and "Pilih proyek atau tulis kode proyeknya" in r.text
    assert _state(code) == before


def test_roles_without_rights_get_403_or_404_and_csrf_is_enforced(client, register):
    code = _citizen_ticket()
    before = _state(code)
    _login(client, "bupati1", "pimpinan")
    page = client.get(f"/tiket/{code}").text
    assert "Proyek terkait" in page and 'id="form-proyek"' not in page  # read-only for pimpinan
    r = client.post(f"/tiket/{code}/proyek", data={"csrf": _csrf(client, f"/tiket/{code}"), "kode": "41000007"})
    assert r.status_code == 403
    _login(client, "pkpp1", "opd", "PKPP")  # another OPD: the ticket looks absent, as in the API
    r = client.post(f"/tiket/{code}/proyek", data={"csrf": _csrf(client, "/opd"), "kode": "41000007"})
    assert r.status_code == 404
    _login(client, "pupr1", "opd", "PUPR")
    assert client.post(f"/tiket/{code}/proyek", data={"kode": "41000007"}).status_code == 403  # no CSRF
    assert client.post(f"/tiket/{code}/proyek", data={"csrf": "palsu", "kode": "41000007"}).status_code == 403
    assert _state(code) == before
    # the executing OPD may: the ticket goes to PKPP with the project, out of PUPR's sight
    r = client.post(f"/tiket/{code}/proyek", data={"csrf": _csrf(client, f"/tiket/{code}"), "kode": "41000007"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/opd"
    assert "tidak lagi tampil untuk OPD Anda" in client.get("/opd").text
    assert _state(code)[:3] == ("41000007", "manual", "PKPP")


def test_unlinked_ticket_and_no_register(client, seeded):
    from hub.db import session_scope
    from tests.web.conftest import make_ticket
    from tests.works.conftest import make_project

    with session_scope() as s:
        make_ticket(s, "PUPR001", "PUPR", kecamatan="35.03.11")
    _login(client, "admin1", "admin")
    assert "Proyek terkait" not in client.get("/tiket/PUPR001").text  # no works register: no section
    with session_scope() as s:
        make_project(s)  # in kecamatan 35.03.11
    page = client.get("/tiket/PUPR001").text
    assert "Belum terkait proyek" in page and "kecamatan yang sama" in page
    r = client.post("/tiket/PUPR001/proyek", data={"csrf": _csrf(client, "/tiket/PUPR001"), "pilihan": "41000000"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert _state("PUPR001")[:3] == ("41000000", "manual", "PUPR")



def test_candidates_are_the_nearest_by_point_or_road_line(engine, seeded):
    """The nearest five: a road by its line (minus its buffer), other projects by their point,
    the current project left out; a ticket without coordinates gets its kecamatan's."""
    from sqlmodel import Session

    from hub.models import Ticket
    from hub.works.ticket_page import candidates
    from tests.works.conftest import make_project

    with Session(engine, expire_on_commit=False) as s:
        far = [make_project(s, code=f"4300000{i}", number=None, lat=-8.0, lon=111.5 + 0.01 * i, kec="35.03.01")[0]
               for i in range(6)]  # 1.1 km apart eastwards from 111.5
        road = make_project(s, code="43000010", number=None, lat=None, lon=None, buffer_m=15,
                            line=[[-7.993, 111.52], [-7.993, 111.56]], kec="35.03.01")[0]  # 778 m north
        s.commit()
        t = Ticket(code="NEAR001", channel="sms", text_original="x", text_clean="x", status="menunggu",
                   latitude=-8.0, longitude=111.532)
        got = candidates(s, t, far[3])
        assert [c["code"] for c in got] == ["43000010", "43000004", "43000002", "43000005", "43000001"]
        assert [c["where"] for c in got[:3]] == ["763 m", "881 m", "1,3 km"]
        t.latitude = t.longitude = None
        t.kecamatan_code = "35.03.01"
        assert len(candidates(s, t, None)) == 5 and candidates(s, t, None)[0]["where"] == "kecamatan yang sama"
