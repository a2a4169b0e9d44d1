"""The health roll-up of GET /api/v1/health (ALERTS.md): the firing alerts' worst severity, Redis, workers, the
scheduler and the last finished job, in two round trips (one pipeline, then the worker registry). When Redis
does not answer, the web process answers from its own memory (`unreachable`)."""

from __future__ import annotations

from typing import Any

from redis import Redis

from app.domain import keys
from app.domain.alert_rules import RuleSetting
from app.domain.alerts import public, read_alerts, severity_counts, status_of
from app.domain.states import HealthStatus, Liveness
from app.domain.timeutil import iso_from_timestamp
from app.domain.workers import read_workers

MB = 1024 * 1024
MESSAGES: dict[str, str] = {
    HealthStatus.HEALTHY: "All systems operational",
    HealthStatus.DEGRADED: "Warnings are firing",
    HealthStatus.CRITICAL: "Critical alerts are firing",
}


def _last_run(entry: bytes | None) -> str | None:
    """The end time of the newest finished job (history's outcomes list: "<ok>|<ms since epoch>|...")."""
    if not entry:
        return None
    parts = entry.decode(errors="replace").split("|")
    return iso_from_timestamp(int(parts[1]) / 1000) if len(parts) > 1 and parts[1].isdigit() else None


def get_health(
    connection: Redis, now: float, active_seconds: float, stale_seconds: float, scheduler_down_seconds: float
) -> dict[str, Any]:
    with connection.pipeline(transaction=False) as pipe:
        pipe.info()
        pipe.hvals(keys.ALERTS_FIRING)
        pipe.hget(keys.SCHEDULER_HEARTBEAT, "at")
        pipe.lindex(keys.OUTCOMES, 0)
        info, firing, beat, newest = pipe.execute()
    workers = read_workers(connection, now, active_seconds, stale_seconds)
    counts = severity_counts(read_alerts(firing))
    status = status_of(counts)
    max_memory = int(info.get("maxmemory", 0))
    heartbeat = float(beat) if beat else None
    return {
        "success": True,
        "status": status,
        "message": MESSAGES[status],
        "timestamp": iso_from_timestamp(now),
        "redis": {
            "connected": True,
            "version": info.get("redis_version"),
            "used_memory_mb": round(int(info.get("used_memory", 0)) / MB, 2),
            "max_memory_mb": round(max_memory / MB, 2) if max_memory else None,
            "connected_clients": int(info.get("connected_clients", 0)),
        },
        "workers": {
            "total": len(workers),
            "active": sum(1 for worker in workers if worker["liveness"] == Liveness.ACTIVE),
            "stale": sum(1 for worker in workers if worker["liveness"] == "stale"),
        },
        "scheduler": {
            "alive": heartbeat is not None and now - heartbeat <= scheduler_down_seconds,
            "last_heartbeat": iso_from_timestamp(heartbeat) if heartbeat is not None else None,
        },
        "last_run": _last_run(newest),
        "alerts": counts,
    }


def unreachable_fires(now: float, since: float, setting: RuleSetting) -> bool:
    """redis_unreachable: Redis has failed continuously since `since` for its threshold + `for` seconds (off: never)."""
    return setting.threshold is not None and now - since >= setting.threshold + setting.for_seconds


def unreachable_alert(now: float, since: float, error: str, setting: RuleSetting) -> dict[str, Any]:
    """The redis_unreachable alert, kept by each web process in memory (Redis cannot hold it)."""
    rule = setting.rule
    return public(
        {
            "id": f"{rule.name}:system:redis",
            "rule": rule.name,
            "severity": rule.severity.value,
            "subject": {"kind": "system", "name": "redis"},
            "value": round(now - since, 1),
            "threshold": setting.threshold,
            "since": iso_from_timestamp(since),
            "message": f"Redis does not answer: {error}",
        }
    )


def unreachable_health(now: float, since: float, error: str, setting: RuleSetting) -> dict[str, Any]:
    """GET /api/v1/health while Redis does not answer, from the web process's own memory: critical once the
    redis_unreachable rule fires (not while it is off or its `for` has not passed: then no alert is known); the
    one error shape of API.md (503 redis_unavailable) with the roll-up's fields beside it."""
    firing = [unreachable_alert(now, since, error, setting)] if unreachable_fires(now, since, setting) else []
    counts = severity_counts(firing)
    status = status_of(counts)
    if firing:
        message = f"Redis does not answer: {error}"
    elif setting.threshold is None:
        message = f"Redis does not answer: {error} (the redis_unreachable rule is off)"
    else:
        wait = setting.threshold + setting.for_seconds
        message = f"Redis does not answer: {error} (for {now - since:.0f} s; redis_unreachable fires after {wait:g} s)"
    return {
        "success": False,
        "error": {"code": "redis_unavailable", "message": "Redis is not reachable; try again shortly"},
        "status": status,
        "message": message,
        "timestamp": iso_from_timestamp(now),
        "redis": {
            "connected": False,
            "version": None,
            "used_memory_mb": None,
            "max_memory_mb": None,
            "connected_clients": None,
        },  # fmt: skip
        "workers": {"total": None, "active": None, "stale": None},
        "scheduler": {"alive": None, "last_heartbeat": None},
        "last_run": None,
        "alerts": counts,
        "firing": firing,
    }
