"""/api/v1/periodic (API.md § Periodic jobs): schedules over rq-scheduler. Moderators read, admins change."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from spectree import Response as Resp

from app.domain import schedule_runs, schedule_timing, scheduler_status, schedules
from app.domain.users import Role
from app.extensions import get_redis, spec
from app.schemas import ErrorBody, Success
from app.schemas.periodic import (
    ListQuery,
    Preview,
    PreviewQuery,
    ReplaceBody,
    RunList,
    RunNow,
    RunsQuery,
    Schedule,
    ScheduleBody,
    SchedulePage,
    SchedulerStatus,
)
from app.security import role_required
from config import scheduler_down_seconds

bp = Blueprint("periodic", __name__, url_prefix="/api/v1/periodic")

TAGS = ["periodic"]
NAME = {"name": "the schedule's name"}
CHANGE_ERRORS = {"HTTP_404": ErrorBody, "HTTP_409": ErrorBody}


def _checked(definition: dict[str, Any]) -> dict[str, Any]:
    schedules.check_definition(definition, current_app.config["PERIODIC_ALLOWED_MODULES"])
    return definition


@bp.get("")
@role_required(Role.MODERATOR)
@spec.validate(query=ListQuery, resp=Resp(HTTP_200=SchedulePage), tags=TAGS)
def list_all() -> Any:
    """Every schedule sorted by name: rq-scheduler's (editable) and RQ's own `rq cron` jobs (read-only)."""
    query: ListQuery = request.context.query  # type: ignore[attr-defined]
    return jsonify(schedules.list_schedules(get_redis(), query.page, query.perPage))


@bp.post("")
@role_required(Role.ADMIN)
@spec.validate(json=ScheduleBody, resp=Resp(HTTP_201=Schedule, HTTP_409=ErrorBody), tags=TAGS)
def create() -> Any:
    """A new schedule; its function must be under PERIODIC_ALLOWED_MODULES. A name taken → 409."""
    body: ScheduleBody = request.context.json  # type: ignore[attr-defined]
    return jsonify(schedules.save_schedule(get_redis(), _checked(body.definition()))), 201


@bp.get("/status")
@role_required(Role.MODERATOR)
@spec.validate(resp=Resp(HTTP_200=SchedulerStatus), tags=TAGS)
def status() -> Any:
    """Whether a scheduler is alive, the last and next runs, missed runs, and the firing scheduler_down and
    schedule_missed alerts."""
    return jsonify(scheduler_status.scheduler_status(get_redis(), scheduler_down_seconds(current_app.config)))


@bp.get("/preview")
@role_required(Role.MODERATOR)
@spec.validate(query=PreviewQuery, resp=Resp(HTTP_200=Preview), tags=TAGS)
def preview() -> Any:
    """The next five run times (UTC) of a cron string or an interval, before saving a schedule."""
    query: PreviewQuery = request.context.query  # type: ignore[attr-defined]
    timing = query.model_dump()
    return jsonify(
        {"success": True, "schedule": schedule_timing.describe(timing), "nextRuns": schedule_timing.preview(timing)}
    )


@bp.get("/<name>")
@role_required(Role.MODERATOR)
@spec.validate(path_parameter_descriptions=NAME, resp=Resp(HTTP_200=Schedule, HTTP_404=ErrorBody), tags=TAGS)
def get_one(name: str) -> Any:
    """One schedule."""
    return jsonify(schedules.get_schedule(get_redis(), name))


@bp.put("/<name>")
@role_required(Role.ADMIN)
@spec.validate(
    json=ReplaceBody, path_parameter_descriptions=NAME, resp=Resp(HTTP_200=Schedule, **CHANGE_ERRORS), tags=TAGS
)
def replace(name: str) -> Any:
    """Replace a schedule (its history is kept); a new `name` renames it. An `rq cron` entry → 409."""
    body: ReplaceBody = request.context.json  # type: ignore[attr-defined]
    definition = {**body.definition(), "name": body.name or name}
    return jsonify(schedules.save_schedule(get_redis(), _checked(definition), replace=name))


@bp.delete("/<name>")
@role_required(Role.ADMIN)
@spec.validate(path_parameter_descriptions=NAME, resp=Resp(HTTP_200=Success, **CHANGE_ERRORS), tags=TAGS)
def delete(name: str) -> Any:
    """Remove a schedule and its history; runs already enqueued stay."""
    schedules.delete_schedule(get_redis(), name)
    return jsonify({"success": True})


@bp.post("/<name>/pause")
@role_required(Role.ADMIN)
@spec.validate(path_parameter_descriptions=NAME, resp=Resp(HTTP_200=Schedule, **CHANGE_ERRORS), tags=TAGS)
def pause(name: str) -> Any:
    """Stop the firings (none counted missed); idempotent."""
    return jsonify(schedules.set_enabled(get_redis(), name, False))


@bp.post("/<name>/resume")
@role_required(Role.ADMIN)
@spec.validate(path_parameter_descriptions=NAME, resp=Resp(HTTP_200=Schedule, **CHANGE_ERRORS), tags=TAGS)
def resume(name: str) -> Any:
    """Continue from the next due time, without catching up on the paused period; idempotent."""
    return jsonify(schedules.set_enabled(get_redis(), name, True))


@bp.post("/<name>/run")
@role_required(Role.ADMIN)
@spec.validate(path_parameter_descriptions=NAME, resp=Resp(HTTP_201=RunNow, **CHANGE_ERRORS), tags=TAGS)
def run_now(name: str) -> Any:
    """Enqueue one run now (trigger `manual`); the schedule's next run is unchanged."""
    return jsonify({"success": True, "jobId": schedule_runs.run_now(get_redis(), name)}), 201


@bp.get("/<name>/runs")
@role_required(Role.MODERATOR)
@spec.validate(
    query=RunsQuery, path_parameter_descriptions=NAME, resp=Resp(HTTP_200=RunList, HTTP_404=ErrorBody), tags=TAGS
)
def runs(name: str) -> Any:
    """The schedule's runs, newest first (the last 1,000 are kept after RQ expired their jobs)."""
    query: RunsQuery = request.context.query  # type: ignore[attr-defined]
    return jsonify(schedule_runs.list_runs(get_redis(), name, query.limit, query.status))
