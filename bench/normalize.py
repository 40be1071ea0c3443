"""Normalizer throughput: messages normalized per second on one core (the eval set's texts,
repeated). Prints figures; asserts nothing.

    .venv/bin/python bench/normalize.py [--n 20000] [--learned]
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import EVAL, TRAIN, load_jsonl, regency  # noqa: E402

from normalizer import normalize, train_router  # noqa: E402
from normalizer.types import InboundMessage  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--learned", action="store_true", help="also route with the learned model")
    args = ap.parse_args()
    rows = load_jsonl(EVAL)
    msgs = [InboundMessage(channel=r.get("channel") or "web", text=r["text"], sender="081234567890")
            for r in rows]
    t0 = time.perf_counter()
    learned = train_router((r["text"], r["opd"]) for r in load_jsonl(TRAIN)) if args.learned else None
    reg = regency(learned)
    print(f"building the regency{' + training' if learned else ''}: {time.perf_counter() - t0:.2f}s")
    now = datetime.now(timezone.utc)
    for m in msgs[:200]:  # warm caches
        normalize(m, reg, now)
    t0 = time.perf_counter()
    for i in range(args.n):
        normalize(msgs[i % len(msgs)], reg, now)
    dt = time.perf_counter() - t0
    kind = "rules + learned model" if learned else "rules alone"
    print(f"{args.n} messages in {dt:.2f}s: {args.n / dt:,.0f} msgs/s on one core ({kind})")


if __name__ == "__main__":
    main()
