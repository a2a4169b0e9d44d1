"""Monotonic counters behind the Prometheus export: every ended attempt, per queue and outcome, and the histogram
of their durations. The worker increments them in its end-of-attempt pipeline (outcomes.record_end); nothing
ever decrements or expires them, so they survive worker and web restarts, unlike the windowed history buckets.

One hash (keys.COUNTERS), fields `<queue>|<outcome>`, `<queue>|le:<index>` (attempts whose duration falls in
bucket `index`, not cumulative), `<queue>|count` and `<queue>|sum_ms`: its size is bounded by the number of queues.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from redis import Redis
from redis.client import Pipeline

from app.domain import keys
from app.domain.history import FIELD_SEPARATOR, Outcome, count_value

# history's outcome -> the label value of rqmon_jobs_finished_total
OUTCOME_LABELS: dict[str, str] = {"ok": "completed", "fail": "failed", "retry": "retried"}
# Upper bounds (seconds) of the duration histogram; +Inf is implied. The one histogram of attempt durations: the
# worker history's (p95 of /performance/metrics) uses the same bounds and bucket_index.
DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600)


def bucket_index(duration_ms: int) -> int:
    """Index of the first bucket whose bound holds the duration; len(DURATION_BUCKETS) is +Inf."""
    return bisect.bisect_left(DURATION_BUCKETS, max(0, duration_ms) / 1000.0)


# KEYS: the counters hash. ARGV: the outcome's field, the duration bucket's field, the count field, the sum field,
# the duration (ms). outcomes.record_end runs this body inside its one script per ended attempt.
RECORD_LUA = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
redis.call('HINCRBY', KEYS[1], ARGV[4], ARGV[5])
return 1
"""


def record_counters(pipeline: Pipeline | Redis, queue: str, outcome: Outcome, duration_ms: int) -> None:
    """Queue the increments of one ended attempt on `pipeline` (four HINCRBY on one hash, in one script)."""
    script_keys, args = record_arguments(queue, outcome, duration_ms)
    pipeline.eval(RECORD_LUA, len(script_keys), *script_keys, *args)


def record_arguments(queue: str, outcome: Outcome, duration_ms: int) -> tuple[list[str], list[str]]:
    """The KEYS and ARGV of RECORD_LUA for one ended attempt."""
    prefix = queue + FIELD_SEPARATOR
    fields = [prefix + OUTCOME_LABELS[outcome], f"{prefix}le:{bucket_index(duration_ms)}", prefix + "count"]
    return [keys.COUNTERS], [*fields, prefix + "sum_ms", str(max(0, int(duration_ms)))]


@dataclass
class QueueCounters:
    finished: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_LABELS.values(), 0))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    count: int = 0
    sum_ms: int = 0

    def cumulative_buckets(self) -> list[tuple[str, int]]:
        """(le, cumulative count) pairs as Prometheus wants them, +Inf last."""
        bounds = [repr(float(bound)) for bound in DURATION_BUCKETS] + ["+Inf"]
        total, pairs = 0, []
        for bound, count in zip(bounds, self.buckets, strict=True):
            total += count
            pairs.append((bound, total))
        return pairs


def counters_reads(pipeline: Pipeline) -> None:
    pipeline.hgetall(keys.COUNTERS)


def parse_counters(fields: dict[bytes, bytes]) -> dict[str, QueueCounters]:
    found: dict[str, QueueCounters] = {}
    for raw_field, raw_value in fields.items():
        queue, _, kind = raw_field.decode(errors="replace").rpartition(FIELD_SEPARATOR)
        counters = found.setdefault(queue, QueueCounters())
        value = count_value(raw_value)
        if kind in counters.finished:
            counters.finished[kind] = value
        elif kind.startswith("le:") and kind[3:].isdigit() and int(kind[3:]) < len(counters.buckets):
            counters.buckets[int(kind[3:])] = value
        elif kind == "count":
            counters.count = value
        elif kind == "sum_ms":
            counters.sum_ms = value
    return found


def read_counters(connection: Redis) -> dict[str, QueueCounters]:
    return parse_counters(connection.hgetall(keys.COUNTERS))
