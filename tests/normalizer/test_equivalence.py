"""Speed work must not change decisions: every eval line (and a few structured-field variants, and
a fingerprint of each training line) normalized with rules alone and with the learned model must
match tests/data/normalizer_snapshot.jsonl, written by tests/data/make_normalizer_snapshot.py. Never regenerate it to make this pass; only for a
deliberate change of decisions, named in the commit message."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
sys.path.insert(0, str(DATA))

import make_normalizer_snapshot as snap  # noqa: E402


def _comparable(row: dict) -> dict:
    return dict(row)  # every field, the explanation text included: it is stored on the ticket


@pytest.fixture(scope="module")
def expected() -> dict[tuple[str, str], dict]:
    rows = [json.loads(x) for x in snap.OUT.read_text(encoding="utf-8").splitlines() if x.strip()]
    return {(r["mode"], r["id"]): r for r in rows}


@pytest.fixture(scope="module")
def actual() -> dict[tuple[str, str], dict]:
    return {(r["mode"], r["id"]): r for r in snap.snapshot()}


@pytest.mark.parametrize("mode", ["rules", "learned"])
def test_decisions_match_snapshot(mode, expected, actual):
    keys = sorted(k for k in expected if k[0] == mode)
    assert len(keys) == len(snap.inputs()) + len(snap.load_jsonl(snap.TRAIN)), \
        "snapshot is stale: regenerate it on purpose"
    diffs = []
    for key in keys:
        want, got = _comparable(expected[key]), _comparable(actual[key])
        if want != got:
            diffs.append(f"{key[1]}: " + ", ".join(f"{f}: {want[f]!r} -> {got.get(f)!r}"
                                                   for f in want if want[f] != got.get(f)))
    assert not diffs, f"{len(diffs)} of {len(keys)} decisions changed:\n" + "\n".join(diffs[:20])


def test_snapshot_covers_model_explanations(expected):
    """The learned snapshot really exercises the model (so the test above can fail on it)."""
    learned = [r for (m, _i), r in expected.items() if m == "learned" and "rule" in r]
    assert sum("model: top features" in r["rule"] for r in learned) > 500
    assert {r["needs_triage"] for r in learned} == {True, False}


@pytest.mark.parametrize("tokens, feats", [
    (["jalan", "rusak", "parah"], ["jalan", "rusak", "parah", "jalan_rusak", "rusak_parah"]),
    (["lampu", "pju", "mati", "lampu"], ["lampu", "pju", "mati", "lampu_pju", "pju_mati", "mati_lampu"]),
    (["yang", "kebakaran", "di", "2", "rumah"], ["kebakaran", "rumah", "kebakaran_rumah", "~kebak"]),
])
def test_model_features_in_text_order(tokens, feats):
    """Features in first-occurrence order (not a set's hash-seed order): ties in the model's
    'top features' explanation then break the same way in every process."""
    from normalizer.router import model_features

    assert model_features(tokens) == feats


@pytest.mark.parametrize("matcher", ["matcher", "urgency_matcher"])
def test_token_matching_equals_regex_matching(matcher, regency):
    """find_tokens (what normalize uses) finds exactly what the keyword regex finds, in the same
    order, on every eval and training text."""
    from normalizer.router import words_from_tokens
    from normalizer.text import fold, raw_tokens, stem

    m = getattr(regency, matcher)
    texts = [r["text"] for r in snap.load_jsonl(snap.EVAL) + snap.load_jsonl(snap.TRAIN)]
    texts += ["banjir banjir banjir", "", "kebanjiran di jalan raya rusak parah sekali"]
    matched = 0
    for text in texts:
        words = words_from_tokens(raw_tokens(fold(text)), regency.place_keys, regency.marker_place_keys)
        stems = [stem(w) for w in words]
        want = m.find(" ".join(words), " ".join(stems))
        assert m.find_tokens(words, stems) == want, text
        matched += bool(want)
    assert matched > 1000  # both matchers really fire on these texts
