"""The BullMQ attempts/backoff options mapped onto RQ's Retry (SEMANTICS.md)."""

from __future__ import annotations

import pytest

from app.domain.attempts import retry_for, retry_intervals
from app.domain.severity import severity_for


@pytest.mark.parametrize(
    ("attempts", "backoff", "intervals"),
    [
        (1, None, []),
        (1, {"type": "exponential", "delay": 2000}, []),
        (3, {"type": "exponential", "delay": 2000}, [2, 4]),
        (4, {"type": "exponential", "delay": 1500}, [2, 4, 8]),
        (3, {"type": "fixed", "delay": 5000}, [5, 5]),
        (3, {"type": "fixed", "delay": 1}, [1, 1]),
        (2, {"type": "fixed", "delay": 0}, [0]),
        (3, None, [0, 0]),
    ],
)
def test_backoff_maps_to_rq_intervals(attempts, backoff, intervals):
    assert retry_intervals(attempts, backoff) == intervals


def test_attempts_count_total_runs():
    retry = retry_for(3, {"type": "exponential", "delay": 2000})
    assert retry is not None and retry.max == 2 and retry.intervals == [2, 4]
    assert retry_for(1, None) is None


@pytest.mark.parametrize(
    ("minutes", "severity"),
    [
        (9.99, None),
        (10, "low"),
        (29.99, "low"),
        (30, "medium"),
        (59.99, "medium"),
        (60, "high"),
        (119.99, "high"),
        (120, "critical"),
        (600, "critical"),
    ],
)
def test_stuck_bands_at_each_boundary(minutes, severity):
    assert severity_for(int(minutes * 60_000)) == severity


def test_thresholds_are_configurable():
    assert severity_for(5 * 60_000, (1, 2, 3, 4)) == "critical"
