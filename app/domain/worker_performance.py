"""Reading the worker history that app/domain/worker_history.py records (API.md § Workers): GET
/performance/metrics (per worker and system buckets, p95, the change against the period before), a worker's
details (last attempts, 24 hours, memory) and the deployment's activity feed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline

from app.domain import keys
from app.domain.counters import DURATION_BUCKETS
from app.domain.history import count_value
from app.domain.timeutil import iso_from_timestamp
from app.domain.worker_history import (
    DAY,
    DURATION,
    GENERATION,
    HOUR,
    QUARTER_DAY,
    QUEUE,
    SYSTEM,
    WORKER,
    Granularity,
)


def granularity_for(hours: int) -> Granularity:
    """API.md: hourly buckets up to 48 h, 6-hourly up to 7 days, daily beyond."""
    return HOUR if hours <= 48 else QUARTER_DAY if hours <= 168 else DAY


def _bucket_numbers(granularity: Granularity, hours: int, now: float) -> list[int]:
    """The buckets of a period: as many as it spans, the current (partial) one last, as trends' series do."""
    current = int(now // granularity.seconds)
    count = -(-hours * 3600 // granularity.seconds)
    return list(range(current - count + 1, current + 1))


Counts = tuple[int, int, int]  # attempts ended, of which failed, their summed duration in ms
NONE: Counts = (0, 0, 0)


def _unpack(packed: bytes | None) -> Counts:
    if not packed:
        return NONE
    try:
        n, f, ms = packed.split()
        return int(n), int(f), int(ms)
    except ValueError:  # not what the product writes (another program's value): no attempts
        return NONE


_WORKER_FIELD = WORKER.encode()


def _worker_points(fields: dict[bytes, bytes], start: str, into: dict[str, list[dict[str, Any]]]) -> None:
    """Append one point per worker of a stats bucket (the hot loop of a month of history: kept inline)."""
    for raw_field, packed in fields.items():
        if raw_field[:2] != _WORKER_FIELD:
            continue
        try:
            n_raw, f_raw, ms_raw = packed.split()
            n, failed, ms = int(n_raw), int(f_raw), int(ms_raw)
        except ValueError:  # as _unpack: another program's value is no point
            continue
        point = {
            "start": start,
            "processed": n,
            "failed": failed,
            "avg_processing_time": round(ms / n / 1000, 3) if n else None,
        }
        name = raw_field[2:].decode(errors="replace")
        points = into.get(name)
        if points is None:
            into[name] = [point]
        else:
            points.append(point)


def _counts(
    fields: dict[bytes, bytes], workers: bool = True
) -> tuple[dict[str, Counts], dict[str, Counts], Counts, dict[str, int]]:
    """A stats bucket → per worker (unless `workers` is False), per queue, the system, and the duration
    histogram."""
    by_worker: dict[str, Counts] = {}
    by_queue: dict[str, Counts] = {}
    system, histogram = NONE, {}
    for raw_field, packed in fields.items():
        if not workers and raw_field[:2] == _WORKER_FIELD:
            continue
        field = raw_field.decode(errors="replace")
        kind = field[:2]
        if kind == WORKER:
            by_worker[field[2:]] = _unpack(packed)
        elif kind == QUEUE:
            by_queue[field[2:]] = _unpack(packed)
        elif kind == DURATION:
            histogram[field[2:]] = count_value(packed)
        elif field == SYSTEM:
            system = _unpack(packed)
    return by_worker, by_queue, system, histogram


def _point(start: str, counts: Counts) -> dict[str, Any]:
    n, f, ms = counts
    return {"start": start, "processed": n, "failed": f, "avg_processing_time": round(ms / n / 1000, 3) if n else None}


def percentile(histogram: dict[str, int], fraction: float) -> float | None:
    """The duration (seconds) below which `fraction` of the attempts ended, interpolated within its bucket."""
    total = sum(histogram.values())
    if not total:
        return None
    wanted, seen = fraction * total, 0
    for index in range(len(DURATION_BUCKETS) + 1):
        count = histogram.get(str(index), 0)
        if count and seen + count >= wanted:
            if index == len(DURATION_BUCKETS):
                return float(DURATION_BUCKETS[-1])
            low = DURATION_BUCKETS[index - 1] if index else 0.0
            return round(low + (DURATION_BUCKETS[index] - low) * (wanted - seen) / count, 3)
        seen += count
    return float(DURATION_BUCKETS[-1])


def _change(now_value: float | None, before: float | None) -> float | None:
    if now_value is None or before is None or before == 0:
        return None
    return round(100.0 * (now_value - before) / before, 2)


@dataclass
class _Bucket:
    """One stats bucket and its samples, parsed: what a period's document is assembled from."""

    start: str
    version: list[bytes | None]  # the stats hash's generation and system counts: they change with any write
    points: dict[str, dict[str, Any]]
    queues: dict[str, Counts]
    system: Counts
    histogram: dict[str, int]
    means: dict[str, float | None]


class _ClosedBuckets:
    """Buckets whose time is over do not change: kept parsed in the process (bounded), so that a month of 500
    workers' history is not parsed again at every request; only the current bucket is read each time."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self.entries: dict[tuple[str, int], _Bucket] = {}

    def get(self, key: tuple[str, int]) -> _Bucket | None:
        return self.entries.get(key)

    def put(self, key: tuple[str, int], bucket: _Bucket) -> None:
        if len(self.entries) >= self.size:
            self.entries.pop(next(iter(self.entries)))
        self.entries[key] = bucket


_CLOSED = _ClosedBuckets()
CLOSED_GRACE_SECONDS = 300  # a worker's clock a little behind may still write into the bucket just ended


def _parse_bucket(start: str, fields: dict[bytes, bytes], sample: dict[bytes, bytes]) -> _Bucket:
    points: dict[str, list[dict[str, Any]]] = {}
    _worker_points(fields, start, points)
    _, by_queue, system, histogram = _counts(fields, workers=False)
    flat = {name: found[0] for name, found in points.items()}
    version = [fields.get(GENERATION.encode()), fields.get(SYSTEM.encode())]
    return _Bucket(start, version, flat, by_queue, system, histogram, _sample_means(sample))


def _read_buckets(connection: Redis, granularity: Granularity, numbers: list[int], now: float) -> tuple[list, list]:
    """The period's parsed buckets and the previous period's system counts, in one round trip."""
    closed_before = int((now - CLOSED_GRACE_SECONDS) // granularity.seconds)
    cached = [_CLOSED.get((granularity.name, n)) if n < closed_before else None for n in numbers]
    with connection.pipeline(transaction=False) as pipe:
        for number, bucket in zip(numbers, cached, strict=True):
            stats_key = keys.worker_stats(granularity.name, number)
            if bucket is None:
                pipe.hgetall(stats_key)
                pipe.hgetall(keys.worker_samples(granularity.name, number))
            else:
                pipe.hmget(stats_key, GENERATION, SYSTEM)
        for number in numbers:
            pipe.hget(keys.worker_stats(granularity.name, number - len(numbers)), SYSTEM)
        replies = iter(pipe.execute())
    buckets: list[_Bucket] = []
    stale: list[int] = []
    for number, bucket in zip(numbers, cached, strict=True):
        if bucket is not None and next(replies) == bucket.version:
            buckets.append(bucket)
            continue
        if bucket is not None:  # changed under the cache: read it again below
            stale.append(len(buckets))
            buckets.append(bucket)
            continue
        fields, sample = next(replies), next(replies)
        parsed = _parse_bucket(iso_from_timestamp(number * granularity.seconds), fields, sample)
        if number < closed_before:
            _CLOSED.put((granularity.name, number), parsed)
        buckets.append(parsed)
    before = list(replies)
    for position in stale:
        number = numbers[position]
        with connection.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.worker_stats(granularity.name, number))
            pipe.hgetall(keys.worker_samples(granularity.name, number))
            fields, sample = pipe.execute()
        buckets[position] = _parse_bucket(buckets[position].start, fields, sample)
        _CLOSED.put((granularity.name, number), buckets[position])
    return buckets, before


def get_performance(connection: Redis, hours: int, now: float | None = None) -> dict[str, Any]:
    """GET /performance/metrics: per worker and system-wide buckets over the `hours` back from now, the summary
    (p95 from the duration histograms) and the change against the period before. One round trip."""
    now = time.time() if now is None else now
    granularity = granularity_for(hours)
    buckets, before = _read_buckets(connection, granularity, _bucket_numbers(granularity, hours, now), now)
    worker_metrics: dict[str, list[dict[str, Any]]] = {}
    system_metrics: list[dict[str, Any]] = []
    histogram: dict[str, int] = {}
    queues: dict[str, list[int]] = {}
    totals = [0, 0, 0]
    busiest: tuple[int, str | None] = (0, None)
    for bucket in buckets:
        for name, point in bucket.points.items():
            points = worker_metrics.get(name)
            if points is None:
                worker_metrics[name] = [point]
            else:
                points.append(point)
        for name, (n, _, ms) in bucket.queues.items():
            tally = queues.setdefault(name, [0, 0])
            tally[0] += n
            tally[1] += ms
        for index, hits in bucket.histogram.items():
            histogram[index] = histogram.get(index, 0) + hits
        for position in range(3):
            totals[position] += bucket.system[position]
        if bucket.system[0] > busiest[0]:
            busiest = (bucket.system[0], bucket.start)
        system_metrics.append({**_point(bucket.start, bucket.system), **bucket.means})
    processed, failed, duration_ms = totals
    error_rate = round(100.0 * failed / processed, 2) if processed else None
    before_n = before_f = 0
    for packed in before:
        n, f, _ = _unpack(packed)
        before_n, before_f = before_n + n, before_f + f
    before_rate = round(100.0 * before_f / before_n, 2) if before_n else None
    slowest = max(queues.items(), key=lambda item: item[1][1] / item[1][0] if item[1][0] else 0, default=None)
    return {
        "success": True,
        "timestamp": iso_from_timestamp(now),
        "period_hours": hours,
        "start_time": iso_from_timestamp(now - hours * 3600),
        "end_time": iso_from_timestamp(now),
        "worker_metrics": dict(sorted(worker_metrics.items())),
        "system_metrics": system_metrics,
        "performance_summary": {
            "processed": processed,
            "failed": failed,
            "error_rate": error_rate,
            "avg_processing_time": round(duration_ms / processed / 1000, 3) if processed else None,
            "p95_processing_time": percentile(histogram, 0.95),
            "busiest_hour": busiest[1],
            "slowest_queue": slowest[0] if slowest and slowest[1][0] else None,
            "change_vs_previous_period": {
                "processed": _change(float(processed), float(before_n)),
                "error_rate": round(error_rate - before_rate, 2)
                if error_rate is not None and before_rate is not None
                else None,
            },
        },
    }


def _sample_means(sample: dict[bytes, bytes]) -> dict[str, float | None]:
    n = count_value(sample.get(b"n", b"0"))
    return {
        name: round(count_value(sample.get(name.encode(), b"0")) / n, 2) if n else None
        for name in ("queue_size", "busy_workers", "active_workers")
    }


def worker_details_reads(pipe: Pipeline, name: str, now: float) -> None:
    """Queue the reads of one worker's history (parse with `parse_worker_details`): its last 50 attempts, the
    24 hourly buckets and its memory over the last hour."""
    pipe.lrange(keys.worker_recent(name), 0, keys.WORKER_RECENT_CAP - 1)
    for number in _bucket_numbers(HOUR, 24, now):
        pipe.hget(keys.worker_stats(HOUR.name, number), WORKER + name)
    pipe.lrange(keys.worker_memory(name), 0, -1)


def parse_worker_details(replies: list[Any], now: float) -> dict[str, Any]:
    recent, *hours, memory = replies
    numbers = _bucket_numbers(HOUR, 24, now)
    hourly = [
        _point(iso_from_timestamp(number * HOUR.seconds), _unpack(packed))
        for number, packed in zip(numbers, hours, strict=True)
    ]
    return {
        "recent_jobs": [_job(entry) for entry in _entries(recent)],
        "hourly": hourly,
        "memory_history": _memory(memory, now),
    }


def _entries(raw: list[bytes]) -> list[dict[str, Any]]:
    entries = []
    for item in raw:
        try:
            entry = json.loads(item)
        except (ValueError, RecursionError):
            continue
        if isinstance(entry, dict):  # anything else is not what the worker writes (another program's value)
            entries.append(entry)
    return entries


ACTION_OF = {"ok": ("completed", "success"), "fail": ("failed", "failed"), "retry": ("retried", "retry")}


def _job(entry: dict[str, Any]) -> dict[str, Any]:
    action, status = ACTION_OF.get(entry.get("o", ""), ("failed", "failed"))
    return {
        "job_id": entry.get("j"),
        "queue": entry.get("q"),
        "job_name": entry.get("n") or None,
        "status": status,
        "ended_at": iso_from_timestamp(float(entry.get("t", 0))),
        "duration_ms": entry.get("ms"),
    }


def activity(raw: list[bytes]) -> list[dict[str, Any]]:
    """The deployment's last ended attempts (WORKER_ACTIVITY) in the shape of `recent_activity`."""
    found = []
    for entry in _entries(raw):
        action, status = ACTION_OF.get(entry.get("o", ""), ("failed", "failed"))
        found.append(
            {
                "timestamp": iso_from_timestamp(float(entry.get("t", 0))),
                "worker": entry.get("w") or None,
                "queue": entry.get("q"),
                "job_id": entry.get("j"),
                "job_name": entry.get("n") or None,
                "action": action,
                "status": status,
                "duration_ms": entry.get("ms"),
            }
        )
    return found


def _memory(raw: list[bytes], now: float) -> list[dict[str, Any]]:
    points = []
    for item in raw:
        at, _, rest = item.decode(errors="replace").partition("|")
        rss, _, cpu = rest.partition("|")
        try:
            moment = float(at)
        except ValueError:
            continue
        if moment < now - 3600:
            continue
        points.append(
            {
                "at": iso_from_timestamp(moment),
                "memory_usage_mb": float(rss) if rss else None,
                "cpu_percent": float(cpu) if cpu else None,
            }
        )
    return points


def last_ends(raw: list[tuple[bytes, float]]) -> dict[str, float]:
    """WORKER_LAST_END read with scores → {worker: epoch seconds}."""
    return {name.decode(errors="replace"): score for name, score in raw}
