"""Outcome history: what every ended attempt leaves behind, so trends outlive RQ's result_ttl.

Layout (all under keys.PREFIX, each key with a TTL or a cap):
- minute buckets  `stats:m:<epoch // 60>`     fields ok, fail, retry and <queue>|ok ...  TTL 25 h
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

from app.domain import keys
from app.domain.states import Period

Outcome = Literal["ok", "fail", "retry"]
FIELD_SEPARATOR = "|"


def count_value(raw: bytes) -> int:
    """A counter as read back: a value that is no integer (another program's write to the product's keys) counts
    as 0 instead of failing every reader of the hash."""
    try:
        return int(raw)
    except ValueError:
        return 0


@dataclass(frozen=True)
class Granularity:
    name: str
    seconds: int
    ttl: int
    words: str  # one bucket, as the pages say it ("per 6 hours")


MINUTE = Granularity("m", 60, 25 * 3600, "minute")  # 25 h: the leading edge of a 24h window is read at the minute
HOUR = Granularity("h", 3600, 8 * 86400, "hour")
QUARTER_DAY = Granularity("q", 21600, 35 * 86400, "6 hours")
DAY = Granularity("d", 86400, 400 * 86400, "day")
PER_QUEUE_GRANULARITIES = (HOUR, QUARTER_DAY, DAY)

# period -> (bucket granularity, number of buckets, including the current one): the series of `series=1`
PERIODS: dict[str, tuple[Granularity, int]] = {
    Period.DAY: (HOUR, 24),
    Period.WEEK: (QUARTER_DAY, 28),
    Period.MONTH: (DAY, 30),
}

# The totals cover exactly the period back from now: whole coarse buckets, plus finer buckets for the part of
# the oldest coarse bucket inside the window. The window starts at the minute (24h) or the hour (7d, 30d) at or
# before now minus the period. period -> (seconds, the finer granularity of the leading edge)
WINDOWS: dict[str, tuple[int, Granularity]] = {
    Period.DAY: (86400, MINUTE),
    Period.WEEK: (7 * 86400, HOUR),
    Period.MONTH: (30 * 86400, HOUR),
}

# One server-side call per ended attempt (outcomes.record_end runs this body inside its one script per attempt).
# Beside the
# capped list of outcomes it keeps the list's counts per queue (ok / all, "" for every queue), so that reading
# success rates costs one small HGETALL instead of scanning 1000 entries.
# KEYS: minute, hour, quarter, day, outcomes, outcome counts.  ARGV: queue, outcome, ms, entry, cap, ttls (m h q d)
RECORD_LUA = """
local queue, outcome, ms, entry, cap = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
redis.call('HINCRBY', KEYS[1], outcome, 1)
redis.call('HINCRBY', KEYS[1], queue .. '|' .. outcome, 1)
if outcome ~= 'retry' then redis.call('HINCRBY', KEYS[1], queue .. '|ms', ms) end
redis.call('EXPIRE', KEYS[1], ARGV[6])
for i = 2, 4 do
  redis.call('HINCRBY', KEYS[i], queue .. '|' .. outcome, 1)
  if outcome ~= 'retry' then redis.call('HINCRBY', KEYS[i], queue .. '|ms', ms) end
  redis.call('EXPIRE', KEYS[i], ARGV[5 + i])
end
if outcome ~= 'retry' then
  local ok = outcome == 'ok' and 1 or 0
  redis.call('LPUSH', KEYS[5], entry)
  redis.call('HINCRBY', KEYS[6], '|all', 1)
  redis.call('HINCRBY', KEYS[6], '|ok', ok)
  redis.call('HINCRBY', KEYS[6], queue .. '|all', 1)
  redis.call('HINCRBY', KEYS[6], queue .. '|ok', ok)
  while redis.call('LLEN', KEYS[5]) > cap do
    local old = redis.call('RPOP', KEYS[5])
    local old_ok, old_queue = string.match(old, '^(%d)|[^|]*|[^|]*|(.*)|[^|]*|[^|]*$')
    if old_queue then
      local was_ok = tonumber(old_ok)
      redis.call('HINCRBY', KEYS[6], '|all', -1)
      redis.call('HINCRBY', KEYS[6], '|ok', 0 - was_ok)
      if redis.call('HINCRBY', KEYS[6], old_queue .. '|all', -1) <= 0 then
        redis.call('HDEL', KEYS[6], old_queue .. '|all', old_queue .. '|ok')
      else
        redis.call('HINCRBY', KEYS[6], old_queue .. '|ok', 0 - was_ok)
      end
    end
  end
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
    script_keys, args = record_arguments(queue, outcome, duration_ms, job_id, job_name, ended_at)
    # EVAL, not EVALSHA: it cannot fail with NOSCRIPT inside RQ's own pipeline (after a Redis restart), and
    # redis-py would add a SCRIPT EXISTS round trip before every pipeline holding a Script.
    pipeline.eval(RECORD_LUA, len(script_keys), *script_keys, *args)


def record_arguments(
    queue: str,
    outcome: Outcome,
    duration_ms: int,
    job_id: str,
    job_name: str,
    ended_at: float | None = None,
) -> tuple[list[str], list[str]]:
    """The KEYS and ARGV of RECORD_LUA for one ended attempt."""
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
    script_keys = [*bucket_keys, keys.OUTCOMES, keys.OUTCOME_COUNTS]
    args = [queue, outcome, str(max(0, int(duration_ms))), entry, str(keys.OUTCOMES_CAP), *ttls]
    return script_keys, args


# --- reading ----------------------------------------------------------------------------------------


def queue_rate_reads(pipeline: Pipeline, now: float) -> None:
    """Queue the reads behind successRate and processingRate (parse with `parse_rates`)."""
    pipeline.hgetall(keys.OUTCOME_COUNTS)
    current = int(now // MINUTE.seconds)
    for minute in range(current - 5, current + 1):
        pipeline.hgetall(keys.stats_bucket(MINUTE.name, minute))


@dataclass(frozen=True)
class Rates:
    """successRate over the last 1000 finished jobs, processingRate (finished per minute over 5 minutes);
    overall and per queue."""

    success_rate: float | None
    processing_rate: float
    per_queue: dict[str, tuple[float | None, float]]

    def of(self, queue: str) -> tuple[float | None, float]:
        return self.per_queue.get(queue, (None, 0.0))


def _success_rates(counts: dict[bytes, bytes]) -> tuple[float | None, dict[str, float]]:
    tallies: dict[str, list[int]] = {}
    for field, value in counts.items():
        queue, _, kind = field.decode(errors="replace").rpartition(FIELD_SEPARATOR)
        tallies.setdefault(queue, [0, 0])[kind == "all"] = count_value(value)
    rates = {queue: round(100.0 * ok / total, 2) for queue, (ok, total) in tallies.items() if total > 0}
    return rates.pop("", None), rates


def parse_rates(results: list[Any], now: float) -> Rates:
    counts, *minutes = results
    overall_success, success_by_queue = _success_rates(counts)
    # The oldest minute bucket is only partly inside the 5-minute window.
    oldest_weight = 1.0 - (now % MINUTE.seconds) / MINUTE.seconds
    finished: dict[str, float] = {}
    for index, fields in enumerate(minutes):
        weight = oldest_weight if index == 0 else 1.0
        for field, value in fields.items():
            queue, _, kind = field.decode(errors="replace").rpartition(FIELD_SEPARATOR)
            if kind in ("ok", "fail"):
                finished[queue] = finished.get(queue, 0.0) + count_value(value) * weight
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


# Sums every field over the given bucket hashes server-side: a 30-day total is one small reply, not 30 hashes.
_SUM_BUCKETS_LUA = """
local sums, order = {}, {}
for _, key in ipairs(KEYS) do
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local field = fields[i]
    if not sums[field] then sums[field] = 0; table.insert(order, field) end
    sums[field] = sums[field] + (tonumber(fields[i + 1]) or 0)  -- not a number (another program's write): 0
  end
end
local out = {}
for _, field in ipairs(order) do table.insert(out, field); table.insert(out, sums[field]) end
return out
"""


def _parse_fields(fields: dict[bytes, Any]) -> dict[str, dict[str, int]]:
    per_queue: dict[str, dict[str, int]] = {}
    for field, value in fields.items():
        queue, _, kind = field.decode(errors="replace").rpartition(FIELD_SEPARATOR)
        per_queue.setdefault(queue, _empty_counts())[kind] = count_value(value)
    return per_queue


def window_bucket_keys(period: str, now: float) -> list[str]:
    """The bucket keys that together cover the period back from `now` (see WINDOWS)."""
    coarse, _ = PERIODS[period]
    seconds, edge = WINDOWS[period]
    start = now - seconds
    first_whole = -(-int(start) // coarse.seconds)  # the first coarse bucket that starts inside the window
    current = int(now // coarse.seconds)
    bucket_keys = [keys.stats_bucket(coarse.name, bucket) for bucket in range(first_whole, current + 1)]
    edge_end = first_whole * coarse.seconds // edge.seconds
    bucket_keys += [keys.stats_bucket(edge.name, bucket) for bucket in range(int(start // edge.seconds), edge_end)]
    return bucket_keys


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
    """Per queue: jobs finished in the period back from now (and, with `with_series`, per bucket of the chart's
    series); sorted by queue name. One round trip: the totals are summed in Redis."""
    from app.domain.timeutil import iso_from_timestamp

    now = time.time() if now is None else now
    window_keys = window_bucket_keys(period, now)
    granularity, count = PERIODS[period]
    starts = _bucket_starts(granularity, count, now) if with_series else []
    with connection.pipeline(transaction=False) as pipe:
        pipe.eval(_SUM_BUCKETS_LUA, len(window_keys), *window_keys)
        for bucket_number in starts:
            pipe.hgetall(keys.stats_bucket(granularity.name, bucket_number))
        flat, *raw_buckets = pipe.execute()
    totals_by_queue = _parse_fields(dict(zip(flat[::2], flat[1::2], strict=True)))
    totals_by_queue.pop("", None)  # the minute buckets' all-queue fields
    buckets = [_parse_fields(fields) for fields in raw_buckets]
    names = sorted(set(queue_names).union(totals_by_queue, *(bucket.keys() for bucket in buckets)))
    trends = []
    for name in names:
        entry: dict[str, Any] = {
            "queueName": name,
            "period": period,
            **_summary({**_empty_counts(), **totals_by_queue.get(name, {})}),
        }
        if with_series:
            entry["series"] = []
            for start, counts in zip(starts, buckets, strict=True):
                point = _summary({**_empty_counts(), **counts.get(name, {})})
                entry["series"].append(
                    {
                        "start": iso_from_timestamp(start * granularity.seconds),
                        "successful": point["successful"],
                        "failed": point["failed"],
                        "avgProcessingTime": point["avgProcessingTime"],
                    }
                )
        trends.append(entry)
    return trends
