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


RESULTS = ROOT / "bench" / "results" / "latest.json"


def record_results(name: str, figures: dict) -> Path:
    """Merge one benchmark's figures into bench/results/latest.json (one key per benchmark,
    with the time it ran), so the latest figures of every benchmark sit in one file."""
    import datetime
    import os

    # SIMPUL_BENCH_RESULTS: another file (the tests that run a bench in its quick mode)
    path = Path(os.environ.get("SIMPUL_BENCH_RESULTS") or RESULTS)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    data[name] = {"at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "cpus": os.cpu_count(), **figures}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
