"""The learned linear router (normalizer.learn): safe JSON storage, calibration and threshold,
the 2026 offices, and the issue #12 targets on the real-shaped dev set (test split)."""
from __future__ import annotations

import base64
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def _rows(name: str) -> list[dict]:
    return [json.loads(x) for x in (DATA / name).read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def reg():
    from _common import regency

    return regency()


@pytest.fixture(scope="module")
def model(reg):
    from normalizer.learn import train_linear

    return train_linear([(r["text"], r["opd"]) for r in _rows("routing_dev_real_train.jsonl")], reg,
                        trained_at="2026-01-01T00:00:00+00:00")


def _route(reg, rows):
    from normalizer import normalize
    from normalizer.types import InboundMessage

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    out = []
    for r in rows:
        d = normalize(InboundMessage(channel="web", text=r["text"]), reg, now)
        out.append((r["opd"], d.routing.opd, d.routing.needs_triage, d.routing.candidates))
    return out


def _figures(res):
    acc = sum(g == p and not t for g, p, t, _c in res) / len(res)
    dec = [(g, p) for g, p, t, _c in res if not t]
    return acc, sum(g == p for g, p in dec) / len(dec), len(dec) / len(res)


def test_model_is_plain_json_and_round_trips(reg, model):
    from _common import regency
    from normalizer.learn import LinearRouter

    text = json.dumps(model)  # nothing but JSON types
    again = json.loads(text)
    assert again["kind"] == "linear-tfidf" and again["version"] == 2
    a, b = regency(learned=model), regency(learned=again)
    assert isinstance(a.model, LinearRouter)
    rows = _rows("routing_dev_real_test.jsonl")[:40]
    assert _route(a, rows) == _route(b, rows)


@pytest.mark.parametrize("damage", [
    lambda m: m.update(version=99),
    lambda m: m.update(kind="pickle"),
    lambda m: m.update(coef=base64.b64encode(b"\x80\x04not floats").decode()),
    lambda m: m.update(coef_shape=[2, 3]),
    lambda m: m.update(intercept=[0.0]),
    lambda m: m.pop("word_vocab"),
    lambda m: m.update(coef="!!! not base64 !!!"),
])
def test_damaged_or_foreign_model_is_refused_and_rules_decide(reg, model, damage):
    from _common import regency

    bad = json.loads(json.dumps(model))
    damage(bad)
    r = regency(learned=bad)
    assert r.model is None
    d = _route(r, [{"text": "lampu PJU di gang kami mati", "opd": "PKPP"}])[0]
    assert d[1] == "PKPP"


def test_too_little_history_trains_nothing(reg):
    from normalizer.learn import train_linear

    assert train_linear([("jalan rusak", "PUPR")] * 50, reg) is None  # one OPD
    assert train_linear([("jalan rusak", "PUPR"), ("sampah", "DLH")] * 5, reg) is None  # 10 examples


def test_threshold_is_where_precision_reaches_target():
    from normalizer.learn import choose_threshold

    conf = [0.99] * 50 + [0.7] * 50 + [0.5] * 50
    right = [True] * 50 + [True] * 47 + [False] * 3 + [True] * 30 + [False] * 20
    t = choose_threshold(conf, right, target=0.93)
    assert t == pytest.approx(0.7)


def test_model_knows_every_office_through_the_rules_prior(reg):
    """Learned on history that never names DLH or DINDIK, the model can still pick them: the
    rules' keywords and the OPD tasks are prior documents."""
    from _common import regency
    from normalizer.learn import train_linear

    rows = [r for r in _rows("routing_dev_real_train.jsonl") if r["opd"] in ("PUPR", "PKPP", "DINSOS")]
    m = train_linear([(r["text"], r["opd"]) for r in rows], reg)
    assert {"DLH", "DINDIK"} <= set(m["classes"])
    res = _route(regency(learned=m), [{"text": "mohon pemangkasan pohon di pinggir jalan, dahannya kena kabel", "opd": "DLH"},
                                      {"text": "anak saya tidak diterima PPDB jalur zonasi", "opd": "DINDIK"}])
    assert [c[0][0] for *_x, c in res] == ["DLH", "DINDIK"]


def test_triage_keeps_top_three_suggestions(reg, model):
    from _common import regency

    res = _route(regency(learned=model), [{"text": "mohon info", "opd": "DISKOMINFO"}])[0]
    assert res[2] is True and len(res[3]) == 3


def test_issue_12_targets_on_the_real_shaped_test_split(reg, model):
    """Done when (issue #12): rules alone >= 0.75 accuracy with auto-routed precision >= 0.85;
    learned >= 0.90 accuracy, auto-routed precision >= 0.93 (the threshold's promise)."""
    from _common import regency

    rows = _rows("routing_dev_real_test.jsonl")
    acc, prec, _cov = _figures(_route(reg, rows))
    assert acc >= 0.75 and prec >= 0.85, (acc, prec)
    acc, prec, cov = _figures(_route(regency(learned=model), rows))
    assert acc >= 0.90 and prec >= 0.93 and cov >= 0.85, (acc, prec, cov)


def test_threshold_when_target_cannot_be_met_keeps_half_the_tickets_routed():
    from normalizer.learn import choose_threshold

    conf = [0.9] * 10 + [0.8] * 10 + [0.6] * 30 + [0.4] * 50
    right = [True] * 8 + [False] * 2 + [True] * 8 + [False] * 2 + [True] * 24 + [False] * 6 + [True] * 30 + [False] * 20
    t = choose_threshold(conf, right, target=0.93)
    assert t == pytest.approx(0.6)  # 40/50 = 0.80 at half coverage; 0.4 would be 0.70
