"""/api/v1/workers (API.md § Workers): overview, live stream, queue status, details, performance (moderator);
control, removal of stale workers, cleanup (admin). Thin views over app.domain.worker_views, worker_performance,
workers and worker_control; the `workers` feed of the ticker and its once-a-minute sample live here too."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask_jwt_extended import get_jwt
from pydantic import ValidationError
from spectree import Response as Resp

from app.domain import keys, worker_history, worker_performance, worker_views
from app.domain.names import check_worker_name
from app.domain.timeutil import iso_from_timestamp
from app.domain.users import Role
from app.domain.worker_control import send_control
from app.domain.workers import cleanup_stale_workers, remove_stale_worker
from app.errors import validation_failed
from app.extensions import get_redis, spec
from app.schemas import ErrorBody
from app.schemas.workers import (
    Cleanup,
    ControlQuery,
    ControlResponse,
    HoursQuery,
    Overview,
    Performance,
    QueueStatus,
    Removed,
    WorkerDetails,
)
from app.security import joined_read, read_with_auth, role_required
from app.sse import Event, event_stream, snapshot_event
from app.ticker import Feed, Tick, register_feed, register_task

bp = Blueprint("workers", __name__, url_prefix="/api/v1/workers")

ERRORS = {"HTTP_400": ErrorBody, "HTTP_401": ErrorBody, "HTTP_403": ErrorBody, "HTTP_404": ErrorBody}


def thresholds(config: Any = None) -> worker_views.Thresholds:
    config = current_app.config if config is None else config
    return worker_views.Thresholds(
        float(config["WORKER_ACTIVE_SECONDS"]),
        float(config["WORKER_STALE_SECONDS"]),
        int(config["QUEUE_MAX_SIZE"]),
    )


def _overview(tick: Tick) -> dict[str, Any]:
    return tick.once(
        "workers_overview", lambda: worker_views.get_overview(tick.connection, thresholds(tick.config), tick.now)
    )


def _sample(tick: Tick) -> None:
    """Tick task: once a minute, queue sizes and busy/active workers (and each worker's memory) into the history."""
    overview = _overview(tick)
    queued = overview["system_overview"]["total_tasks_in_queue"]
    worker_history.take_sample(tick.connection, tick.now, queued, overview["workers"])


WORKERS_FEED = Feed(
    name="workers",
    channel=lambda _: keys.WORKERS_CHANNEL,
    snapshot_key=lambda _: keys.WORKERS_SNAPSHOT,
    compute=lambda tick, _: worker_views.live_document(_overview(tick)),
)


@bp.record_once
def _register(state: BlueprintSetupState) -> None:
    register_feed(state.app, WORKERS_FEED)
    register_task(state.app, "worker-samples", _sample)


@bp.get("/overview")
@role_required(Role.MODERATOR)
@read_with_auth(lambda pipe: worker_views.overview_reads(pipe, thresholds()))  # one round trip, auth included
@spec.validate(resp=Resp(HTTP_200=Overview, HTTP_401=ErrorBody), tags=["workers"], skip_validation=True)
def overview() -> Any:
    """Every worker RQ knows, the system roll-up (health and why), the last 50 ended attempts and pool events."""
    document = joined_read()
    return jsonify(document if document is not None else worker_views.get_overview(get_redis(), thresholds()))


@bp.get("/live-stream")
@role_required(Role.MODERATOR)
def live_stream() -> Any:
    """text/event-stream: {"timestamp", "data": {"system_overview", "workers"}} every tick, the first at once."""
    connection = get_redis()
    settings = thresholds()

    def first() -> Event:
        compute = lambda: worker_views.live_document(worker_views.get_overview(connection, settings))  # noqa: E731
        return snapshot_event(connection, keys.WORKERS_SNAPSHOT, compute)

    return event_stream(keys.WORKERS_CHANNEL, first, float(get_jwt()["exp"]))


live_stream.event_stream = True  # type: ignore[attr-defined]


@bp.get("/queue/status")
@role_required(Role.MODERATOR)
@spec.validate(resp=Resp(HTTP_200=QueueStatus, HTTP_401=ErrorBody), tags=["workers"], skip_validation=True)
def queue_status() -> Any:
    """Per queue: size, oldest waiting job's age, active workers listening, throughput and ETA to drain."""
    return jsonify(worker_views.get_queue_status(get_redis(), thresholds()))


@bp.get("/worker/<name>/details")
@role_required(Role.MODERATOR)
@spec.validate(resp=Resp(HTTP_200=WorkerDetails, **ERRORS), tags=["workers"], skip_validation=True)
def details(name: str) -> Any:
    """One worker: its <worker> fields, RQ's facts, last 50 attempts, 24 hourly buckets, memory over the last hour."""
    return jsonify(worker_views.get_worker_details(get_redis(), check_worker_name(name), thresholds()))


@bp.get("/performance/metrics")
@role_required(Role.MODERATOR)
@spec.validate(query=HoursQuery, resp=Resp(HTTP_200=Performance, **ERRORS), tags=["workers"], skip_validation=True)
def performance() -> Any:
    """Processed/failed per worker and system-wide per bucket (hourly ≤ 48 h, 6-hourly ≤ 7 d, else daily), the
    sampled queue size and workers, p95 and the change against the previous period."""
    try:  # validated here: spectree's response validation would re-parse a month of points (1 MB) each call
        query = HoursQuery.model_validate(request.args.to_dict())
    except ValidationError as error:
        raise validation_failed(error) from None
    return jsonify(worker_performance.get_performance(get_redis(), query.hours))


@bp.post("/worker/<name>/control")
@role_required(Role.ADMIN)
@spec.validate(
    query=ControlQuery,
    resp=Resp(HTTP_200=ControlResponse, HTTP_202=ControlResponse, HTTP_409=ErrorBody, **ERRORS),
    tags=["workers"],
)
def control(name: str) -> Any:
    """Send pause|resume|stop|restart|start and wait up to 5 s for the acknowledgement (202 without one); an
    action the worker cannot take → 409 action_not_supported with the reason."""
    query: ControlQuery = request.context.query  # type: ignore[attr-defined]
    settings = thresholds()
    ack = send_control(
        get_redis(),
        check_worker_name(name),
        query.action.value,
        active_seconds=settings.active_seconds,
        stale_seconds=settings.stale_seconds,
    )
    result = {"acknowledged": ack.acknowledged, "status_before": ack.status_before, "status_after": ack.status_after}
    document = {
        "success": True,
        "worker_name": name,
        "action": query.action.value,
        "timestamp": iso_from_timestamp(time.time()),
        "result": {**result, "error": ack.error},
        "message": ack.message,
    }
    return jsonify(document), 200 if ack.acknowledged else 202


@bp.delete("/worker/<name>")
@role_required(Role.ADMIN)
@spec.validate(resp=Resp(HTTP_200=Removed, HTTP_409=ErrorBody, **ERRORS), tags=["workers"])
def remove(name: str) -> Any:
    """Remove a stale worker's registration (an active or inactive one → 409); its running job is recovered."""
    settings = thresholds()
    removed = remove_stale_worker(
        get_redis(), check_worker_name(name), time.time(), settings.active_seconds, settings.stale_seconds
    )
    return jsonify({"success": True, **removed})


@bp.post("/cleanup")
@role_required(Role.ADMIN)
@spec.validate(resp=Resp(HTTP_200=Cleanup, HTTP_401=ErrorBody, HTTP_403=ErrorBody), tags=["workers"])
def cleanup() -> Any:
    """Remove every stale worker."""
    settings = thresholds()
    removed = cleanup_stale_workers(get_redis(), time.time(), settings.active_seconds, settings.stale_seconds)
    return jsonify({"success": True, "removed": removed})
