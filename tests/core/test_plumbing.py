"""adapters.base: the one Retry-After parser, HTTP-error classifier and back-off."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from adapters.base import PermanentError, RetryableError, backoff_delay, http_error, parse_retry_after

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("value,expected", [
    (None, None), ("", None), ("120", 120.0), (" 7 ", 7.0), ("1.5", 1.5), (30, 30.0), ("soon", None),
    (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
    (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
])
def test_retry_after_accepts_seconds_and_http_dates(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize("status,kind", [(408, RetryableError), (429, RetryableError), (500, RetryableError),
                                         (503, RetryableError), (400, PermanentError), (404, PermanentError),
                                         (301, PermanentError)])
def test_http_error_classifies_status(status, kind):
    err = http_error(status, f"HTTP {status}", "5")
    assert type(err) is kind
    if kind is RetryableError:
        assert err.retry_after == 5.0


@pytest.mark.parametrize("attempt,base,cap,low,high", [(1, 30, 1800, 15, 30), (3, 30, 1800, 60, 120),
                                                       (10, 30, 1800, 900, 1800), (0, 2, 60, 1, 2)])
def test_backoff_doubles_with_jitter_up_to_the_cap(attempt, base, cap, low, high):
    assert all(low <= backoff_delay(attempt, base, cap) <= high for _ in range(30))
    assert backoff_delay(attempt, base, cap, jitter=False) == high
