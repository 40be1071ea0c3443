"""Routing benchmark: top-1 OPD accuracy and macro-F1 on the hand-written eval set for
(a) keyword rules alone, (b) rules + the model learned on the synthetic training part, and a
plain TF-IDF + LinearSVC baseline trained on the same part; then the regression table
(tests/data/routing_regressions.jsonl: OPD or triage expected, hotline fields included), which
tests/normalizer/test_regressions.py asserts for rules alone. Prints figures; asserts nothing.

    .venv/bin/python bench/routing.py [--train tests/data/routing_train.jsonl] [--errors]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import EVAL, ROOT, TRAIN, load_jsonl, regency  # noqa: E402

from normalizer import normalize, train_router  # noqa: E402
from normalizer.types import InboundMessage  # noqa: E402


REGRESSIONS = ROOT / "tests" / "data" / "routing_regressions.jsonl"


def macro_f1(gold: list[str], pred: list[str]) -> float:
    labels = sorted(set(gold))
    f1s = []
    for lab in labels:
        tp = sum(1 for g, p in zip(gold, pred) if g == lab and p == lab)
        fp = sum(1 for g, p in zip(gold, pred) if g != lab and p == lab)
        fn = sum(1 for g, p in zip(gold, pred) if g == lab and p != lab)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(f1s) / len(f1s)


def accuracy(gold: list[str], pred: list[str]) -> float:
    return sum(g == p for g, p in zip(gold, pred)) / len(gold)


def run_normalizer(reg, rows: list[dict]) -> tuple[list[str], list[bool]]:
    now = datetime.now(timezone.utc)
    preds, triaged = [], []
    for r in rows:
        d = normalize(InboundMessage(channel=r.get("channel") or "web", text=r["text"],
                                     fields=r.get("fields") or {}), reg, now)
        preds.append(d.routing.opd)
        triaged.append(d.routing.needs_triage)
    return preds, triaged


def report(name: str, gold: list[str], pred: list[str], triaged: list[bool] | None = None) -> None:
    extra = f"  triaged {sum(triaged)}/{len(gold)}" if triaged is not None else ""
    print(f"{name:<34} top-1 {accuracy(gold, pred):.3f}   macro-F1 {macro_f1(gold, pred):.3f}{extra}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=Path, default=TRAIN)
    ap.add_argument("--eval", type=Path, default=EVAL)
    ap.add_argument("--errors", action="store_true", help="print the misrouted eval lines")
    args = ap.parse_args()
    ev, tr = load_jsonl(args.eval), load_jsonl(args.train)
    eval_texts = {r["text"] for r in ev}
    leaked = sum(1 for r in tr if r["text"] in eval_texts)
    gold = [r["opd"] for r in ev]
    print(f"eval: {len(ev)} hand-written lines, {len(set(gold))} OPDs; train: {len(tr)} synthetic lines "
          f"({leaked} identical to eval)")

    p_rules, t_rules = run_normalizer(regency(), ev)
    report("(a) rules alone", gold, p_rules, t_rules)

    t0 = time.perf_counter()
    model = train_router((r["text"], r["opd"]) for r in tr)
    train_s = time.perf_counter() - t0
    reg_l = regency(learned=model)
    p_learn, t_learn = run_normalizer(reg_l, ev)
    report("(b) rules + learned model", gold, p_learn, t_learn)
    print(f"    (training on {len(tr)} lines took {train_s:.2f}s; {len(model['features'])} features)")

    # the learned model without any keyword rules, for reference
    import yaml

    from _common import CONFIG
    routing = yaml.safe_load((CONFIG / "routing.yaml").read_text(encoding="utf-8"))
    routing_min = {k: v for k, v in routing.items() if k not in ("rules", "channel_defaults")}
    import json

    from normalizer import build_regency
    opds = yaml.safe_load((CONFIG / "opds.yaml").read_text(encoding="utf-8"))
    reg_m = build_regency((CONFIG / "wilayah.csv").read_text(encoding="utf-8"),
                          json.loads((CONFIG / "lapor_categories.json").read_text(encoding="utf-8")),
                          routing_min, opds["opds"], opds["triage_opd"], learned=model)
    p_model, t_model = run_normalizer(reg_m, ev)
    report("    learned model alone (no rules)", gold, p_model, t_model)

    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.svm import LinearSVC
    except ImportError:
        print("(c) TF-IDF + LinearSVC: scikit-learn not installed (pip install -e '.[test]')")
    else:
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)
        x = vec.fit_transform([r["text"] for r in tr])
        clf = LinearSVC(C=1.0).fit(x, [r["opd"] for r in tr])
        p_svm = list(clf.predict(vec.transform([r["text"] for r in ev])))
        report("(c) TF-IDF + LinearSVC baseline", gold, p_svm)

    reg_rows = load_jsonl(REGRESSIONS)
    for name, reg in (("rules alone", regency()), ("rules + learned model", reg_l)):
        preds, tri = run_normalizer(reg, reg_rows)
        ok = sum((t if r.get("triage") else True) and ("opd" not in r or (p == r["opd"] and not t))
                 for r, p, t in zip(reg_rows, preds, tri))
        print(f"regressions ({len(reg_rows)} lines), {name:<22} as expected {ok}/{len(reg_rows)}")

    if args.errors:
        confusions = Counter((g, p) for g, p in zip(gold, p_learn) if g != p)
        print("most common confusions (gold -> routed):", confusions.most_common(12))
        for r, p in zip(ev, p_learn):
            if r["opd"] != p:
                print(f"  {r['opd']:>11} -> {p:<11} {r['text']}")


if __name__ == "__main__":
    main()
