"""Schemas of the job API: they validate requests and document the responses in the OpenAPI document."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from app.domain.clear import CLEAR_ALL, CLEAR_TYPES
from app.domain.jobs import MAX_PER_PAGE
from app.domain.priority import MAX_PRIORITY
from app.domain.states import BROWSABLE_STATES, JobState, Period, Severity
from app.domain.stuck import DEFAULT_STUCK_LIMIT, MAX_STUCK_LIMIT
from app.schemas import one_of

if TYPE_CHECKING:
    PeriodWord = str
    BrowsableState = str
    ClearType = str
    SeverityWord = str
else:
    PeriodWord = one_of(Period)
    BrowsableState = one_of(BROWSABLE_STATES)
    ClearType = one_of(CLEAR_TYPES)
    SeverityWord = one_of(Severity)


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore")  # cache-busting parameters are harmless


class Open(BaseModel):
    """A documented response; extra fields may be added (API.md)."""

    model_config = ConfigDict(extra="allow")


# --- requests ---------------------------------------------------------------------------------------


class TrendsQuery(Query):
    period: PeriodWord = Period.DAY.value
    series: bool = False


class JobsQuery(Query):
    state: BrowsableState = JobState.WAITING.value
    page: int = Field(1, ge=1, le=1_000_000)
    perPage: int = Field(25, ge=1, le=MAX_PER_PAGE)


class ClearQuery(Query):
    type: ClearType = CLEAR_ALL


class StuckQuery(Query):
    limit: int = Field(DEFAULT_STUCK_LIMIT, ge=1, le=MAX_STUCK_LIMIT)


class Backoff(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["fixed", "exponential"]
    delay: StrictInt = Field(ge=0, le=86_400_000)


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: StrictInt | None = Field(None, ge=0, le=MAX_PRIORITY)
    attempts: StrictInt | None = Field(None, ge=1, le=100)
    backoff: Backoff | None = None
    dataOverrides: dict[str, Any] | None = Field(
        None, description="Keys merged over the original's keyword arguments."
    )
    argsOverrides: list[Any] | None = Field(
        None, description="The positional arguments of the new job, replacing the original's."
    )
    removeOriginal: StrictBool = False
    force: StrictBool = Field(
        False, description="Retry even when the job was already retried (409 already_retried otherwise)."
    )

    def options(self) -> dict[str, Any]:
        """Only the fields the client sent: absent (or null) ones default to the original job's."""
        return self.model_dump(exclude_unset=True, exclude_none=True, mode="json")


# --- responses --------------------------------------------------------------------------------------


class Counts(Open):
    waiting: int
    active: int
    completed: int
    failed: int
    delayed: int
    prioritized: int = 0
    waitingChildren: int = 0


class QueueMetrics(Counts):
    queueName: str
    paused: bool


class Metrics(Open):
    timestamp: str
    queues: list[QueueMetrics]
    totals: Counts
    successRate: float | None
    processingRate: float


class Trend(Open):
    queueName: str
    period: str
    successful: int
    failed: int
    total: int
    successRate: float | None
    avgProcessingTime: float | None


class StuckAlert(Open):
    jobId: str
    queueName: str
    jobName: str | None
    stuckDuration: int
    severity: SeverityWord
    startedAt: str | None
    data: dict[str, Any] | None
    attemptsMade: int | None
    unreadable: bool = Field(False, description="true: the job could not be read whole; unread fields are null")


class SeverityCounts(Open):
    low: int
    medium: int
    high: int
    critical: int


class QueueStuckCounts(SeverityCounts):
    total: int


class StuckSummary(Open):
    total: int
    bySeverity: SeverityCounts
    byQueue: dict[str, QueueStuckCounts]


class JobPage(Open):
    queueName: str
    state: str
    page: int
    perPage: int
    total: int
    jobs: list[dict[str, Any]]


class JobDetail(Open):
    jobId: str
    queueName: str
    state: str
    jobName: str | None = None
    data: dict[str, Any] | None = None
    unreadable: bool = Field(False, description="true: the job could not be read whole; unread fields are null")


class PauseResult(Open):
    success: bool
    queueName: str
    paused: bool


class ClearResult(Open):
    success: bool
    queueName: str
    type: str
    removed: dict[str, int]


class RetryResult(Open):
    success: bool
    newJobId: str
    originalRemoved: bool = Field(
        description="Whether the original was removed: false without removeOriginal, and for a stuck run whose "
        "worker did not stop it within 5 s (the original is then kept)."
    )
    message: str


class StopResult(Open):
    success: bool
    jobId: str
    stopped: bool
