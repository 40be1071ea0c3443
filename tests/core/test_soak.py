"""The fast parts of `make soak` (bench/soak.py) inside `make test`: a hub killed with kill -9
while clients send and retry (SQLite: one kill, 60 messages), and an OPD that fails for two
seconds then recovers. The long runs (2,000+ messages, PostgreSQL stopped, slow OPD with two
worker processes on both stores, a poison message among 1,000) are `make soak`; their shorter
forms are tests/core/test_store_down.py, tests/delivery/test_lease.py, tests/core/test_safety.py."""
from __future__ import annotations

import sys

from tests.core.test_serve import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import soak  # noqa: E402


def test_crash_under_load_loses_and_duplicates_nothing(tmp_path):
    res = soak.scenario_crash("sqlite", 60, tmp_path, kills=1)
    assert res["kills"] == 1 and res["acked"] == 60, res
    assert res["lost"] == 0 and res["duplicate_tickets"] == 0 and res["code_changed_on_retry"] == 0, res
    assert res["tickets"] == 60 and res["pending_left"] == 0, res


def test_opd_failing_then_recovering_gets_every_ticket_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMPUL_DATABASE_URL", f"sqlite:///{tmp_path}/x.db")
    try:
        res = soak.scenario_opdfail(12, 2.0, tmp_path)
    finally:
        from hub.db import reset_engine
        from hub.settings import reset_settings

        reset_engine()
        reset_settings()
    assert res["ok"], res
    assert res["failed_posts"] > 0  # it did fail first
