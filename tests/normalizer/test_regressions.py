"""Routing regressions with rules alone (a fresh install has no learned model): realistic citizen
messages whose OPD, triage, kecamatan or urgency once came out wrong, or that have the same shape
(words apart, one strong keyword, facility + place, hotline fields, abbreviations, Javanese, truly
vague). Table in tests/data/routing_regressions.jsonl; never copied from routing_eval.jsonl."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from normalizer import build_regency
from normalizer.knowledge import RegencyConfigError
from normalizer.types import Urgency

DATA = Path(__file__).resolve().parents[1] / "data" / "routing_regressions.jsonl"
CONFIG = Path(__file__).resolve().parents[2] / "config" / "trenggalek"
ROWS = [json.loads(x) for x in DATA.read_text(encoding="utf-8").splitlines() if x.strip()]


def _eval_texts() -> set[str]:
    path = DATA.parent / "routing_eval.jsonl"
    return {json.loads(x)["text"] for x in path.read_text(encoding="utf-8").splitlines() if x.strip()}


def test_table_is_large_and_held_apart_from_the_eval_set():
    assert len(ROWS) >= 150
    assert not {r["text"] for r in ROWS} & _eval_texts()
    assert sum(1 for r in ROWS if r.get("triage")) >= 10


@pytest.mark.parametrize("row", ROWS, ids=[f"{i}:{r['text'][:40]}" for i, r in enumerate(ROWS)])
def test_rules_alone_route(row, norm):
    d = norm(row["text"], channel=row["channel"], fields=row.get("fields") or {})
    r = d.routing
    if row.get("triage"):
        assert r.needs_triage, f"vague message routed: {r.opd} ({r.rule})"
    if "opd" in row:
        assert (r.opd, r.needs_triage) == (row["opd"], False), r.rule
    if "kecamatan" in row:
        assert d.place.kecamatan_code == row["kecamatan"]
    if "urgency" in row:
        assert d.urgency == Urgency(row["urgency"])


@pytest.mark.parametrize("line", ["psc119", "bpbd"])
def test_every_console_incident_type_is_a_routing_incident_type(line, regency):
    """A call logged with the console's own type name (or its routing target) finds its OPD,
    urgency and category, whatever the case or underscores."""
    spec = yaml.safe_load((CONFIG / "hotlines.yaml").read_text(encoding="utf-8"))["lines"][line]
    missing = []
    for key, it in spec["incident_types"].items():
        for name in filter(None, (key, (it or {}).get("routing"))):
            for variant in (name, name.upper(), name.replace(" ", "_")):
                itype = " ".join(variant.lower().replace("_", " ").split())  # as normalize() reads it
                if itype not in regency.incident_types:
                    missing.append(variant)
    assert not missing


def test_a_keyword_that_expands_to_stopwords_is_refused(parts):
    """"smp" once expanded to "sampai": the school keyword matched every "sampai"."""
    wilayah, cats, routing, opds, triage = parts
    bad = dict(routing, rules=[dict(routing["rules"][0], keywords=["jalan rusak", "smpe"])])
    with pytest.raises(RegencyConfigError, match="smpe"):
        build_regency(wilayah, cats, bad, opds, triage)


def test_smp_is_a_school_and_sampai_is_not(norm):
    assert norm("antri dari pagi sampai sore").routing.needs_triage
    assert norm("antri dari pagi smpe sore").routing.needs_triage
    assert norm("SMP di desa kami kekurangan guru").routing.opd == "DINDIK"


@pytest.mark.parametrize("text, opd, label", [
    ("jalan di desa Ngadirenggo kec Pogalan rusak parah", "PUPR", "jalan ... rusak"),
    ("rusaknya jalan ini sudah lama", "PUPR", "rusaknya ... jalan"),
    ("jalan kami makin hari makin berlubang", "PUPR", "jalan ... berlubang"),
    ("lampu di gang kami mati", "PKPP", "lampu ... mati"),
])
def test_words_apart_count(norm, text, opd, label):
    r = norm(text).routing
    assert r.opd == opd and f"'{label}'" in r.rule


def test_words_too_far_apart_do_not_count(norm):
    r = norm("jalan ke sawah tiap pagi saya lewati bersama anak anak kecil tetangga yang lucu rusak").routing
    assert "jalan ... rusak" not in r.rule


def test_landmark_keyword_weighs_less_than_the_topic(norm):
    # "depan pasar" says where; the PJU is what
    r = norm("lampu PJU di jln raya depan pasar mati semua").routing
    assert r.opd == "PKPP" and not r.needs_triage and r.confidence >= 0.6


@pytest.mark.parametrize("text, kec", [
    ("puskesmas Karangan tutup", "35.03.06"),
    ("pasar Pule sepi", "35.03.03"),
    ("SMPN 1 Tugu", "35.03.05"),
    ("SMP Negeri 2 Karangan", "35.03.06"),
    ("sekolah karangan siswa", None),  # "karangan" (an essay) bare is not a place
])
def test_kecamatan_after_a_facility_word(norm, text, kec):
    assert norm(text).place.kecamatan_code == kec


def _keywords() -> list[tuple[str, str, str]]:
    routing = yaml.safe_load((CONFIG / "routing.yaml").read_text(encoding="utf-8"))
    out = []
    for rule in routing["rules"]:
        for kw in (rule.get("strong_keywords") or []) + rule["keywords"]:
            out.append((rule["id"], str(kw), rule["opd"]))
    owners: dict[str, set[str]] = {}
    for _rid, kw, opd in out:
        owners.setdefault(kw, set()).add(opd)
    return [row for row in out if len(owners[row[1]]) == 1]  # a keyword of two OPDs decides nothing


def test_every_keyword_alone_clears_triage(norm):
    """One unambiguous keyword, nothing else: its OPD, above min_confidence (rules alone)."""
    wrong = []
    for rid, kw, opd in _keywords():
        r = norm(kw).routing
        if (r.opd, r.needs_triage) != (opd, False):
            wrong.append(f"{rid} {kw!r}: {r.rule}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("channel, text, itype, opd", [
    ("psc119", "ODGJ mengamuk di desa Gembleb", "ODGJ", "DINKES"),  # 'odgj' is a DINSOS keyword
    ("psc119", "rumah terbakar, korban sesak napas", "sesak napas", "DINKES"),
    ("bpbd", "banjir masuk rumah, listrik korslet, api kecil", "Banjir", "BPBD"),
])
def test_a_known_incident_type_decides(norm, channel, text, itype, opd):
    r = norm(text, channel=channel, fields={"incident_type": itype}).routing
    assert (r.opd, r.needs_triage) == (opd, False)
    assert r.rule == f"field incident_type '{itype.lower()}' -> {opd}"
