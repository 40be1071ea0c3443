"""Open311 GeoReport v2: our read API (no personal data), POST intake from other systems, and
our client delivering to an OPD system that speaks GeoReport v2 (a local fake server)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from sqlalchemy import select
from sqlmodel import Session

from adapters import open311_client
from adapters.base import PermanentError, RetryableError
from hub import outbox
from hub.db import get_engine, session_scope
from hub.models import Opd, Outbox, RawMessage, TicketEvent
from hub.tickets import add_event, queue_delivery
from tests.delivery.helpers import make_ticket


@pytest.fixture
def tickets(sqlite_client, seeded):
    with session_scope() as s:
        make_ticket(s, opd="PUPR", code="OPN2345", text="Jalan berlubang, hubungi saya 081234567890 atau NIK 3503011234560001",
                        text_clean="jalan berlubang, hubungi saya 081234567890 atau nik 3503011234560001",
                        reporter_phone="+6281234567890", reporter_name="Siti Aminah", latitude=-8.0512345,
                        longitude=111.7098765, address="Rumah Bu Siti, RT 02 RW 03", desa_code="35.03.11.1004")
        b = make_ticket(s, opd="PUPR", code="CLS2345", status="selesai")
        add_event(s, b, "key:SIMPUPR", "status", note="Sudah ditambal tim UPT", from_status="menunggu", to_status="selesai")
        make_ticket(s, opd="DLH", code="DLH2345", category="LINGKUNGAN HIDUP DAN KEHUTANAN", subcategory="SAMPAH",
                    text="Sampah menumpuk", text_clean="sampah menumpuk")
    return sqlite_client


def test_services(tickets):
    r = tickets.get("/open311/v2/services.json")
    assert r.status_code == 200
    by_code = {s["service_code"]: s for s in r.json()}
    assert by_code["jalan-rusak"]["group"] == "Dinas Pekerjaan Umum dan Penataan Ruang"
    assert by_code["jalan-rusak"]["service_name"] == "Jalan Berlubang" and by_code["jalan-rusak"]["metadata"] is False
    assert "lainnya" in by_code
    r = tickets.get("/open311/v2/services.yaml")
    assert r.status_code == 400 and r.json()[0]["code"] == 400


def test_requests_carry_no_personal_data(tickets):
    r = tickets.get("/open311/v2/requests.json")
    assert r.status_code == 200
    items = {i["service_request_id"]: i for i in r.json()}
    assert set(items) == {"OPN2345", "CLS2345", "DLH2345"}
    raw = r.text
    for secret in ("081234567890", "3503011234560001", "6281234567890", "Siti", "RT 02", "Rumah Bu"):
        assert secret not in raw, secret
    a = items["OPN2345"]
    assert a["status"] == "open" and a["service_code"] == "jalan-rusak"
    assert a["agency_responsible"] == "Dinas Pekerjaan Umum dan Penataan Ruang"
    assert "**********90" in a["description"]
    assert a["lat"] == -8.051 and a["long"] == 111.71
    assert a["address"].endswith("Kec. Trenggalek") and a["address_id"] == "35.03.11.1004"
    assert a["requested_datetime"].endswith("Z") and a["expected_datetime"]
    c = items["CLS2345"]
    assert c["status"] == "closed" and c["status_notes"] == "Sudah ditambal tim UPT"


@pytest.mark.parametrize("query,codes", [
    ("status=open", {"OPN2345", "DLH2345"}), ("status=closed", {"CLS2345"}),
    ("service_code=jalan-rusak", {"OPN2345", "CLS2345"}), ("service_request_id=opn2345,DLH2345", {"OPN2345", "DLH2345"}),
    ("start_date=2999-01-01T00:00:00Z", set()), ("end_date=2000-01-01T00:00:00Z", set()),
])
def test_request_filters(tickets, query, codes):
    r = tickets.get(f"/open311/v2/requests.json?{query}")
    assert r.status_code == 200
    assert {i["service_request_id"] for i in r.json()} == codes


@pytest.mark.parametrize("query", ["status=pending", "start_date=yesterday", "service_code=nope"])
def test_request_filter_errors(tickets, query):
    r = tickets.get(f"/open311/v2/requests.json?{query}")
    assert r.status_code == 400 and r.json()[0]["description"]


def test_one_request(tickets):
    r = tickets.get("/open311/v2/requests/CLS2345.json")
    assert r.status_code == 200 and [i["service_request_id"] for i in r.json()] == ["CLS2345"]
    r = tickets.get("/open311/v2/requests/NOPE234.json")
    assert r.status_code == 404 and r.json() == [{"code": 404, "description": "service request NOPE234 not found"}]


def test_post_intake(tickets, make_key):
    key = make_key("intake", name="SIMTARU").get("Authorization")[7:]
    form = {"api_key": key, "service_code": "jalan-rusak", "lat": "-8.05", "long": "111.71",
            "description": "Jalan berlubang di depan pasar", "first_name": "Budi", "phone": "081234567890",
            "media_url": "https://simtaru.example/f/1.jpg"}
    r = tickets.post("/open311/v2/requests.json", data=form)
    assert r.status_code == 200, r.text
    [answer] = r.json()
    code = answer["service_request_id"]
    with Session(get_engine()) as s:
        raw = s.scalars(select(RawMessage).where(RawMessage.ticket_code == code)).one()
    assert raw.channel == "api" and raw.message["fields"]["source"] == "open311"
    assert raw.message["latitude"] == -8.05
    assert raw.message["fields"]["open311_service_code"] == "jalan-rusak"
    assert raw.message["attachments"][0]["url"] == "https://simtaru.example/f/1.jpg"
    # the same request again (a retry) keeps its code
    again = tickets.post("/open311/v2/requests.json", data=form).json()[0]["service_request_id"]
    assert again == code


@pytest.mark.parametrize("change,status", [
    ({"api_key": ""}, 403), ({"api_key": "sk_bogus_key"}, 403), ({"service_code": ""}, 400),
    ({"service_code": "nope"}, 400), ({"description": ""}, 400), ({"lat": "abc"}, 400),
    ({"lat": "", "long": ""}, 400), ({"lat": "95"}, 400), ({"media_url": "file:///etc/passwd"}, 400),
])
def test_post_intake_errors(tickets, make_key, change, status):
    key = make_key("intake").get("Authorization")[7:]
    form = {"api_key": key, "service_code": "jalan-rusak", "lat": "-8.05", "long": "111.71", "description": "x"}
    form.update(change)
    r = tickets.post("/open311/v2/requests.json", data=form)
    assert r.status_code == status and r.json()[0]["code"] == status
    with Session(get_engine()) as s:
        assert s.scalars(select(RawMessage)).all() == []


def test_opd_key_may_not_post(tickets, make_key):
    key = make_key("opd", "PUPR").get("Authorization")[7:]
    r = tickets.post("/open311/v2/requests.json", data={"api_key": key, "service_code": "jalan-rusak",
                                                         "address_string": "Pasar Pon", "description": "x"})
    assert r.status_code == 403


class FakeGeoReport:
    """A GeoReport v2 server of an OPD: answers scripted statuses, records the forms."""

    def __init__(self):
        self.forms: list[dict[str, str]] = []
        self.answers: list[tuple[int, object]] = []
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                fake.forms.append({k: v[0] for k, v in parse_qs(body).items()})
                status, doc = fake.answers.pop(0) if fake.answers else (201, [{"service_request_id": "SR-1", "service_notice": "ok"}])
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/open311/v2"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def georeport():
    g = FakeGeoReport()
    yield g
    g.close()


TARGET = dict(api_key="k-123", service_code="042", jurisdiction_id="trenggalekkab.go.id")


@pytest.mark.parametrize("answer,error,provider_id", [
    ((201, [{"service_request_id": "SR-9", "service_notice": "Diterima"}]), None, "SR-9"),
    ((200, [{"token": "tok-77"}]), None, "tok-77"),
    ((400, [{"code": 400, "description": "service_code not found"}]), PermanentError, None),
    ((403, [{"code": 403, "description": "invalid api_key"}]), PermanentError, None),
    ((503, {"error": "down"}), RetryableError, None),
    ((200, {"weird": True}), PermanentError, None),
])
async def test_client(georeport, answer, error, provider_id):
    georeport.answers.append(answer)
    target = open311_client.Open311Target(endpoint=georeport.endpoint, **TARGET)
    req = open311_client.ServiceRequest(description="Jalan rusak", lat=-8.05, long=111.71,
                                        attributes=(("simpul_code", "K7X2M9P"),))
    if error:
        with pytest.raises(error):
            await open311_client.post_request(target, req)
    else:
        assert (await open311_client.post_request(target, req)).provider_id == provider_id
    form = georeport.forms[0]
    assert form["api_key"] == "k-123" and form["service_code"] == "042" and form["lat"] == "-8.05"
    assert form["jurisdiction_id"] == "trenggalekkab.go.id" and form["attribute[simpul_code]"] == "K7X2M9P"


async def test_ticket_delivered_to_an_open311_opd(georeport, sqlite_url, seeded, monkeypatch):
    monkeypatch.setenv("SIMPUL_TEST_OPEN311_KEY", "k-123")
    with session_scope() as s:
        opd = s.get(Opd, "DLH")
        opd.delivery = {"type": "open311", "endpoint": georeport.endpoint, "api_key_env": "SIMPUL_TEST_OPEN311_KEY",
                        "service_code": "042"}
        t = make_ticket(s, opd="DLH", code="O3A2345", text="Sampah menumpuk di sungai", confidential=True,
                        reporter_phone="+6281234567890", address="Jembatan Ngemplak")
        queue_delivery(s, t, "ticket.created")
    assert await outbox.run_once(get_engine()) == 1
    [form] = georeport.forms
    assert form["description"] == "[Simpul O3A2345] Sampah menumpuk di sungai"
    # a human address (names, never a Kemendagri code), and no phone of a confidential reporter
    assert form["address_string"] == "Jembatan Ngemplak, Kec. Trenggalek, Kabupaten Trenggalek" and "phone" not in form
    with Session(get_engine()) as s:
        assert s.scalars(select(Outbox)).one().state == "done"
        ev = s.scalars(select(TicketEvent).where(TicketEvent.kind == "delivered")).one()
    assert ev.data["provider_id"] == "SR-1"


# --- XML, discovery, comma lists, error lists (issue #13 item 6) ----------------------------

def _xml(r):
    import xml.etree.ElementTree as ET

    assert r.headers["content-type"].startswith("text/xml"), r.headers["content-type"]
    return ET.fromstring(r.content)


def test_services_and_requests_as_xml_the_georeport_default(tickets):
    root = _xml(tickets.get("/open311/v2/services.xml"))
    assert root.tag == "services"
    jalan = next(s for s in root.findall("service") if s.findtext("service_code") == "jalan-rusak")
    assert jalan.findtext("service_name") == "Jalan Berlubang" and jalan.findtext("metadata") == "false"
    assert jalan.findtext("type") == "realtime" and jalan.findtext("group")
    root = _xml(tickets.get("/open311/v2/requests.xml"))
    assert root.tag == "service_requests"
    items = {r.findtext("service_request_id"): r for r in root.findall("request")}
    assert set(items) == {"OPN2345", "CLS2345", "DLH2345"}
    assert items["OPN2345"].findtext("lat") == "-8.051" and items["OPN2345"].findtext("status") == "open"
    assert items["CLS2345"].findtext("status_notes") == "Sudah ditambal tim UPT"
    assert items["OPN2345"].find("media_url") is not None  # empty elements are there, as in the spec
    assert b"081234567890" not in tickets.get("/open311/v2/requests.xml").content
    one = _xml(tickets.get("/open311/v2/requests/CLS2345.xml"))
    assert [r.findtext("service_request_id") for r in one.findall("request")] == ["CLS2345"]


def test_post_answers_in_xml(tickets, make_key):
    key = make_key("intake").get("Authorization")[7:]
    r = tickets.post("/open311/v2/requests.xml", data={"api_key": key, "service_code": "jalan-rusak",
                                                        "lat": "-8.05", "long": "111.71", "description": "Jalan rusak"})
    assert r.status_code == 200
    [req] = _xml(r).findall("request")
    assert len(req.findtext("service_request_id")) == 7
    bad = tickets.post("/open311/v2/requests.xml", data={"api_key": key, "service_code": "nope", "description": "x"})
    assert bad.status_code == 400 and _xml(bad).findtext("error/code") == "400"


@pytest.mark.parametrize("path", ["/open311/discovery", "/open311/v2/discovery"])
def test_discovery(tickets, path):
    doc = tickets.get(f"{path}.json").json()
    [endpoint] = doc["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2/") and "text/xml" in endpoint["formats"]
    root = _xml(tickets.get(f"{path}.xml"))
    assert root.tag == "discovery"
    assert root.findtext("endpoints/endpoint/specification") == "http://wiki.open311.org/GeoReport_v2"
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == ["text/xml", "application/json"]


def test_service_code_takes_a_comma_list(tickets):
    items = {i["service_request_id"]: i for i in tickets.get("/open311/v2/requests.json").json()}
    dlh = items["DLH2345"]["service_code"]
    assert dlh != "jalan-rusak"
    r = tickets.get(f"/open311/v2/requests.json?service_code=jalan-rusak,{dlh}")
    assert r.status_code == 200 and {i["service_request_id"] for i in r.json()} == {"OPN2345", "CLS2345", "DLH2345"}
    r = tickets.get(f"/open311/v2/requests.json?service_code={dlh}")
    assert {i["service_request_id"] for i in r.json()} == {"DLH2345"}
    r = tickets.get("/open311/v2/requests.xml?service_code=jalan-rusak,nope")
    assert r.status_code == 400 and "'nope'" in _xml(r).findtext("error/description")


@pytest.mark.parametrize("path,method,status", [
    ("/open311/v2/nothing.json", "get", 404), ("/open311/v2/nothing.xml", "get", 404),
    ("/open311/v2/services.json", "post", 405), ("/open311/v2/requests/ABC.xml", "delete", 405),
])
def test_4xx_are_georeport_error_lists(tickets, path, method, status):
    r = getattr(tickets, method)(path)
    assert r.status_code == status
    if path.endswith(".xml"):
        assert _xml(r).findtext("error/code") == str(status)
    else:
        [e] = r.json()
        assert e["code"] == status and e["description"]
    assert tickets.get("/api/v1/nothing").json() == {"detail": "Not Found"}  # elsewhere: unchanged


# --- attachments at signed hub URLs, human addresses (issue #13 item 5) ---------------------

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x00" * 64


async def test_open311_push_sends_a_telegram_photo_as_a_signed_hub_url_and_a_human_address(
        georeport, sqlite_client, seeded, monkeypatch, tmp_path):
    from urllib.parse import parse_qs, urlsplit

    from hub import media

    from hub.settings import reset_settings

    monkeypatch.setenv("SIMPUL_TEST_OPEN311_KEY", "k-123")
    monkeypatch.setenv("SIMPUL_DATA_DIR", str(tmp_path))
    reset_settings()
    media.store_telegram("AgACAgUAAxkBAAIBo311test", JPEG)  # fetched into the hub's storage at intake
    with session_scope() as s:
        opd = s.get(Opd, "DLH")
        opd.delivery = {"type": "open311", "endpoint": georeport.endpoint, "api_key_env": "SIMPUL_TEST_OPEN311_KEY",
                        "service_code": "042"}
        t = make_ticket(s, opd="DLH", code="O3B2345", text="Sampah menumpuk", desa_code="35.03.11.1003",
                        attachments=[{"url": "telegram-file:AgACAgUAAxkBAAIBo311test", "kind": "photo",
                                      "mime": "image/jpeg", "name": "photos/file_7.jpg"}])
        queue_delivery(s, t, "ticket.created")
    assert await outbox.run_once(get_engine()) == 1
    [form] = georeport.forms
    assert "telegram-file" not in json.dumps(form)
    assert form["address_string"] == "Desa Ngantru, Kec. Trenggalek, Kabupaten Trenggalek", form["address_string"]
    url = urlsplit(form["media_url"])
    assert url.path == "/media/O3B2345/0" and form["media_url"].startswith("http://127.0.0.1:8000/")
    r = sqlite_client.get(f"{url.path}?{url.query}")  # what a GeoReport server fetching the photo gets
    assert r.status_code == 200 and r.content == JPEG and r.headers["content-type"] == "image/jpeg"
    q = parse_qs(url.query)
    forged = sqlite_client.get(f"/media/O3B2345/0?exp={int(q['exp'][0]) + 3600}&sig={q['sig'][0]}")
    assert forged.status_code == 403  # an extended expiry is not signed
    assert sqlite_client.get("/media/O3B2345/0?exp=1&sig=" + media._sig("O3B2345", 0, 1)).status_code == 410
