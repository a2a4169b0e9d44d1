"""Schemas of /api/v1/workers (snake_case, seed 000): they validate the queries and document the responses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from app.domain.states import HealthStatus, Liveness, WorkerStatus
from app.domain.worker_control import Action
from app.schemas import one_of

if TYPE_CHECKING:
    HealthStatusWord = str
else:
    HealthStatusWord = one_of(HealthStatus)

MAX_HOURS = 720


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Open(BaseModel):
    """A documented response; extra fields may be added (API.md)."""

    model_config = ConfigDict(extra="allow")


class HoursQuery(Query):
    hours: int = Field(24, ge=1, le=MAX_HOURS, description="The period back from now, 1..720 hours.")


class ControlQuery(Query):
    action: Action = Field(description="start|stop|restart|pause|resume (WORKERS.md § Control)")


class CurrentJob(Open):
    job_id: str
    queue: str | None
    job_name: str | None
    started_at: str | None
    running_for: float | None = Field(description="seconds")


class Worker(Open):
    worker_name: str
    hostname: str | None
    pid: int | None
    queues: list[str]
    pool: str | None
    monitored: bool
    status: WorkerStatus
    liveness: Liveness
    uptime_seconds: float | None
    tasks_processed: int
    tasks_successful: int
    tasks_failed: int
    error_rate: float = Field(description="percent of ended attempts, lifetime")
    current_job: CurrentJob | None
    current_queue_size: int
    avg_processing_time: float | None
    last_activity: str | None
    last_heartbeat: str | None
    seconds_since_heartbeat: float | None
    memory_usage_mb: float | None
    cpu_percent: float | None
    memory_limit_mb: float | None
    capabilities: dict[str, Any] | None
    control: list[str]


class SystemOverview(Open):
    total_workers: int
    active_workers: int
    inactive_workers: int
    stale_workers: int
    busy_workers: int
    utilization: float
    overall_health: HealthStatusWord
    health_reasons: list[str]
    total_tasks_processed: int
    total_tasks_in_queue: int
    avg_system_response_time: float | None
    system_load: float | None


class Activity(Open):
    timestamp: str | None
    worker: str | None
    queue: str | None
    job_id: str | None
    job_name: str | None
    action: str
    status: str
    duration_ms: int | None


class PerformanceNow(Open):
    cpu_usage: float | None
    memory_usage: float | None
    redis_memory_mb: float | None
    redis_max_memory_mb: float | None


class Overview(Open):
    success: bool
    timestamp: str
    system_overview: SystemOverview
    workers: list[Worker]
    recent_activity: list[Activity]
    performance_metrics: PerformanceNow


class QueueState(Open):
    size: int
    max_size: int
    processing: bool
    paused: bool
    workers: int
    oldest_task_age_seconds: float | None
    throughput_per_minute: float
    estimated_completion_time: float | None


class SystemHealth(Open):
    status: HealthStatusWord
    queue_utilization: float
    estimated_processing_time: float | None


class QueueStatus(Open):
    success: bool
    timestamp: str
    total_queued_tasks: int
    queues: dict[str, QueueState]
    system_health: SystemHealth


class Point(Open):
    start: str
    processed: int
    failed: int
    avg_processing_time: float | None


class RecentJob(Open):
    job_id: str | None
    queue: str | None
    job_name: str | None
    status: str
    ended_at: str
    duration_ms: int | None


class MemoryPoint(Open):
    at: str
    memory_usage_mb: float | None
    cpu_percent: float | None


class DetailedStats(Open):
    rq_version: str | None
    python_version: str | None
    birth: str | None
    total_working_time: float | None
    current_job: CurrentJob | None
    recent_jobs: list[RecentJob]
    hourly: list[Point]
    memory_history: list[MemoryPoint]


class WorkerDetails(Open):
    success: bool
    worker_name: str
    timestamp: str
    worker: Worker
    detailed_stats: DetailedStats


class SystemPoint(Point):
    queue_size: float | None
    busy_workers: float | None
    active_workers: float | None


class Change(Open):
    processed: float | None = Field(description="percent change of the attempts ended")
    error_rate: float | None = Field(description="difference in percentage points")


class Summary(Open):
    processed: int
    failed: int
    error_rate: float | None
    avg_processing_time: float | None
    p95_processing_time: float | None
    busiest_hour: str | None
    slowest_queue: str | None
    change_vs_previous_period: Change


class Performance(Open):
    success: bool
    timestamp: str
    period_hours: int
    start_time: str
    end_time: str
    worker_metrics: dict[str, list[Point]]
    system_metrics: list[SystemPoint]
    performance_summary: Summary


class ControlResult(BaseModel):
    acknowledged: bool
    status_before: str | None
    status_after: str | None
    error: str | None = Field(None, description="why it was not acknowledged: no_listener, timeout, ...")


class ControlResponse(Open):
    success: bool
    worker_name: str
    action: Action
    timestamp: str
    result: ControlResult
    message: str


class Removed(Open):
    success: bool
    worker_name: str
    removed: bool
    abandoned_job: str | None


class Cleanup(Open):
    success: bool
    removed: list[str]
