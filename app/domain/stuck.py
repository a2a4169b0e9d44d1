"""Active runs and stuck alerts: jobs whose current run started at least the first threshold ago.

Round trips do not grow with the number of active jobs: the queue list, every started registry, every run's
start time, then the full hashes of the runs shown.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from app.domain import attempts
from app.domain.jobs import job_data, job_key, restore_job, started_entry_job_id
from app.domain.queues import QueueKeys, list_queue_names
from app.domain.severity import DEFAULT_THRESHOLDS_MINUTES, severity_for
from app.domain.timeutil import iso


def _parse_started_at(raw: bytes | None) -> float | None:
    if not raw:
        return None
    try:
        text = raw.decode().rstrip("Z")
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def active_runs(connection: Redis, queue_names: list[str], now: float) -> list[dict[str, Any]]:
    """Every job in the started registries of `queue_names`, with how long its current run has lasted.

    Only `started_at` is read here (small replies, however many jobs run); `load_jobs` fetches the full
    hashes of the runs that are shown.
    """
    with connection.pipeline(transaction=False) as pipe:
        for name in queue_names:
            pipe.zrange(QueueKeys(name).active, 0, -1)
        registries = pipe.execute()
    entries = [
        (name, started_entry_job_id(entry.decode()))
        for name, registry in zip(queue_names, registries, strict=True)
        for entry in registry
    ]
    with connection.pipeline(transaction=False) as pipe:
        for _, job_id in entries:
            pipe.hget(job_key(job_id), "started_at")
        starts = pipe.execute()
    runs = []
    for (queue_name, job_id), started_at in zip(entries, starts, strict=True):
        started = _parse_started_at(started_at)
        running_ms = int((now - started) * 1000) if started is not None else 0
        runs.append({"queueName": queue_name, "jobId": job_id, "raw": None, "runningFor": max(0, running_ms)})
    return runs


def load_jobs(connection: Redis, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill in each run's job hash, in one round trip."""
    with connection.pipeline(transaction=False) as pipe:
        for run in runs:
            pipe.hgetall(job_key(run["jobId"]))
        for run, raw in zip(runs, pipe.execute(), strict=True):
            run["raw"] = raw
    return runs


def describe_run(connection: Redis, run: dict[str, Any]) -> dict[str, Any]:
    """An active run as the per-queue live view shows it."""
    view: dict[str, Any] = {
        "jobId": run["jobId"],
        "jobName": None,
        "startedAt": None,
        "runningFor": run["runningFor"],
        "workerName": None,
        "attemptsMade": 0,
    }
    if run["raw"]:
        try:
            job = restore_job(connection, run["jobId"], run["raw"])
            view.update(
                jobName=job.func_name,
                startedAt=iso(job.started_at),
                workerName=job.worker_name or None,
                attemptsMade=attempts.read_attempts(job)["attemptsMade"],
            )
        except Exception as exc:  # show the run even when its payload is unreadable
            view["dataError"] = f"cannot deserialize the job: {type(exc).__name__}"
    return view


def stuck_alert(connection: Redis, run: dict[str, Any], severity: str) -> dict[str, Any]:
    alert = {
        **describe_run(connection, run),
        "queueName": run["queueName"],
        "severity": severity,
        "stuckDuration": run["runningFor"],
        "data": None,
    }
    alert.pop("runningFor")
    if run["raw"] and "dataError" not in alert:
        try:
            alert["data"] = job_data(restore_job(connection, run["jobId"], run["raw"]))
        except Exception as exc:
            alert["dataError"] = f"cannot deserialize the job: {type(exc).__name__}"
    return alert


def get_stuck_jobs(
    connection: Redis,
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS_MINUTES,
    queue_name: str | None = None,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """Stuck alerts with severity bands, longest first; four round trips whatever the number of jobs."""
    now = time.time() if now is None else now
    names = [queue_name] if queue_name else list_queue_names(connection)
    stuck = [run for run in active_runs(connection, names, now) if severity_for(run["runningFor"], thresholds)]
    alerts = [
        stuck_alert(connection, run, severity_for(run["runningFor"], thresholds) or "low")
        for run in load_jobs(connection, stuck)
    ]
    alerts.sort(key=lambda alert: alert["stuckDuration"], reverse=True)
    return alerts
