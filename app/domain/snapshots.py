"""The per-queue live document: the queue's counts, its active runs and its stuck alerts."""

from __future__ import annotations

import time
from typing import Any

from redis import Redis

from app.domain.metrics import get_queue_metrics
from app.domain.severity import DEFAULT_THRESHOLDS_MINUTES, severity_for
from app.domain.stuck import active_runs, describe_run, load_jobs, stuck_alert
from app.domain.timeutil import iso_from_timestamp


def get_queue_snapshot(
    connection: Redis,
    queue_name: str,
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS_MINUTES,
    now: float | None = None,
    queue_entry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`queue_entry`: the queue's entry of a metrics document computed for the same tick, when the caller has
    one (the publisher does), instead of counting the queue again."""
    now = time.time() if now is None else now
    runs = sorted(active_runs(connection, [queue_name], now), key=lambda run: run["runningFor"], reverse=True)
    load_jobs(connection, runs)
    stuck = []
    for run in runs:
        severity = severity_for(run["runningFor"], thresholds)
        if severity is not None:
            stuck.append(stuck_alert(connection, run, severity))
    return {
        "timestamp": iso_from_timestamp(now),
        "queue": queue_entry if queue_entry is not None else get_queue_metrics(connection, queue_name, now),
        "activeJobs": [{k: v for k, v in describe_run(connection, run).items() if k != "data"} for run in runs],
        "stuck": stuck,
    }
