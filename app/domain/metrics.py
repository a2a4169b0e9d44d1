"""The metrics document of GET /metrics and of the live stream: every count of every queue in one pipeline."""

from __future__ import annotations

import time
from typing import Any

from redis import Redis

from app.domain import history, keys
from app.domain.queues import QueueKeys, list_queue_names
from app.domain.timeutil import iso_from_timestamp

# API field -> how it is counted. Reads never write: LLEN/ZCARD only, never RQ's cleanup-running counts.
COUNTS = (
    ("waiting", "llen", "waiting"),
    ("active", "zcard", "active"),
    ("completed", "zcard", "completed"),
    ("failed", "zcard", "failed"),
    ("delayed", "zcard", "delayed"),
    ("prioritized", "zcard", "prioritized"),
    ("waitingChildren", "zcard", "waiting_children"),
)
TOTAL_FIELDS = [field for field, _, _ in COUNTS]


def queue_counts_reads(pipe: Any, names: list[str]) -> None:
    for name in names:
        queue = QueueKeys(name)
        for _, command, attribute in COUNTS:
            getattr(pipe, command)(getattr(queue, attribute))


def parse_queue_counts(names: list[str], results: list[Any], paused: set[bytes]) -> list[dict[str, Any]]:
    entries = []
    width = len(COUNTS)
    for index, name in enumerate(names):
        values = results[index * width : (index + 1) * width]
        entry: dict[str, Any] = {"queueName": name}
        entry.update({field: int(value) for (field, _, _), value in zip(COUNTS, values, strict=True)})
        entry["paused"] = name.encode() in paused
        entries.append(entry)
    return entries


def get_metrics(connection: Redis, now: float | None = None) -> dict[str, Any]:
    """Two round trips whatever the number of queues: the queue list, then all counts and rates."""
    now = time.time() if now is None else now
    names = list_queue_names(connection)
    with connection.pipeline(transaction=False) as pipe:
        queue_counts_reads(pipe, names)
        pipe.smembers(keys.PAUSED_QUEUES)
        history.queue_rate_reads(pipe, now)
        results = pipe.execute()
    count_results = len(names) * len(COUNTS)
    queues = parse_queue_counts(names, results[:count_results], results[count_results])
    rates = history.parse_rates(results[count_results + 1 :], now)
    for entry in queues:
        entry["successRate"], entry["processingRate"] = rates.of(entry["queueName"])
    return {
        "timestamp": iso_from_timestamp(now),
        "queues": queues,
        "totals": {field: sum(queue[field] for queue in queues) for field in TOTAL_FIELDS},
        "successRate": rates.success_rate,
        "processingRate": rates.processing_rate,
    }


def get_queue_metrics(connection: Redis, queue_name: str) -> dict[str, Any]:
    """One queue's metrics entry (one round trip)."""
    with connection.pipeline(transaction=False) as pipe:
        queue_counts_reads(pipe, [queue_name])
        pipe.sismember(keys.PAUSED_QUEUES, queue_name)
        *counts, paused = pipe.execute()
    return parse_queue_counts([queue_name], counts, {queue_name.encode()} if paused else set())[0]
