"""Process-level tuning shared by `simpul serve` and `simpul worker`."""
from __future__ import annotations

import gc

from hub.logging import get_logger

log = get_logger(__name__)


def warm_and_freeze(warm_normalizer: bool) -> int:
    """Load what every request or batch will need, then move the start-up heap out of the
    garbage collector's sight (gc.freeze). Returns how many objects were frozen.

    Why: after start-up a hub process holds a few hundred thousand long-lived objects (the
    gazetteer, the router model, SQLAlchemy's and pydantic's schemas). CPython's full (gen 2)
    collection walks all of them, and under load it ran every second or so and stopped the
    event loop for 80-95 ms each time: that pause was the p99 of intake. Frozen objects are
    never walked again, so a full collection only looks at what was made since."""
    if warm_normalizer:
        try:
            from hub.db import session_scope
            from hub.normalizer_loader import current_regency

            with session_scope() as s:
                current_regency(s)
        except Exception:  # warming is an optimisation; the first batch loads it otherwise
            log.warning("runtime.warm_failed", exc_info=True)
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("runtime.heap_frozen", objects=frozen)
    return frozen
