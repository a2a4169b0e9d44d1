"""Schemas of /api/v1/health and /api/v1/alerts (snake_case, like the worker API they come from)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from app.domain.states import AlertSeverity, HealthStatus
from app.schemas import one_of

if TYPE_CHECKING:
    AlertSeverityWord = str
    HealthStatusWord = str
else:
    AlertSeverityWord = one_of(AlertSeverity)
    HealthStatusWord = one_of(HealthStatus)


class Subject(BaseModel):
    kind: Literal["queue", "worker", "schedule", "system"]
    name: str


class Alert(BaseModel):
    id: str = Field(description="<rule>:<subject kind>:<subject name>")
    rule: str
    severity: AlertSeverityWord
    subject: Subject
    value: float
    threshold: float
    since: str = Field(description="When the condition was first seen true.")
    message: str


class ResolvedAlert(Alert):
    resolved_at: str


class AlertList(BaseModel):
    success: bool
    firing: list[Alert]
    recent: list[ResolvedAlert] = Field(description="The last 100 resolved alerts, newest first.")


class RuleInForce(BaseModel):
    rule: str
    kind: str = Field(description="The default rule whose condition it evaluates: its own name for a default rule.")
    severity: AlertSeverityWord
    subject: Literal["queue", "worker", "schedule", "system"]
    enabled: bool
    threshold: float | None
    for_seconds: float
    per_queue: dict[str, float | None]
    queues: list[str] | None = Field(description="An extra rule's queues; null: every queue.")
    meaning: str


class RuleList(BaseModel):
    success: bool
    rules: list[RuleInForce]


class Delivery(BaseModel):
    url: str = Field(description="Scheme and host only: a webhook's path is often its secret.")
    delivered: bool
    status: int | None
    error: str | None


class TestReport(BaseModel):
    success: bool
    deliveries: list[Delivery]


class RedisHealth(BaseModel):
    connected: bool
    version: str | None
    used_memory_mb: float | None
    max_memory_mb: float | None
    connected_clients: int | None


class WorkerCounts(BaseModel):
    total: int | None
    active: int | None
    stale: int | None


class SchedulerHealth(BaseModel):
    alive: bool | None
    last_heartbeat: str | None


class SeverityCounts(BaseModel):
    critical: int
    warning: int


class Health(BaseModel):
    success: bool
    status: HealthStatusWord
    message: str
    timestamp: str
    redis: RedisHealth
    workers: WorkerCounts
    scheduler: SchedulerHealth
    last_run: str | None = Field(description="When the last job finished.")
    alerts: SeverityCounts
