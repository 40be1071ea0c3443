"""Open data: the demo's projects (every state) as an OC4IDS 0.9.5 project package validate
against the schema with 0 errors (the schema files are copied from ../shared/standards into
tests/data/oc4ids-0.9.5, Apache-2.0, LICENSE beside them)."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "data" / "oc4ids-0.9.5"


def _validator():
    package = json.loads((SCHEMA_DIR / "project-package-schema.json").read_text())
    project = json.loads((SCHEMA_DIR / "project-schema.json").read_text())
    # the package's $ref names the project schema by its canonical URL: serve it from the copy
    registry = Registry().with_resource(project["id"], Resource.from_contents(project, default_specification=DRAFT4))
    return jsonschema.Draft4Validator(package, registry=registry, format_checker=jsonschema.FormatChecker())


def test_demo_projects_export_validates(client, seeded):
    from hub.db import session_scope
    from hub.works.demo import PROJECTS, load_works_demo

    load_works_demo(session_scope, seeded)
    r = client.get("/open/oc4ids/projects.json")
    assert r.status_code == 200
    data = r.json()
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:10]]
    assert len(data["projects"]) == len(PROJECTS) == 12
    by_id = {p["id"].rsplit("-", 1)[1]: p for p in data["projects"]}
    road = by_id["35030001"]
    assert road["locations"][0]["geometry"]["type"] == "LineString"
    assert road["locations"][0]["gazetteer"] == {"scheme": "ID-KEMENDAGRI", "identifiers": ["35.03.06"]}
    assert road["forecasts"][0]["observations"][-1]["measure"] == 100
    assert road["metrics"][0]["observations"][-1]["measure"] == 42
    cp = by_id["35030003"]["contractingProcesses"][0]["summary"]
    assert cp["transactions"] and cp["tender"]["costEstimate"]["currency"] == "IDR"
    assert by_id["35030006"]["contractingProcesses"][0]["summary"]["modifications"][0]["type"] == "value"
    assert {p["status"] for p in data["projects"]} >= {"preparation", "implementation", "completion"}
    # the demo is idempotent
    assert "0 projects added" in load_works_demo(session_scope, seeded, traffic=False)[-1]


def test_demo_has_every_state(client, seeded):
    from sqlalchemy import select
    from sqlmodel import Session

    from hub.db import get_engine, session_scope
    from hub.works import service as W
    from hub.works.demo import load_works_demo
    from hub.works.models import WorksFlag, WorksProject, WorksReport

    load_works_demo(session_scope, seeded)
    with Session(get_engine()) as s:
        today = W.today_local(seeded)
        states = {W.project_status(s, p, today) for p in s.scalars(select(WorksProject))}
        rules = {f.rule for f in s.scalars(select(WorksFlag))}
        linked = s.scalars(select(WorksReport)).all()
    assert states == set(W.STATUS_LABELS), states
    assert {"kontrak_kritis", "bayar_mendahului_progres", "nilai_melebihi_hps", "adendum", "tanpa_laporan",
            "lewat_tanpa_bast"} <= rules
    assert len(linked) == 4
    page = client.get("/proyek")
    assert page.status_code == 200 and "Kec. Watulimo" in page.text
