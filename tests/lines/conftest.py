"""Fixtures shared by the line tests."""
from __future__ import annotations

import pytest


@pytest.fixture
def restore_line_registrations():
    """Tests switch the SMS provider; leave the process-wide registries as they were."""
    import hub.plugins  # noqa: F401  (every line registers at import: snapshot after that)
    from hub import replies, workers

    senders, periodic = dict(replies.REPLY_SENDERS), list(workers.PERIODIC)
    yield
    replies.REPLY_SENDERS.clear()
    replies.REPLY_SENDERS.update(senders)
    workers.PERIODIC[:] = periodic
