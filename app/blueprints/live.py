"""SSE streams (moderator): GET /api/v1/admin/jobs/live and /queue/<queueName>/live, and the ticker feeds that
publish them: `jobs` (the /metrics document, every tick) and `queue` (one document per watched queue)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app
from flask.blueprints import BlueprintSetupState
from flask_jwt_extended import get_jwt

from app.domain import keys
from app.domain.metrics import get_metrics
from app.domain.queues import require_queue
from app.domain.snapshots import get_queue_snapshot
from app.domain.users import Role
from app.extensions import get_redis
from app.security import role_required
from app.sse import Event, event_stream, snapshot_event
from app.ticker import Feed, Tick, register_feed

bp = Blueprint("live", __name__, url_prefix="/api/v1/admin/jobs")


def _metrics(tick: Tick) -> dict[str, Any]:
    return tick.once("metrics", lambda: get_metrics(tick.connection, tick.now))


def _queue_document(tick: Tick, queue_name: str | None) -> dict[str, Any]:
    assert queue_name is not None
    entry = next((q for q in _metrics(tick)["queues"] if q["queueName"] == queue_name), None)
    return get_queue_snapshot(tick.connection, queue_name, tick.config["STUCK_THRESHOLDS"], tick.now, entry)


JOBS_FEED = Feed(
    name="jobs",
    channel=lambda _: keys.live_channel(),
    snapshot_key=lambda _: keys.live_snapshot(),
    compute=lambda tick, _: _metrics(tick),
)
QUEUE_FEED = Feed(
    name="queue",
    channel=keys.live_channel,
    snapshot_key=keys.live_snapshot,
    compute=_queue_document,
    subjects=lambda tick: [q["queueName"] for q in _metrics(tick)["queues"]],
    needs_watchers=True,
)


@bp.record_once
def _register_feeds(state: BlueprintSetupState) -> None:
    register_feed(state.app, JOBS_FEED)
    register_feed(state.app, QUEUE_FEED)


@bp.get("/live")
@role_required(Role.MODERATOR)
def live() -> Any:
    """text/event-stream: the /metrics document as an unnamed event every tick, the first at once."""
    connection = get_redis()
    first = lambda: snapshot_event(connection, keys.live_snapshot(), lambda: get_metrics(connection))  # noqa: E731
    return event_stream(keys.live_channel(), first, float(get_jwt()["exp"]))


@bp.get("/queue/<queueName>/live")
@role_required(Role.MODERATOR)
def queue_live(queueName: str) -> Any:
    """text/event-stream: one queue's counts, longest active jobs and stuck alerts every tick (404 before it opens)."""
    connection = get_redis()
    require_queue(connection, queueName)
    thresholds = current_app.config["STUCK_THRESHOLDS"]

    def first() -> Event:
        compute = lambda: get_queue_snapshot(connection, queueName, thresholds)  # noqa: E731
        return snapshot_event(connection, keys.live_snapshot(queueName), compute)

    return event_stream(keys.live_channel(queueName), first, float(get_jwt()["exp"]))


# spectree reads a response body to validate it, which would consume a stream: these are documented apart.
live.event_stream = True  # type: ignore[attr-defined]
queue_live.event_stream = True  # type: ignore[attr-defined]
