"""rq-monitor-pool in Redis (WORKERS.md § The pool service): each pool's registration, refreshed by its heartbeat,
and the one capped stream of pool events (seed 003's names) that the activity feed and the worker pages read."""

from __future__ import annotations

import json
import time
from typing import Any

from redis import Redis
from redis.client import Pipeline

from app.domain import keys, workers
from app.domain.timeutil import iso_from_timestamp

# seed 003's event names, in the order of a pool's life
EVENTS = (
    "started",
    "workerReady",
    "workerActive",
    "workerCompleted",
    "workerFailed",
    "workerStalled",
    "workerError",
    "workerClosed",
    "workerRestarted",
    "highMemoryUsage",
    "healthUpdate",
    "shuttingDown",
    "shutdown",
    "forceShutdown",
)

# Slot states in the registration: running (a child is alive), starting (being replaced), stopped (on purpose,
# by control; not respawned until `start`).
SLOT_RUNNING, SLOT_STARTING, SLOT_STOPPED = "running", "starting", "stopped"
JSON_FIELDS = ("config", "slots", "health")


def pool_ttl(heartbeat_seconds: float) -> int:
    """A registration outlives three missed heartbeats, and never less than 30 s."""
    return max(30, int(3 * heartbeat_seconds))


def register_pool(connection: Redis, registration: dict[str, Any], ttl: int, now: float | None = None) -> None:
    """Write (or refresh) a pool's registration; prunes the index of pools whose registration expired."""
    now = time.time() if now is None else now
    name = registration["name"]
    fields: dict[str | bytes, Any] = {
        key: json.dumps(value) if key in JSON_FIELDS else value for key, value in registration.items()
    }
    with connection.pipeline(transaction=False) as pipe:
        pipe.hset(keys.pool(name), mapping=fields)
        pipe.expire(keys.pool(name), ttl)
        pipe.zadd(keys.POOLS, {name: now})
        pipe.zremrangebyscore(keys.POOLS, "-inf", now - ttl)
        pipe.execute()


def unregister_pool(connection: Redis, name: str) -> None:
    with connection.pipeline(transaction=False) as pipe:
        pipe.delete(keys.pool(name))
        pipe.zrem(keys.POOLS, name)
        pipe.execute()


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    pool: dict[str, Any] = {}
    for field, value in raw.items():
        name, text = field.decode(), value.decode()
        pool[name] = json.loads(text) if name in JSON_FIELDS else text
    for name in ("pid", "size", "restarts"):
        if name in pool:
            pool[name] = int(pool[name])
    return pool


def get_pool(connection: Redis, name: str) -> dict[str, Any] | None:
    """One pool's registration, or None when it is not running (or missed its heartbeats)."""
    raw = connection.hgetall(keys.pool(name))
    return _decode(raw) if raw else None


def list_pools(connection: Redis) -> list[dict[str, Any]]:
    """Every registered pool, in two round trips."""
    names = [name.decode() for name in connection.zrange(keys.POOLS, 0, -1)]
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.pool(name))
        return [_decode(raw) for raw in pipe.execute() if raw]


def add_event(
    connection: Redis | Pipeline,
    event: str,
    pool: str,
    slot: int | None = None,
    worker: str | None = None,
    job_id: str | None = None,
    details: dict[str, Any] | None = None,
    now: float | None = None,
) -> None:
    """Append one event to the capped stream (queued on `connection` when it is a pipeline)."""
    if event not in EVENTS:
        raise ValueError(f"unknown pool event {event!r}")
    at = iso_from_timestamp(time.time() if now is None else now)
    values = (event, pool, "" if slot is None else str(slot), worker or "", job_id or "", at, json.dumps(details or {}))
    fields = dict(zip(keys.POOL_EVENT_FIELDS, values, strict=True))
    connection.xadd(keys.POOL_EVENTS, fields, maxlen=keys.POOL_EVENTS_CAP, approximate=True)  # type: ignore[arg-type]


def retire_worker(connection: Redis, name: str, queue_names: list[str]) -> None:
    """What RQ's register_death writes, for a child that died without writing it (SIGKILL, OOM), so that its slot
    can start again under the same name."""
    key = f"rq:worker:{name}"
    with connection.pipeline() as pipe:
        pipe.srem("rq:workers", key)
        for queue in queue_names:
            pipe.srem(f"rq:workers:{queue}", key)
        pipe.hset(key, "death", time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()))
        pipe.expire(key, 60)
        pipe.delete(f"{key}:executions")
        pipe.execute()


def show_stopped_slot(
    connection: Redis,
    worker_name: str,
    pool: str,
    slot: int,
    queue_names: list[str],
    ttl: int,
    host: str = "",
    memory_limit_mb: float | None = None,
    capabilities: str = "{}",
) -> None:
    """Register a slot stopped by control as a `stopped` worker of its pool (app.domain.workers shows it so, and
    offers `start`), refreshed at every pool heartbeat and expiring `ttl` after the last; retire_worker removes it.
    It keeps the memory limit and capabilities (JSON) its children are started with."""
    key = f"rq:worker:{worker_name}"
    beat = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    fields: dict[str | bytes, Any] = {
        "last_heartbeat": beat,
        "queues": ",".join(queue_names),
        "hostname": host,
        "state": "stopped",
        workers.HEARTBEAT_AT: f"{time.time():.3f}",
        workers.MONITORED: workers.monitored_value(memory_limit_mb, pool, slot, capabilities),
        workers.STATE_OVERRIDE: workers.WorkerStatus.STOPPED.value,
    }
    with connection.pipeline() as pipe:
        pipe.hdel(key, "death", "pid", "current_job")
        pipe.hsetnx(key, "birth", beat)
        pipe.hset(key, mapping=fields)
        pipe.expire(key, ttl)
        pipe.sadd("rq:workers", key)
        for queue in queue_names:
            pipe.sadd(f"rq:workers:{queue}", key)
        pipe.execute()


def pool_health(connection: Redis, name: str | None = None) -> dict[str, Any]:
    """The health a pool last wrote (`rq-monitor-pool health`): of the named pool, else of every registered one
    (healthy only if there is at least one and all are)."""
    pools = [pool for pool in [get_pool(connection, name)] if pool] if name else list_pools(connection)
    healths = [pool.get("health") or {} for pool in pools]
    return {
        "healthy": bool(healths) and all(health.get("healthy") for health in healths),
        "pools": {pool["name"]: health for pool, health in zip(pools, healths, strict=True)},
    }
