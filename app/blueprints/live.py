"""SSE streams (moderator): GET /api/v1/admin/jobs/live and /queue/<queueName>/live, every tick."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_jwt_extended import get_jwt

from app.domain import keys
from app.domain.metrics import get_metrics
from app.domain.queues import require_queue
from app.domain.snapshots import get_queue_snapshot
from app.domain.users import Role
from app.extensions import get_redis
from app.security import role_required
from app.sse import LiveBlueprint, snapshot_event

bp = LiveBlueprint("live", __name__, url_prefix="/api/v1/admin/jobs")


@bp.get("/live")
@role_required(Role.MODERATOR)
def live() -> Any:
    """text/event-stream: the /metrics document as an unnamed event every tick, the first at once."""
    connection = get_redis()
    first = lambda: snapshot_event(connection, keys.live_snapshot(), lambda: get_metrics(connection))  # noqa: E731
    return bp.stream_channel(keys.live_channel(), first, float(get_jwt()["exp"]))


@bp.get("/queue/<queueName>/live")
@role_required(Role.MODERATOR)
def queue_live(queueName: str) -> Any:  # noqa: N803
    """text/event-stream: one queue's counts, active jobs and stuck alerts every tick (404 before it opens)."""
    connection = get_redis()
    require_queue(connection, queueName)
    thresholds = tuple(current_app.config["STUCK_THRESHOLDS_MINUTES"])

    def first() -> str:
        compute = lambda: get_queue_snapshot(connection, queueName, thresholds)  # noqa: E731
        return snapshot_event(connection, keys.live_snapshot(queueName), compute)

    return bp.stream_channel(keys.live_channel(queueName), first, float(get_jwt()["exp"]))


# spectree reads a response body to validate it, which would consume a stream: these are documented apart.
live.event_stream = True  # type: ignore[attr-defined]
queue_live.event_stream = True  # type: ignore[attr-defined]
