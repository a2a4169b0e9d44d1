"""Retry with overrides (seed 002): a NEW job with the same function and arguments, `dataOverrides` merged over
the keyword arguments, and the given priority, attempts and backoff.

Nothing is lost: the new job is stored before the original is touched, and the original is removed last.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis import Redis
from rq import Queue
from rq.command import send_stop_job_command
from rq.job import Job

from app.domain import attempts
from app.domain.errors import JobNotRetryable
from app.domain.jobs import fetch_job, job_options
from app.domain.priority import enqueue_prioritized
from app.domain.severity import DEFAULT_THRESHOLDS_MINUTES, is_stuck
from app.domain.timeutil import to_ms

log = logging.getLogger(__name__)

RETRYABLE_STATES = ("failed", "stopped", "canceled")


def _check_retryable(job: Job, state: str, thresholds: tuple[int, ...], now: float) -> None:
    if state in RETRYABLE_STATES:
        return
    started_ms = to_ms(job.started_at)
    if state == "active" and started_ms is not None:
        if is_stuck(int(now * 1000) - started_ms, thresholds):
            return
        raise JobNotRetryable(f"Job '{job.id}' is active but not stuck; only stuck active jobs can be retried")
    raise JobNotRetryable(f"Job '{job.id}' is {state}; only failed, stopped, canceled and stuck jobs can be retried")


def _enqueue_copy(job: Job, queue: Queue, kwargs: dict[str, Any], options: dict[str, Any]) -> Job:
    current = job_options(job)
    priority = options.get("priority", current["priority"])
    total_attempts = options.get("attempts", current["attempts"])
    backoff = options["backoff"] if "backoff" in options else job.meta.get(attempts.BACKOFF)
    meta = {
        attempts.RETRIED_FROM: job.id,
        attempts.PRIORITY: priority,
        attempts.ATTEMPTS: total_attempts,
        attempts.BACKOFF: backoff,
    }
    common: dict[str, Any] = {
        "timeout": job.timeout,
        "result_ttl": job.result_ttl,
        "failure_ttl": job.failure_ttl,
        "description": job.description,
        "retry": attempts.retry_for(total_attempts, backoff),
        "meta": meta,
    }
    func_name = str(job.func_name)  # by name: the web process need not import the producer's code
    if priority > 0:
        return enqueue_prioritized(queue, func_name, job.args, kwargs, priority, **common)
    return queue.enqueue_call(func_name, args=job.args, kwargs=kwargs, **common)


def remove_original(connection: Redis, job: Job, state: str) -> None:
    if state == "active":
        try:  # ask its worker to stop the run first; a worker that is gone cannot answer
            send_stop_job_command(connection, job.id)
        except Exception as exc:
            log.warning("could not ask the worker of job %s to stop it: %s", job.id, exc)
    job.delete(remove_from_queue=True)


def retry_job(
    connection: Redis,
    queue_name: str,
    job_id: str,
    options: dict[str, Any],
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS_MINUTES,
    now: float | None = None,
) -> str:
    """Enqueue the retry and return its id. `options`: priority, attempts, backoff, dataOverrides, removeOriginal."""
    job, state = fetch_job(connection, queue_name, job_id)
    _check_retryable(job, state, thresholds, time.time() if now is None else now)
    try:
        kwargs = {**job.kwargs, **(options.get("dataOverrides") or {})}
        job.args  # noqa: B018 - fails here, before anything is written, if the payload cannot be read
    except Exception as exc:
        raise JobNotRetryable(
            f"Job '{job.id}' cannot be retried: its arguments cannot be read ({type(exc).__name__})"
        ) from exc
    queue = Queue(queue_name, connection=connection, serializer=job.serializer)
    new_job = _enqueue_copy(job, queue, kwargs, options)
    job.meta[attempts.RETRIED_AS] = new_job.id
    job.save_meta()
    if options.get("removeOriginal"):
        remove_original(connection, job, state)
    return new_job.id
