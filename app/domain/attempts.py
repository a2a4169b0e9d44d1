"""Attempts and backoff (SEMANTICS.md): the BullMQ options mapped onto RQ, and what the worker keeps in
`job.meta` because RQ keeps nothing per attempt."""

from __future__ import annotations

import math
import re
import traceback
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import Retry
from rq.job import Job, JobStatus

# job.meta keys written by workers.MonitoredWorker and by retry; all prefixed so they never clash with
# a producer's own meta.
ATTEMPTS_MADE = "rqmon_attempts_made"  # attempts that have ended (failed or completed)
ATTEMPTS_STARTED = "rqmon_attempts_started"  # runs begun
ERRORS = "rqmon_errors"  # one {"message", "exception", "stacktrace", "at"} per failed attempt, oldest first
RETRIED_FROM = "rqmon_retried_from"  # id of the job this one was retried from
RETRIED_AS = "rqmon_retried_as"  # id of the job this one was retried as
PRIORITY = "rqmon_priority"  # the BullMQ priority the job was enqueued with (0 = none)
ATTEMPTS = "rqmon_attempts"  # configured total attempts
BACKOFF = "rqmon_backoff"  # configured backoff {"type", "delay"} (ms)
PRIORITY_PENDING = "rqmon_priority_pending"  # set when an attempt ends in a retry: back to `prioritized` first

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


def backoff_of_intervals(intervals: list[int]) -> dict[str, Any] | None:
    """The BullMQ backoff that RQ intervals (whole seconds) come from, as `retry_intervals` maps it back."""
    if not any(intervals):
        return None
    delay = intervals[0] * 1000
    if len(set(intervals)) == 1:
        return {"type": "fixed", "delay": delay}
    if all(interval == intervals[0] * 2**k for k, interval in enumerate(intervals)):
        return {"type": "exponential", "delay": delay}
    return {"type": "custom", "delay": delay}


# Writes fields of a hash only while the hash exists: RQ deletes jobs on purpose (result_ttl=0, failure_ttl=0), in
# the same pipeline as the worker's end-of-attempt record, and a plain HSET would bring back a hash holding only
# meta; a worker answering a command during its shutdown must not leave a hash without TTL behind either.
# KEYS: the hash. ARGV: field, value, ... outcomes.record_end runs this body inside its one script.
HSET_IF_EXISTS_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""


def save_meta_if_exists(pipeline: Pipeline | Redis, job: Job) -> None:
    """Queue the write of `job.meta` (or run it at once on a connection); a deleted job stays deleted.
    EVAL, not a Script: no NOSCRIPT after a Redis restart, no SCRIPT EXISTS round trip before the pipeline."""
    script_keys, args = save_meta_arguments(job)
    pipeline.eval(HSET_IF_EXISTS_LUA, len(script_keys), *script_keys, *args)


def save_meta_arguments(job: Job) -> tuple[list[str], list[str | bytes]]:
    """The KEYS and ARGV of HSET_IF_EXISTS_LUA for `job.meta`."""
    return [job.key], ["meta", job.serializer.dumps(job.meta)]


def describe_exception(exception: BaseException, exc_string: str = "") -> tuple[str, str] | None:
    """(message, class name) of the exception that failed an attempt, BullMQ's failedReason being `str(exc)`.
    None when `exc_string` (RQ's traceback of the failure) is not this exception's, e.g. a failure callback's."""
    try:
        shown = "".join(traceback.format_exception_only(exception)).strip()
        if exc_string and not exc_string.strip().endswith(shown):
            return None
        return str(exception), type(exception).__name__
    except Exception:  # a __str__ that raises: the traceback text decides
        return None


_EXCEPTION_NAME = re.compile(r"[A-Za-z_][\w.]*")
_TRACEBACK_HEADER = "Traceback (most recent call last):"


def describe_failure(exc_string: str) -> tuple[str, str | None]:
    """(message, class name or None) from a traceback's text alone, for failures whose exception is gone (plain
    `rq worker`, older records): the last section's exception lines, "module.Class: message" split."""
    text = (exc_string or "").rstrip()
    lines = text.splitlines()
    headers = [i + 1 for i, line in enumerate(lines) if line.startswith(_TRACEBACK_HEADER)]
    if not headers and not any(line.startswith('  File "') for line in lines):
        # not a traceback (nor one cut at its start): RQ's own reasons ("... due to AbandonedJobError ...")
        named = re.search(r"\bdue to (\w+)", text)
        return text.strip(), named.group(1) if named else None
    body = lines[headers[-1] if headers else 0 :]
    first = next((i for i, line in enumerate(body) if line and not line[0].isspace()), len(body))
    shown = body[first:]
    if not shown:
        return "", None
    name, separator, rest = shown[0].partition(": ")
    if not _EXCEPTION_NAME.fullmatch(name):
        return "\n".join(shown), None
    return "\n".join([rest, *shown[1:]] if separator else shown[1:]), name.rpartition(".")[2]


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
            errors = [{"stacktrace": rq_error, "at": None}]
    reason, exception = _latest_failure(errors[-1]) if errors else (None, None)
    return {
        "attemptsMade": made,
        "attemptsStarted": started,
        "failedReason": reason,
        "failedException": exception,
        "stacktrace": [error.get("stacktrace", "") for error in errors],
    }


def _latest_failure(error: dict[str, Any]) -> tuple[str | None, str | None]:
    """Records before `exception` was kept hold the traceback's last line as message: derive both again."""
    if "exception" in error:
        return error.get("message"), error["exception"]
    return describe_failure(error.get("stacktrace") or error.get("message") or "")
