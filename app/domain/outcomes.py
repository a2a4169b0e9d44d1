"""What the end of an attempt leaves behind: the job's own record in `job.meta` (attempts made, each failure) and
the history behind trends and success rates. The worker calls `record_end` for every run it ends; a run that
ended without its worker (it died) is recorded with `record_abandoned_attempt`, by RQ's maintenance in
MonitoredWorker or by the product's own recovery of stalled jobs.
"""

from __future__ import annotations

import time
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq.job import Job

from app.domain import attempts, counters, history, worker_history
from app.domain.history import Outcome
from app.domain.timeutil import iso, to_ms, utcnow

MAX_ERRORS_KEPT = 100  # per job: bounds the job hash however often it is retried
ABANDONED_EXCEPTION = "AbandonedJobError"  # RQ's name for a run whose worker died (rq.exceptions)
ABANDONED_REASON = "The worker running the job died before the job ended (AbandonedJobError)"


# The record of one ended attempt is ONE script in the worker's pipeline (it was three EVALs and four HINCRBY):
# each module keeps its part of the layout as a Lua body with its own KEYS and ARGV (attempts: the job's meta while
# the job exists; history: buckets and recent outcomes; worker_history; counters: Prometheus), run here in that
# order as functions. ARGV starts with each part's number of keys and of arguments, then the parts' KEYS and ARGV
# follow one another.
_PART_BODIES = (attempts.HSET_IF_EXISTS_LUA, history.RECORD_LUA, worker_history.RECORD_LUA, counters.RECORD_LUA)
RECORD_END_LUA = (
    "local parts = {}\n"
    + "".join(f"parts[{n}] = function(KEYS, ARGV)\n{body}\nend\n" for n, body in enumerate(_PART_BODIES, 1))
    + """
local k, a = 1, 2 * #parts + 1
for i = 1, #parts do
  local nk, na = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  parts[i]({unpack(KEYS, k, k + nk - 1)}, {unpack(ARGV, a, a + na - 1)})
  k, a = k + nk, a + na
end
return 1
"""
)


def failure(message: str, exception: str | None, stacktrace: str) -> dict[str, Any]:
    """One entry of `job.meta[attempts.ERRORS]`: what an attempt failed with."""
    limit = attempts.MAX_STACKTRACE_CHARS
    return {"message": message[:limit], "exception": exception, "stacktrace": stacktrace[-limit:], "at": iso(utcnow())}


def record_end(
    pipeline: Pipeline | Redis,
    job: Job,
    outcome: Outcome,
    meta: dict[str, Any],
    error: dict[str, Any] | None,
    duration_ms: int,
) -> None:
    """Queue the record of one ended attempt on `pipeline`: attempts made + 1, the failure (unless `ok`), the
    history entry and the monotonic counters (Prometheus). `meta` must be the job's current meta; it becomes
    `job.meta`. A job RQ deleted earlier in the same pipeline (result_ttl=0, failure_ttl=0) stays deleted; its
    attempt still counts in the history."""
    meta[attempts.ATTEMPTS_MADE] = int(meta.get(attempts.ATTEMPTS_MADE, 0)) + 1
    meta.setdefault(attempts.ATTEMPTS_STARTED, meta[attempts.ATTEMPTS_MADE])
    if error and outcome != "ok":
        meta[attempts.ERRORS] = [*meta.get(attempts.ERRORS, []), error][-MAX_ERRORS_KEPT:]
    if outcome == "retry" and int(meta.get(attempts.PRIORITY, 0)) > 0:
        meta[attempts.PRIORITY_PENDING] = True  # RQ re-enqueues into the list: the worker puts it back first
    job.meta = meta
    name, ended_at = _job_name(job), time.time()
    parts = (
        attempts.save_meta_arguments(job),
        history.record_arguments(job.origin, outcome, duration_ms, job.id, name, ended_at),
        worker_history.record_arguments(  # per worker, for the worker views
            job.worker_name, job.origin, outcome, duration_ms, job.id, name, ended_at
        ),
        counters.record_arguments(job.origin, outcome, duration_ms),
    )
    counts = [str(len(items)) for part in parts for items in part]
    script_keys = [key for part_keys, _ in parts for key in part_keys]
    args = [arg for _, part_args in parts for arg in part_args]
    pipeline.eval(RECORD_END_LUA, len(script_keys), *script_keys, *counts, *args)


def record_abandoned_attempt(
    pipeline: Pipeline | Redis,
    job: Job,
    reason: str = ABANDONED_REASON,
    exception_name: str = ABANDONED_EXCEPTION,
    outcome: Outcome = "fail",
) -> None:
    """Queue the record of a run whose worker died: attempt made, `reason` as its failedReason, `exception_name`
    as its failedException, history `outcome` ("retry" when the job will run again). `job` must be freshly
    fetched (its meta is the base); call it before the job is failed or re-enqueued, in the same pipeline or just
    before, so that RQ's own save of the job keeps the record. The run's duration ends at its last heartbeat."""
    started, ended = to_ms(job.started_at), to_ms(job.last_heartbeat)
    duration_ms = max(0, ended - started) if started is not None and ended is not None else 0
    record_end(pipeline, job, outcome, dict(job.meta or {}), failure(reason, exception_name, reason), duration_ms)


def duration_ms_of(job: Job) -> int:
    """The run's duration as RQ measured it (ended_at is set before the end-of-job bookkeeping)."""
    started, ended = to_ms(job.started_at), to_ms(job.ended_at)
    if started is None:
        return 0
    return max(0, (ended if ended is not None else int(time.time() * 1000)) - started)


def _job_name(job: Job) -> str:
    try:
        return str(job.func_name)
    except Exception:  # a payload that cannot be read still counts, under no name
        return ""
