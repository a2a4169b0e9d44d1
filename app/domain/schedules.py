"""Periodic jobs (SCHEDULES.md): definitions kept in one hash, timing kept by rq-scheduler.

Each schedule is a definition (the template of its runs) plus an rq-scheduler "template job" whose score in
rq-scheduler's sorted set is the next due time; workers/scheduler.py fires it by enqueuing a NEW job each time.
Cron strings are 5-field and evaluated in UTC.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq.job import Job
from rq_scheduler import Scheduler

from app.domain import keys
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.history import count_value
from app.domain.names import is_queue_name
from app.domain.schedule_timing import cron_error, describe, next_due
from app.domain.timeutil import iso_from_timestamp

NAME_PATTERN = r"[A-Za-z0-9_.:-]{1,100}"
OVERLAP_POLICIES = ("skip", "allow")
SOURCE_RQ_SCHEDULER = "rq-scheduler"
SOURCE_RQ_CRON = "rq-cron"
TEMPLATE_PREFIX = "rqmon-schedule-"
# job.meta keys of a run: the schedule it came from and what made it run ("schedule" or "manual").
META_SCHEDULE = "rqmon_schedule"
META_TRIGGER = "rqmon_schedule_trigger"
RUN_SEPARATOR = "\x1f"  # in "<schedule name><RUN_SEPARATOR><job id>" members (open runs, the latest run)
_FUNC = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


class ScheduleNotFound(NotFound):
    code = "schedule_not_found"

    def __init__(self, name: str):
        super().__init__(f"Schedule '{name}' does not exist")


class ScheduleExists(Conflict):
    code = "schedule_exists"


class ScheduleReadOnly(Conflict):
    code = "schedule_read_only"


# --- validation ---------------------------------------------------------------------------------------


def func_error(func: str, allowed: Iterable[str]) -> str | None:
    """Why `func` may not be scheduled, or None: a dotted path under one of the allowed module prefixes."""
    if not _FUNC.fullmatch(func):
        return "must be a dotted path to a function, e.g. workers.tasks.noop"
    prefixes = tuple(allowed)
    if not any(func.startswith(prefix + ".") for prefix in prefixes):
        return f"must be a function under {', '.join(prefixes)}"
    return None


def check_definition(definition: dict[str, Any], allowed: Iterable[str]) -> None:
    """What the schema cannot know: the allowed modules (configuration) and the queue name rules."""
    details: dict[str, str] = {}
    if error := func_error(definition["func"], allowed):
        details["func"] = error
    if not is_queue_name(definition["queue"]):
        details["queue"] = "is not a valid queue name"
    if definition.get("cron") and (error := cron_error(definition["cron"])):
        details["cron"] = error
    if details:
        raise InvalidInput("The schedule is not valid", details)


# --- definitions --------------------------------------------------------------------------------------


def template_id(name: str) -> str:
    """rq-scheduler's job id of a schedule (RQ ids allow fewer characters than schedule names)."""
    return TEMPLATE_PREFIX + hashlib.sha1(name.encode()).hexdigest()[:24]


def get_definition(connection: Redis, name: str) -> dict[str, Any]:
    if not re.fullmatch(NAME_PATTERN, name):  # checked before it names anything in Redis
        raise ScheduleNotFound(name)
    raw = connection.hget(keys.SCHEDULES, name)
    if raw is None:
        if name in rq_cron_names(connection):
            raise ScheduleReadOnly(f"Schedule '{name}' comes from `rq cron` and cannot be changed here")
        raise ScheduleNotFound(name)
    return json.loads(raw)


def _place_template(connection: Redis, definition: dict[str, Any], due: float) -> None:
    """(Re)create the schedule's rq-scheduler job; enabled schedules get their next due time (`due`, computed by
    the caller before it wrote anything) in its sorted set."""
    scheduler = Scheduler(connection=connection)
    job_id = template_id(definition["name"])
    scheduler.cancel(job_id)
    meta = {META_SCHEDULE: definition["name"]}
    options: dict[str, Any] = {
        "args": definition["args"],
        "kwargs": definition["kwargs"],
        "id": job_id,
        "queue_name": definition["queue"],
        "timeout": definition.get("timeout"),
        "meta": meta,
        "description": definition.get("description") or None,
    }
    if definition.get("cron"):
        with warnings.catch_warnings():  # rq-scheduler's crontab warns about a default it passes; our time is set below
            warnings.simplefilter("ignore", FutureWarning)
            scheduler.cron(definition["cron"], definition["func"], **options)
    else:
        scheduler.schedule(
            datetime.fromtimestamp(due, UTC).replace(tzinfo=None),
            definition["func"],
            interval=definition["intervalSeconds"],
            **options,
        )
    if definition["enabled"]:
        connection.zadd(Scheduler.scheduled_jobs_key, {job_id: due})
    else:
        scheduler.cancel(job_id)


def save_schedule(connection: Redis, definition: dict[str, Any], *, replace: str | None = None) -> dict[str, Any]:
    """Create (replace=None) or replace the schedule named `replace`; the name may change on replace."""
    name = definition["name"]
    if replace is not None:
        get_definition(connection, replace)
    definition = {**definition, "updatedAt": iso_from_timestamp(time.time())}
    due = next_due(definition, time.time())  # before any write: a cron that never fires raises here
    if replace != name and not _claim(connection, name, definition):
        raise ScheduleExists(f"A schedule named '{name}' already exists")
    if replace is not None and replace != name:
        _move_history(connection, replace, name)
        delete_schedule(connection, replace)
    with connection.pipeline() as pipe:
        pipe.hset(keys.SCHEDULES, name, json.dumps(definition))
        pipe.zadd(keys.SCHEDULE_NAMES, {name: 0})
        pipe.hset(keys.SCHEDULE_TEMPLATES, template_id(name), name)
        pipe.execute()
    _place_template(connection, definition, due)
    return get_schedule(connection, name)


def _claim(connection: Redis, name: str, definition: dict[str, Any]) -> bool:
    """A new name is taken at once (HSETNX), so two creations of one name cannot both succeed."""
    return name not in rq_cron_names(connection) and bool(
        connection.hsetnx(keys.SCHEDULES, name, json.dumps(definition))
    )


_HISTORY_HASHES = (keys.SCHEDULE_LAST_JOB, keys.SCHEDULE_MISSED, keys.SCHEDULE_MISSED_AT)


def _move_history(connection: Redis, old: str, new: str) -> None:
    """A renamed schedule keeps its runs and counts."""
    for source, target in (
        (keys.schedule_runs(old), keys.schedule_runs(new)),
        (keys.schedule_run_data(old), keys.schedule_run_data(new)),
    ):
        if connection.exists(source):
            connection.rename(source, target)
    with connection.pipeline() as pipe:
        for hash_key in _HISTORY_HASHES:
            pipe.hget(hash_key, old)
        values = pipe.execute()
    with connection.pipeline() as pipe:
        for hash_key, value in zip(_HISTORY_HASHES, values, strict=True):
            if value is not None:
                pipe.hset(hash_key, new, value)
        for member, opened_at in connection.zrange(keys.SCHEDULE_OPEN_RUNS, 0, -1, withscores=True):
            name, _, job_id = member.decode().partition(RUN_SEPARATOR)
            if name == old:  # runs still going record their end under the new name
                pipe.zrem(keys.SCHEDULE_OPEN_RUNS, member)
                pipe.zadd(keys.SCHEDULE_OPEN_RUNS, {f"{new}{RUN_SEPARATOR}{job_id}": opened_at})
        pipe.execute()


def delete_schedule(connection: Redis, name: str) -> None:
    get_definition(connection, name)
    job_id = template_id(name)
    with connection.pipeline() as pipe:
        pipe.zrem(Scheduler.scheduled_jobs_key, job_id)
        pipe.delete(Job.key_for(job_id))
        pipe.hdel(keys.SCHEDULES, name)
        pipe.zrem(keys.SCHEDULE_NAMES, name)
        pipe.hdel(keys.SCHEDULE_TEMPLATES, job_id)
        pipe.hdel(keys.SCHEDULE_LAST_JOB, name)
        pipe.hdel(keys.SCHEDULE_MISSED, name)
        pipe.hdel(keys.SCHEDULE_MISSED_AT, name)
        pipe.delete(keys.schedule_runs(name), keys.schedule_run_data(name))
        pipe.execute()


def set_enabled(connection: Redis, name: str, enabled: bool) -> dict[str, Any]:
    """Pause (remove from rq-scheduler's set: no firing, nothing missed) or resume from the next due time."""
    definition = get_definition(connection, name)
    if definition["enabled"] != enabled:
        definition["enabled"] = enabled
        due = next_due(definition, time.time()) if enabled else None  # before any write, as in save_schedule
        connection.hset(keys.SCHEDULES, name, json.dumps(definition))
        if due is not None:
            connection.zadd(Scheduler.scheduled_jobs_key, {template_id(name): due})
        else:
            connection.zrem(Scheduler.scheduled_jobs_key, template_id(name))
    return get_schedule(connection, name)


# --- reads --------------------------------------------------------------------------------------------


def utc_day(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%d")


def _summaries(connection: Redis, names: list[str], now: float, strip: int = 20) -> dict[str, dict[str, Any]]:
    """The schedules named (those that exist) with their live facts: one pipeline, then their recent runs."""
    from app.domain.schedule_runs import last_runs  # noqa: PLC0415 - runs build on definitions

    if not names:
        return {}
    with connection.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.SCHEDULES, names)
        pipe.hmget(keys.SCHEDULE_MISSED, names)
        pipe.hmget(keys.schedule_day_counts(utc_day(now)), names)
        for name in names:
            pipe.zscore(Scheduler.scheduled_jobs_key, template_id(name))
            pipe.zrevrange(keys.schedule_runs(name), 0, strip - 1)
        raw, missed, today, *rest = pipe.execute()
    scores, run_ids = rest[0::2], rest[1::2]
    lasts = last_runs(connection, dict(zip(names, run_ids, strict=True)))
    result = {}
    for index, name in enumerate(names):
        if raw[index] is None:
            continue
        score = scores[index]
        try:
            definition = json.loads(raw[index])
            result[name] = {
                **_public(definition),
                "schedule": describe(definition),
                "nextRunAt": iso_from_timestamp(score) if score is not None and definition["enabled"] else None,
                "lastRun": lasts.get(name),
                "runsToday": count_value(today[index] or b"0"),
                "missedRuns": count_value(missed[index] or b"0"),
                "source": SOURCE_RQ_SCHEDULER,
                "editable": True,
            }
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):  # not a definition the product
            continue  # wrote (another program's value): left out of the list, the rest shown
    return result


FIELDS = (
    "name",
    "description",
    "func",
    "args",
    "kwargs",
    "queue",
    "cron",
    "intervalSeconds",
    "enabled",
    "overlap",
    "timeout",
    "attempts",
    "backoff",
)


def _public(definition: dict[str, Any]) -> dict[str, Any]:
    shown = {field: definition.get(field) for field in FIELDS}
    if shown["cron"] is None:
        del shown["cron"]
    else:
        del shown["intervalSeconds"]
    return shown


def get_schedule(connection: Redis, name: str) -> dict[str, Any]:
    try:
        get_definition(connection, name)
    except ScheduleReadOnly:
        return next(entry for entry in rq_cron_entries(connection) if entry["name"] == name)
    return _summaries(connection, [name], time.time())[name]


def _cron_registry_key() -> str | None:
    try:
        from rq.cron_scheduler_registry import get_registry_key  # noqa: PLC0415
    except ImportError:  # RQ < 2.6
        return None
    return get_registry_key()


def list_schedules(connection: Redis, page: int = 1, per_page: int = 50) -> dict[str, Any]:
    """Every schedule sorted by name, rq-scheduler's editable ones and `rq cron`'s read-only ones, one page: the
    page's names come from a sorted index, so a page costs the same with 10 or 10,000 schedules."""
    start = (page - 1) * per_page
    registry = _cron_registry_key()
    with connection.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.SCHEDULE_NAMES)
        pipe.zrange(keys.SCHEDULE_NAMES, start, start + per_page - 1)
        pipe.zcard(registry) if registry else pipe.echo("0")
        total, page_names, cron_schedulers = pipe.execute()
    shown = [name.decode(errors="replace") for name in page_names]  # not UTF-8: no schedule's name, left out
    cron: dict[str, dict[str, Any]] = {}
    if int(cron_schedulers):  # merge `rq cron`'s few entries into the order: read every name once
        every_own = {name.decode(errors="replace") for name in connection.zrange(keys.SCHEDULE_NAMES, 0, -1)}
        cron = {e["name"]: e for e in rq_cron_entries(connection) if e["name"] not in every_own}
        every = sorted([*every_own, *cron])
        total, shown = len(every), every[start : start + per_page]
    summaries = _summaries(connection, [name for name in shown if name not in cron], time.time())
    schedules = [summaries.get(name) or cron[name] for name in shown if name in summaries or name in cron]
    return {"success": True, "page": page, "perPage": per_page, "total": int(total), "schedules": schedules}


def rq_cron_entries(connection: Redis) -> list[dict[str, Any]]:
    """RQ's own `rq cron` jobs, read-only, from its cron scheduler registry (RQ >= 2.6); [] when none runs."""
    try:
        from rq.cron import CronScheduler
    except ImportError:
        return []
    entries: dict[str, dict[str, Any]] = {}
    for scheduler in CronScheduler.all(connection, cleanup=False):
        for cron_job in scheduler.get_jobs():
            data = cron_job.to_dict()
            entries[data["name"]] = {
                "name": data["name"],
                "description": None,
                "func": data["func_name"],
                "args": json.loads(data["args"]) if data.get("args") else [],
                "kwargs": json.loads(data["kwargs"]) if data.get("kwargs") else {},
                "queue": data["queue_name"],
                "cron": data.get("cron"),
                "intervalSeconds": data.get("interval"),
                "enabled": True,
                "overlap": "allow",
                "timeout": data.get("job_timeout"),
                "attempts": None,
                "backoff": None,
                "schedule": _describe_rq_cron(data),
                "nextRunAt": _rq_time(data.get("next_enqueue_time")),
                "lastRun": None,
                "runsToday": 0,
                "missedRuns": 0,
                "source": SOURCE_RQ_CRON,
                "editable": False,
            }
    return list(entries.values())


def _describe_rq_cron(data: dict[str, Any]) -> str:
    if not (data.get("cron") or data.get("interval")):
        return ""
    return describe({"cron": data.get("cron"), "intervalSeconds": data.get("interval")})


def _rq_time(value: str | None) -> str | None:
    if not value:
        return None
    from rq.utils import utcparse

    return iso_from_timestamp(utcparse(value).replace(tzinfo=UTC).timestamp())


def rq_cron_names(connection: Redis) -> set[str]:
    return {entry["name"] for entry in rq_cron_entries(connection)}
