"""Worker history that outlives the workers (API.md § Workers, /performance/metrics and /details): its recording.
Reading it is app/domain/worker_performance.py.

- Every ended attempt (outcomes.record_end, in the worker's own pipeline, inside its one script): per time bucket (hour,
  6 hours, day) the counters of its worker, its queue and the whole system, and a duration histogram for p95;
  the worker's last 50 attempts, the deployment's last 50, and the worker's last end time.
- Once a minute the ticker samples the queue sizes and busy/active workers (summed per bucket with their count,
  so a bucket's mean is sum / n) and each MonitoredWorker's memory and CPU (its last hour).
Every key has a TTL (WORKER_HISTORY_DAYS, plus the bucket's span) or a cap; see keys.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline

from app.domain import keys
from app.domain.counters import bucket_index
from app.domain.history import Outcome

RETENTION_SECONDS = keys.WORKER_HISTORY_DAYS * 86400
MEMORY_TTL_SECONDS = 3700
# Fields and prefixes of a stats bucket. The duration histogram has the Prometheus histogram's bounds
# (counters.DURATION_BUCKETS, the last bucket is everything longer), under `b:`: the `d:` fields of buckets recorded
# before had other bounds and are not read (they expire with their buckets).
SYSTEM, WORKER, QUEUE, DURATION, GENERATION = "s", "w:", "q:", "b:", "g"


@dataclass(frozen=True)
class Granularity:
    name: str
    seconds: int


HOUR, QUARTER_DAY, DAY = Granularity("h", 3600), Granularity("q", 21600), Granularity("d", 86400)
GRANULARITIES = (HOUR, QUARTER_DAY, DAY)


# KEYS: the three stats buckets, the worker's recent list, the deployment's, the last-end set.
# ARGV: worker ("" unknown), queue, failed (1|0), ms, duration bucket, entry, cap, now, ttls (h q d), retention,
# the bucket's generation if it is new (`g`: a bucket rebuilt after a flush is told from the one kept parsed).
# A counter field holds "<attempts> <failed> <ms>": one field per worker (or queue) and bucket, so that reading a
# month of 500 workers' history parses 15,000 fields, not 45,000.
RECORD_LUA = """
local worker, queue, failed, ms, cap, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[7], ARGV[8]
local function add(key, field)
  local n, f, total = 0, 0, 0
  local packed = redis.call('HGET', key, field)
  if packed then
    local a, b, c = string.match(packed, '^(%d+) (%d+) (%d+)$')
    if a then n, f, total = tonumber(a), tonumber(b), tonumber(c) end
  end
  redis.call('HSET', key, field, string.format('%d %d %d', n + 1, f + failed, total + ms))
end
for i = 1, 3 do
  add(KEYS[i], 's')
  add(KEYS[i], 'q:' .. queue)
  if worker ~= '' then add(KEYS[i], 'w:' .. worker) end
  redis.call('HINCRBY', KEYS[i], 'b:' .. ARGV[5], 1)
  redis.call('HSETNX', KEYS[i], 'g', ARGV[13])
  redis.call('EXPIRE', KEYS[i], ARGV[8 + i])
end
if worker ~= '' then
  redis.call('LPUSH', KEYS[4], ARGV[6])
  redis.call('LTRIM', KEYS[4], 0, cap - 1)
  redis.call('EXPIRE', KEYS[4], ARGV[12])
  redis.call('ZADD', KEYS[6], now, worker)
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - ARGV[12])
end
redis.call('LPUSH', KEYS[5], ARGV[6])
redis.call('LTRIM', KEYS[5], 0, cap - 1)
return 1
"""


def record_attempt(
    pipeline: Pipeline | Redis,
    worker: str | None,
    queue: str,
    outcome: Outcome,
    duration_ms: int,
    job_id: str,
    job_name: str,
    ended_at: float | None = None,
) -> None:
    """Queue the worker-side record of one ended attempt (outcome ok, fail or retry) on `pipeline`."""
    script_keys, args = record_arguments(worker, queue, outcome, duration_ms, job_id, job_name, ended_at)
    pipeline.eval(RECORD_LUA, len(script_keys), *script_keys, *args)


def record_arguments(
    worker: str | None,
    queue: str,
    outcome: Outcome,
    duration_ms: int,
    job_id: str,
    job_name: str,
    ended_at: float | None = None,
) -> tuple[list[str], list[str]]:
    """The KEYS and ARGV of RECORD_LUA for one ended attempt."""
    ended_at = time.time() if ended_at is None else ended_at
    duration_ms = max(0, int(duration_ms))
    entry = json.dumps(
        {
            "t": round(ended_at, 3),
            "w": worker or "",
            "q": queue,
            "j": job_id,
            "n": job_name,
            "o": outcome,
            "ms": duration_ms,
        },  # fmt: skip
        separators=(",", ":"),
    )
    buckets = [keys.worker_stats(g.name, int(ended_at // g.seconds)) for g in GRANULARITIES]
    script_keys = [*buckets, keys.worker_recent(worker or "-"), keys.WORKER_ACTIVITY, keys.WORKER_LAST_END]
    ttls = [str(RETENTION_SECONDS + g.seconds) for g in GRANULARITIES]
    args = [
        worker or "",
        queue,
        "0" if outcome == "ok" else "1",
        str(duration_ms),
        str(bucket_index(duration_ms)),
        entry,
        str(keys.WORKER_RECENT_CAP),
        repr(ended_at),
        *ttls,
        str(RETENTION_SECONDS),
        uuid.uuid4().hex[:16],
    ]
    return script_keys, args


# --- the once-a-minute sample ------------------------------------------------------------------------

# KEYS: the three sample buckets. ARGV: ttls (h q d), queue size, busy, active, now, then name, rss, cpu per
# MonitoredWorker.
_SAMPLE_LUA = f"""
for i = 1, 3 do
  redis.call('HINCRBY', KEYS[i], 'n', 1)
  redis.call('HINCRBY', KEYS[i], 'queue_size', ARGV[4])
  redis.call('HINCRBY', KEYS[i], 'busy_workers', ARGV[5])
  redis.call('HINCRBY', KEYS[i], 'active_workers', ARGV[6])
  redis.call('EXPIRE', KEYS[i], ARGV[i])
end
for i = 8, #ARGV, 3 do
  local key = ARGV[i]
  redis.call('RPUSH', key, ARGV[7] .. '|' .. ARGV[i + 1] .. '|' .. ARGV[i + 2])
  redis.call('LTRIM', key, -{keys.WORKER_MEMORY_CAP}, -1)
  redis.call('EXPIRE', key, {MEMORY_TTL_SECONDS})
end
return 1
"""


def take_sample(connection: Redis, now: float, queue_size: int, workers: Iterable[dict[str, Any]]) -> bool:
    """Record this minute's sample once for the deployment (the first tick of a minute that gets here); every
    other tick costs one small SET."""
    if not connection.set(keys.worker_sample_mark(int(now // 60)), 1, nx=True, ex=120):
        return False
    listed = list(workers)
    busy = sum(1 for worker in listed if worker["status"] == "busy")
    active = sum(1 for worker in listed if worker["liveness"] == "active")
    memory: list[str] = []
    for worker in listed:
        if worker["monitored"] and worker["liveness"] != "stale" and worker["memory_usage_mb"] is not None:
            cpu = worker["cpu_percent"]
            name, rss = keys.worker_memory(worker["worker_name"]), str(worker["memory_usage_mb"])
            memory += [name, rss, "" if cpu is None else str(cpu)]
    buckets = [keys.worker_samples(g.name, int(now // g.seconds)) for g in GRANULARITIES]
    ttls = [str(RETENTION_SECONDS + g.seconds) for g in GRANULARITIES]
    counts = [str(queue_size), str(busy), str(active), repr(round(now, 3))]
    connection.eval(_SAMPLE_LUA, 3, *buckets, *ttls, *counts, *memory)
    return True
