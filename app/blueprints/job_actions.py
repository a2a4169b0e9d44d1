"""Actions of /api/v1/admin/jobs (admin): pause, resume, clear, retry, stop."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from spectree import Response as Resp

from app.domain.clear import clear_queue
from app.domain.pause import pause_queue, resume_queue
from app.domain.retry import retry_job
from app.domain.users import Role
from app.domain.worker_control import stop_job
from app.extensions import get_redis, spec
from app.schemas import ErrorBody
from app.schemas.jobs import ClearQuery, ClearResult, PauseResult, RetryBody, RetryResult, StopResult
from app.security import role_required

bp = Blueprint("job_actions", __name__, url_prefix="/api/v1/admin/jobs")

ERRORS = {"HTTP_400": ErrorBody, "HTTP_401": ErrorBody, "HTTP_403": ErrorBody, "HTTP_404": ErrorBody}


@bp.patch("/queue/<queueName>/pause")
@role_required(Role.ADMIN)
@spec.validate(resp=Resp(HTTP_200=PauseResult, **ERRORS), tags=["queues"])
def pause(queueName: str) -> Any:
    """Stop MonitoredWorkers from starting this queue's jobs (running ones finish). Idempotent."""
    return jsonify(pause_queue(get_redis(), queueName))


@bp.patch("/queue/<queueName>/resume")
@role_required(Role.ADMIN)
@spec.validate(resp=Resp(HTTP_200=PauseResult, **ERRORS), tags=["queues"])
def resume(queueName: str) -> Any:
    """Let processing continue in normal order. Idempotent."""
    return jsonify(resume_queue(get_redis(), queueName))


@bp.delete("/queue/<queueName>/clear")
@role_required(Role.ADMIN)
@spec.validate(query=ClearQuery, resp=Resp(HTTP_200=ClearResult, **ERRORS), tags=["queues"])
def clear(queueName: str) -> Any:
    """Delete completed and/or failed jobs (entries and data); never waiting, active or delayed ones."""
    query: ClearQuery = request.context.query  # type: ignore[attr-defined]
    return jsonify(clear_queue(get_redis(), queueName, query.type))


@bp.post("/retry/<queueName>/<jobId>")
@role_required(Role.ADMIN)
@spec.validate(
    json=RetryBody,
    resp=Resp(HTTP_201=RetryResult, HTTP_409=ErrorBody, HTTP_413=ErrorBody, HTTP_415=ErrorBody, **ERRORS),
    tags=["jobs"],
)
def retry(queueName: str, jobId: str) -> Any:
    """A new job with the same function: `dataOverrides` merged over its keyword arguments, `argsOverrides`
    replacing its positional ones, new priority/attempts/backoff. A job already retried → 409 `already_retried`
    naming the copy, unless `force` is true. `removeOriginal` on a stuck run asks its worker to stop it first:
    when the run has not ended within 5 s the original is kept, still 201, with `originalRemoved` false."""
    body: RetryBody = request.context.json  # type: ignore[attr-defined]
    retried = retry_job(get_redis(), queueName, jobId, body.options(), current_app.config["STUCK_THRESHOLDS"])
    message = f"Job retried with ID {retried.new_job_id}"
    if body.removeOriginal and not retried.original_removed:
        message += "; the original was kept: its worker did not stop its run in time"
    document = {
        "success": True,
        "newJobId": retried.new_job_id,
        "originalRemoved": retried.original_removed,
        "message": message,
    }
    return jsonify(document), 201


@bp.post("/job/<queueName>/<jobId>/stop")
@role_required(Role.ADMIN)
@spec.validate(resp=Resp(HTTP_200=StopResult, HTTP_202=StopResult, HTTP_409=ErrorBody, **ERRORS), tags=["jobs"])
def stop(queueName: str, jobId: str) -> Any:
    """Stop a running job now (RQ's stop-job command): it ends `stopped` among the failed, retryable. 202 when it
    has not ended within 5 s; a job that is not active → 409."""
    stopped = stop_job(get_redis(), queueName, jobId)
    return jsonify({"success": True, "jobId": jobId, "stopped": stopped}), 200 if stopped else 202
