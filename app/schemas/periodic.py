"""Schemas of /api/v1/periodic: they validate requests and document the responses (API.md § Periodic jobs)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationInfo, field_validator

from app.domain.schedule_runs import RUN_STATES
from app.domain.schedule_timing import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS, cron_error
from app.domain.schedules import NAME_PATTERN, OVERLAP_POLICIES
from app.schemas.jobs import Backoff, Open, Query


class ListQuery(Query):
    page: int = Field(1, ge=1, le=1_000_000)
    perPage: int = Field(50, ge=1, le=200)


class RunsQuery(Query):
    limit: int = Field(10, ge=1, le=1000)
    status: Literal[RUN_STATES] | None = None  # type: ignore[valid-type]


class Timing(BaseModel):
    """Exactly one of `cron` (5 fields, UTC) or `intervalSeconds` (10 s .. 1 year)."""

    model_config = ConfigDict(extra="forbid")
    cron: str | None = Field(None, max_length=200, description="5-field cron string, evaluated in UTC")
    intervalSeconds: StrictInt | None = Field(
        None, ge=MIN_INTERVAL_SECONDS, le=MAX_INTERVAL_SECONDS, validate_default=True
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and (error := cron_error(value)):
            raise ValueError(f"cron {error}")
        return value

    @field_validator("intervalSeconds")
    @classmethod
    def _one_of(cls, value: int | None, info: ValidationInfo) -> int | None:
        has_cron = info.data.get("cron") is not None or "cron" not in info.data  # an invalid cron was given
        if value is not None and has_cron:
            raise ValueError("give either cron or intervalSeconds, not both")
        if value is None and not has_cron:
            raise ValueError("give cron or intervalSeconds")
        return value


class PreviewQuery(Query, Timing):
    model_config = ConfigDict(extra="ignore")
    intervalSeconds: int | None = Field(None, ge=MIN_INTERVAL_SECONDS, le=MAX_INTERVAL_SECONDS, validate_default=True)


class ScheduleBody(Timing):
    name: str = Field(pattern=f"^{NAME_PATTERN}$", description="letters, digits and _ . : - (1..100)")
    description: str | None = Field(None, max_length=500)
    func: str = Field(min_length=1, max_length=300, description="dotted path under PERIODIC_ALLOWED_MODULES")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    queue: str = Field("default", min_length=1, max_length=128)
    enabled: StrictBool = True
    overlap: Literal[OVERLAP_POLICIES] = "skip"  # type: ignore[valid-type]
    timeout: StrictInt | None = Field(None, ge=1, le=7 * 86400, description="seconds a run may last")
    attempts: StrictInt = Field(1, ge=1, le=100)
    backoff: Backoff | None = None

    def definition(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ReplaceBody(ScheduleBody):
    name: str | None = Field(None, pattern=f"^{NAME_PATTERN}$", description="a new name; default: unchanged")  # type: ignore[assignment]


# --- responses --------------------------------------------------------------------------------------


class LastRun(Open):
    jobId: str | None
    trigger: str
    enqueuedAt: str | None
    state: str
    durationMs: int | None
    recent: list[str] = Field(default_factory=list, description="states of the last 20 runs, oldest first")


class Schedule(Open):
    name: str
    description: str | None
    func: str
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    queue: str
    cron: str | None = None
    intervalSeconds: int | None = None
    enabled: bool
    overlap: str
    timeout: int | None
    attempts: int | None
    backoff: dict[str, Any] | None
    schedule: str = Field(description="the schedule in words")
    nextRunAt: str | None
    lastRun: LastRun | None
    runsToday: int
    missedRuns: int
    source: Literal["rq-scheduler", "rq-cron"]
    editable: bool


class SchedulePage(Open):
    success: bool
    page: int
    perPage: int
    total: int
    schedules: list[Schedule]


class Run(Open):
    jobId: str | None
    trigger: str
    dueAt: str | None
    enqueuedAt: str | None
    startedAt: str | None
    endedAt: str | None
    state: str
    durationMs: int | None
    failedReason: str | None
    queue: str | None = Field(None, description="the queue its job went to (the schedule's queue at the time)")


class RunList(Open):
    success: bool
    name: str
    runs: list[Run]


class RunNow(Open):
    success: bool
    jobId: str


class Preview(Open):
    success: bool
    schedule: str
    nextRuns: list[str]


class SchedulerInfo(Open):
    name: str
    hostname: str
    pid: int
    lastHeartbeat: str


class HealthAlert(Open):
    rule: Literal["scheduler_down", "schedule_missed"]
    severity: str
    message: str
    schedule: str | None = None


class SchedulerStatus(Open):
    success: bool
    isMonitoringActive: bool
    scheduler: SchedulerInfo | None
    lastRunTime: str | None
    lastRunStatus: str | None
    totalRunsToday: int
    nextScheduledRun: str | None
    missedRuns: int
    alerts: list[HealthAlert]
