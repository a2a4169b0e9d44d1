"""The worker documents of API.md § Workers: overview (also the live stream's), queue status and one worker's
details. Each is one round trip: the worker registry's script (app.domain.workers) and the other reads in one
pipeline. Health is the alert rules' roll-up of the firing alerts, as GET /api/v1/health reports it (the rules are
evaluated each tick by the ticker: app/domain/alerts.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from redis import Redis

from app.domain import alerts, keys, worker_performance, workers
from app.domain.metrics import parse_queue_counts, queue_counts_reads
from app.domain.queues import ALL_QUEUES_KEY, KNOWN_QUEUES_LUA, QUEUE_KEY_PREFIX, SAFE_READ_LUA
from app.domain.timeutil import iso_from_timestamp, rq_epoch

RECENT_ACTIVITY = 50
POOL_EVENTS_SHOWN = 50
WINDOW_MINUTES = alerts.WINDOW_MINUTES  # avg_system_response_time and throughput: the rules' outcome window
MB = 1024 * 1024
# Pool events worth showing in the activity feed: what happened to a worker, not every job (those are attempts).
POOL_ACTIONS = {
    "workerRestarted": "restarted",
    "workerStalled": "stalled",
    "highMemoryUsage": "memory",
    "workerError": "error",
    "workerClosed": "stopped",
    "workerReady": "started",
    "shuttingDown": "shutting_down",
    "forceShutdown": "force_shutdown",
}


@dataclass(frozen=True)
class Thresholds:
    active_seconds: float
    stale_seconds: float
    max_queue_size: int = 1000


def _sizes(queues: list[dict[str, Any]]) -> dict[str, int]:
    return {queue["queueName"]: queue["waiting"] + queue["prioritized"] for queue in queues}


def _queue_size(sizes: dict[str, int], listened: Iterable[str]) -> int:
    """A worker's current_queue_size: the jobs waiting in the queues it listens to."""
    return sum(sizes.get(name, 0) for name in listened)


@lru_cache(maxsize=16384)  # a worker's last end changes only when it ends an attempt
def _iso(moment: float) -> str:
    return iso_from_timestamp(moment)


def _complete(worker: dict[str, Any], queue_size: int, last_end: float | None) -> dict[str, Any]:
    """The <worker> fields that come from outside the registry: its queues' size and the last ended attempt."""
    worker["current_queue_size"] = queue_size
    job = worker["current_job"]
    started = job["started_at"] if job else None
    ended = _iso(last_end) if last_end is not None else None
    worker["last_activity"] = max(started, ended) if started and ended else started or ended
    return worker


def _pool_activity(events: list[tuple[bytes, dict[bytes, bytes]]]) -> list[dict[str, Any]]:
    found = []
    for _, raw in events:
        fields = {key.decode(): value.decode(errors="replace") for key, value in raw.items()}
        action = POOL_ACTIONS.get(fields.get("event", ""))
        if action is None:
            continue
        found.append(
            {
                "timestamp": fields.get("at"),
                "worker": fields.get("worker") or None,
                "queue": None,
                "job_id": fields.get("jobId") or None,
                "job_name": None,
                "action": action,
                "status": "event",
                "duration_ms": None,
                "pool": fields.get("pool") or None,
            }
        )
    return found


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def get_overview(connection: Redis, thresholds: Thresholds, now: float | None = None) -> dict[str, Any]:
    """GET /overview (and the live stream's document): one round trip."""
    with connection.pipeline(transaction=False) as pipe:
        finish = overview_reads(pipe, thresholds, now)
        return finish(pipe.execute())


def overview_reads(
    pipe: Any, thresholds: Thresholds, now: float | None = None
) -> Callable[[list[Any]], dict[str, Any]]:
    """Queue the overview's reads on `pipe` (a caller may join them to a round trip of its own, as the request's
    auth lookup does); the returned function builds the document from their results."""
    now = time.time() if now is None else now
    workers.workers_reads(pipe)
    queue_counts_reads(pipe, now)
    pipe.lrange(keys.WORKER_ACTIVITY, 0, RECENT_ACTIVITY - 1)
    pipe.xrevrange(keys.POOL_EVENTS, count=POOL_EVENTS_SHOWN)
    pipe.zrange(keys.WORKER_LAST_END, 0, -1, withscores=True)
    pipe.info("memory")
    pipe.hvals(keys.ALERTS_FIRING)
    alerts.window_reads(pipe, now)
    return lambda results: _overview(results, thresholds, now)


@dataclass
class _Tally:
    """The system figures of the overview, counted in the one pass that completes the workers."""

    by_liveness: dict[str, int]
    busy: int = 0
    processed: int = 0
    memory_mb: float = 0.0
    cpu: list[float] | None = None


def _tally(found: list[dict[str, Any]], sizes: dict[str, int], last_end: dict[str, float]) -> _Tally:
    tally = _Tally({liveness: 0 for liveness in workers.Liveness}, cpu=[])
    assert tally.cpu is not None
    sizes_of: dict[tuple[str, ...], int] = {}  # most workers listen to the same few queue lists
    active, stale, busy = workers.Liveness.ACTIVE, workers.Liveness.STALE, workers.WorkerStatus.BUSY
    for worker in found:
        listened = tuple(worker["queues"])
        size = sizes_of.get(listened)
        if size is None:
            size = sizes_of[listened] = _queue_size(sizes, listened)
        _complete(worker, size, last_end.get(worker["worker_name"]))
        liveness = worker["liveness"]
        tally.by_liveness[liveness] += 1
        tally.busy += worker["status"] == busy
        tally.processed += worker["tasks_processed"]
        if liveness != stale:
            tally.memory_mb += worker["memory_usage_mb"] or 0.0
        if liveness == active and worker["monitored"] and worker["cpu_percent"] is not None:
            tally.cpu.append(worker["cpu_percent"])
    return tally


def _overview(results: list[Any], thresholds: Thresholds, now: float) -> dict[str, Any]:
    registry, counts, recent, events, ends, memory, firing, *minutes = results
    found = workers.parse_workers(registry, now, thresholds.active_seconds, thresholds.stale_seconds)
    sizes, window = _sizes(parse_queue_counts(counts)), alerts.parse_window(minutes, now)
    tally = _tally(found, sizes, worker_performance.last_ends(ends))
    waiting = sum(sizes.values())
    status, reasons = alerts.firing_health(firing)
    finished = sum(c.get("ok", 0) + c.get("fail", 0) for c in window.values())
    duration_ms = sum(c.get("ms", 0) for c in window.values())
    active = tally.by_liveness[workers.Liveness.ACTIVE]
    activity = worker_performance.activity(recent) + _pool_activity(events)
    activity.sort(key=lambda entry: entry["timestamp"] or "", reverse=True)
    max_memory = int(memory.get("maxmemory", 0))
    load = _mean(tally.cpu or [])
    return {
        "success": True,
        "timestamp": iso_from_timestamp(now),
        "system_overview": {
            "total_workers": len(found),
            "active_workers": active,
            "inactive_workers": tally.by_liveness[workers.Liveness.INACTIVE],
            "stale_workers": tally.by_liveness[workers.Liveness.STALE],
            "busy_workers": tally.busy,
            "utilization": round(100.0 * tally.busy / active, 1) if active else 0.0,
            "overall_health": status,
            "health_reasons": reasons,
            "total_tasks_processed": tally.processed,
            "total_tasks_in_queue": waiting,
            "avg_system_response_time": round(duration_ms / finished / 1000, 3) if finished else None,
            "system_load": load,
            "jobs_per_minute": round(finished / WINDOW_MINUTES, 2),
        },
        "workers": found,
        "recent_activity": activity[:RECENT_ACTIVITY],
        "performance_metrics": {
            "cpu_usage": load,
            "memory_usage": round(tally.memory_mb, 1),
            "redis_memory_mb": round(int(memory.get("used_memory", 0)) / MB, 2),
            "redis_max_memory_mb": round(max_memory / MB, 2) if max_memory else None,
        },
    }


def live_document(overview: dict[str, Any]) -> dict[str, Any]:
    """The live stream's event: the overview's system_overview and workers."""
    return {
        "timestamp": overview["timestamp"],
        "data": {"system_overview": overview["system_overview"], "workers": overview["workers"]},
    }


# The job that has waited longest per queue: the head of the waiting list, and the next prioritized job (its
# score orders by priority first: the first of the set stands for the prioritized ones). One script for all queues.
# KEYS: RQ's set of queue keys, the monitor's set of queue names. ARGV: the queue-key prefix, the prioritized
# set's prefix, the job-key prefix. Returns name, waiting head's enqueued_at, prioritized head's enqueued_at.
_OLDEST_LUA = (
    SAFE_READ_LUA
    + KNOWN_QUEUES_LUA
    + """
local out = {}
for name in pairs(known_queues(KEYS[1], KEYS[2], ARGV[1])) do
  local head = read_or(false, 'LINDEX', ARGV[1] .. name, 0)
  local first = read_or({}, 'ZRANGE', ARGV[2] .. name, 0, 0)[1]
  out[#out + 1] = name
  out[#out + 1] = head and (read_or(false, 'HGET', ARGV[3] .. head, 'enqueued_at') or '') or ''
  out[#out + 1] = first and (read_or(false, 'HGET', ARGV[3] .. first, 'enqueued_at') or '') or ''
end
return out
"""
)


def _oldest(flat: list[bytes], now: float) -> dict[str, float | None]:
    found: dict[str, float | None] = {}
    for at in range(0, len(flat), 3):
        name, *times = (value.decode(errors="replace") for value in flat[at : at + 3])
        moments = [rq_epoch(value) for value in times if value]
        known = [moment for moment in moments if moment is not None]
        found[name] = round(max(0.0, now - min(known)), 3) if known else None
    return found


def get_queue_status(connection: Redis, thresholds: Thresholds, now: float | None = None) -> dict[str, Any]:
    """GET /queue/status: per queue its size, age of the oldest waiting job, workers, throughput and ETA."""
    now = time.time() if now is None else now
    with connection.pipeline(transaction=False) as pipe:
        workers.workers_reads(pipe)
        queue_counts_reads(pipe, now)
        pipe.eval(_OLDEST_LUA, 2, ALL_QUEUES_KEY, keys.KNOWN_QUEUES, QUEUE_KEY_PREFIX, keys.prioritized(""), "rq:job:")
        pipe.hvals(keys.ALERTS_FIRING)
        alerts.window_reads(pipe, now)
        registry, counts, oldest_flat, firing, *minutes = pipe.execute()
    found = workers.parse_workers(registry, now, thresholds.active_seconds, thresholds.stale_seconds)
    queues, window, oldest = parse_queue_counts(counts), alerts.parse_window(minutes, now), _oldest(oldest_flat, now)
    listening: dict[str, int] = {}
    for worker in found:
        if worker["liveness"] == workers.Liveness.ACTIVE:
            for name in worker["queues"]:
                listening[name] = listening.get(name, 0) + 1
    documents: dict[str, dict[str, Any]] = {}
    for queue in queues:
        name = queue["queueName"]
        size = queue["waiting"] + queue["prioritized"]
        ended = window.get(name, {})
        per_minute = (ended.get("ok", 0) + ended.get("fail", 0) + ended.get("retry", 0)) / WINDOW_MINUTES
        documents[name] = {
            "size": size,
            "max_size": thresholds.max_queue_size,
            "processing": not queue["paused"] and listening.get(name, 0) > 0,
            "paused": queue["paused"],
            "workers": listening.get(name, 0),
            "oldest_task_age_seconds": oldest.get(name) if size else None,
            "throughput_per_minute": round(per_minute, 2),
            "estimated_completion_time": round(size / (per_minute / 60)) if per_minute else None,
            "active": queue["active"],
        }
    total = sum(document["size"] for document in documents.values())
    capacity = thresholds.max_queue_size * len(documents)
    etas = [document["estimated_completion_time"] for document in documents.values()]
    waiting_unserved = [n for n, d in documents.items() if d["size"] and not d["workers"]]
    status, _ = alerts.firing_health(firing)
    return {
        "success": True,
        "timestamp": iso_from_timestamp(now),
        "total_queued_tasks": total,
        "queues": documents,
        "system_health": {
            "status": status,
            "queue_utilization": round(100.0 * total / capacity, 2) if capacity else 0.0,
            "estimated_processing_time": max((eta for eta in etas if eta is not None), default=None),
            "queues_without_workers": waiting_unserved,
        },
    }


def get_worker_details(connection: Redis, name: str, thresholds: Thresholds, now: float | None = None) -> dict:
    """GET /worker/<name>/details: the <worker>, RQ's facts and its history. WorkerNotFound when RQ has no trace
    of it (a worker that has gone keeps its history, read through /performance/metrics)."""
    now = time.time() if now is None else now
    worker = workers.read_worker(connection, name, now, thresholds.active_seconds, thresholds.stale_seconds)
    with connection.pipeline(transaction=False) as pipe:
        queue_counts_reads(pipe, now)
        pipe.zscore(keys.WORKER_LAST_END, name)
        pipe.hget(workers.WORKER_PREFIX + name, "python_version")
        worker_performance.worker_details_reads(pipe, name, now)
        counts, last_end, python, *replies = pipe.execute()
    sizes = _sizes(parse_queue_counts(counts))
    _complete(worker, _queue_size(sizes, worker["queues"]), last_end)
    found = worker_performance.parse_worker_details(replies, now)
    return {
        "success": True,
        "worker_name": name,
        "timestamp": iso_from_timestamp(now),
        "worker": worker,
        "detailed_stats": {
            "rq_version": worker["rq_version"],
            "python_version": python.decode(errors="replace").split()[0] if python else None,
            "birth": worker["birth"],
            "total_working_time": worker["total_working_time"],
            "current_job": worker["current_job"],
            **found,
        },
    }
