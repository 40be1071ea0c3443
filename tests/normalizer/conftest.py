"""Fixtures for the pure normalizer tests: the default Trenggalek regency, built once."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from normalizer import build_regency, normalize
from normalizer.types import InboundMessage

CONFIG = Path(__file__).resolve().parents[2] / "config" / "trenggalek"
NOW = datetime(2025, 3, 4, 5, 0, tzinfo=timezone.utc)


def _parts():
    opds = yaml.safe_load((CONFIG / "opds.yaml").read_text(encoding="utf-8"))
    return ((CONFIG / "wilayah.csv").read_text(encoding="utf-8"),
            json.loads((CONFIG / "lapor_categories.json").read_text(encoding="utf-8")),
            yaml.safe_load((CONFIG / "routing.yaml").read_text(encoding="utf-8")),
            opds["opds"], opds["triage_opd"])


@pytest.fixture(scope="session")
def parts():
    return _parts()


@pytest.fixture(scope="session")
def regency(parts):
    return build_regency(*parts)


@pytest.fixture(scope="session")
def norm(regency):
    def run(text: str, channel: str = "telegram", **kw):
        return normalize(InboundMessage(channel=channel, text=text, **kw), regency, NOW)
    return run
