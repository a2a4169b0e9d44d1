"""Active runs and stuck alerts: jobs whose current run started at least the first threshold ago.

Round trips do not grow with the number of active jobs, and neither does Redis's work: one script counts the
runs past each threshold and returns the fields of the N longest-running only, through an index of start times
(so Redis does not read every running job on every call; the index and its scripts: app/domain/run_starts.py).
Stuck alerts: the queue list, then that script; one queue's live view: that script alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redis import Redis

from app.domain.jobs import summarize_raw
from app.domain.queues import list_queue_names, parse_queue_names, queue_names_reads
from app.domain.run_starts import QueueRuns, longest_runs
from app.domain.severity import DEFAULT_STUCK_THRESHOLDS, SEVERITIES, StuckThresholds
from app.domain.states import JobState

DEFAULT_STUCK_LIMIT = 100
MAX_STUCK_LIMIT = 1000


def describe_run(connection: Redis, run: dict[str, Any]) -> dict[str, Any]:
    """An active run as the per-queue live view shows it (shown even when its payload cannot be read)."""
    summary = summarize_raw(connection, run["jobId"], run["queueName"], JobState.ACTIVE.value, run["raw"] or {})
    view = {
        "jobId": run["jobId"],
        "jobName": summary.get("jobName"),
        "startedAt": summary.get("processedOn"),
        "runningFor": run["runningFor"],
        "workerName": summary.get("workerName"),
        "attemptsMade": summary.get("attemptsMade", 0),
    }
    if "dataError" in summary:
        view["dataError"] = summary["dataError"]
    if summary.get("unreadable"):
        view["unreadable"] = True
    return view | {"data": summary.get("data")}


def stuck_alert(
    connection: Redis, run: dict[str, Any], severity: str, view: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`view`: the run's `describe_run` when the caller already has it."""
    alert = dict(view) if view is not None else describe_run(connection, run)
    running_for = alert.pop("runningFor")
    return {**alert, "queueName": run["queueName"], "severity": severity, "stuckDuration": running_for}


def _severity_counts(runs: QueueRuns) -> dict[str, int]:
    """Cumulative counts per threshold (started at or before each) -> runs per band."""
    bands = runs.started_before
    counts = {
        severity: bands[at] - (bands[at + 1] if at + 1 < len(bands) else 0) for at, severity in enumerate(SEVERITIES)
    }
    return {severity: max(0, count) for severity, count in counts.items()}


def summarize_stuck(counts: dict[str, QueueRuns]) -> dict[str, Any]:
    """{"total", "bySeverity", "byQueue": {queue: {"total", <severity>: n}}} (queues with a stuck run only)."""
    by_severity = dict.fromkeys(SEVERITIES, 0)
    by_queue = {}
    for queue_name, runs in sorted(counts.items()):
        bands = _severity_counts(runs)
        total = sum(bands.values())
        if total:
            by_queue[queue_name] = {"total": total, **bands}
            for severity, count in bands.items():
                by_severity[severity] += count
    return {"total": sum(by_severity.values()), "bySeverity": by_severity, "byQueue": by_queue}


def get_stuck_page(
    connection: Redis,
    thresholds: StuckThresholds = DEFAULT_STUCK_THRESHOLDS,
    limit: int = DEFAULT_STUCK_LIMIT,
    queue_name: str | None = None,
    now: float | None = None,
    queue_names: list[str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The `limit` longest-stuck alerts, longest first, and the summary of every stuck run; two round trips
    (the queue list, unless given in `queue_names`; one script), Redis's work bounded by the limit."""
    now = time.time() if now is None else now
    names = [queue_name] if queue_name else queue_names if queue_names is not None else list_queue_names(connection)
    runs, counts = longest_runs(connection, names, thresholds.minutes, limit, now)
    alerts = []
    for run in runs[:limit]:
        severity = thresholds.severity_of(run["runningFor"])
        if severity is not None:
            alerts.append(stuck_alert(connection, run, severity))
    return alerts, summarize_stuck(counts)


def get_stuck_summary(
    connection: Redis,
    thresholds: StuckThresholds = DEFAULT_STUCK_THRESHOLDS,
    now: float | None = None,
    queue_names: list[str] | None = None,
) -> dict[str, Any]:
    return get_stuck_page(connection, thresholds, 0, now=now, queue_names=queue_names)[1]


def queue_names_read(pipe: Any) -> Callable[[list[Any]], list[str]]:
    """The queue list's reads on `pipe` (to join another round trip, the auth lookup's), and their parser."""
    queue_names_reads(pipe)
    return lambda results: parse_queue_names(*results)


def get_stuck_jobs(
    connection: Redis,
    thresholds: StuckThresholds = DEFAULT_STUCK_THRESHOLDS,
    queue_name: str | None = None,
    now: float | None = None,
    limit: int = MAX_STUCK_LIMIT,
) -> list[dict[str, Any]]:
    """Stuck alerts with severity bands, longest first (at most `limit`)."""
    return get_stuck_page(connection, thresholds, limit, queue_name, now)[0]
