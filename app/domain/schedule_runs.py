"""Runs of periodic jobs: firing (a NEW job from the schedule's template each time), the run history (the last
SCHEDULE_RUNS_CAP runs of each schedule, kept after RQ expired the jobs) and the ends of runs.

A run record: {"runId", "jobId", "queue", "trigger", "dueAt", "enqueuedAt", "startedAt", "endedAt", "state",
"durationMs", "failedReason"}; `queue` is where its job went (the schedule's queue at the time); state is a job
state (waiting, active, completed, failed, ...) or `skipped` / `missed` for firings that enqueued nothing.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from redis import Redis, WatchError
from redis.client import Pipeline
from rq import Queue
from rq.job import Job, JobStatus
from rq_scheduler import Scheduler

from app.domain import attempts, keys
from app.domain.jobs import STATE_OF_STATUS
from app.domain.schedule_timing import missed_due_times, next_due
from app.domain.schedules import (
    META_SCHEDULE,
    META_TRIGGER,
    RUN_SEPARATOR,
    get_definition,
    utc_day,
)
from app.domain.states import JobState
from app.domain.timeutil import iso_from_timestamp, rq_epoch

log = logging.getLogger(__name__)

SKIPPED = "skipped"
MISSED = "missed"
EXPIRED = "expired"  # the run's job is gone (RQ expired it) before its end was recorded
# The states the run history can be filtered by (GET /periodic/<name>/runs?status=): its job's, and no job at all.
RUN_STATES = (
    *(s.value for s in JobState if s not in (JobState.PRIORITIZED, JobState.WAITING_CHILDREN)),
    SKIPPED,
    MISSED,
    EXPIRED,
)
UNFINISHED_STATUSES = {b"queued", b"started", b"scheduled", b"deferred"}
ENDED_STATUSES = {b"finished", b"failed", b"stopped", b"canceled"}
MISSED_RECORDS_PER_FIRING = 20  # missed firings are all counted; this many are listed in the history


# --- recording ----------------------------------------------------------------------------------------


def _record(pipe: Pipeline, name: str, run: dict[str, Any], score: float) -> None:
    runs = keys.schedule_runs(name)
    pipe.zadd(runs, {run["runId"]: score})
    pipe.hset(keys.schedule_run_data(name), run["runId"], json.dumps(run))


_TRIM_LUA = """
local ids = redis.call('ZRANGE', KEYS[1], 0, -tonumber(ARGV[1]) - 1)
if #ids > 0 then
  redis.call('ZREM', KEYS[1], unpack(ids))
  redis.call('HDEL', KEYS[2], unpack(ids))
end
return #ids
"""


def _trim(pipe: Pipeline, name: str) -> None:
    pipe.eval(_TRIM_LUA, 2, keys.schedule_runs(name), keys.schedule_run_data(name), keys.SCHEDULE_RUNS_CAP)


def _new_run(run_id: str, trigger: str, due: float | None, now: float, state: str, job_id: str | None) -> dict:
    return {
        "runId": run_id,
        "jobId": job_id,
        "trigger": trigger,
        "dueAt": iso_from_timestamp(due) if due is not None else None,
        "enqueuedAt": iso_from_timestamp(now) if job_id else None,
        "startedAt": None,
        "endedAt": None,
        "state": state,
        "durationMs": None,
        "failedReason": None,
    }


def _run_job(definition: dict[str, Any], queue: Queue, trigger: str) -> Job:
    """A new job (fresh id) from the schedule's template; not stored yet."""
    total = definition.get("attempts") or 1
    meta: dict[str, Any] = {META_SCHEDULE: definition["name"], META_TRIGGER: trigger, attempts.ATTEMPTS: total}
    if definition.get("backoff"):
        meta[attempts.BACKOFF] = definition["backoff"]
    return queue.create_job(
        definition["func"],
        args=tuple(definition["args"]),
        kwargs=definition["kwargs"],
        timeout=definition.get("timeout"),
        description=definition.get("description") or None,
        retry=attempts.retry_for(total, definition.get("backoff")),
        meta=meta,
    )


def _enqueue_in(
    connection: Redis, pipe: Pipeline, definition: dict[str, Any], trigger: str, due: float | None, now: float
) -> dict[str, Any]:
    """Queue a new run inside the caller's MULTI; returns its run record (also queued in the pipeline)."""
    queue = Queue(definition["queue"], connection=connection)
    job = _run_job(definition, queue, trigger)
    queue.enqueue_job(job, pipeline=pipe)
    name = definition["name"]
    run = {**_new_run(job.id, trigger, due, now, JobState.WAITING.value, job.id), "queue": queue.name}
    _record(pipe, name, run, now)
    pipe.hset(keys.SCHEDULE_LAST_JOB, name, job.id)
    pipe.set(keys.SCHEDULE_LATEST_RUN, f"{name}{RUN_SEPARATOR}{job.id}")
    pipe.zadd(keys.SCHEDULE_OPEN_RUNS, {f"{name}{RUN_SEPARATOR}{job.id}": now})
    day = keys.schedule_day_counts(utc_day(now))
    pipe.hincrby(day, name, 1)
    pipe.expire(day, keys.SCHEDULE_DAY_TTL_SECONDS)
    return run


def run_now(connection: Redis, name: str) -> str:
    """Enqueue one run at once (trigger `manual`); the schedule's next run is unchanged. Returns the job id."""
    definition = get_definition(connection, name)
    now = time.time()
    with connection.pipeline() as pipe:
        run = _enqueue_in(connection, pipe, definition, "manual", None, now)
        _trim(pipe, name)
        pipe.execute()
    return str(run["jobId"])


def _previous_run_unfinished(connection: Redis, name: str) -> bool:
    job_id = connection.hget(keys.SCHEDULE_LAST_JOB, name)
    if job_id is None:
        return False
    return connection.hget(Job.key_for(job_id.decode()), "status") in UNFINISHED_STATUSES


def fire(connection: Redis, template: str, due: float, now: float, grace: float) -> list[dict[str, Any]]:
    """Fire the schedule whose rq-scheduler job is `template`, due at `due`: at most one new run (a late one is
    the one catch-up of every missed due time), the missed and skipped ones recorded, the next due time set.
    Atomic with the due time it read: a second scheduler or a pause in between makes it a no-op."""
    with connection.pipeline() as pipe:
        for _ in range(5):
            # The missed due times are worked out before WATCH, from the definition as read now; the transaction
            # goes ahead only if that definition is still the stored one.
            name = _schedule_of(connection, template)
            raw = connection.hget(keys.SCHEDULES, name) if name else None
            missed = _missed(json.loads(raw), due, now, grace) if raw is not None else (0, [])
            try:
                pipe.watch(Scheduler.scheduled_jobs_key, keys.SCHEDULES)
                if _schedule_of(pipe, template) != name or (name and pipe.hget(keys.SCHEDULES, name) != raw):
                    pipe.unwatch()
                    continue
                return _fire_watched(pipe, connection, template, due, now, name, raw, missed)
            except WatchError:
                continue
    log.warning("schedule template %s not fired this loop: the schedules kept changing", template)
    return []


def _missed(definition: dict[str, Any], due: float, now: float, grace: float) -> tuple[int, list[float]]:
    if now - due <= grace:
        return 0, []
    return missed_due_times(definition, due, now - grace, keep=MISSED_RECORDS_PER_FIRING)


def _fire_watched(  # noqa: PLR0913 - the facts read before WATCH
    pipe: Any,
    connection: Redis,
    template: str,
    due: float,
    now: float,
    name: str | None,
    raw: bytes | None,
    missed: tuple[int, list[float]],
) -> list:
    score = pipe.zscore(Scheduler.scheduled_jobs_key, template)
    if score is None or abs(float(score) - due) > 0.001:
        return []  # fired, paused or rescheduled meanwhile
    if name is None or raw is None:
        pipe.multi()
        pipe.zrem(Scheduler.scheduled_jobs_key, template)
        pipe.execute()
        return []
    definition = json.loads(raw)
    missed_count, missed_times = missed
    skip = definition.get("overlap", "skip") == "skip" and _previous_run_unfinished(connection, name)
    following = next_due(definition, now, base=due)
    pipe.multi()
    runs = []
    for at in missed_times:
        runs.append(_new_run(f"missed-{int(at * 1000)}", "schedule", at, now, MISSED, None))
        _record(pipe, name, runs[-1], at)
    if missed_count:
        pipe.hincrby(keys.SCHEDULE_MISSED, name, missed_count)
        pipe.hset(keys.SCHEDULE_MISSED_AT, name, now)
    if skip:
        skipped = _new_run(f"skipped-{int(now * 1000)}", "schedule", due, now, SKIPPED, None)
        _record(pipe, name, skipped, now)
        runs.append(skipped)
    else:
        runs.append(_enqueue_in(connection, pipe, definition, "schedule", due, now))
    _trim(pipe, name)
    pipe.zadd(Scheduler.scheduled_jobs_key, {template: following})
    pipe.execute()
    return runs


def record_fire_error(connection: Redis, template: str, due: float, now: float, error: str) -> None:
    """A firing that raised: a failed run (no job) in the schedule's history, so the page shows why it did not
    run; the template stays due, so it is tried again."""
    name = _schedule_of(connection, template)
    if name is None:
        return
    run = _new_run(f"error-{int(now * 1000)}", "schedule", due, now, JobState.FAILED.value, None)
    run["failedReason"] = f"could not fire: {error}"[:500]
    with connection.pipeline() as pipe:
        _record(pipe, name, run, now)
        _trim(pipe, name)
        pipe.execute()


def _schedule_of(pipe: Any, template: str) -> str | None:
    from rq.serializers import resolve_serializer

    raw = pipe.hget(Job.key_for(template), "meta")
    if not raw:
        return None
    try:
        meta = resolve_serializer(None).loads(raw)
    except Exception:
        return None
    return meta.get(META_SCHEDULE) if isinstance(meta, dict) else None


def is_schedule_template(job: Job) -> bool:
    return META_SCHEDULE in (job.meta or {}) and job.id.startswith("rqmon-schedule-")


# --- ends of runs -------------------------------------------------------------------------------------


def _ended(job_id: str, fields: list[bytes | None]) -> dict[str, Any]:
    """What a run's job says now: state, start, end, duration, failure reason (None fields when unknown)."""
    status, started, ended = fields
    if status is None:
        return {"state": EXPIRED}
    text = status.decode(errors="replace")
    state = STATE_OF_STATUS.get(JobStatus(text), text) if text in JobStatus._value2member_map_ else text
    start, end = rq_epoch(started), rq_epoch(ended)  # None for what cannot be read, never an error
    update: dict[str, Any] = {
        "state": state,
        "startedAt": _iso(start),
        "endedAt": _iso(end) if state != JobState.ACTIVE else None,
    }
    if start is not None and end is not None and status in ENDED_STATUSES:
        update["durationMs"] = int((end - start) * 1000)
    return update


def _iso(seconds: float | None) -> str | None:
    return iso_from_timestamp(seconds) if seconds is not None else None


def _failure(connection: Redis, job_id: str) -> str | None:
    try:
        job = Job.fetch(job_id, connection=connection)
    except Exception:
        return None
    result = job.latest_result()
    rq_error = result.exc_string if result is not None else None
    reason = attempts.read_attempts(job, rq_error=rq_error)["failedReason"]
    lines = (rq_error or "").strip().splitlines()
    return reason or (lines[-1] if lines else None)


def record_ends(connection: Redis, batch: int = 500) -> int:
    """Written by the active scheduler: runs whose job ended (or expired) get their final state; returns how
    many. Reads of the history overlay the live state of runs not recorded yet, so this can run lazily."""
    opened = connection.zrange(keys.SCHEDULE_OPEN_RUNS, 0, batch - 1, withscores=True)
    members = [member.decode() for member, _ in opened]
    if not members:
        return 0
    pairs = [member.split(RUN_SEPARATOR, 1) for member in members]
    with connection.pipeline(transaction=False) as pipe:
        for _, job_id in pairs:
            pipe.hmget(Job.key_for(job_id), "status", "started_at", "ended_at")
        replies = pipe.execute()
    done = 0
    cutoff = time.time() - keys.SCHEDULE_OPEN_RUN_MAX_SECONDS
    with connection.pipeline(transaction=False) as pipe:
        for (member, opened_at), (name, job_id), fields in zip(opened, pairs, replies, strict=True):
            status = fields[0]
            old = opened_at < cutoff
            if status is not None and status not in ENDED_STATUSES and not old:
                continue
            update = _ended(job_id, fields)
            if status == b"failed":
                update["failedReason"] = _failure(connection, job_id)
            raw = connection.hget(keys.schedule_run_data(name), job_id)
            if raw is not None:
                pipe.hset(keys.schedule_run_data(name), job_id, json.dumps({**json.loads(raw), **update}))
            pipe.zrem(keys.SCHEDULE_OPEN_RUNS, member)
            done += 1
        pipe.execute()
    return done


# --- reads --------------------------------------------------------------------------------------------


def overlay(connection: Redis, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs not recorded as ended yet get their job's live state (read only)."""
    open_runs = [
        run for run in runs if run.get("jobId") and run["state"] not in (JobState.COMPLETED, JobState.FAILED, EXPIRED)
    ]
    if not open_runs:
        return runs
    with connection.pipeline(transaction=False) as pipe:
        for run in open_runs:
            pipe.hmget(Job.key_for(run["jobId"]), "status", "started_at", "ended_at")
        replies = pipe.execute()
    for run, fields in zip(open_runs, replies, strict=True):
        if fields[0] is not None:
            run.update(_ended(run["jobId"], fields))
    return runs


def _public(run: dict[str, Any]) -> dict[str, Any]:
    return {
        key: run.get(key)
        for key in (
            "jobId",
            "trigger",
            "dueAt",
            "enqueuedAt",
            "startedAt",
            "endedAt",
            "state",
            "durationMs",
            "failedReason",
            "queue",
        )
    }


def list_runs(connection: Redis, name: str, limit: int = 10, status: str | None = None) -> dict[str, Any]:
    """The schedule's runs, newest first, optionally only those in one state."""
    get_definition(connection, name)
    ids = connection.zrevrange(keys.schedule_runs(name), 0, -1 if status else limit - 1)
    raw = connection.hmget(keys.schedule_run_data(name), ids) if ids else []
    runs = overlay(connection, [json.loads(item) for item in raw if item])
    if status:
        runs = [run for run in runs if run["state"] == status][:limit]
    return {"success": True, "name": name, "runs": [_public(run) for run in runs]}


def last_runs(connection: Redis, run_ids: dict[str, list[bytes]]) -> dict[str, dict[str, Any]]:
    """Per schedule, from the ids of its recent runs (newest first): its latest run (API `lastRun`) with the states
    of those runs, oldest first (the page's strip). Two round trips for any number of schedules."""
    named = [(name, ids) for name, ids in run_ids.items() if ids]
    if not named:
        return {}
    with connection.pipeline(transaction=False) as pipe:
        for name, ids in named:
            pipe.hmget(keys.schedule_run_data(name), ids)
        data = pipe.execute()
    runs_of = {name: [json.loads(raw) for raw in raws if raw] for (name, _), raws in zip(named, data, strict=True)}
    runs_of = {name: runs for name, runs in runs_of.items() if runs}
    overlay(connection, [runs[0] for runs in runs_of.values()])
    return {
        name: {
            "jobId": runs[0]["jobId"],
            "trigger": runs[0]["trigger"],
            "enqueuedAt": runs[0]["enqueuedAt"],
            "state": runs[0]["state"],
            "durationMs": runs[0]["durationMs"],
            "recent": [run["state"] for run in reversed(runs)],
        }
        for name, runs in runs_of.items()
    }
