"""Retry with overrides (seed 002): a NEW job with the same function and arguments, `dataOverrides` merged over
the keyword arguments, `argsOverrides` replacing the positional ones, and the given priority, attempts and backoff.

A job is retried once: a second retry names the copy (409) unless the caller forces it, and a short claim key keeps
two concurrent retries from both copying it.

Nothing is lost: the new job is stored before the original is touched, and the original is removed last, in one
transaction, so a failure at any step leaves the original whole in its registry. A stuck run is removed only once
its worker has stopped it: a run that goes on would write its end into the job again, or run it again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, cast

from redis import Redis
from redis.client import Pipeline
from rq import Queue
from rq.job import Job, Retry
from rq.results import Result

from app.domain import attempts, keys
from app.domain.errors import JobAlreadyRetried, JobNotActive, JobNotRetryable
from app.domain.jobs import fetch_job, job_options
from app.domain.priority import enqueue_prioritized
from app.domain.severity import DEFAULT_STUCK_THRESHOLDS, StuckThresholds
from app.domain.states import FAILED_STATES, JobState
from app.domain.timeutil import to_ms
from app.domain.worker_control import stop_run

log = logging.getLogger(__name__)

RETRYABLE_STATES = FAILED_STATES
STOP_WAIT_SECONDS = 5.0  # how long removeOriginal waits for a live worker to record the stop of its run


@dataclass(frozen=True)
class Retried:
    new_job_id: str
    original_removed: bool  # False when removeOriginal was not asked for, or the original's run did not stop


def _check_retryable(job: Job, state: str, thresholds: StuckThresholds, now: float) -> None:
    if state in RETRYABLE_STATES:
        return
    started_ms = to_ms(job.started_at)
    if state == JobState.ACTIVE and started_ms is not None:
        if thresholds.is_stuck(int(now * 1000) - started_ms):
            return
        raise JobNotRetryable(f"Job '{job.id}' is active but not stuck; only stuck active jobs can be retried")
    raise JobNotRetryable(f"Job '{job.id}' is {state}; only failed, stopped, canceled and stuck jobs can be retried")


def _retry_policy(job: Job, total_attempts: int, options: dict[str, Any]) -> tuple[Retry | None, Any]:
    """RQ's Retry and the backoff to record: the given or recorded backoff, else the original's RQ intervals."""
    backoff = options["backoff"] if "backoff" in options else job.meta.get(attempts.BACKOFF)
    intervals = list(job.retry_intervals or [])
    if backoff is None and intervals and total_attempts > 1:  # enqueued with a plain rq.Retry: keep its intervals
        return Retry(max=total_attempts - 1, interval=intervals), None
    return attempts.retry_for(total_attempts, backoff), backoff


def _enqueue_copy(
    job: Job, queue: Queue, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
) -> Job:
    current = job_options(job)
    priority = options.get("priority", current["priority"])
    total_attempts = options.get("attempts", current["attempts"])
    retry, backoff = _retry_policy(job, total_attempts, options)
    meta: dict[str, Any] = {
        attempts.RETRIED_FROM: job.id,
        attempts.PRIORITY: priority,
        attempts.ATTEMPTS: total_attempts,
    }
    if backoff is not None:
        meta[attempts.BACKOFF] = backoff
    common: dict[str, Any] = {
        "timeout": job.timeout,
        "result_ttl": job.result_ttl,
        "failure_ttl": job.failure_ttl,
        # RQ's default description is the call string: recompute it for the new arguments; keep a custom one.
        "description": job.description if job.description != job.get_call_string() else None,
        "retry": retry,
        "meta": meta,
    }
    func_name = str(job.func_name)  # by name: the web process need not import the producer's code
    if priority > 0:
        return enqueue_prioritized(queue, func_name, args, kwargs, priority, **common)
    return queue.enqueue_call(func_name, args=args, kwargs=kwargs, **common)


def mark_retried_as(connection: Redis, job: Job, new_id: str) -> None:
    """Add `retriedAs` to the original's meta as it is in Redis now, not to the copy read at the start: a worker
    may have recorded an attempt since. Optimistic (WATCH): written again if the meta changes meanwhile; a job
    deleted meanwhile must not come back holding only meta."""

    def write(pipe: Pipeline) -> None:
        if not pipe.exists(job.key):
            return
        raw = cast(bytes | None, pipe.hget(job.key, "meta"))  # watching: the pipeline runs it at once
        meta = job.serializer.loads(raw) if raw else {}
        meta[attempts.RETRIED_AS] = new_id
        pipe.multi()
        pipe.hset(job.key, "meta", job.serializer.dumps(meta))

    connection.transaction(write, job.key)
    job.meta[attempts.RETRIED_AS] = new_id


def _run_ended(connection: Redis, job: Job) -> bool:
    """Stop the original's run first: once deleted, a run still going would write its end into the job again (RQ
    saves the job when it completes), or enqueue the original beside its copy (a failure with retries left)."""
    try:
        ended = stop_run(connection, job, STOP_WAIT_SECONDS)
    except JobNotActive:  # its worker is gone: no one will write this run's end
        return True
    if not ended:
        log.warning("worker %s did not stop job %s within %g s: kept", job.worker_name, job.id, STOP_WAIT_SECONDS)
    return ended


def remove_original(connection: Redis, job: Job, state: str) -> bool:
    """Registry entry, hash, executions and results in one transaction (rq 2.12's delete keeps results). False,
    and nothing removed, when the original is a run that its worker did not stop."""
    if state == JobState.ACTIVE and not _run_ended(connection, job):
        return False
    with connection.pipeline() as pipe:
        job.delete(pipeline=pipe, remove_from_queue=True)
        pipe.delete(Result.get_key(job.id))
        pipe.execute()
    return True


def _arguments(job: Job, options: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    try:
        kwargs = {**job.kwargs, **(options.get("dataOverrides") or {})}
        args = tuple(options["argsOverrides"]) if "argsOverrides" in options else tuple(job.args)
    except Exception as exc:  # fails here, before anything is written, if the payload cannot be read
        raise JobNotRetryable(
            f"Job '{job.id}' cannot be retried: its arguments cannot be read ({type(exc).__name__})"
        ) from exc
    return args, kwargs


def _check_not_retried(job: Job, meta: dict[str, Any]) -> None:
    copy_id = meta.get(attempts.RETRIED_AS)
    if copy_id:
        raise JobAlreadyRetried(job.id, str(copy_id))


def retry_job(
    connection: Redis,
    queue_name: str,
    job_id: str,
    options: dict[str, Any],
    thresholds: StuckThresholds = DEFAULT_STUCK_THRESHOLDS,
    now: float | None = None,
) -> Retried:
    """Enqueue the retry; its id, and whether the original was removed. `options`: priority, attempts, backoff,
    dataOverrides, argsOverrides, removeOriginal, force (retry a job that was already retried)."""
    job, state = fetch_job(connection, queue_name, job_id)
    if getattr(job, "_unreadable_meta", None) is not None:  # RQ kept the bytes it could not unpickle
        raise JobNotRetryable(f"Job '{job.id}' cannot be retried: its metadata cannot be read")
    _check_retryable(job, state, thresholds, time.time() if now is None else now)
    force = bool(options.get("force"))
    if not force:
        _check_not_retried(job, job.meta)
    args, kwargs = _arguments(job, options)
    claim = keys.retry_claim(job.id)
    if not force and not connection.set(claim, "1", nx=True, ex=keys.RETRY_CLAIM_TTL_SECONDS):
        raise JobAlreadyRetried(job.id, None)
    try:
        if not force:  # a retry that ended between our read and our claim has marked the original by now
            _check_not_retried(job, job.get_meta(refresh=True))
        queue = Queue(queue_name, connection=connection, serializer=job.serializer)
        new_job = _enqueue_copy(job, queue, args, kwargs, options)
        mark_retried_as(connection, job, new_job.id)  # first: should the removal fail, the original says where
        removed = bool(options.get("removeOriginal")) and remove_original(connection, job, state)
    finally:
        if not force:
            connection.delete(claim)
    return Retried(new_job.id, removed)
