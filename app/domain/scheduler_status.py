"""The scheduler's status and the periodic jobs' health (SCHEDULES.md, seed 004's `/status`): the active
scheduler's heartbeat, the latest and next runs, runs today, missed runs, and the alert engine's firing
`scheduler_down` and `schedule_missed` alerts (the rules live once, in app/domain/alert_rules.py). A few reads
whatever the number of schedules."""

from __future__ import annotations

import json
import time
from typing import Any

from redis import Redis
from rq_scheduler import Scheduler

from app.domain import keys
from app.domain.alerts import read_alerts
from app.domain.history import count_value
from app.domain.schedule_runs import overlay
from app.domain.schedules import RUN_SEPARATOR, utc_day
from app.domain.timeutil import iso_from_timestamp


def heartbeat(connection: Redis, name: str, hostname: str, pid: int, now: float) -> None:
    """The active scheduler's heartbeat, shown by /periodic/status."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.hset(keys.SCHEDULER_HEARTBEAT, mapping={"name": name, "hostname": hostname, "pid": pid, "at": now})
        pipe.expire(keys.SCHEDULER_HEARTBEAT, keys.SCHEDULER_HEARTBEAT_TTL_SECONDS)
        pipe.execute()


STATUS_RULES = ("scheduler_down", "schedule_missed")


def _latest_run(connection: Redis) -> dict[str, Any] | None:
    latest = connection.get(keys.SCHEDULE_LATEST_RUN)
    name, separator, job_id = (latest or b"").decode(errors="replace").partition(RUN_SEPARATOR)
    if not separator:  # none, or not what the scheduler writes (another program's value)
        return None
    raw = connection.hget(keys.schedule_run_data(name), job_id)
    return overlay(connection, [json.loads(raw)])[0] if raw else None


def scheduler_status(connection: Redis, down_after: float, now: float | None = None) -> dict:
    """Seed 004's status: alive = the active scheduler's heartbeat is at most `down_after` seconds old (the
    scheduler_down rule's threshold, config.scheduler_down_seconds); `alerts` are the engine's firing scheduler_down
    and schedule_missed alerts, not a second evaluation of those rules."""
    now = time.time() if now is None else now
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.SCHEDULER_HEARTBEAT)
        pipe.hvals(keys.schedule_day_counts(utc_day(now)))
        pipe.hgetall(keys.SCHEDULE_MISSED)
        pipe.zrange(Scheduler.scheduled_jobs_key, 0, 0, withscores=True)
        pipe.hvals(keys.ALERTS_FIRING)
        raw_beat, today, missed, firsts, firing = pipe.execute()
    first = firsts[0] if firsts else None
    beat = {key.decode(errors="replace"): value.decode(errors="replace") for key, value in raw_beat.items()}
    beat_at = _epoch(beat.get("at"))
    alive = beat_at is not None and now - beat_at <= down_after
    missed_counts = {name.decode(errors="replace"): count_value(count) for name, count in missed.items()}
    alerts = [_alert(alert) for alert in read_alerts(firing) if alert.get("rule") in STATUS_RULES]
    alerts.sort(key=lambda alert: (STATUS_RULES.index(alert["rule"]), alert["schedule"] or ""))
    latest = _latest_run(connection)
    return {
        "success": True,
        "isMonitoringActive": alive,
        "scheduler": {
            "name": beat.get("name"),
            "hostname": beat.get("hostname"),
            "pid": count_value(beat.get("pid", "").encode()) or None,
            "lastHeartbeat": iso_from_timestamp(beat_at) if beat_at is not None else None,
        }
        if beat
        else None,
        "lastRunTime": latest["enqueuedAt"] if latest else None,
        "lastRunStatus": latest["state"] if latest else None,
        "totalRunsToday": sum(count_value(count) for count in today),
        "nextScheduledRun": iso_from_timestamp(first[1]) if first else None,
        "missedRuns": sum(missed_counts.values()),
        "alerts": alerts,
    }


def _epoch(text: str | None) -> float | None:
    """The heartbeat's time (epoch seconds) as the scheduler writes it; None for anything else (another program's
    value), as for no heartbeat."""
    try:
        at = float(text or "")
    except ValueError:
        return None
    return at if 0 <= at < 253402300800 else None  # within what a date can show (NaN and inf fail too)


def _alert(alert: dict[str, Any]) -> dict[str, Any]:
    """An engine alert in API.md's /periodic/status shape: the schedule is the subject of schedule_missed."""
    subject = alert.get("subject")
    schedule = subject.get("name") if isinstance(subject, dict) and subject.get("kind") == "schedule" else None
    return {"rule": alert["rule"], "severity": alert["severity"], "message": alert["message"], "schedule": schedule}
