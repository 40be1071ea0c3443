"""Normalizer throughput on one core, single process: messages normalized per second with rules
alone and with rules + the model learned from tests/data/routing_train.jsonl. Prints figures;
asserts nothing.

    .venv/bin/python bench/normalize.py [--n 5000] [--repeat 5] [--only rules|learned]

Figures use CPU time of this process (time.process_time) and keep the best of --repeat runs,
because the machine is usually shared: wall-clock figures move with other people's load (the
best wall-clock run is printed too). "eval texts" cycles the 619 hand-written eval lines, as
the target is stated; "unseen texts" normalizes each of the 5,000 training lines once after
that, so nothing per message can come from a cache (vocabulary-level caches stay warm, as in
a long-running hub).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import EVAL, TRAIN, load_jsonl, record_results, regency  # noqa: E402

FIGURES: dict = {}

from normalizer import normalize, train_router  # noqa: E402
from normalizer.types import InboundMessage  # noqa: E402


def _messages(rows: list[dict]) -> list[InboundMessage]:
    return [InboundMessage(channel=r.get("channel") or "web", text=r["text"], sender="081234567890")
            for r in rows]


def _run(msgs: list[InboundMessage], n: int, reg, now: datetime) -> tuple[float, float]:
    """Normalize n messages cycling msgs -> (CPU seconds, wall seconds)."""
    c0, w0 = time.process_time(), time.perf_counter()
    for i in range(n):
        normalize(msgs[i % len(msgs)], reg, now)
    return time.process_time() - c0, time.perf_counter() - w0


def bench(kind: str, reg, eval_msgs, unseen_msgs, n: int, repeat: int) -> None:
    now = datetime.now(timezone.utc)
    for m in eval_msgs:  # warm the vocabulary caches once
        normalize(m, reg, now)
    runs = [_run(eval_msgs, n, reg, now) for _ in range(repeat)]
    cpu = [n / c for c, _w in runs]
    wall = max(n / w for _c, w in runs)
    print(f"{kind:<22} eval texts:   best {max(cpu):>6,.0f} msgs/s CPU (median {statistics.median(cpu):,.0f}, "
          f"{repeat} runs of {n}); best wall-clock {wall:,.0f} msgs/s")
    c, w = _run(unseen_msgs, len(unseen_msgs), reg, now)
    print(f"{'':<22} unseen texts: {len(unseen_msgs) / c:>6,.0f} msgs/s CPU "
          f"({len(unseen_msgs)} texts once; wall-clock {len(unseen_msgs) / w:,.0f} msgs/s)")
    FIGURES[kind] = {"eval_best_cpu_msgs_s": round(max(cpu)), "eval_median_cpu_msgs_s": round(statistics.median(cpu)),
                     "unseen_cpu_msgs_s": round(len(unseen_msgs) / c)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000, help="messages per timed run")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs; the best is reported")
    ap.add_argument("--only", choices=["rules", "learned"], help="run one configuration")
    ap.add_argument("--learned", action="store_true", help="same as --only learned (old flag)")
    args = ap.parse_args()
    only = "learned" if args.learned else args.only
    train = load_jsonl(TRAIN)
    eval_msgs, unseen_msgs = _messages(load_jsonl(EVAL)), _messages(train)
    print("one process, one core; the machine may be shared, so figures vary between runs")
    if only in (None, "rules"):
        t0 = time.perf_counter()
        reg = regency()
        print(f"building the regency: {time.perf_counter() - t0:.2f}s")
        bench("rules alone", reg, eval_msgs, unseen_msgs, args.n, args.repeat)
    if only in (None, "learned"):
        t0 = time.perf_counter()
        reg = regency(train_router((r["text"], r["opd"]) for r in train))
        print(f"building the regency + training on {len(train)} lines: {time.perf_counter() - t0:.2f}s")
        bench("rules + learned model", reg, eval_msgs, unseen_msgs, args.n, args.repeat)
    record_results("normalize", FIGURES)


if __name__ == "__main__":
    main()
