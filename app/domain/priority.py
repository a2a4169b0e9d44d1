"""BullMQ priorities over RQ: prioritized jobs wait in a sorted set of their own, beside RQ's list.

Score = priority * 2**32 + sequence: lower priority number first, FIFO within a level. MonitoredWorker moves
the lowest-scored job into the queue's list only when that list is empty, so every waiting job runs before any
prioritized one (BullMQ 6 order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import Queue
from rq.job import Job, JobStatus

from app.domain import attempts, keys
from app.domain.queues import ALL_QUEUES_KEY, queue_keys

MAX_PRIORITY = 2_097_151
SEQUENCE_SPAN = 2**32


def score(priority: int, sequence: int) -> int:
    return priority * SEQUENCE_SPAN + sequence % SEQUENCE_SPAN


def next_sequence(connection: Redis) -> int:
    return int(connection.incr(keys.PRIORITY_SEQUENCE))


def add_prioritized(pipeline: Pipeline | Redis, queue_name: str, job_id: str, priority: int, sequence: int) -> None:
    pipeline.zadd(queue_keys(queue_name).prioritized, {job_id: score(priority, sequence)})


def count_prioritized(connection: Redis, queue_name: str) -> int:
    return int(connection.zcard(queue_keys(queue_name).prioritized))


def check_priority(priority: Any) -> None:
    """BullMQ priorities are integers 0..MAX_PRIORITY: 1.5, True or "1" are refused, never rounded or parsed."""
    if type(priority) is not int or not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be an integer between 0 and {MAX_PRIORITY}, not {priority!r}")


def requeue_prioritized(connection: Redis, queue_name: str, job: Job, popped_from: str) -> None:
    """A prioritized job that RQ put in the list (a retry, at once or when its backoff ended) goes back to the
    prioritized set with its priority, behind the jobs of its level; `popped_from` is the list the worker's dequeue
    moved it to (RQ's intermediate queue). `job.meta` is saved as it is (the caller clears PRIORITY_PENDING)."""
    sequence = next_sequence(connection)
    with connection.pipeline() as pipe:
        pipe.lrem(popped_from, 1, job.id)
        add_prioritized(pipe, queue_name, job.id, int(job.meta.get(attempts.PRIORITY, 0)), sequence)
        attempts.save_meta_if_exists(pipe, job)
        pipe.execute()


def enqueue_prioritized(
    queue: Queue,
    func: Callable[..., Any] | str,
    args: tuple | list | None,
    kwargs: dict[str, Any] | None,
    priority: int,
    **job_options: Any,
) -> Job:
    """Create and store an RQ job (status queued) whose id waits in the prioritized set instead of the list;
    priority 0 means none: a plain enqueue into the list."""
    check_priority(priority)
    meta = {**job_options.pop("meta", {}), attempts.PRIORITY: priority}
    if priority == 0:
        return queue.enqueue_call(func, args=tuple(args or ()), kwargs=kwargs or {}, meta=meta, **job_options)  # type: ignore[type-var]
    job = queue.create_job(func, args=tuple(args or ()), kwargs=kwargs or {}, meta=meta, **job_options)  # type: ignore[type-var]
    sequence = next_sequence(queue.connection)
    with queue.connection.pipeline() as pipe:
        job.set_status(JobStatus.QUEUED, pipeline=pipe)
        job.enqueued_at = job.created_at
        job.save(pipeline=pipe)
        pipe.sadd(ALL_QUEUES_KEY, queue.key)
        add_prioritized(pipe, queue.name, job.id, priority, sequence)
        pipe.execute()
    return job
