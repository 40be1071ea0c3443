"""Progress and money through the API: a contractor key sees only its contracts, the OPD key of
the budget executor reports payments, every report is an event with who and when, and a
correction is a new report that never overwrites the old one. S-curves: weighted schedule or
straight line, actual curve from the reports."""
from __future__ import annotations

from datetime import date

from hub.works import curve

C1, C2 = "027/1/406.011/2026", "027/2/406.011/2026"


def _contractor_key(npwp: str = "01.234.567.8-654.000") -> dict[str, str]:
    from hub.db import session_scope
    from hub.works.api import create_contractor_key

    with session_scope() as s:
        key = create_contractor_key(s, "CV Maju Jaya", npwp)
    return {"Authorization": f"Bearer {key}"}


def test_contractor_key_sees_only_its_contracts_and_nothing_else(client, register, make_key):
    h = _contractor_key()
    r = client.get("/api/v1/works/contracts", headers=h)
    assert r.status_code == 200
    assert [c["number"] for c in r.json()["contracts"]] == [C1]
    assert client.get(f"/api/v1/works/contracts/{C2}", headers=h).status_code == 404
    assert client.post(f"/api/v1/works/contracts/{C2}/progress", headers=h,
                       json={"pct": 10, "as_of": "2026-03-20"}).status_code == 404
    # the key opens the works API only: the ticket API does not know it
    assert client.get("/api/v1/tickets", headers=h).status_code == 401
    assert client.post("/api/v1/intake/web", headers=h, json={"text": "x"}).status_code in (401, 403)
    # a contractor may not report payments; a revoked key is refused
    assert client.post(f"/api/v1/works/contracts/{C1}/payments", headers=h,
                       json={"amount": 1, "paid_on": "2026-03-20", "term": "termin"}).status_code == 403
    from hub.auth import revoke_api_key
    from hub.db import session_scope

    with session_scope() as s:
        revoke_api_key(s, h["Authorization"].split("_")[1])
    assert client.get("/api/v1/works/contracts", headers=h).status_code == 401


def test_progress_events_and_corrections_keep_history(client, register):
    h = _contractor_key()
    r1 = client.post(f"/api/v1/works/contracts/{C1}/progress", headers=h,
                     json={"pct": 12.5, "as_of": "2026-03-20", "note": "Galian selesai", "photos": ["/lampiran/a.jpg"]})
    assert r1.status_code == 201, r1.text
    assert r1.json()["actor"] == "key:CV Maju Jaya" and r1.json()["at"]
    r2 = client.post(f"/api/v1/works/contracts/{C1}/progress", headers=h,
                     json={"pct": 10.0, "as_of": "2026-03-20", "corrects": r1.json()["id"]})
    assert r2.status_code == 201
    again = client.post(f"/api/v1/works/contracts/{C1}/progress", headers=h,
                        json={"pct": 11.0, "as_of": "2026-03-20", "corrects": r1.json()["id"]})
    assert again.status_code == 400  # correct the correction, not the original twice
    assert client.post(f"/api/v1/works/contracts/{C1}/progress", headers=h,
                       json={"pct": 120, "as_of": "2026-03-20"}).status_code == 422
    d = client.get(f"/api/v1/works/contracts/{C1}", headers=h).json()
    assert [(p["pct"], p["corrects"]) for p in d["progress"]] == [(12.5, None), (10.0, r1.json()["id"])]
    assert d["actual_pct"] == 10.0


def test_payments_by_the_budget_executor(client, register, make_key):
    opd = make_key("opd", "PUPR", name="Bendahara PUPR")
    other = make_key("opd", "PKPP")
    body = {"amount": "200.000.000,00", "paid_on": "2026-03-10", "term": "uang_muka"}
    r = client.post(f"/api/v1/works/contracts/{C1}/payments", headers=opd, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == 200_000_000 and r.json()["actor"] == "key:Bendahara PUPR"
    assert client.post(f"/api/v1/works/contracts/{C1}/payments", headers=other, json=body).status_code == 404
    assert client.post(f"/api/v1/works/contracts/{C1}/payments", headers=opd,
                       json={**body, "term": "bonus"}).status_code == 400
    cancel = client.post(f"/api/v1/works/contracts/{C1}/payments", headers=opd,
                         json={**body, "amount": 0, "corrects": r.json()["id"]})
    assert cancel.status_code == 201
    d = client.get(f"/api/v1/works/contracts/{C1}", headers=opd).json()
    assert d["paid"] == 0 and len(d["payments"]) == 2


def test_addendum_and_schedule(client, register, make_key):
    opd = make_key("opd", "PUPR")
    r = client.post(f"/api/v1/works/contracts/{C1}/addenda", headers=opd,
                    json={"number": "ADD-1", "new_value": 1_050_000_000, "new_end": "2026-09-28", "reason": "CCO"})
    assert r.status_code == 201 and r.json()["value_delta_sen"] == 5_000_000_000 and r.json()["days"] == 30
    items = [{"name": "Persiapan", "weight": 10, "start": "2026-03-02", "end": "2026-03-16"},
             {"name": "Pengaspalan", "weight": 90, "start": "2026-03-16", "end": "2026-09-28"}]
    assert client.put(f"/api/v1/works/contracts/{C1}/schedule", headers=opd, json=items).status_code == 200
    d = client.get(f"/api/v1/works/contracts/{C1}", headers=opd).json()
    assert d["value"] == 1_050_000_000 and d["planned_end"] == "2026-09-28" and len(d["schedule"]) == 2


def test_planned_curve_straight_line_and_weighted_items():
    s, e = date(2026, 3, 1), date(2026, 3, 31)
    assert curve.planned_pct(date(2026, 2, 1), s, e) == 0
    assert curve.planned_pct(date(2026, 3, 16), s, e) == 50.0
    assert curve.planned_pct(date(2026, 4, 1), s, e) == 100.0
    items = curve.items_from([{"name": "a", "weight": 20, "start": "2026-03-01", "end": "2026-03-11"},
                              {"name": "b", "weight": 80, "start": "2026-03-11", "end": "2026-03-31"}])
    assert curve.planned_pct(date(2026, 3, 11), s, e, items) == 20.0
    assert curve.planned_pct(date(2026, 3, 21), s, e, items) == 60.0
    pts = curve.planned_points(s, e, items, n=10)
    assert pts[0] == (s, 0.0) and pts[-1] == (e, 100.0)
    assert [p for _, p in pts] == sorted(p for _, p in pts)  # an S-curve never goes down
    rep = [(date(2026, 3, 10), 20.0), (date(2026, 3, 20), 40.0)]
    assert curve.actual_at(date(2026, 3, 15), rep) == 20.0 and curve.actual_at(date(2026, 3, 1), rep) == 0
    assert curve.projected_end(s, rep) == date(2026, 4, 18)  # 40 % in 19 days: 60 % more takes 29 days
