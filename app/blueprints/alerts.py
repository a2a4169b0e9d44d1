"""Health and alerts (API.md § Health and alerts): GET /api/v1/health, /api/v1/alerts, /api/v1/alerts/rules,
POST /api/v1/alerts/test, the `alerts` live stream of the navigation's badge; and the tick task that evaluates
the rules (app/domain/alerts.py) and queues the webhook notifications of what fired or resolved."""

from __future__ import annotations

import time
from typing import Any

import redis
from flask import Blueprint, current_app, jsonify
from flask.blueprints import BlueprintSetupState
from flask_jwt_extended import get_jwt
from spectree import Response as Resp

from app.domain import keys
from app.domain.alert_rules import rules_in_force, settings_from
from app.domain.alerts import alerts_summary, evaluate, get_alerts
from app.domain.health import get_health, unreachable_health
from app.domain.metrics import get_metrics
from app.domain.notifications import enqueue_notifications, send_test
from app.domain.users import Role
from app.errors import ApiError
from app.extensions import get_redis, spec
from app.schemas.alerts import AlertList, Health, RuleList, TestReport
from app.security import authenticate, current_role, role_required
from app.sse import event_stream, snapshot_event
from app.ticker import Feed, Tick, register_feed, register_task
from config import scheduler_down_seconds

bp = Blueprint("alerts", __name__)
WORKERS_OVERVIEW = "workers_overview"  # the workers feed's tick.once name (app/blueprints/workers.py)
UNREACHABLE_SINCE = "redis_unreachable_since"  # app.extensions: this process's memory of Redis being away


def evaluate_rules(tick: Tick) -> None:
    """Tick task: the rules over the documents the tick already computed; notifications for every transition."""
    config = tick.config
    metrics = tick.once("metrics", lambda: get_metrics(tick.connection, tick.now))
    liveness = (float(config["WORKER_ACTIVE_SECONDS"]), float(config["WORKER_STALE_SECONDS"]))
    # The workers feed's document when it was computed this tick; else the rules read the registry themselves.
    overview = tick.shared.get(WORKERS_OVERVIEW)
    workers = overview["workers"] if isinstance(overview, dict) and "workers" in overview else None
    bands = config["STUCK_THRESHOLDS"]
    transitions = evaluate(tick.connection, tick.now, metrics, workers, bands, settings_from(config), liveness)
    events = [("firing", alert) for alert in transitions.fired] + [("resolved", a) for a in transitions.resolved]
    if events and config["ALERT_WEBHOOK_URLS"]:
        enqueue_notifications(
            tick.connection,
            events,
            config["ALERT_WEBHOOK_URLS"],
            transitions.health,
            config["ALERT_WEBHOOK_FORMAT"],
            float(config["ALERT_WEBHOOK_BACKOFF_SECONDS"]),
        )


ALERTS_FEED = Feed(
    name="alerts",
    channel=lambda _: keys.ALERTS_CHANNEL,
    snapshot_key=lambda _: keys.ALERTS_SNAPSHOT,
    compute=lambda tick, _: alerts_summary(tick.connection, tick.now),
    needs_watchers=True,
)


@bp.record_once
def _register(state: BlueprintSetupState) -> None:
    settings_from(state.app.config)  # thresholds were validated by config.py; this checks they fit the rules
    register_feed(state.app, ALERTS_FEED)
    register_task(state.app, "alert-rules", evaluate_rules)


@bp.get("/api/v1/health")
@spec.validate(resp=Resp(HTTP_200=Health), tags=["alerts"])
def health() -> Any:
    """The roll-up: critical when a critical alert fires (or Redis does not answer), degraded on a warning."""
    extensions, config = current_app.extensions, current_app.config
    now = time.time()
    try:
        authenticate()
        if not current_role().includes(Role.MODERATOR):
            raise ApiError(403, "forbidden", "This action needs the moderator role or above")
        found = get_health(
            get_redis(),
            now,
            float(config["WORKER_ACTIVE_SECONDS"]),
            float(config["WORKER_STALE_SECONDS"]),
            scheduler_down_seconds(config),
        )
    except redis.RedisError as error:
        # Neither the token's revocation nor anything else can be read: answer from this process's memory only
        # (what /readyz tells anyone), never data from Redis.
        since = extensions.setdefault(UNREACHABLE_SINCE, now)
        setting = settings_from(config)["redis_unreachable"]
        return jsonify(unreachable_health(now, since, type(error).__name__, setting)), 503
    extensions.pop(UNREACHABLE_SINCE, None)
    return jsonify(found)


health.minimum_role = Role.MODERATOR  # type: ignore[attr-defined]


@bp.get("/api/v1/alerts")
@role_required(Role.MODERATOR)
@spec.validate(resp=Resp(HTTP_200=AlertList), tags=["alerts"])
def alerts() -> Any:
    """Firing alerts (critical first) and the last 100 resolved ones."""
    return jsonify({"success": True, **get_alerts(get_redis())})


@bp.get("/api/v1/alerts/rules")
@role_required(Role.MODERATOR)
@spec.validate(resp=Resp(HTTP_200=RuleList), tags=["alerts"])
def rules() -> Any:
    """The rules in force: severity, threshold, `for` duration, per-queue thresholds."""
    return jsonify({"success": True, "rules": rules_in_force(settings_from(current_app.config))})


@bp.post("/api/v1/alerts/test")
@role_required(Role.ADMIN)
@spec.validate(resp=Resp(HTTP_200=TestReport), tags=["alerts"])
def test_notification() -> Any:
    """Sends a test notification to every configured webhook now and reports each delivery."""
    config = current_app.config
    return jsonify(
        {"success": True, "deliveries": send_test(config["ALERT_WEBHOOK_URLS"], config["ALERT_WEBHOOK_FORMAT"])}
    )


@bp.get("/api/v1/alerts/live")
@role_required(Role.MODERATOR)
def live() -> Any:
    """text/event-stream: the health status and firing counts (the navigation's badge), every tick."""
    connection = get_redis()
    first = lambda: snapshot_event(connection, keys.ALERTS_SNAPSHOT, lambda: alerts_summary(connection))  # noqa: E731
    return event_stream(keys.ALERTS_CHANNEL, first, float(get_jwt()["exp"]))


live.event_stream = True  # type: ignore[attr-defined]
