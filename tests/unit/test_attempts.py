"""The BullMQ attempts/backoff options mapped onto RQ's Retry (SEMANTICS.md)."""

from __future__ import annotations

import traceback

import pytest
from rq import Queue

from app.domain.attempts import (
    attempts_from_meta,
    backoff_of_intervals,
    describe_exception,
    describe_failure,
    retry_for,
    retry_intervals,
)
from app.domain.jobs import job_options
from app.domain.severity import DEFAULT_STUCK_THRESHOLDS, StuckThresholds


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
    "backoff",
    [{"type": "exponential", "delay": 1000}, {"type": "exponential", "delay": 1500}, {"type": "fixed", "delay": 3000}],
)
def test_the_backoff_a_producer_asked_for_is_shown_from_rq_intervals(connection, backoff):
    job = Queue("u-backoff", connection=connection).enqueue("workers.tasks.noop", retry=retry_for(4, backoff))
    delay = retry_intervals(2, backoff)[0] * 1000  # RQ counts whole seconds
    assert job_options(job)["backoff"] == {"type": backoff["type"], "delay": delay}


@pytest.mark.parametrize(
    ("intervals", "backoff"),
    [
        ([], None),
        ([0, 0], None),
        ([2], {"type": "fixed", "delay": 2000}),
        ([1, 2, 4, 8], {"type": "exponential", "delay": 1000}),
        ([3, 3, 3], {"type": "fixed", "delay": 3000}),
        ([1, 5, 30], {"type": "custom", "delay": 1000}),
    ],
)
def test_rq_intervals_map_back_to_a_backoff(intervals, backoff):
    assert backoff_of_intervals(intervals) == backoff


def _traceback_of(exception: BaseException) -> str:
    try:
        raise exception
    except BaseException as raised:
        return "".join(traceback.format_exception(raised))


def _chained() -> str:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("outer: has a colon") from inner
    except ValueError as raised:
        return "".join(traceback.format_exception(raised))


@pytest.mark.parametrize(
    ("text", "described"),
    [
        (_traceback_of(RuntimeError("boom")), ("boom", "RuntimeError")),
        (_traceback_of(RuntimeError("line one\nline two")), ("line one\nline two", "RuntimeError")),
        (_traceback_of(KeyError("x")), ("'x'", "KeyError")),
        (_traceback_of(RuntimeError()), ("", "RuntimeError")),
        (_chained(), ("outer: has a colon", "ValueError")),
        (
            'Traceback (most recent call last):\n  File "t.py", line 1\nrq.timeouts.JobTimeoutException: late',
            ("late", "JobTimeoutException"),
        ),
        (
            "Moved to FailedJobRegistry, due to AbandonedJobError, at 2026-12-01 02:41:10",
            ("Moved to FailedJobRegistry, due to AbandonedJobError, at 2026-12-01 02:41:10", "AbandonedJobError"),
        ),
        ("Work-horse terminated unexpectedly", ("Work-horse terminated unexpectedly", None)),
    ],
)
def test_a_failure_is_described_from_its_traceback_alone(text, described):
    assert describe_failure(text) == described


def test_an_exception_is_described_by_its_own_message_when_the_traceback_is_its_own():
    error = RuntimeError("disk full\nsecond line")
    assert describe_exception(error, _traceback_of(error)) == ("disk full\nsecond line", "RuntimeError")
    assert describe_exception(error, _traceback_of(ValueError("callback failed"))) is None


def test_records_made_before_failed_exception_was_kept_are_described_again():
    old = {"message": "RuntimeError: boom", "stacktrace": _traceback_of(RuntimeError("boom")), "at": None}
    recorded = attempts_from_meta({"rqmon_attempts_made": 1, "rqmon_errors": [old]}, "failed")
    assert (recorded["failedReason"], recorded["failedException"]) == ("boom", "RuntimeError")


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
    assert DEFAULT_STUCK_THRESHOLDS.severity_of(int(minutes * 60_000)) == severity


def test_thresholds_are_configurable():
    assert StuckThresholds((1, 2, 3, 4)).severity_of(5 * 60_000) == "critical"
