"""PSC 119 / BPBD hotline console: the call form (fixture table through the shared runner),
strict validation, routing at once with urgency, lists for the console, caller lookup, auth."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from tests.lines.runner import Case, run_case

FIXTURES = Path(__file__).parent / "fixtures"
CONFIG = Path(__file__).parents[3] / "config" / "trenggalek"
WIB = ZoneInfo("Asia/Jakarta")

CASES = [
    Case("psc119 accident, every field", "call__psc119_kecelakaan.json", status=201, channel="psc119",
         provider_id="console-7f3a-0001", sender="081234567890", reply='"urgency":"darurat"',
         fields={"incident_type": "kecelakaan", "kecamatan": "Pogalan", "desa": "Ngulankulon", "dusun": "Krajan",
                 "rt_rw": "003/002", "landmark": "depan Masjid Al-Ikhlas", "caller_name": "Slamet Riyadi",
                 "caller_phone": "081234567890", "people_affected": 2, "triage_colour": "merah",
                 "action_taken": "Ambulans diberangkatkan, koordinasi dengan Polsek Pogalan",
                 "team": "PSC 1 (ambulans)"}),
    Case("psc119 birth, kecamatan by code, local time", "call__psc119_melahirkan_local_time.json", status=201,
         channel="psc119", reply='"urgency":"darurat"',
         fields={"incident_type": "ibu melahirkan", "hotline_type": "ibu melahirkan", "kecamatan": "Dongko",
                 "desa": "Dongko", "triage_colour": "kuning"}),
    Case("bpbd flood", "call__bpbd_banjir.json", status=201, channel="bpbd", reply='"opd":"BPBD"',
         fields={"incident_type": "banjir", "kecamatan": "Watulimo", "desa": "Prigi", "people_affected": 40,
                 "team": "TRC BPBD"}),
    Case("bpbd alias puting beliung", "call__bpbd_puting_beliung_alias.json", status=201, channel="bpbd",
         reply='"urgency":"darurat"', fields={"hotline_type": "angin kencang", "people_affected": 0}),
    Case("incident type of the other line", "call__psc119_unknown_type.json", status=422,
         reply="unknown incident_type 'banjir' for psc119"),
    Case("bad triage colour", "call__psc119_bad_colour.json", status=422,
         reply="triage_colour 'biru' must be one of merah, kuning, hijau, hitam"),
    Case("colour on bpbd", "call__bpbd_with_colour.json", status=422, reply="only PSC 119 triages"),
    Case("unknown kecamatan", "call__unknown_kecamatan.json", status=422, reply="unknown kecamatan 'Tulungagung'"),
    Case("desa of another kecamatan", "call__desa_not_in_kecamatan.json", status=422,
         reply="desa 'Prigi' is not in kecamatan Pogalan"),
    Case("bad RT/RW", "call__bad_rt_rw.json", status=422, reply="rt_rw"),
    Case("bad phone", "call__bad_phone.json", status=422, reply="is not a phone number"),
    Case("missing kecamatan", "call__missing_kecamatan.json", status=422, reply="kecamatan"),
    Case("negative people", "call__negative_people.json", status=422, reply="people_affected"),
    Case("unknown field", "call__unknown_field.json", status=422, reply="nik"),
    Case("call in the future", "call__future.json", status=422, reply="in the future"),
]


def _line_of(case: Case) -> str:
    return "bpbd" if "bpbd" in case.fixture else "psc119"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_call_form(case, sqlite_client, admin_headers):
    resp, stored = run_case(sqlite_client, f"/api/v1/hotline/{_line_of(case)}/calls", FIXTURES, case,
                            prepare=lambda url, body, h: {**h, **admin_headers},
                            reply_of=lambda r: json.dumps(r.json(), separators=(",", ":"), ensure_ascii=False))
    if stored is not None:  # stored, routed at once: the response carries the ticket
        body = resp.json()
        assert body["processed"] is True and body["code"] == stored.ticket_code
        t = body["ticket"]
        assert t["status"] == "menunggu" and t["opd"] and t["opd_name"] and t["due_at"]
        assert "[PSC 119" in stored.text or "[BPBD" in stored.text


def test_call_becomes_darurat_ticket_with_sms_receipt(client, admin_headers):
    from hub.models import Outbox, Ticket

    resp, _ = run_case(client, "/api/v1/hotline/psc119/calls", FIXTURES, CASES[0],
                       prepare=lambda url, body, h: {**h, **admin_headers})
    body = resp.json()
    from hub.db import get_engine

    with Session(get_engine()) as s:
        t = s.scalars(select(Ticket).where(Ticket.code == body["code"])).one()
        assert (t.urgency, t.opd_code, t.channel) == ("darurat", "DINKES", "psc119")
        assert t.kecamatan_code == "35.03.12" and t.desa_code == "35.03.12.2005"
        assert t.reporter_phone == "+6281234567890" and t.reporter_name == "Slamet Riyadi"
        assert t.created_at.replace(tzinfo=t.created_at.tzinfo or timezone.utc) == datetime(2026, 11, 28, 3, 10, tzinfo=WIB)
        assert "Dsn. Krajan" in (t.address or "") and "Kecelakaan" in t.text_original
        receipts = list(s.scalars(select(Outbox).where(Outbox.kind == "reply", Outbox.ticket_id == t.id)))
    assert len(receipts) == 1 and receipts[0].payload["to"] == "+6281234567890"
    assert receipts[0].payload["channel"] == "sms" and body["code"] in receipts[0].payload["text"]
    # the same console id again (a retry after a dropped connection): same ticket, nothing new
    again = client.post("/api/v1/hotline/psc119/calls", headers=admin_headers,
                        json=json.loads((FIXTURES / CASES[0].fixture).read_text()))
    assert again.status_code == 201 and again.json()["code"] == body["code"] and again.json()["duplicate"]
    with Session(get_engine()) as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 1


# What the normalizer makes of every console incident type (no other words in the call).
URGENCY = [
    ("psc119", "kecelakaan", "darurat"), ("psc119", "penyakit jantung", "darurat"),
    ("psc119", "ibu melahirkan", "darurat"), ("psc119", "stroke", "darurat"),
    ("psc119", "sesak napas", "darurat"), ("psc119", "keracunan", "darurat"),
    ("psc119", "tidak sadarkan diri", "darurat"),
    ("psc119", "odgj", "tinggi"), ("psc119", "rujukan", "tinggi"), ("psc119", "sakit lainnya", "tinggi"),
    ("bpbd", "banjir", "darurat"), ("bpbd", "tanah longsor", "darurat"), ("bpbd", "angin kencang", "darurat"),
    ("bpbd", "kebakaran", "darurat"), ("bpbd", "gempa", "darurat"), ("bpbd", "orang tenggelam", "darurat"),
    ("bpbd", "pohon tumbang", "tinggi"), ("bpbd", "kekeringan", "tinggi"),
    ("bpbd", "gelombang tinggi", "darurat"),
]


@pytest.mark.parametrize("line,itype,urgency", URGENCY)
def test_incident_type_urgency(line, itype, urgency):
    """Console form -> adapter -> normalizer, without HTTP or database (the call path is
    covered above; this pins the urgency of every configured type)."""
    from hub.lines.hotline.calls import hotline_spec
    from hub.normalizer_loader import load_normalizer_regency
    from normalizer import normalize
    from adapters.hotline import HotlineAdapter

    msg = HotlineAdapter(hotline_spec(str(CONFIG))).from_console(line, {"kecamatan": "Trenggalek", "incident_type": itype})
    draft = normalize(msg, load_normalizer_regency(CONFIG), datetime.now(timezone.utc))
    assert draft.urgency.value == urgency


def test_triage_colour_raises_urgency(sqlite_client, admin_headers):
    r = sqlite_client.post("/api/v1/hotline/psc119/calls", headers=admin_headers,
                           json={"kecamatan": "Suruh", "incident_type": "sakit lainnya", "triage_colour": "merah"})
    assert r.json()["ticket"]["urgency"] == "darurat"


@pytest.fixture
def operator_login(sqlite_client):
    """Stands in for the web console's session cookie (hub/web contributes the real resolver)."""
    from hub.auth import Principal

    def resolve(request):
        role = request.headers.get("x-test-role")
        return Principal(kind="user", name=f"{role}1", role=role) if role else None

    sqlite_client.app.state.session_resolvers.append(resolve)
    yield


@pytest.mark.parametrize("who,post,get", [
    ("none", 401, 401), ("intake key", 201, 200), ("opd key", 403, 403), ("operator user", 201, 200),
    ("pimpinan user", 403, 200), ("opd user", 403, 403),
])
def test_auth(sqlite_client, make_key, seeded, operator_login, who, post, get):
    headers = {"none": {}, "intake key": make_key("intake"), "opd key": make_key("opd", "PUPR"),
               "operator user": {"x-test-role": "operator"}, "pimpinan user": {"x-test-role": "pimpinan"},
               "opd user": {"x-test-role": "opd"}}[who]
    r = sqlite_client.post("/api/v1/hotline/bpbd/calls", headers=headers,
                           json={"kecamatan": "Pule", "incident_type": "tanah longsor"})
    assert r.status_code == post, r.text
    assert sqlite_client.get("/api/v1/hotline/bpbd/incident-types", headers=headers).status_code == get
    # earlier tickets by a caller's phone: people's data, not for a key that only submits
    lookup = 403 if who == "intake key" else get
    assert sqlite_client.get("/api/v1/hotline/lookup?phone=081234567890", headers=headers).status_code == lookup


def test_unknown_line_and_bad_json(sqlite_client, admin_headers):
    r = sqlite_client.post("/api/v1/hotline/damkar/calls", headers=admin_headers,
                           json={"kecamatan": "Pule", "incident_type": "kebakaran"})
    assert r.status_code == 404 and "psc119" in r.json()["detail"]
    r = sqlite_client.post("/api/v1/hotline/bpbd/calls", content=b"{not json",
                           headers={**admin_headers, "Content-Type": "application/json"})
    assert r.status_code == 400
    assert sqlite_client.get("/api/v1/hotline/damkar/incident-types", headers=admin_headers).status_code == 404


def test_lists_for_the_console(sqlite_client, admin_headers):
    r = sqlite_client.get("/api/v1/hotline/psc119/incident-types", headers=admin_headers).json()
    keys = [t["key"] for t in r["incident_types"]]
    assert {"kecelakaan", "penyakit jantung", "ibu melahirkan", "odgj", "stroke"} <= set(keys)
    assert r["triage_colours"] == ["merah", "kuning", "hijau", "hitam"]
    r = sqlite_client.get("/api/v1/hotline/bpbd/incident-types", headers=admin_headers).json()
    assert r["triage_colours"] == [] and {"banjir", "tanah longsor", "angin kencang", "pohon tumbang", "kebakaran",
                                           "gelombang tinggi", "kekeringan", "gempa"} <= {t["key"] for t in r["incident_types"]}
    places = sqlite_client.get("/api/v1/hotline/places", headers=admin_headers).json()["kecamatan"]
    assert len(places) == 14
    pogalan = next(k for k in places if k["name"] == "Pogalan")
    assert pogalan["code"] == "35.03.12" and {"code": "35.03.12.2005", "name": "Ngulankulon"} in pogalan["desa"]


def test_lookup_earlier_calls_from_the_same_number(client, admin_headers):
    from hub.processing import drain

    for i, (phone, itype) in enumerate([("081234567890", "stroke"), ("+62 812-3456-7890", "sesak napas"),
                                        ("085700000001", "keracunan")]):
        r = client.post("/api/v1/hotline/psc119/calls", headers=admin_headers,
                        json={"kecamatan": "Kampak", "incident_type": itype, "caller_phone": phone,
                              "called_at": f"2026-11-2{i + 1}T10:00:00+07:00"})
        assert r.status_code == 201
    # an anonymous report from the same number must never be revealed by a phone lookup
    r = client.post("/api/v1/intake/sms", headers=admin_headers,
                    json={"text": "Pungli di kantor desa", "sender": "081234567890", "fields": {"anonymous": True}})
    assert r.status_code == 202
    drain()
    got = client.get("/api/v1/hotline/lookup", params={"phone": "0812 3456 7890"}, headers=admin_headers).json()
    assert got["phone"] == "+6281234567890"
    assert [t["incident_type"] for t in got["tickets"]] == ["sesak napas", "stroke"]  # newest first
    assert client.get("/api/v1/hotline/lookup?phone=abc", headers=admin_headers).status_code == 422


# --- adapter pieces ---------------------------------------------------------------------------

@pytest.mark.parametrize("value,clock,expected", [
    ("20 Agustus 2021 07:15", None, datetime(2021, 8, 20, 7, 15, tzinfo=WIB)),
    ("Jumat, 20 Agustus 2021 pukul 07.15 WIB", None, datetime(2021, 8, 20, 7, 15, tzinfo=WIB)),
    ("20/08/2021 07.15", None, datetime(2021, 8, 20, 7, 15, tzinfo=WIB)),
    ("20-08-21 7:05", None, datetime(2021, 8, 20, 7, 5, tzinfo=WIB)),
    ("2021-08-20 07:15:30", None, datetime(2021, 8, 20, 7, 15, 30, tzinfo=WIB)),
    ("20 Agt 2021", "07.15", datetime(2021, 8, 20, 7, 15, tzinfo=WIB)),
    ("3 Des 2020", None, datetime(2020, 12, 3, 0, 0, tzinfo=WIB)),
    (datetime(2021, 8, 20, 7, 15), None, datetime(2021, 8, 20, 7, 15, tzinfo=WIB)),
    (44428.302083333336, None, datetime(2021, 8, 20, 7, 15, tzinfo=WIB)),  # an Excel serial date
    (44428, 0.3020833, datetime(2021, 8, 20, 7, 15, tzinfo=WIB)),
])
def test_parse_when(value, clock, expected):
    from adapters.hotline import parse_when

    assert parse_when(value, WIB, clock) == expected


@pytest.mark.parametrize("value", ["31/02/2021 07:00", "20 Agustos 2021", "kemarin", "", "25:00", "20/08/2021 25.00"])
def test_parse_when_rejects(value):
    from adapters.hotline import parse_when

    with pytest.raises(ValueError):
        parse_when(value, WIB)


@pytest.mark.parametrize("value,expected", [
    ("0812-3456-7890", "081234567890"), (81234567890.0, "081234567890"), ("+62 812 3456 7890", "+6281234567890"),
    ("tidak tahu", None), ("-", None), ("12", None),
])
def test_phone_digits(value, expected):
    from adapters.hotline import phone_digits

    assert phone_digits(value) == expected


def test_adapter_send_is_permanent():
    import asyncio

    from adapters.base import OutboundMessage, PermanentError, load_adapter
    from hub.lines.hotline.calls import hotline_spec

    cls = load_adapter("hotline")
    adapter = cls(hotline_spec(str(CONFIG)))
    assert adapter.name == "hotline"
    with pytest.raises(PermanentError):
        asyncio.run(adapter.send(OutboundMessage(channel="psc119", to="+6281234567890", text="x")))


@pytest.mark.parametrize("edit,problem", [
    (lambda s: s.replace('stroke: {label: "Stroke",', 'stroke: {label: "Stroke", routing: strok,'),
     "routing 'strok' is not an incident type"),
    (lambda s: s.replace("      gempa: {", "      hujan es: {label: Hujan es}\n      gempa: {"),
     "hujan es: the type is not an incident type in routing.yaml"),
    (lambda s: s.replace("  bpbd:\n", "  damkar:\n"), "not a channel in channels.yaml"),
    (lambda s: s.replace("aliases: [cva]", "aliases: [cva, sesak]"), "used twice"),
])
def test_hotlines_config_errors(tmp_path, edit, problem):
    import shutil

    from hub.config import ConfigError
    from hub.lines.hotline.calls import hotline_spec

    d = tmp_path / "cfg"
    shutil.copytree(CONFIG, d)
    (d / "hotlines.yaml").write_text(edit((d / "hotlines.yaml").read_text()))
    with pytest.raises(ConfigError, match=problem) as err:
        hotline_spec(str(d))
    assert err.value.line is not None
