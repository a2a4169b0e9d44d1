"""The per-queue live document: the queue's counts, its longest-running active jobs and their stuck alerts.

Bounded whatever the number of running jobs: at most ACTIVE_JOBS_SHOWN runs (longest-running first), with the
totals (`activeCount`, `stuckCount`, `stuckBySeverity`) of all of them.
"""

from __future__ import annotations

import time
from typing import Any

from redis import Redis

from app.domain.metrics import get_queue_metrics
from app.domain.run_starts import QueueRuns, longest_runs
from app.domain.severity import DEFAULT_STUCK_THRESHOLDS, StuckThresholds
from app.domain.stuck import describe_run, stuck_alert, summarize_stuck
from app.domain.timeutil import iso_from_timestamp

ACTIVE_JOBS_SHOWN = 50


def get_queue_snapshot(
    connection: Redis,
    queue_name: str,
    thresholds: StuckThresholds = DEFAULT_STUCK_THRESHOLDS,
    now: float | None = None,
    queue_entry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`queue_entry`: the queue's entry of a metrics document computed for the same tick, when the caller has
    one (the publisher does), instead of counting the queue again."""
    now = time.time() if now is None else now
    # Band 0 (every run that has started) selects the runs shown; the thresholds' bands count the stuck ones.
    runs, counts = longest_runs(connection, [queue_name], (0, *thresholds.minutes), ACTIVE_JOBS_SHOWN, now)
    queue_runs = counts.get(queue_name, QueueRuns(0, [0] * (1 + len(thresholds.minutes))))
    stuck_counts = summarize_stuck({queue_name: QueueRuns(queue_runs.active, queue_runs.started_before[1:])})
    active, stuck = [], []
    for run in runs:
        view = describe_run(connection, run)
        active.append({k: v for k, v in view.items() if k != "data"})
        severity = thresholds.severity_of(run["runningFor"])
        if severity is not None:
            stuck.append(stuck_alert(connection, run, severity, view))
    return {
        "timestamp": iso_from_timestamp(now),
        "queue": queue_entry if queue_entry is not None else get_queue_metrics(connection, queue_name, now),
        "activeJobs": active,
        "activeCount": queue_runs.active,
        "stuck": stuck,
        "stuckCount": stuck_counts["total"],
        "stuckBySeverity": stuck_counts["bySeverity"],
    }
