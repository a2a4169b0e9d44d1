"""Everything the Prometheus export shows, as plain data, in one round trip whatever the number of queues and
workers: one pipeline (every queue's counts, the canceled registries and the oldest waiting job of each queue, the
monotonic counters, the firing alerts, the last evaluation's stuck runs and the worker registry); schedules, when
there are any, are listed by their own module.

Stuck runs come from the alert engine's last evaluation (keys.ALERTS_FACTS, written every tick): counting them
here would cost one more round trip and write the run index on a read.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

from redis import Redis

from app.domain import alerts, counters, keys, metrics
from app.domain.queues import QueueKeys
from app.domain.states import Liveness
from app.domain.timeutil import rq_epoch
from app.domain.workers import JOB_PREFIX, parse_workers, workers_reads

# Per queue, after its counts and in the same script: the canceled count and the enqueued_at of the job at the head
# of its list (the latency). RQ scores a canceled entry at the time of the cancel and never expires it (its
# CanceledJobRegistry has no cleanup), so every entry counts, as RQ's own count does.
_EXTRA_COLUMNS = (("ZCARD", QueueKeys("").canceled), ("HEAD", JOB_PREFIX))

STUCK_FACTS_MAX_AGE_SECONDS = 60


def _active_per_queue(workers: list[dict[str, Any]]) -> dict[str, int]:
    """Active workers listening to each queue, in one pass over the workers (not one per queue)."""
    found: dict[str, int] = {}
    for worker in workers:
        if worker["liveness"] == Liveness.ACTIVE:
            for name in set(worker["queues"]):
                found[name] = found.get(name, 0) + 1
    return found


def _recent_stuck(facts: bytes | None, now: float) -> dict[str, dict[str, int]]:
    """The stuck runs per queue of the last evaluation, unless it is too old to be current (no ticker running)."""
    evaluated = alerts.read_facts(facts)
    stuck, at = evaluated.get("stuck"), evaluated.get("at")
    if not isinstance(stuck, dict) or not isinstance(at, int | float) or now - at > STUCK_FACTS_MAX_AGE_SECONDS:
        return {}
    return stuck


def _schedules_present() -> bool:
    return importlib.util.find_spec("app.domain.schedules") is not None and hasattr(keys, "SCHEDULES")


def _schedules(connection: Redis) -> list[dict[str, Any]]:
    """Every schedule (next run, last run) when the periodic-jobs module is installed; its own round trips."""
    from app.domain import schedules

    found: list[dict[str, Any]] = []
    page = 1
    while True:
        listed = schedules.list_schedules(connection, page, 200)
        found += listed["schedules"]
        if page * 200 >= listed["total"]:
            return found
        page += 1


def read_scrape(connection: Redis, now: float | None, active_seconds: float, stale_seconds: float) -> dict[str, Any]:
    now = time.time() if now is None else now
    with connection.pipeline(transaction=False) as pipe:
        metrics.queue_counts_reads(pipe, now, _EXTRA_COLUMNS)
        counters.counters_reads(pipe)
        pipe.hvals(keys.ALERTS_FIRING)
        pipe.get(keys.ALERTS_FACTS)
        workers_reads(pipe)
        has_schedules = _schedules_present()
        if has_schedules:
            pipe.hlen(keys.SCHEDULES)
        flat, counter_fields, firing, facts, registry, *schedule_count = pipe.execute()
    queues = []
    for entry, (canceled, enqueued) in metrics.queue_rows(flat, len(_EXTRA_COLUMNS)):
        entry["canceled"] = int(canceled)
        enqueued_at = rq_epoch(enqueued)
        entry["latencySeconds"] = max(0.0, now - enqueued_at) if enqueued_at is not None else 0.0
        queues.append(entry)
    workers = parse_workers(registry, now, active_seconds, stale_seconds)
    active = _active_per_queue(workers)
    for entry in queues:
        entry["activeWorkers"] = active.get(entry["queueName"], 0)
    return {
        "queues": queues,
        "counters": counters.parse_counters(counter_fields),
        "workers": workers,
        "alerts": alerts.read_alerts(firing),
        "stuck": _recent_stuck(facts, now),
        "schedules": _schedules(connection) if has_schedules and schedule_count and schedule_count[0] else [],
    }
