"""Attempts and backoff (SEMANTICS.md): the BullMQ options mapped onto RQ, and what the worker keeps in
`job.meta` because RQ keeps nothing per attempt."""

from __future__ import annotations

import math
from typing import Any

from rq import Retry
from rq.job import Job, JobStatus

# job.meta keys written by workers.MonitoredWorker and by retry; all prefixed so they never clash with
# a producer's own meta.
ATTEMPTS_MADE = "rqmon_attempts_made"  # attempts that have ended (failed or completed)
ATTEMPTS_STARTED = "rqmon_attempts_started"  # runs begun
ERRORS = "rqmon_errors"  # one {"message", "stacktrace", "at"} per failed attempt, oldest first
RETRIED_FROM = "rqmon_retried_from"  # id of the job this one was retried from
RETRIED_AS = "rqmon_retried_as"  # id of the job this one was retried as
PRIORITY = "rqmon_priority"  # the BullMQ priority the job was enqueued with (0 = none)
ATTEMPTS = "rqmon_attempts"  # configured total attempts
BACKOFF = "rqmon_backoff"  # configured backoff {"type", "delay"} (ms)

MAX_STACKTRACE_CHARS = 8000  # per attempt; bounds the job hash whatever the job raises


def retry_intervals(attempts: int, backoff: dict[str, Any] | None) -> list[int]:
    """RQ intervals (whole seconds) between the `attempts` runs; [] when attempts == 1."""
    retries = attempts - 1
    if retries <= 0:
        return []
    if not backoff:
        return [0] * retries
    seconds = math.ceil(int(backoff.get("delay", 0)) / 1000)
    if backoff.get("type") == "exponential":
        return [seconds * 2**k for k in range(retries)]
    return [seconds] * retries


def retry_for(attempts: int, backoff: dict[str, Any] | None) -> Retry | None:
    """`attempts: N` counts total runs, so it is `Retry(max=N-1)`; None when N == 1."""
    intervals = retry_intervals(attempts, backoff)
    if not intervals:
        return None
    return Retry(max=len(intervals), interval=intervals)


def read_attempts(job: Job, status: JobStatus | str | None = None, rq_error: str | None = None) -> dict[str, Any]:
    """attemptsMade, attemptsStarted, failedReason and stacktrace of a job, from what the worker recorded;
    jobs run by a plain `rq worker` (no record) get what RQ's own fields imply (`rq_error`: its latest
    failure's traceback, when the caller fetched it)."""
    return attempts_from_meta(job.meta or {}, status if status is not None else job.get_status(refresh=False), rq_error)


def attempts_from_meta(meta: dict[str, Any], status: JobStatus | str | None, rq_error: str | None = None) -> dict:
    errors = meta.get(ERRORS) or []
    if ATTEMPTS_MADE in meta or ATTEMPTS_STARTED in meta:
        made = int(meta.get(ATTEMPTS_MADE, 0))
        started = int(meta.get(ATTEMPTS_STARTED, made))
    else:
        made = 1 if status in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED) else 0
        started = made + (1 if status == JobStatus.STARTED else 0)
        if rq_error and not errors:
            errors = [{"message": _last_line(rq_error), "stacktrace": rq_error, "at": None}]
    return {
        "attemptsMade": made,
        "attemptsStarted": started,
        "failedReason": errors[-1]["message"] if errors else None,
        "stacktrace": [error["stacktrace"] for error in errors],
    }


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text
