"""The product's vocabularies, written once: job states (BullMQ's words over RQ's statuses, SEMANTICS.md) and the
stuck severities, the trend periods. Domain code and schemas take them from here, and the pages receive them as
one JSON document (`vocabulary()`); the thresholds come from config.py (app.domain.severity.StuckThresholds)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from rq.job import JobStatus


class JobState(StrEnum):
    WAITING = "waiting"
    PRIORITIZED = "prioritized"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    DELAYED = "delayed"
    WAITING_CHILDREN = "waiting-children"
    STOPPED = "stopped"
    CANCELED = "canceled"


# The states a queue's jobs can be browsed by (one registry or list each).
BROWSABLE_STATES = (
    JobState.WAITING,
    JobState.PRIORITIZED,
    JobState.ACTIVE,
    JobState.COMPLETED,
    JobState.FAILED,
    JobState.DELAYED,
)

# Runs that ended without completing: shown as failures, and the states a job can be retried from.
FAILED_STATES = (JobState.FAILED, JobState.STOPPED, JobState.CANCELED)
# Runs that have ended (a job page stops watching closely).
FINISHED_STATES = (JobState.COMPLETED, *FAILED_STATES)

# RQ status -> BullMQ word (SEMANTICS.md)
STATE_OF_STATUS = {
    JobStatus.QUEUED: JobState.WAITING,
    JobStatus.STARTED: JobState.ACTIVE,
    JobStatus.FINISHED: JobState.COMPLETED,
    JobStatus.FAILED: JobState.FAILED,
    JobStatus.SCHEDULED: JobState.DELAYED,
    JobStatus.DEFERRED: JobState.WAITING_CHILDREN,
    JobStatus.STOPPED: JobState.STOPPED,
    JobStatus.CANCELED: JobState.CANCELED,
}


class Severity(StrEnum):
    """Stuck-run bands, shortest first: low [t0, t1), medium [t1, t2), high [t2, t3), critical >= t3."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class AlertSeverity(StrEnum):
    """An alert rule's severity (ALERTS.md)."""

    WARNING = "warning"
    CRITICAL = "critical"


class HealthStatus(StrEnum):
    """The roll-up of GET /api/v1/health and the workers overview, best first."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    CRITICAL = "critical"


class Liveness(StrEnum):
    """A worker's liveness by the age of its last heartbeat, against its own cadence (WORKERS.md)."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    STALE = "stale"


class WorkerStatus(StrEnum):
    """What a worker is doing (WORKERS.md): its RQ state, the monitor's pause and stop requests, or stale."""

    BUSY = "busy"
    IDLE = "idle"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    STOPPING = "stopping"
    STOPPED = "stopped"
    STALE = "stale"


class Period(StrEnum):
    """The windows trends are read over (app.domain.history)."""

    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"


def vocabulary(stuck_minutes: tuple[float, ...]) -> dict[str, Any]:
    """The words the pages' scripts use, as plain JSON (rendered once per page by base.html)."""
    return {
        "states": {state.name: state.value for state in JobState},
        "browsableStates": list(BROWSABLE_STATES),
        "failedStates": list(FAILED_STATES),
        "finishedStates": list(FINISHED_STATES),
        "severities": list(Severity),
        "periods": list(Period),
        "alertSeverities": list(AlertSeverity),
        "healthStatuses": list(HealthStatus),
        "stuckThresholdsMinutes": list(stuck_minutes),
    }
