"""Outcome history: what every ended attempt leaves behind, so trends outlive RQ's result_ttl.

Layout (all under keys.PREFIX, each key with a TTL or a cap):
- minute buckets  `stats:m:<epoch // 60>`     fields ok, fail, retry and <queue>|ok ...  TTL 2 h
- hourly buckets  `stats:h:<epoch // 3600>`   fields <queue>|ok, |fail, |retry, |ms     TTL 8 days
- 6-hour buckets  `stats:q:<epoch // 21600>`  same fields                               TTL 35 days
- daily buckets   `stats:d:<epoch // 86400>`  same fields                               TTL 400 days
- `outcomes`: list of the last 1000 finished jobs, newest first, "<1|0>|<ts ms>|<ms>|<queue>|<job id>|<name>"

Outcomes: `ok` a job completed, `fail` a job failed for good, `retry` an attempt failed and the job will run
again (counted apart, so that success rates are over jobs as in BullMQ). `ms` sums the durations of the
jobs that finished (ok + fail), for the average processing time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script

from app.domain import keys

Outcome = Literal["ok", "fail", "retry"]
FIELD_SEPARATOR = "|"


@dataclass(frozen=True)
class Granularity:
    name: str
    seconds: int
    ttl: int


MINUTE = Granularity("m", 60, 2 * 3600)
HOUR = Granularity("h", 3600, 8 * 86400)
QUARTER_DAY = Granularity("q", 21600, 35 * 86400)
DAY = Granularity("d", 86400, 400 * 86400)
PER_QUEUE_GRANULARITIES = (HOUR, QUARTER_DAY, DAY)

# period -> (bucket granularity, number of buckets, including the current one)
PERIODS: dict[str, tuple[Granularity, int]] = {"24h": (HOUR, 24), "7d": (QUARTER_DAY, 28), "30d": (DAY, 30)}

# One server-side call per ended attempt, so recording adds one command to the worker's pipeline.
# KEYS: minute, hour, quarter, day, outcomes.  ARGV: queue, outcome, ms, entry, cap, ttls (m h q d)
_RECORD_LUA = """
local queue, outcome, ms, entry, cap = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
redis.call('HINCRBY', KEYS[1], outcome, 1)
redis.call('HINCRBY', KEYS[1], queue .. '|' .. outcome, 1)
redis.call('EXPIRE', KEYS[1], ARGV[6])
for i = 2, 4 do
  redis.call('HINCRBY', KEYS[i], queue .. '|' .. outcome, 1)
  if outcome ~= 'retry' then redis.call('HINCRBY', KEYS[i], queue .. '|ms', ms) end
  redis.call('EXPIRE', KEYS[i], ARGV[5 + i])
end
if outcome ~= 'retry' then
  redis.call('LPUSH', KEYS[5], entry)
  redis.call('LTRIM', KEYS[5], 0, cap - 1)
end
return 1
"""


def _bucket_key(granularity: Granularity, epoch: float) -> str:
    return keys.stats_bucket(granularity.name, int(epoch // granularity.seconds))


def record_attempt(
    pipeline: Pipeline | Redis,
    queue: str,
    outcome: Outcome,
    duration_ms: int,
    job_id: str,
    job_name: str,
    ended_at: float | None = None,
) -> None:
    """Queue the recording of one ended attempt on `pipeline` (or run it at once on a connection)."""
    ended_at = time.time() if ended_at is None else ended_at
    entry = FIELD_SEPARATOR.join(
        [
            "1" if outcome == "ok" else "0",
            str(int(ended_at * 1000)),
            str(duration_ms),
            queue,
            job_id,
            job_name,
        ]
    )
    bucket_keys = [_bucket_key(g, ended_at) for g in (MINUTE, *PER_QUEUE_GRANULARITIES)]
    ttls = [str(g.ttl) for g in (MINUTE, *PER_QUEUE_GRANULARITIES)]
    # Script() sends EVALSHA and loads the script first when the server does not know it yet.
    Script(pipeline, _RECORD_LUA)(
        keys=[*bucket_keys, keys.OUTCOMES],
        args=[queue, outcome, str(max(0, int(duration_ms))), entry, str(keys.OUTCOMES_CAP), *ttls],
        client=pipeline,
    )


# --- reading ----------------------------------------------------------------------------------------


def queue_rate_reads(pipeline: Pipeline, now: float) -> None:
    """Queue the reads behind successRate and processingRate (parse with `parse_rates`)."""
    pipeline.lrange(keys.OUTCOMES, 0, keys.OUTCOMES_CAP - 1)
    current = int(now // MINUTE.seconds)
    for minute in range(current - 5, current + 1):
        pipeline.hgetall(keys.stats_bucket(MINUTE.name, minute))


RATE_READ_COUNT = 7  # how many results queue_rate_reads adds to a pipeline


@dataclass(frozen=True)
class Rates:
    """successRate over the last 1000 finished jobs, processingRate (finished per minute over 5 minutes);
    overall and per queue."""

    success_rate: float | None
    processing_rate: float
    per_queue: dict[str, tuple[float | None, float]]

    def of(self, queue: str) -> tuple[float | None, float]:
        return self.per_queue.get(queue, (None, 0.0))


def _success_rates(outcomes: list[bytes]) -> tuple[float | None, dict[str, float]]:
    completed_by_queue: dict[str, list[int]] = {}
    for entry in outcomes:
        parts = entry.split(b"|", 4)
        if len(parts) >= 4:
            tally = completed_by_queue.setdefault(parts[3].decode(), [0, 0])
            tally[0] += entry[:1] == b"1"
            tally[1] += 1
    overall = None
    if outcomes:
        overall = round(100.0 * sum(1 for entry in outcomes if entry[:1] == b"1") / len(outcomes), 2)
    return overall, {queue: round(100.0 * ok / total, 2) for queue, (ok, total) in completed_by_queue.items()}


def parse_rates(results: list[Any], now: float) -> Rates:
    outcomes, *minutes = results
    overall_success, success_by_queue = _success_rates(outcomes)
    # The oldest minute bucket is only partly inside the 5-minute window.
    oldest_weight = 1.0 - (now % MINUTE.seconds) / MINUTE.seconds
    finished: dict[str, float] = {}
    for index, fields in enumerate(minutes):
        weight = oldest_weight if index == 0 else 1.0
        for field, value in fields.items():
            queue, _, kind = field.decode().rpartition(FIELD_SEPARATOR)
            if kind in ("ok", "fail"):
                finished[queue] = finished.get(queue, 0.0) + int(value) * weight
    per_queue = {
        queue: (success_by_queue.get(queue), round(finished.get(queue, 0.0) / 5.0, 2))
        for queue in set(success_by_queue) | (set(finished) - {""})
    }
    return Rates(overall_success, round(finished.get("", 0.0) / 5.0, 2), per_queue)


def _bucket_starts(granularity: Granularity, count: int, now: float) -> list[int]:
    current = int(now // granularity.seconds)
    return [bucket for bucket in range(current - count + 1, current + 1)]


def _empty_counts() -> dict[str, int]:
    return {"ok": 0, "fail": 0, "retry": 0, "ms": 0}


def read_buckets(connection: Redis, period: str, now: float) -> tuple[list[int], list[dict[str, dict[str, int]]]]:
    """Bucket starts (epoch seconds) and, per bucket, counts per queue; one round trip."""
    granularity, count = PERIODS[period]
    buckets = _bucket_starts(granularity, count, now)
    with connection.pipeline(transaction=False) as pipe:
        for bucket in buckets:
            pipe.hgetall(keys.stats_bucket(granularity.name, bucket))
        raw = pipe.execute()
    parsed: list[dict[str, dict[str, int]]] = []
    for fields in raw:
        per_queue: dict[str, dict[str, int]] = {}
        for field, value in fields.items():
            queue, _, kind = field.decode().rpartition(FIELD_SEPARATOR)
            per_queue.setdefault(queue, _empty_counts())[kind] = int(value)
        parsed.append(per_queue)
    return [bucket * granularity.seconds for bucket in buckets], parsed


def _summary(counts: dict[str, int]) -> dict[str, Any]:
    finished = counts["ok"] + counts["fail"]
    return {
        "successful": counts["ok"],
        "failed": counts["fail"],
        "total": finished,
        "successRate": round(100.0 * counts["ok"] / finished, 2) if finished else None,
        "avgProcessingTime": round(counts["ms"] / finished) if finished else None,
    }


def get_trends(
    connection: Redis,
    period: str,
    queue_names: list[str],
    with_series: bool = False,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """Per queue: jobs finished in the period (and per bucket with `with_series`), sorted by queue name."""
    from app.domain.timeutil import iso_from_timestamp  # noqa: PLC0415

    now = time.time() if now is None else now
    starts, buckets = read_buckets(connection, period, now)
    names = sorted(set(queue_names).union(*(bucket.keys() for bucket in buckets)))
    trends = []
    for name in names:
        totals = _empty_counts()
        series = []
        for start, bucket in zip(starts, buckets, strict=True):
            counts = bucket.get(name, _empty_counts())
            for kind in totals:
                totals[kind] += counts.get(kind, 0)
            if with_series:
                point = _summary({**_empty_counts(), **counts})
                series.append(
                    {
                        "start": iso_from_timestamp(start),
                        "successful": point["successful"],
                        "failed": point["failed"],
                        "avgProcessingTime": point["avgProcessingTime"],
                    }
                )
        entry: dict[str, Any] = {"queueName": name, "period": period, **_summary(totals)}
        if with_series:
            entry["series"] = series
        trends.append(entry)
    return trends
