"""Read side of /api/v1/admin/jobs (moderator): metrics, trends, stuck alerts, job browsing."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from pydantic import RootModel
from spectree import Response as Resp

from app.domain import history
from app.domain.jobs import get_job_detail, list_jobs
from app.domain.metrics import get_metrics
from app.domain.queues import list_queue_names
from app.domain.stuck import get_stuck_jobs
from app.domain.users import Role
from app.extensions import get_redis, spec
from app.schemas import ErrorBody
from app.schemas.jobs import JobDetail, JobPage, JobsQuery, Metrics, StuckAlert, Trend, TrendsQuery
from app.security import role_required

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/admin/jobs")


# Routes without request input skip spectree's response validation: it re-parses and re-validates the whole
# document on every call (the largest of the API). The schemas still document them.


def thresholds() -> tuple[int, ...]:
    return tuple(current_app.config["STUCK_THRESHOLDS_MINUTES"])


@bp.get("/metrics")
@role_required(Role.MODERATOR)
@spec.validate(resp=Resp(HTTP_200=Metrics, HTTP_401=ErrorBody), tags=["jobs"], skip_validation=True)
def metrics() -> Any:
    """Counts per queue and in total, success rate over the last 1000 jobs, jobs finished per minute."""
    return jsonify(get_metrics(get_redis()))


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
@spec.validate(resp=Resp(HTTP_200=RootModel[list[StuckAlert]]), tags=["jobs"], skip_validation=True)
def stuck() -> Any:
    """Jobs whose current run started at least the first threshold ago, longest first."""
    return jsonify(get_stuck_jobs(get_redis(), thresholds()))


@bp.get("/queue/<queueName>/jobs")
@role_required(Role.MODERATOR)
@spec.validate(query=JobsQuery, resp=Resp(HTTP_200=JobPage, HTTP_400=ErrorBody, HTTP_404=ErrorBody), tags=["jobs"])
def jobs_page(queueName: str) -> Any:  # noqa: N803 - the path parameter's name in API.md
    """One page of a queue's jobs in one state, paginated in Redis."""
    query: JobsQuery = request.context.query  # type: ignore[attr-defined]
    return jsonify(list_jobs(get_redis(), queueName, query.state, query.page, query.perPage))


@bp.get("/job/<queueName>/<jobId>")
@role_required(Role.MODERATOR)
@spec.validate(resp=Resp(HTTP_200=JobDetail, HTTP_404=ErrorBody), tags=["jobs"])
def job_detail(queueName: str, jobId: str) -> Any:  # noqa: N803
    """Everything about one job: data, options, attempts, timestamps, result, errors, retry links."""
    return jsonify(get_job_detail(get_redis(), queueName, jobId))
