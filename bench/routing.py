"""Routing benchmark (issue #12). On two dev sets -- the real-shaped set's test split
(tests/data/routing_dev_real_test.jsonl, 2026 offices, citizens' spelling) and the older
hand-written eval set (tests/data/routing_eval.jsonl) -- prints for (a) the keyword rules alone and
(b) the learned router after learning on 500 / 2,000 / 5,000 examples: accuracy (a ticket sent to
triage counts as wrong, as on the live stream), macro-F1, auto-routed precision and coverage; and
beside each learned row a plain scikit-learn baseline (TF-IDF word 1-2 + char_wb 2-5 grams,
LinearSVC, balanced classes) trained on the same examples. Then the regression table
(tests/data/routing_regressions.jsonl), which tests/normalizer/test_regressions.py asserts for
rules alone. Prints figures; asserts nothing.

Training pools: 500 = a sample of the real-shaped train split; 2,000 and 5,000 = the whole
real-shaped train split (~700 lines) plus the older synthetic training set
(tests/data/routing_train.jsonl) -- there are not 5,000 real-shaped lines, so the larger pools are
mostly the older, easier synthetic text.

    .venv/bin/python bench/routing.py [--sizes 500,2000,5000] [--errors] [--quick]

Writes its figures to bench/results/latest.json ("routing"): for each pool, the learned router's
accuracy and its ceiling from the same run, the plain baseline's accuracy on the same examples
(`vs_baseline` = learned / baseline). `--quick`: the 500 pool only (what the test runs).
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

from _common import EVAL, ROOT, TRAIN, load_jsonl, record_results, regency  # noqa: E402

from normalizer import normalize  # noqa: E402
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


DEV_TRAIN = ROOT / "tests" / "data" / "routing_dev_real_train.jsonl"
DEV_TEST = ROOT / "tests" / "data" / "routing_dev_real_test.jsonl"


def figures(gold: list[str], pred: list[str], triaged: list[bool]) -> dict:
    dec = [(g, p) for g, p, t in zip(gold, pred, triaged) if not t]
    return {"acc": accuracy(gold, [p if not t else "-" for p, t in zip(pred, triaged)]),
            "f1": macro_f1(gold, [p if not t else "-" for p, t in zip(pred, triaged)]),
            "prec": sum(g == p for g, p in dec) / len(dec) if dec else 0.0,
            "cov": len(dec) / len(gold)}


def fmt(f: dict) -> str:
    return f"acc {f['acc']:.3f}  F1 {f['f1']:.3f}  auto prec {f['prec']:.3f}  cov {f['cov']:.3f}"


def baseline(train: list[dict], sets: dict[str, list[dict]]) -> dict[str, dict]:
    """TF-IDF word + char n-grams, LinearSVC (balanced); decides every message (coverage 1)."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    texts = [r["text"] for r in train]
    vw = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    vc = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)
    x = hstack([vw.fit_transform(texts), vc.fit_transform(texts)]).tocsr()
    clf = LinearSVC(C=0.5, class_weight="balanced").fit(x, [r["opd"] for r in train])
    out = {}
    for name, rows in sets.items():
        t = [r["text"] for r in rows]
        pred = list(clf.predict(hstack([vw.transform(t), vc.transform(t)]).tocsr()))
        out[name] = figures([r["opd"] for r in rows], pred, [False] * len(rows))
    return out


def dev_threshold(reg, rows: list[dict]) -> str:
    """What the dev set itself says: the lowest confidence at which auto-routed top guesses are
    right >= 93%, and the coverage there (the model's own threshold comes from its CV)."""
    from normalizer.learn import choose_threshold

    now = datetime.now(timezone.utc)
    conf, right = [], []
    for r in rows:
        d = normalize(InboundMessage(channel=r.get("channel") or "web", text=r["text"],
                                     fields=r.get("fields") or {}), reg, now)
        top = d.routing.candidates[0] if d.routing.candidates else (d.routing.opd, 0.0)
        conf.append(top[1])
        right.append(top[0] == r["opd"])
    t = choose_threshold(conf, right, floor=0.0)
    cov = sum(c >= t for c in conf) / len(conf)
    prec = sum(ok for c, ok in zip(conf, right) if c >= t) / max(1, sum(c >= t for c in conf))
    return f"(dev-set threshold for >= 93% auto precision: {t:.2f} -> precision {prec:.3f} at coverage {cov:.3f})"


def main() -> None:
    import random

    from normalizer.learn import train_linear

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="500,2000,5000")
    ap.add_argument("--errors", action="store_true", help="print the misrouted real-shaped test lines")
    ap.add_argument("--quick", action="store_true", help="the 500 pool only")
    args = ap.parse_args()
    if args.quick:
        args.sizes = "500"

    dev_tr, dev_te, ev, old_tr = load_jsonl(DEV_TRAIN), load_jsonl(DEV_TEST), load_jsonl(EVAL), load_jsonl(TRAIN)
    sets = {"real-shaped test": dev_te, "hand-written eval": ev}
    print(f"dev sets: real-shaped test split {len(dev_te)} lines ({len(set(r['opd'] for r in dev_te))} OPDs), "
          f"hand-written eval {len(ev)} lines; pools: real-shaped train {len(dev_tr)}, older synthetic train "
          f"{len(old_tr)} ({sum(1 for r in old_tr if r['text'] in {e['text'] for e in ev})} identical to eval)")

    results: dict = {"sets": {name: len(rows) for name, rows in sets.items()}, "rules_alone": {}, "learned": {}}
    reg = regency()
    print("\n(a) rules alone (fresh install)")
    for name, rows in sets.items():
        p, t = run_normalizer(reg, rows)
        f = figures([r['opd'] for r in rows], p, t)
        results["rules_alone"][name] = f
        print(f"    {name:<18} {fmt(f)}")

    rng = random.Random(12)
    last_reg = reg
    for size in [int(x) for x in args.sizes.split(",") if x]:
        if size <= len(dev_tr):
            pool = rng.sample(dev_tr, size)
            what = f"{size} real-shaped"
        else:
            pool = dev_tr + old_tr[: size - len(dev_tr)]
            what = f"{len(dev_tr)} real-shaped + {len(pool) - len(dev_tr)} older synthetic"
        t0 = time.perf_counter()
        model = train_linear([(r["text"], r["opd"], r.get("channel")) for r in pool], reg)
        secs = time.perf_counter() - t0
        reg_l = regency(learned=model)
        print(f"\n(b) learned on {len(pool)} ({what}; trained in {secs:.1f}s, CV accuracy "
              f"{model['cv_accuracy']}, auto-route threshold {model['threshold']:.2f})")
        base = baseline(pool, sets)
        per_set = results["learned"][str(size)] = {"pool": what, "train_s": round(secs, 2)}
        for name, rows in sets.items():
            p, t = run_normalizer(reg_l, rows)
            if name == "real-shaped test":
                print(f"    {'':<18} {dev_threshold(reg_l, rows)}")
            f = figures([r['opd'] for r in rows], p, t)
            print(f"    {name:<18} learned  {fmt(f)}")
            print(f"    {'':<18} baseline {fmt(base[name])}")
            # the ceiling: a plain TF-IDF + LinearSVC trained on the same examples in this run
            per_set[name] = {"learned": f, "baseline": base[name],
                             "vs_baseline": round(f["acc"] / base[name]["acc"], 3) if base[name]["acc"] else None}
        last_reg = reg_l

    reg_rows = load_jsonl(REGRESSIONS)
    print()
    for name, rg in (("rules alone", reg), ("learned (last pool)", last_reg)):
        preds, tri = run_normalizer(rg, reg_rows)
        ok = sum((t if r.get("triage") else True) and ("opd" not in r or (p == r["opd"] and not t))
                 for r, p, t in zip(reg_rows, preds, tri))
        print(f"regressions ({len(reg_rows)} lines), {name:<22} as expected {ok}/{len(reg_rows)}")
        results.setdefault("regressions", {})[name] = {"as_expected": ok, "lines": len(reg_rows)}
    results["ceiling"] = ("baseline: TF-IDF word 1-2 + char_wb 2-5 grams, LinearSVC (balanced), trained on each "
                          "pool in the same run; vs_baseline = learned accuracy / baseline accuracy")
    results["quick"] = args.quick
    results["loadavg"] = [round(x, 2) for x in __import__("os").getloadavg()]
    print(f"figures written to {record_results('routing', results)}")

    if args.errors:
        p, t = run_normalizer(last_reg, dev_te)
        confusions = Counter((r["opd"], "triage" if tt else pp) for r, pp, tt in zip(dev_te, p, t) if r["opd"] != pp)
        print("most common confusions (gold -> routed):", confusions.most_common(12))


if __name__ == "__main__":
    main()
