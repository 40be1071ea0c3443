"""Shared helpers for the benchmarks: load the default regency and the labelled data sets.
Benchmarks print figures; they never assert on timing."""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "trenggalek"
EVAL = ROOT / "tests" / "data" / "routing_eval.jsonl"
TRAIN = ROOT / "tests" / "data" / "routing_train.jsonl"


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def regency(learned: dict | None = None):
    import yaml

    from normalizer import build_regency

    opds = yaml.safe_load((CONFIG / "opds.yaml").read_text(encoding="utf-8"))
    return build_regency(
        (CONFIG / "wilayah.csv").read_text(encoding="utf-8"),
        json.loads((CONFIG / "lapor_categories.json").read_text(encoding="utf-8")),
        yaml.safe_load((CONFIG / "routing.yaml").read_text(encoding="utf-8")),
        opds["opds"], opds["triage_opd"], learned=learned,
    )
