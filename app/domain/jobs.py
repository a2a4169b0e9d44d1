"""Jobs as the API shows them: states, summaries, details and Redis-side pagination.

Every page costs the same whatever its depth: one range read on the registry or list, then one pipeline of
HGETALL for the page's jobs. A job whose payload cannot be read is shown, marked, instead of failing the page.
"""

from __future__ import annotations

import json
import zlib
from datetime import datetime
from typing import Any

from redis import Redis
from rq.job import Job, JobStatus
from rq.serializers import DefaultSerializer

from app.domain import attempts
from app.domain.errors import InvalidInput, JobNotFound, QueueNotFound
from app.domain.names import check_job_id
from app.domain.queues import QueueKeys, queue_exists_reads, queue_keys
from app.domain.timeutil import iso, iso_from_timestamp

BROWSABLE_STATES = ("waiting", "prioritized", "active", "completed", "failed", "delayed")
MAX_PER_PAGE = 200

# RQ status -> BullMQ word (SEMANTICS.md)
STATE_OF_STATUS = {
    JobStatus.QUEUED: "waiting",
    JobStatus.STARTED: "active",
    JobStatus.FINISHED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.SCHEDULED: "delayed",
    JobStatus.DEFERRED: "waiting-children",
    JobStatus.STOPPED: "stopped",
    JobStatus.CANCELED: "canceled",
}


_JSON_SCALARS = (str, int, float, bool, type(None))


def _plain_json(value: Any) -> bool:
    """True when `value` is made only of JSON types (checked by exact type, so subclasses take the slow path)."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        return True
    if kind is list:
        return all(_plain_json(item) for item in value)
    if kind is dict:
        return all(type(key) is str and _plain_json(item) for key, item in value.items())
    return False


def json_safe(value: Any) -> Any:
    """What JSON can hold, as is; anything else as its repr(). Most payloads are plain: a walk, no copy."""
    try:
        if _plain_json(value):
            return value
        return json.loads(json.dumps(value, default=repr))
    except (RecursionError, ValueError):  # nested too deep, or a reference cycle
        return repr(value)[:1000]


def started_entry_job_id(entry: str) -> str:
    """Started-registry entries are `job_id:execution_id` in RQ 2+ (the execution id is a uuid hex)."""
    job_id, _, execution_id = entry.rpartition(":")
    return job_id if job_id and len(execution_id) == 32 else entry


def job_key(job_id: str) -> str:
    return Job.redis_job_namespace_prefix + job_id


def restore_job(connection: Redis, job_id: str, raw: dict[bytes, bytes]) -> Job:
    job = Job(job_id, connection=connection)
    job.restore(raw)
    return job


def job_data(job: Job) -> dict[str, Any]:
    return {"args": json_safe(list(job.args)), "kwargs": json_safe(dict(job.kwargs))}


def state_of(job: Job, prioritized: bool = False) -> str:
    status = job.get_status(refresh=False)
    if status == JobStatus.QUEUED and prioritized:
        return "prioritized"
    return STATE_OF_STATUS.get(status, str(status.value if status else "unknown"))  # type: ignore[union-attr]


def summarize(job: Job, queue_name: str, state: str, delay_until: str | None = None) -> dict[str, Any]:
    """The fields a job list shows; raises when the payload cannot be deserialized (see `summarize_raw`)."""
    recorded = attempts.read_attempts(job)
    return {
        "jobId": job.id,
        "queueName": queue_name,
        "jobName": job.func_name,
        "state": state,
        "data": job_data(job),
        "priority": int(job.meta.get(attempts.PRIORITY, 0)),
        "attemptsMade": recorded["attemptsMade"],
        "timestamp": iso(job.created_at or job.enqueued_at),  # first enqueued; RQ re-sets enqueued_at on requeue
        "enqueuedAt": iso(job.enqueued_at),
        "delayUntil": delay_until,
        "processedOn": iso(job.started_at),
        "finishedOn": iso(job.ended_at),
        "failedReason": recorded["failedReason"],
        "workerName": job.worker_name or None,
        "description": job.description,
        "retriedAs": job.meta.get(attempts.RETRIED_AS),
    }


def _date(value: bytes | None) -> str | None:
    if not value:
        return None
    text = value.decode()
    # RQ writes "%Y-%m-%dT%H:%M:%S.%fZ": keep the milliseconds without parsing (a page has 75 dates)
    if len(text) == 27 and text[19] == "." and text[-1] == "Z" and text[20:26].isdigit():
        return text[:23] + "Z"
    return iso(datetime.fromisoformat(text.rstrip("Z")))


def summarize_fast(
    job_id: str, queue_name: str, state: str, raw: dict[bytes, bytes], delay_until: str | None = None
) -> dict[str, Any]:
    """`summarize` without building an RQ Job: a page decodes 25 hashes, and Job.restore parses every date
    with strptime. Only for RQ's default serializer; anything else raises and takes the full path."""
    func_name, _instance, args, kwargs = DefaultSerializer.loads(zlib.decompress(raw[b"data"]))
    meta = DefaultSerializer.loads(raw[b"meta"]) if raw.get(b"meta") else {}
    recorded = attempts.attempts_from_meta(meta, (raw.get(b"status") or b"").decode())
    return {
        "jobId": job_id,
        "queueName": queue_name,
        "jobName": func_name,
        "state": state,
        "data": {"args": json_safe(list(args)), "kwargs": json_safe(dict(kwargs))},
        "priority": int(meta.get(attempts.PRIORITY, 0)),
        "attemptsMade": recorded["attemptsMade"],
        "timestamp": _date(raw.get(b"created_at") or raw.get(b"enqueued_at")),
        "enqueuedAt": _date(raw.get(b"enqueued_at")),
        "delayUntil": delay_until,
        "processedOn": _date(raw.get(b"started_at")),
        "finishedOn": _date(raw.get(b"ended_at")),
        "failedReason": recorded["failedReason"],
        "workerName": (raw.get(b"worker_name") or b"").decode() or None,
        "description": (raw.get(b"description") or b"").decode() or None,
        "retriedAs": meta.get(attempts.RETRIED_AS),
    }


# RQ keeps stopped (and, in older versions, canceled) jobs in the failed registry: a list says what they are,
# as the job's own page does.
_OWN_STATE_IN_FAILED = {b"stopped": "stopped", b"canceled": "canceled"}


def summarize_raw(
    connection: Redis,
    job_id: str,
    queue_name: str,
    state: str,
    raw: dict[bytes, bytes],
    delay_until: str | None = None,
) -> dict:
    """A summary that never fails: a missing or unreadable job is shown with `dataError`. `delay_until`: when a
    delayed job becomes waiting (its ScheduledJobRegistry score)."""
    if not raw:
        return {"jobId": job_id, "queueName": queue_name, "state": state, "dataError": "job data has expired"}
    if state == "failed":
        state = _OWN_STATE_IN_FAILED.get(raw.get(b"status") or b"", state)
    try:
        return summarize_fast(job_id, queue_name, state, raw, delay_until)
    except Exception:  # another serializer, or an unreadable payload: RQ's own restore decides
        pass
    try:
        return summarize(restore_job(connection, job_id, raw), queue_name, state, delay_until)
    except Exception as exc:  # any payload RQ cannot read: show it, marked
        return {
            "jobId": job_id,
            "queueName": queue_name,
            "state": state,
            "jobName": None,
            "dataError": f"cannot deserialize the job: {type(exc).__name__}: {exc}"[:500],
        }


def _page_ids_reads(pipe: Any, queue: QueueKeys, state: str, start: int, end: int) -> None:
    if state == "waiting":
        pipe.llen(queue.waiting)
        pipe.lrange(queue.waiting, start, end)
    elif state in ("completed", "failed"):  # newest first
        key = queue.completed if state == "completed" else queue.failed
        pipe.zcard(key)
        pipe.zrevrange(key, start, end)
    elif state == "delayed":  # scored by when each becomes waiting
        pipe.zcard(queue.delayed)
        pipe.zrange(queue.delayed, start, end, withscores=True)
    else:
        key = {"prioritized": queue.prioritized, "active": queue.active}[state]
        pipe.zcard(key)
        pipe.zrange(key, start, end)


def list_jobs(connection: Redis, queue_name: str, state: str, page: int = 1, per_page: int = 25) -> dict[str, Any]:
    if state not in BROWSABLE_STATES:
        raise InvalidInput("Unknown state", {"state": f"one of {', '.join(BROWSABLE_STATES)}"})
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise InvalidInput("Bad page", {"page": ">= 1", "perPage": f"1..{MAX_PER_PAGE}"})
    queue = queue_keys(queue_name)
    start = (page - 1) * per_page
    with connection.pipeline(transaction=False) as pipe:  # existence joins the page read: one round trip
        queue_exists_reads(pipe, queue_name)
        _page_ids_reads(pipe, queue, state, start, start + per_page - 1)
        in_rq, known, total, entries = pipe.execute()
    if not (in_rq or known):
        raise QueueNotFound(queue_name)
    due: dict[str, str] = {}
    if state == "delayed":
        due = {member.decode(): iso_from_timestamp(score) for member, score in entries}
        entries = [member for member, _score in entries]
    ids = [entry.decode() for entry in entries]
    if state == "active":
        ids = [started_entry_job_id(entry) for entry in ids]
    with connection.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hgetall(job_key(job_id))
        raws = pipe.execute()
    return {
        "queueName": queue_name,
        "state": state,
        "page": page,
        "perPage": per_page,
        "total": int(total),
        "jobs": [
            summarize_raw(connection, i, queue_name, state, raw, due.get(i)) for i, raw in zip(ids, raws, strict=True)
        ],
    }


def fetch_job(connection: Redis, queue_name: str, job_id: str) -> tuple[Job, str]:
    """The job and its state; 404 for an unknown queue, an unknown job, or a job of another queue."""
    queue = queue_keys(queue_name)
    check_job_id(job_id)
    with connection.pipeline(transaction=False) as pipe:
        queue_exists_reads(pipe, queue_name)
        pipe.hgetall(job_key(job_id))
        pipe.zscore(queue.prioritized, job_id)
        in_rq, known, raw, priority_score = pipe.execute()
    if not (in_rq or known):
        raise QueueNotFound(queue_name)
    if not raw:
        raise JobNotFound(queue_name, job_id)
    job = restore_job(connection, job_id, raw)
    if job.origin != queue_name:
        raise JobNotFound(queue_name, job_id)
    return job, state_of(job, prioritized=priority_score is not None)


def job_options(job: Job) -> dict[str, Any]:
    meta = job.meta or {}
    intervals = list(job.retry_intervals or [])
    used = int(getattr(job, "number_of_retries", 0) or 0)
    configured_attempts = meta.get(attempts.ATTEMPTS) or max(
        1 + int(job.retries_left or 0) + used, int(meta.get(attempts.ATTEMPTS_MADE, 0))
    )
    backoff = meta.get(attempts.BACKOFF)
    if backoff is None and intervals:
        backoff = {"type": "fixed" if len(set(intervals)) == 1 else "custom", "delay": intervals[0] * 1000}
    return {
        "priority": int(meta.get(attempts.PRIORITY, 0)),
        "attempts": int(configured_attempts),
        "backoff": backoff,
        "timeout": job.timeout,
    }


def _delay_until(connection: Redis, queue_name: str, job_id: str) -> str | None:
    score = connection.zscore(queue_keys(queue_name).delayed, job_id)
    return None if score is None else iso_from_timestamp(score)


def get_job_detail(connection: Redis, queue_name: str, job_id: str) -> dict[str, Any]:
    job, state = fetch_job(connection, queue_name, job_id)
    latest = job.latest_result()
    rq_error = latest.exc_string if latest is not None and latest.type == latest.Type.FAILED else None
    recorded = attempts.read_attempts(job, rq_error=rq_error)
    detail: dict[str, Any] = {"jobId": job.id, "queueName": queue_name, "state": state}
    try:
        detail.update(jobName=job.func_name, data=job_data(job))
    except Exception as exc:
        detail.update(jobName=None, data=None, dataError=f"cannot deserialize the job: {type(exc).__name__}: {exc}")
    return_value = latest.return_value if latest is not None and latest.type == latest.Type.SUCCESSFUL else None
    detail.update(
        description=job.description,
        opts=job_options(job),
        attemptsMade=recorded["attemptsMade"],
        attemptsStarted=recorded["attemptsStarted"],
        timestamp=iso(job.created_at or job.enqueued_at),  # first enqueued
        enqueuedAt=iso(job.enqueued_at),  # latest: RQ re-sets it when a retry or a delay requeues the job
        delayUntil=_delay_until(connection, queue_name, job.id) if state == "delayed" else None,
        processedOn=iso(job.started_at),
        finishedOn=iso(job.ended_at),
        returnValue=json_safe(return_value),
        failedReason=recorded["failedReason"],
        stacktrace=recorded["stacktrace"],
        workerName=job.worker_name or None,
        retriedFrom=job.meta.get(attempts.RETRIED_FROM),
        retriedAs=job.meta.get(attempts.RETRIED_AS),
    )
    return detail
