"""Citizens as auditors: 300 generated reports (SMS, Telegram, web) around 50 projects - by
coordinates near a point or a road line, by the project's name, by its code - go through the
real intake and processing; >= 90 % are linked to the right project, none by a distance beyond
works.yaml link_distance_m, and every linked ticket is routed to the executor's OPD and copied
to the Inspektorat. Staff can relink."""
from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlmodel import Session

from hub.works import match as M
from tests.works.conftest import make_project

PLACES = ["Ngadirejo", "Sumberingin", "Karanganyar", "Prambon", "Kedungsigit", "Sukorejo", "Widoro", "Tasikmadu",
          "Prigi", "Salamwates", "Jombok", "Gador", "Sawahan", "Ngentrong", "Pandean", "Surenlor", "Nglongsor"]
OPDS = ["PUPR", "PKPP", "DINDIK", "DINKES"]
M_PER_DEG = 111_195.0


def _offset(lat: float, lon: float, metres: float, bearing: float) -> tuple[float, float]:
    dlat = metres * math.cos(bearing) / M_PER_DEG
    dlon = metres * math.sin(bearing) / (M_PER_DEG * math.cos(math.radians(lat)))
    return lat + dlat, lon + dlon


def _projects(s: Session) -> list[dict]:
    out = []
    pairs = [(a, b) for a in PLACES for b in PLACES if a < b]
    random.Random(4).shuffle(pairs)
    for i in range(50):
        lat, lon = -8.02 - 0.015 * (i // 10), 111.55 + 0.015 * (i % 10)  # ~1.7 km apart
        a, b = pairs[i]
        line = None
        if i % 5 == 0:  # a road: 1.2 km east-west through the point, 15 m buffer
            line = [[lat, lon - 0.0055], [lat, lon + 0.0055]]
        p, _, _ = make_project(s, code=str(42_000_000 + i * 11), opd=OPDS[i % 4], number=f"028/{i}/2026",
                               lat=None if line else lat, lon=None if line else lon, line=line,
                               buffer_m=15 if line else None, name=f"Rehabilitasi Jalan Ruas {a} - {b}")
        out.append({"id": p.id, "code": p.code, "opd": OPDS[i % 4], "lat": lat, "lon": lon, "a": a, "b": b,
                    "line": line})
    return out


def _messages(projects: list[dict]):
    from normalizer.types import InboundMessage

    rnd = random.Random(16)
    now = datetime.now(timezone.utc)
    msgs, truth = [], {}
    for k in range(300):
        p = projects[k % 50]
        kind = ["near", "near", "name", "code", "far"][k % 5]
        lat = lon = None
        if kind == "near":
            d = rnd.uniform(0, 235)
            if p["line"]:  # anywhere along the road, off to one side
                base = (p["lat"], p["lon"] + rnd.uniform(-0.005, 0.005))
                lat, lon = _offset(*base, d + 15, rnd.choice([0.0, math.pi]))
            else:
                lat, lon = _offset(p["lat"], p["lon"], d, rnd.uniform(0, 2 * math.pi))
            text = rnd.choice(["Jalan yang baru diaspal di sini sudah retak dan berlubang",
                               "Proyek di dekat rumah saya mangkrak, tidak ada pekerjaan sejak sebulan",
                               "Material proyek menutup saluran, air meluber ke jalan"])
        elif kind == "name":
            text = f"Pengaspalan jalan {p['a']} {p['b']} tipis sekali, baru sebulan sudah rusak"
        elif kind == "code":
            text = f"Lapor proyek {p['code']}: pekerjaan berhenti, tukang tidak ada"
        else:  # 330-700 m from the nearest project, no name, no code: not about any project here
            lat, lon = _offset(p["lat"] - 0.0075, p["lon"] + 0.0075, rnd.uniform(0, 60), rnd.uniform(0, 6.28))
            text = "Jalan desa rusak parah mohon diperbaiki"
        channel = ["sms", "telegram", "web"][k % 3]
        msgs.append(InboundMessage(channel=channel, text=text, sender=f"+62812{k:07d}", provider_id=f"w-{k}",
                                   received_at=now - timedelta(minutes=300 - k), latitude=lat, longitude=lon))
        truth[f"w-{k}"] = (kind, p)
    return msgs, truth


def test_300_reports_around_50_projects(engine, seeded):
    from hub.intake import accept_many
    from hub.models import Outbox, Ticket, TicketEvent
    from hub.processing import drain
    from hub.works.models import WorksReport

    with Session(engine, expire_on_commit=False) as s:
        projects = _projects(s)
        s.commit()
    by_id = {p["id"]: p for p in projects}
    msgs, truth = _messages(projects)
    accept_many(msgs, engine)
    drain(engine)
    with Session(engine) as s:
        tickets = {t.channel_message_id: t for t in s.scalars(select(Ticket))}
        links = {r.ticket_id: r for r in s.scalars(select(WorksReport))}
        copies = {e.ticket_id for e in s.scalars(select(TicketEvent).where(TicketEvent.note.like("Tembusan%")))}
    assert len(tickets) == 300
    right = linkable = 0
    for pid, (kind, p) in truth.items():
        t = tickets[pid]
        link = links.get(t.id)
        if kind == "far":
            assert link is None, (pid, link)
            continue
        linkable += 1
        if link is not None and link.project_id == p["id"]:
            right += 1
        if link is not None:
            lp = by_id[link.project_id]
            assert t.opd_code == lp["opd"], (pid, t.opd_code, lp["opd"])  # routed to the executor
            assert t.id in copies  # copied to the Inspektorat
            assert link.method != "distance" or link.distance_m <= 250
    assert right / linkable >= 0.9, (right, linkable)
    print(f"linked right: {right}/{linkable} = {right / linkable:.1%}; far reports linked: 0")
    nowork = [links[tickets[pid].id] for pid, (k, _) in truth.items() if k == "code"]
    assert all(x.no_work_claim for x in nowork)  # "tukang tidak ada"


def test_match_is_pure_and_prefers_code_then_nearest():
    a = M.ProjectRef(1, "42000000", "Pembangunan Jembatan Prigi - Tasikmadu", "PUPR", -8.0, 111.0)
    b = M.ProjectRef(2, "42000011", "Rehabilitasi Gedung SD Negeri Widoro", "DINDIK", -8.0, 111.002)
    lat, lon = _offset(-8.0, 111.0, 80, 1.5708)
    assert M.match("jembatan retak", lat, lon, [a, b], 250).project.id == 1  # 80 m vs 140 m
    assert M.match("kode 42000011 mangkrak", lat, lon, [a, b], 250).project.id == 2
    assert M.match("gedung sd widoro bocor", None, None, [a, b], 250).project.id == 2
    assert M.match("jalan rusak", *_offset(-8.0, 111.0, 251, 3.14), [a], 250) is None
    road = M.ProjectRef(3, "42000022", "Peningkatan Jalan Gador", "PUPR", line=((-8.1, 111.0), (-8.1, 111.01)),
                        buffer_m=15)
    m = M.match("aspal", *_offset(-8.1, 111.005, 260, 0.0), [road], 250)
    assert m is not None and m.distance_m == 245.0  # 260 m from the centre line, 15 m buffer
    assert M.says_no_work("sudah 2 bulan tidak ada pekerjaan") and not M.says_no_work("pekerjaan bagus")


def test_relink_by_staff(client, register, make_key):
    from hub.intake import accept_many
    from hub.processing import drain
    from normalizer.types import InboundMessage

    accept_many([InboundMessage(channel="sms", text="Proyek 41000000 tidak ada pekerjaan sama sekali",
                                sender="+6281299990000", provider_id="r1",
                                received_at=datetime.now(timezone.utc))])
    drain()
    items = client.get("/api/v1/tickets", headers=make_key("admin")).json()["items"]
    t = items[0]
    assert t["opd"] == "PUPR" and "works:code" in t["routing"]["rule"]
    r = client.post(f"/api/v1/works/reports/{t['code']}/link", headers=make_key("operator" if False else "admin"),
                    json={"project": "41000007"})
    assert r.status_code == 200 and r.json()["opd"] == "PKPP"
    page = client.get("/proyek/41000007").text
    assert t["code"] in page and "tidak ada pekerjaan" in page


def test_citizen_says_no_work_while_contractor_claims_progress(engine, seeded):
    from datetime import date

    from hub.intake import accept_many
    from hub.processing import drain
    from hub.works.models import WorksFlag
    from hub.works.service import record_progress, recompute_flags
    from normalizer.types import InboundMessage

    today = date(2026, 11, 16)
    with Session(engine, expire_on_commit=False) as s:
        _, _, c = make_project(s, start=today - timedelta(days=50), end=today + timedelta(days=50))
        record_progress(s, c, 60, today - timedelta(days=1), "key:cv")
        s.commit()
    accept_many([InboundMessage(channel="sms", text="Proyek 41000000 mangkrak, tidak ada pekerjaan sama sekali",
                                sender="+6281277770000", provider_id="nw1", received_at=datetime.now(timezone.utc))],
                engine)
    drain(engine)
    with Session(engine) as s:
        recompute_flags(s, seeded, today=today)
        s.commit()
        f = s.scalars(select(WorksFlag).where(WorksFlag.rule == "klaim_vs_lapangan")).one()
        assert f.numbers["actual_pct"] == 60 and f.numbers["citizen_reports"] == 1
        assert any(x.startswith("laporan warga ") for x in f.sources)
