"""The product's vocabularies, written once: job states (BullMQ's words over RQ's statuses, SEMANTICS.md) and the
stuck severities. Domain code, pages and schemas take them from here; the thresholds come from config.py."""

from __future__ import annotations

from enum import StrEnum

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
