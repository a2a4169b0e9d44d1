"""Read side of /api/v1/admin/jobs (moderator): metrics, trends, stuck alerts, job browsing."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from pydantic import RootModel
from spectree import Response as Resp

from app.domain import history
from app.domain.jobs import get_job_detail, list_jobs
from app.domain.metrics import get_metrics, metrics_reads
from app.domain.queues import list_queue_names
from app.domain.severity import StuckThresholds
from app.domain.stuck import get_stuck_page, get_stuck_summary, queue_names_read
from app.domain.users import Role
from app.extensions import get_redis, spec
from app.schemas import ErrorBody
from app.schemas.jobs import (
    JobDetail,
    JobPage,
    JobsQuery,
    Metrics,
    StuckAlert,
    StuckQuery,
    StuckSummary,
    Trend,
    TrendsQuery,
)
from app.security import joined_read, read_with_auth, role_required

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/admin/jobs")


def thresholds() -> StuckThresholds:
    return current_app.config["STUCK_THRESHOLDS"]


@bp.get("/metrics")
@role_required(Role.MODERATOR)
@read_with_auth(metrics_reads)  # one round trip for the token check and the counts
@spec.validate(resp=Resp(HTTP_200=Metrics, HTTP_401=ErrorBody), tags=["jobs"])
def metrics() -> Any:
    """Counts per queue and in total, success rate over the last 1000 jobs, jobs finished per minute."""
    document = joined_read()
    return jsonify(document if document is not None else get_metrics(get_redis()))


@bp.get("/trends")
@role_required(Role.MODERATOR)
@spec.validate(query=TrendsQuery, resp=Resp(HTTP_200=RootModel[list[Trend]], HTTP_400=ErrorBody), tags=["jobs"])
def trends() -> Any:
    """Jobs finished per queue over 24h, 7d or 30d (with `series=1`: per hour, 6 hours or day)."""
    query: TrendsQuery = request.context.query  # type: ignore[attr-defined]
    connection = get_redis()
    return jsonify(history.get_trends(connection, query.period, list_queue_names(connection), query.series))


@bp.get("/alerts/stuck")
@role_required(Role.MODERATOR)
@read_with_auth(queue_names_read)  # the queue list joins the token check: two round trips in all
@spec.validate(query=StuckQuery, resp=Resp(HTTP_200=RootModel[list[StuckAlert]], HTTP_400=ErrorBody), tags=["jobs"])
def stuck() -> Any:
    """The `limit` longest-stuck runs (default 100), longest first; X-Total-Count and X-Severity-Counts
    (`low=3,medium=1,high=0,critical=2`) count every stuck run."""
    query: StuckQuery = request.context.query  # type: ignore[attr-defined]
    alerts, summary = get_stuck_page(get_redis(), thresholds(), query.limit, queue_names=joined_read())
    response = jsonify(alerts)
    response.headers["X-Total-Count"] = str(summary["total"])
    response.headers["X-Severity-Counts"] = ",".join(f"{k}={v}" for k, v in summary["bySeverity"].items())
    return response


@bp.get("/alerts/stuck/summary")
@role_required(Role.MODERATOR)
@read_with_auth(queue_names_read)
@spec.validate(resp=Resp(HTTP_200=StuckSummary), tags=["jobs"])
def stuck_summary() -> Any:
    """How many runs are stuck: in total, per severity, per queue (queues with a stuck run only)."""
    return jsonify(get_stuck_summary(get_redis(), thresholds(), queue_names=joined_read()))


@bp.get("/queue/<queueName>/jobs")
@role_required(Role.MODERATOR)
@spec.validate(query=JobsQuery, resp=Resp(HTTP_200=JobPage, HTTP_400=ErrorBody, HTTP_404=ErrorBody), tags=["jobs"])
def jobs_page(queueName: str) -> Any:
    """One page of a queue's jobs in one state, paginated in Redis."""
    query: JobsQuery = request.context.query  # type: ignore[attr-defined]
    return jsonify(list_jobs(get_redis(), queueName, query.state, query.page, query.perPage))


@bp.get("/job/<queueName>/<jobId>")
@role_required(Role.MODERATOR)
@spec.validate(resp=Resp(HTTP_200=JobDetail, HTTP_404=ErrorBody), tags=["jobs"])
def job_detail(queueName: str, jobId: str) -> Any:
    """Everything about one job: data, options, attempts, timestamps, result, errors, retry links."""
    return jsonify(get_job_detail(get_redis(), queueName, jobId))
