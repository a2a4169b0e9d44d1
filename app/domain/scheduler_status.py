"""The scheduler's status and the periodic jobs' health (SCHEDULES.md, seed 004's `/status`): the active
scheduler's heartbeat, the latest and next runs, runs today, missed runs, and the `scheduler_down` and
`schedule_missed` rules. A few reads whatever the number of schedules."""

from __future__ import annotations

import json
import time
from typing import Any

from redis import Redis
from rq_scheduler import Scheduler

from app.domain import keys
from app.domain.schedule_runs import overlay
from app.domain.schedules import RUN_SEPARATOR, TEMPLATE_PREFIX, utc_day
from app.domain.states import AlertSeverity
from app.domain.timeutil import iso_from_timestamp


def heartbeat(connection: Redis, name: str, hostname: str, pid: int, now: float) -> None:
    """The active scheduler's heartbeat, shown by /periodic/status."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.hset(keys.SCHEDULER_HEARTBEAT, mapping={"name": name, "hostname": hostname, "pid": pid, "at": now})
        pipe.expire(keys.SCHEDULER_HEARTBEAT, keys.SCHEDULER_HEARTBEAT_TTL_SECONDS)
        pipe.execute()


MISSED_ALERT_SECONDS = 15 * 60  # schedule_missed stays raised this long after a missed firing


def _overdue(connection: Redis, now: float, grace: float) -> list[str]:
    """Enabled schedules whose due time passed more than `grace` ago without a firing (the scheduler is down)."""
    templates = [t for t in connection.zrangebyscore(Scheduler.scheduled_jobs_key, 0, now - grace, 0, 100)]
    ours = [t for t in templates if t.startswith(TEMPLATE_PREFIX.encode())]
    return [name.decode() for name in connection.hmget(keys.SCHEDULE_TEMPLATES, ours) if name] if ours else []


def _latest_run(connection: Redis) -> dict[str, Any] | None:
    latest = connection.get(keys.SCHEDULE_LATEST_RUN)
    if latest is None:
        return None
    name, job_id = latest.decode().split(RUN_SEPARATOR, 1)
    raw = connection.hget(keys.schedule_run_data(name), job_id)
    return overlay(connection, [json.loads(raw)])[0] if raw else None


def scheduler_status(connection: Redis, down_after: float, grace: float, now: float | None = None) -> dict:
    """Seed 004's status plus the two health rules: `scheduler_down` (no active scheduler's heartbeat within
    `down_after` seconds while schedules are enabled) and `schedule_missed` (a schedule missed a firing in the last
    MISSED_ALERT_SECONDS, or one is overdue now). A few round trips, whatever the number of schedules."""
    now = time.time() if now is None else now
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.SCHEDULER_HEARTBEAT)
        pipe.hvals(keys.schedule_day_counts(utc_day(now)))
        pipe.hgetall(keys.SCHEDULE_MISSED)
        pipe.hgetall(keys.SCHEDULE_MISSED_AT)
        pipe.zrange(Scheduler.scheduled_jobs_key, 0, 0, withscores=True)
        pipe.hlen(keys.SCHEDULE_TEMPLATES)
        raw_beat, today, missed, missed_at, firsts, schedule_count = pipe.execute()
    first = firsts[0] if firsts else None
    beat = {key.decode(): value.decode() for key, value in raw_beat.items()}
    alive = bool(beat) and now - float(beat["at"]) <= down_after
    missed_counts = {name.decode(): int(count) for name, count in missed.items()}
    alerts: list[dict[str, Any]] = []
    if not alive and schedule_count:
        message = "No scheduler is running: periodic jobs are not enqueued"
        alerts.append(_alert("scheduler_down", AlertSeverity.CRITICAL.value, message))
    recent = {name.decode() for name, at in missed_at.items() if now - float(at) <= MISSED_ALERT_SECONDS}
    overdue = set(_overdue(connection, now, grace))
    for name in sorted(recent | overdue):
        message = f"Schedule '{name}' missed {missed_counts.get(name, 0)} run(s)" + (
            " and is overdue now" if name in overdue else ""
        )
        alerts.append(_alert("schedule_missed", AlertSeverity.WARNING.value, message, name))
    latest = _latest_run(connection)
    return {
        "success": True,
        "isMonitoringActive": alive,
        "scheduler": {
            "name": beat["name"],
            "hostname": beat["hostname"],
            "pid": int(beat["pid"]),
            "lastHeartbeat": iso_from_timestamp(float(beat["at"])),
        }
        if beat
        else None,
        "lastRunTime": latest["enqueuedAt"] if latest else None,
        "lastRunStatus": latest["state"] if latest else None,
        "totalRunsToday": sum(int(count) for count in today),
        "nextScheduledRun": iso_from_timestamp(first[1]) if first else None,
        "missedRuns": sum(missed_counts.values()),
        "alerts": alerts,
    }


def _alert(rule: str, severity: str, message: str, schedule: str | None = None) -> dict[str, Any]:
    return {"rule": rule, "severity": severity, "message": message, "schedule": schedule}
