"""docker-compose.yml is valid per the Compose specification schema and sets only SIMPUL_*
variables the hub reads (no Docker engine runs here, so this is the check we can make)."""
from __future__ import annotations

import json
import os
import re
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import jsonschema
import pytest
import yaml

from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def compose_schema() -> dict:
    try:
        path = Path(distribution("docker-compose").locate_file("compose/config/compose_spec.json"))
    except PackageNotFoundError:
        if os.environ.get("CI") == "true":
            pytest.fail("the Compose schema (docker-compose package data) is missing; `make test` installs it")
        pytest.skip("Compose schema not installed (make test installs docker-compose==1.29.2 --no-deps)")
    return json.loads(path.read_text())


def known_variables() -> set[str]:
    return {f"SIMPUL_{name.upper()}" for name in Settings.model_fields}


def test_compose_file_matches_the_compose_specification():
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    doc.pop("name", None)  # top-level `name` is newer than the schema shipped in that package
    jsonschema.validate(doc, compose_schema())
    assert {"hub", "db", "mail"} <= set(doc["services"])


def test_schema_check_catches_a_broken_file():
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    doc.pop("name", None)
    doc["services"]["hub"]["ports"] = {"not": "a list"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, compose_schema())


def test_every_simpul_variable_in_compose_and_dockerfile_is_read_by_the_hub():
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    used = set()
    for svc in doc["services"].values():
        env = svc.get("environment") or {}
        names = env.keys() if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        used |= {n for n in names if n.startswith("SIMPUL_")}
    used |= set(re.findall(r"\b(SIMPUL_[A-Z_]+)=", (ROOT / "Dockerfile").read_text()))
    assert used, "compose sets no SIMPUL_* variable?"
    unknown = used - known_variables()
    assert not unknown, f"variables the hub does not read: {sorted(unknown)}"
    assert "SIMPUL_DATABASE_URL" in used
