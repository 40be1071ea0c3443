"""Write tests/data/normalizer_snapshot.jsonl: what normalize() decides for every eval line (and a
few structured-field variants), with rules alone and with the model learned on the training set.
tests/normalizer/test_equivalence.py compares the normalizer against it; regenerate only for a
deliberate change of decisions, and say so in the commit message. Never edit the output by hand.

    .venv/bin/python tests/data/make_normalizer_snapshot.py
"""
from __future__ import annotations

import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONFIG = ROOT / "config" / "trenggalek"
EVAL = HERE / "routing_eval.jsonl"
TRAIN = HERE / "routing_train.jsonl"
OUT = HERE / "normalizer_snapshot.jsonl"
NOW = datetime(2025, 3, 4, 5, 0, tzinfo=timezone.utc)

# Structured variants: the eval texts arrive as plain text; these exercise the field paths
# (hotline incident type and triage colour, keyword SMS, landmark, PSC 119 floor, empty text).
VARIANTS: list[dict] = [
    {"channel": "psc119", "text": "pasien sesak napas tidak sadar",
     "fields": {"incident_type": "kecelakaan_lalu_lintas", "triage_colour": "merah", "kecamatan": "Pogalan"}},
    {"channel": "bpbd", "text": "air naik ke rumah warga", "fields": {"incident_type": "banjir", "desa": "Ngadirejo",
                                                                       "kecamatan": "Pogalan"}},
    {"channel": "bpbd", "text": "pohon tumbang menutup jalan", "fields": {"landmark": "depan SDN 2 Karangan"}},
    {"channel": "sms", "text": "KTP#3503114506870003#SITI", "fields": {"keyword": "KTP", "nik": "3503114506870003"}},
    {"channel": "sms", "text": "CEK#KTP#3503114506870003", "fields": {"keyword": "CEK"}},
    {"channel": "psc119", "text": "ibu mau melahirkan", "fields": {"triage_colour": "kuning"}},
    {"channel": "sms", "text": "   ", "fields": {}},
    {"channel": "telegram", "text": "", "fields": {"incident_type": "kebakaran"}},
    {"channel": "web", "text": "lampu PJU mati di ds. jati kec. tugu RT 03/RW 02 -8.05123, 111.71234", "fields": {}},
]


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def regencies() -> dict:
    """The default Trenggalek regency with rules alone and with the learned model."""
    import yaml

    from normalizer import build_regency, train_router

    opds = yaml.safe_load((CONFIG / "opds.yaml").read_text(encoding="utf-8"))
    parts = ((CONFIG / "wilayah.csv").read_text(encoding="utf-8"),
             json.loads((CONFIG / "lapor_categories.json").read_text(encoding="utf-8")),
             yaml.safe_load((CONFIG / "routing.yaml").read_text(encoding="utf-8")),
             opds["opds"], opds["triage_opd"])
    learned = train_router((r["text"], r["opd"]) for r in load_jsonl(TRAIN))
    return {"rules": build_regency(*parts), "learned": build_regency(*parts, learned=learned)}


def inputs() -> list[dict]:
    rows = [{"id": f"eval:{i}", "channel": r.get("channel") or "web", "text": r["text"], "fields": {}}
            for i, r in enumerate(load_jsonl(EVAL))]
    rows += [{"id": f"variant:{i}", **v} for i, v in enumerate(VARIANTS)]
    return rows


def decision(draft) -> dict:
    """The decisions that must not change when the normalizer is made faster."""
    r, p = draft.routing, draft.place
    return {
        "opd": r.opd, "category": draft.category, "subcategory": draft.subcategory,
        "urgency": draft.urgency.value, "kecamatan_code": p.kecamatan_code, "desa_code": p.desa_code,
        "ambiguous_desa": list(p.ambiguous_desa), "needs_triage": r.needs_triage,
        "confidence": round(r.confidence, 3), "candidates": [[o, round(s, 3)] for o, s in r.candidates],
        "rule": r.rule, "incident_key": draft.incident_key, "address": p.address,
        "phone": draft.reporter.phone, "nik_masked": draft.reporter.nik_masked, "name": draft.reporter.name,
        "is_empty": draft.is_empty,
    }


def digest(d: dict) -> str:
    """A short fingerprint of a decision, for the many training lines (keeps the file small)."""
    return hashlib.sha1(json.dumps(d, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:12]


def snapshot() -> list[dict]:
    """Full decisions for the eval lines and variants; fingerprints for the 5,000 training lines
    (texts the eval set does not have, so the caches and tie-breaks see more variety)."""
    from normalizer import normalize
    from normalizer.types import InboundMessage

    out = []
    regs = regencies()
    rows = inputs()
    train = [{"channel": r.get("channel") or "web", "text": r["text"]} for r in load_jsonl(TRAIN)]
    for mode, reg in regs.items():
        for row in rows:
            msg = InboundMessage(channel=row["channel"], text=row["text"], sender="081234567890",
                                 fields=dict(row["fields"]))
            out.append({"mode": mode, "id": row["id"], **decision(normalize(msg, reg, NOW))})
        for i, r in enumerate(train):
            msg = InboundMessage(channel=r["channel"], text=r["text"], sender="081234567890")
            out.append({"mode": mode, "id": f"train:{i}", "digest": digest(decision(normalize(msg, reg, NOW)))})
    return out


def main() -> None:
    sys.path.insert(0, str(ROOT))  # (a normalizer imported before main() runs is used as it is)
    lines = snapshot()
    OUT.write_text("".join(json.dumps(x, ensure_ascii=False, sort_keys=True) + "\n" for x in lines),
                   encoding="utf-8")
    print(f"wrote {len(lines)} lines to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
