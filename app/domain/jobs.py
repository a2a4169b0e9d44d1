"""Jobs as the API shows them: states, summaries, details and Redis-side pagination.

Every page costs the same whatever its depth: one range read on the registry or list, then one pipeline of
HGETALL for the page's jobs. A job whose payload cannot be read is shown, marked, instead of failing the page.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from redis import Redis, RedisError, ResponseError
from rq.job import Job, JobStatus
from rq.serializers import DefaultSerializer

from app.domain import attempts
from app.domain.errors import Conflict, DomainError, InvalidInput, JobNotFound, QueueNotFound
from app.domain.job_data import Unreadable, json_safe, safe_text
from app.domain.names import check_job_id
from app.domain.queues import (
    QueueKeys,
    count_or_zero,
    live_count_reads,
    live_page_reads,
    queue_exists_reads,
    queue_keys,
    wrong_type,
)
from app.domain.states import BROWSABLE_STATES, STATE_OF_STATUS, JobState
from app.domain.timeutil import iso, iso_from_timestamp

MAX_PER_PAGE = 200


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
        return JobState.PRIORITIZED.value
    return STATE_OF_STATUS.get(status, str(status.value if status else "unknown"))  # type: ignore[union-attr]


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ is several times slower, for 25 a page
class _Parts:
    """What a job's summary is built from, however the job was decoded (dates already as the API's ISO text)."""

    func_name: str | None
    args: Any
    kwargs: Any
    meta: dict[str, Any]
    status: str
    created: str | None
    enqueued: str | None
    started: str | None
    ended: str | None
    worker_name: str | None
    description: str | None
    recorded: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.recorded = attempts.attempts_from_meta(self.meta, self.status)


class _RawParts:
    """The parts of a job RQ cannot read, each decoded from its hash when first used: a part that cannot be
    decoded raises where it is used, and only the fields built from it are null."""

    def __init__(self, raw: dict[bytes, bytes]):
        self.raw = raw
        self.status = (raw.get(b"status") or b"").decode("utf-8", "replace")

    @property
    def created(self) -> str | None:
        return _date(self.raw.get(b"created_at"))

    @property
    def enqueued(self) -> str | None:
        return _date(self.raw.get(b"enqueued_at"))

    @property
    def started(self) -> str | None:
        return _date(self.raw.get(b"started_at"))

    @property
    def ended(self) -> str | None:
        return _date(self.raw.get(b"ended_at"))

    @property
    def worker_name(self) -> str | None:
        return _text_field(self.raw, b"worker_name")

    @property
    def description(self) -> str | None:
        return _text_field(self.raw, b"description")

    @cached_property
    def _payload(self) -> tuple:
        return _payload(self.raw)

    @property
    def func_name(self) -> str:
        return safe_text(str(self._payload[0]))

    @property
    def args(self) -> Any:
        return self._payload[2]

    @property
    def kwargs(self) -> Any:
        return self._payload[3]

    @cached_property
    def meta(self) -> dict[str, Any]:
        return _meta(self.raw)

    @cached_property
    def recorded(self) -> dict[str, Any]:
        return attempts.attempts_from_meta(self.meta, self.status)


def _job_parts(job: Job) -> _Parts:
    status = job.get_status(refresh=False)
    return _Parts(
        job.func_name,
        job.args,
        job.kwargs,
        job.meta,
        str(status.value if isinstance(status, JobStatus) else status or ""),
        iso(job.created_at),
        iso(job.enqueued_at),
        iso(job.started_at),
        iso(job.ended_at),
        job.worker_name or None,
        job.description,
    )


def _fast_parts(raw: dict[bytes, bytes]) -> _Parts:
    """Without building an RQ Job: a page decodes 25 hashes, and Job.restore parses every date with strptime.
    Only for RQ's default serializer; anything else raises and takes the full path."""
    func_name, _instance, args, kwargs = DefaultSerializer.loads(zlib.decompress(raw[b"data"]))
    return _Parts(
        func_name,
        args,
        kwargs,
        DefaultSerializer.loads(raw[b"meta"]) if raw.get(b"meta") else {},
        (raw.get(b"status") or b"").decode(),
        _date(raw.get(b"created_at")),
        _date(raw.get(b"enqueued_at")),
        _date(raw.get(b"started_at")),
        _date(raw.get(b"ended_at")),
        (raw.get(b"worker_name") or b"").decode() or None,
        (raw.get(b"description") or b"").decode() or None,
    )


# The fields a job list shows besides jobId, queueName, state and delayUntil: the one list of them, whichever way
# the job was decoded.
_SUMMARY_FIELDS: dict[str, Callable[[Any], Any]] = {
    "jobName": lambda parts: parts.func_name,
    "data": lambda parts: {"args": json_safe(list(parts.args)), "kwargs": json_safe(dict(parts.kwargs))},
    "priority": lambda parts: int(parts.meta.get(attempts.PRIORITY, 0)),
    "attemptsMade": lambda parts: parts.recorded["attemptsMade"],
    "timestamp": lambda parts: parts.created or parts.enqueued,  # first enqueued; RQ re-sets enqueued_at on requeue
    "enqueuedAt": lambda parts: parts.enqueued,
    "processedOn": lambda parts: parts.started,
    "finishedOn": lambda parts: parts.ended,
    "failedReason": lambda parts: parts.recorded["failedReason"],
    "workerName": lambda parts: parts.worker_name,
    "description": lambda parts: parts.description,
    "retriedAs": lambda parts: parts.meta.get(attempts.RETRIED_AS),
}


def _fields(fields: dict[str, Callable[[Any], Any]], parts: Any, lenient: bool, into: dict[str, Any]) -> dict[str, Any]:
    """Each field built from the parts, added to `into`; `lenient`: null for one whose parts cannot be decoded,
    instead of raising."""
    if not lenient:
        for name, build in fields.items():
            into[name] = build(parts)
        return into
    for name, build in fields.items():
        try:
            into[name] = build(parts)
        except Exception:
            into[name] = None
    return into


def _summary(
    job_id: str, queue_name: str, state: str, delay_until: str | None, parts: Any, lenient: bool = False
) -> dict[str, Any]:
    """The summary of a job from its parts, however they were decoded."""
    summary = {"jobId": job_id, "queueName": queue_name, "state": state, "delayUntil": delay_until}
    return _fields(_SUMMARY_FIELDS, parts, lenient, summary)


def summarize(job: Job, queue_name: str, state: str, delay_until: str | None = None) -> dict[str, Any]:
    """The fields a job list shows; raises when the payload cannot be deserialized (see `summarize_raw`)."""
    return _summary(job.id, queue_name, state, delay_until, _job_parts(job))


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
    """`summarize` from the job's hash without building an RQ Job (RQ's default serializer only)."""
    return _summary(job_id, queue_name, state, delay_until, _fast_parts(raw))


def _payload(raw: dict[bytes, bytes]) -> tuple:
    data = raw[b"data"]
    with contextlib.suppress(zlib.error):  # RQ's fallback: uncompressed data
        data = zlib.decompress(data)
    return DefaultSerializer.loads(data)


def _meta(raw: dict[bytes, bytes]) -> dict[str, Any]:
    return DefaultSerializer.loads(raw[b"meta"]) if raw.get(b"meta") else {}


def _text_field(raw: dict[bytes, bytes], name: bytes) -> str | None:
    return safe_text((raw.get(name) or b"").decode("utf-8", "surrogateescape")) or None


def unreadable_marks(exc: BaseException) -> dict[str, Any]:
    return {"unreadable": True, "dataError": f"cannot deserialize the job: {type(exc).__name__}: {exc}"[:500]}


# RQ keeps stopped (and, in older versions, canceled) jobs in the failed registry: a list says what they are,
# as the job's own page does.
_OWN_STATE_IN_FAILED = {state.value.encode(): state.value for state in (JobState.STOPPED, JobState.CANCELED)}


def summarize_raw(
    connection: Redis,
    job_id: str,
    queue_name: str,
    state: str,
    raw: dict[bytes, bytes] | None,
    delay_until: str | None = None,
) -> dict:
    """A summary that never fails: a missing or unreadable job (`raw` None: a key of another type) is shown with
    `dataError`. `delay_until`: when a delayed job becomes waiting (its ScheduledJobRegistry score)."""
    if raw is None:  # another program's key of another type where the job's hash should be
        return {"jobId": job_id, "queueName": queue_name, "state": state, "dataError": "the job's key is not a hash"}
    if not raw:
        return {"jobId": job_id, "queueName": queue_name, "state": state, "dataError": "job data has expired"}
    if state == JobState.FAILED:
        state = _OWN_STATE_IN_FAILED.get(raw.get(b"status") or b"", state)
    try:
        return summarize_fast(job_id, queue_name, state, raw, delay_until)
    except Exception:  # another serializer, or an unreadable payload: RQ's own restore decides
        pass
    try:
        return summarize(restore_job(connection, job_id, raw), queue_name, state, delay_until)
    except Exception as exc:  # any payload RQ cannot read: show what can be read, marked
        return _summary(job_id, queue_name, state, delay_until, _RawParts(raw), lenient=True) | unreadable_marks(exc)


def _page_ids_reads(pipe: Any, queue: QueueKeys, state: str, start: int, end: int) -> None:
    if state == JobState.WAITING:
        pipe.llen(queue.waiting)
        pipe.lrange(queue.waiting, start, end)
    elif state in (JobState.COMPLETED, JobState.FAILED):  # newest first; entries whose job RQ has expired are left out
        key = queue.completed if state == JobState.COMPLETED else queue.failed
        live_count_reads(pipe, key)
        live_page_reads(pipe, key, start, end)
    elif state == JobState.DELAYED:  # scored by when each becomes waiting
        pipe.zcard(queue.delayed)
        pipe.zrange(queue.delayed, start, end, withscores=True)
    else:
        key = {JobState.PRIORITIZED: queue.prioritized, JobState.ACTIVE: queue.active}[JobState(state)]
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
        # a list or registry another program left of another type reads as empty
        in_rq, known, total, entries = map(count_or_zero, pipe.execute(raise_on_error=False))
    if not (in_rq or known):
        raise QueueNotFound(queue_name)
    entries = entries or []
    due: dict[bytes, str] = {}
    if state == JobState.DELAYED:
        due = {member: iso_from_timestamp(score) for member, score in entries}
        entries = [member for member, _score in entries]
    # Entries are any bytes another program pushed: each job's hash is read by the entry's own bytes, its id shown
    # escaped when it is not UTF-8.
    ids = [entry.decode("utf-8", "surrogateescape") for entry in entries]
    if state == JobState.ACTIVE:
        ids = [started_entry_job_id(entry) for entry in ids]
    with connection.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hgetall(job_key(job_id).encode("utf-8", "surrogateescape"))
        raws = pipe.execute(raise_on_error=False)
    return {
        "queueName": queue_name,
        "state": state,
        "page": page,
        "perPage": per_page,
        "total": int(total),
        "jobs": [
            summarize_raw(connection, safe_text(i), queue_name, state, None if wrong_type(raw) else raw, due.get(entry))
            for i, entry, raw in zip(ids, entries, raws, strict=True)
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
        in_rq, known, raw, priority_score = pipe.execute(raise_on_error=False)
    if not (count_or_zero(in_rq) or count_or_zero(known)):
        raise QueueNotFound(queue_name)
    if wrong_type(raw) or not raw:  # no hash, or another program's key of another type: no job
        raise JobNotFound(queue_name, job_id)
    priority_score = None if wrong_type(priority_score) else priority_score
    try:
        job = restore_job(connection, job_id, raw)
    except Exception as exc:
        if (raw.get(b"origin") or b"").decode("utf-8", "replace") != queue_name:
            raise JobNotFound(queue_name, job_id) from exc
        raise UnreadableJob(queue_name, job_id, raw, priority_score is not None) from exc
    if job.origin != queue_name:
        raise JobNotFound(queue_name, job_id)
    return job, state_of(job, prioritized=priority_score is not None)


class UnreadableJob(Conflict):
    """A job RQ cannot restore (a plain producer's bad field): shown, marked, but no action can take it."""

    code = "job_unreadable"

    def __init__(self, queue_name: str, job_id: str, raw: dict[bytes, bytes], prioritized: bool):
        super().__init__(f"Job '{job_id}' of queue '{queue_name}' cannot be read")
        status = (raw.get(b"status") or b"").decode("utf-8", "replace")
        self.raw = raw
        self.state = STATE_OF_STATUS.get(status, status)  # type: ignore[call-overload]
        if prioritized and self.state == JobState.WAITING:
            self.state = JobState.PRIORITIZED.value


# The fields of a job's page besides its summary's, for a job that cannot be read whole.
_DETAIL_FIELDS: dict[str, Callable[[Any], Any]] = {
    "opts": lambda parts: None,
    "attemptsStarted": lambda parts: parts.recorded["attemptsStarted"],
    "returnValue": lambda parts: None,
    "failedException": lambda parts: parts.recorded["failedException"],
    "stacktrace": lambda parts: parts.recorded["stacktrace"],
    "retriedFrom": lambda parts: parts.meta.get(attempts.RETRIED_FROM),
}


def _unreadable_detail(queue_name: str, job_id: str, raw: dict[bytes, bytes], state: str, exc: BaseException) -> dict:
    parts = _RawParts(raw)
    summary = _summary(job_id, queue_name, state, None, parts, lenient=True)
    return _fields(_DETAIL_FIELDS, parts, True, summary) | unreadable_marks(exc)


def job_options(job: Job) -> dict[str, Any]:
    meta = job.meta or {}
    intervals = list(job.retry_intervals or [])
    used = int(getattr(job, "number_of_retries", 0) or 0)
    configured_attempts = meta.get(attempts.ATTEMPTS) or max(
        1 + int(job.retries_left or 0) + used, int(meta.get(attempts.ATTEMPTS_MADE, 0))
    )
    backoff = meta.get(attempts.BACKOFF)
    if backoff is None:  # what the product's helper (attempts.retry_for) or a plain rq.Retry asked for
        backoff = attempts.backoff_of_intervals(intervals)
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
    """The job as the API shows it; a job that cannot be read whole is still shown (null fields, `unreadable`)."""
    try:
        job, state = fetch_job(connection, queue_name, job_id)
    except UnreadableJob as unreadable:
        cause = unreadable.__cause__ or unreadable
        return _unreadable_detail(queue_name, job_id, unreadable.raw, unreadable.state, cause)
    try:
        return _job_detail(connection, queue_name, job, state)
    except (RedisError, DomainError):
        raise
    except Exception as exc:  # a field no reader expected to fail: the rest of the job is still shown
        return _unreadable_detail(queue_name, job_id, connection.hgetall(job_key(job_id)), state, exc)


def _latest_result(job: Job) -> Any:
    """RQ's latest result of the job; None when another program left its results key of another type."""
    try:
        return job.latest_result()
    except ResponseError as exc:
        if wrong_type(exc):
            return None
        raise


def _job_detail(connection: Redis, queue_name: str, job: Job, state: str) -> dict[str, Any]:
    latest = _latest_result(job)
    rq_error = latest.exc_string if latest is not None and latest.type == latest.Type.FAILED else None
    recorded = attempts.read_attempts(job, rq_error=rq_error)
    detail: dict[str, Any] = {"jobId": job.id, "queueName": queue_name, "state": state}
    detail.update(jobName=None, data=None)
    try:
        detail["jobName"] = safe_text(str(job.func_name))
        detail["data"] = job_data(job)
    except Exception as exc:
        detail.update(unreadable_marks(exc))
    return_value = latest.return_value if latest is not None and latest.type == latest.Type.SUCCESSFUL else None
    try:
        return_value = json_safe(return_value)
    except Unreadable as exc:
        return_value = None
        detail.update(unreadable_marks(exc))
    detail.update(
        description=job.description,
        opts=job_options(job),
        attemptsMade=recorded["attemptsMade"],
        attemptsStarted=recorded["attemptsStarted"],
        timestamp=iso(job.created_at or job.enqueued_at),  # first enqueued
        enqueuedAt=iso(job.enqueued_at),  # latest: RQ re-sets it when a retry or a delay requeues the job
        delayUntil=_delay_until(connection, queue_name, job.id) if state == JobState.DELAYED else None,
        processedOn=iso(job.started_at),
        finishedOn=iso(job.ended_at),
        returnValue=return_value,
        failedReason=recorded["failedReason"],
        failedException=recorded["failedException"],
        stacktrace=recorded["stacktrace"],
        workerName=job.worker_name or None,
        retriedFrom=job.meta.get(attempts.RETRIED_FROM),
        retriedAs=job.meta.get(attempts.RETRIED_AS),
        schedule=_schedule_of_run(job.meta),
    )
    return detail


def _schedule_of_run(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The schedule a periodic run came from and what made it run (SCHEDULES.md), or None."""
    from app.domain.schedules import META_SCHEDULE, META_TRIGGER  # noqa: PLC0415 - schedules read jobs' states

    name = meta.get(META_SCHEDULE)
    return {"name": name, "trigger": meta.get(META_TRIGGER)} if isinstance(name, str) else None
