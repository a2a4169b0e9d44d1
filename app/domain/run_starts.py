"""The run-start index and the scripts that read it: which runs have lasted past given cutoffs, counted per queue,
and the fields of the N longest-running, in one call whose cost is bounded by N, not by the number of running jobs
(rqmon:run-starts:<queue> indexes each queue's started registry by start time; a scan for servers without ZDIFF).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError

from app.domain import keys
from app.domain.job_data import safe_text
from app.domain.jobs import job_key
from app.domain.queues import QueueKeys
from app.domain.timeutil import rq_epoch

# The hash fields a run's summary reads (not exc_info or results, which can be large).
RUN_FIELDS = ("data", "meta", "status", "created_at", "enqueued_at", "started_at", "worker_name", "description")


def _fields(values: list[bytes | None]) -> dict[bytes, bytes]:
    return {name.encode(): value for name, value in zip(RUN_FIELDS, values, strict=True) if value is not None}


# What both scripts below share: their ARGV, the job id of a registry entry, the start score of a started_at text,
# and how a selected run is returned.
# ARGV: started-registry key prefix, job key prefix, index key prefix, index TTL, limit, "1" to take the limit per
# queue (else over all the queues), band count b, b cutoff scores (YYYYMMDDHHMMSS), b cutoff texts (RQ's started_at
# format), field count n, n field names, queue names...
# Returns {counts, runs}: counts = per queue: name, runs in its registry, then per band the runs started at or
# before the band's cutoff (exact: RQ's started_at texts compare as times); runs = per selected run: queue, job id,
# its n fields. The runs selected are the `limit` longest-running that started at or before the FIRST cutoff.
_RUN_SCRIPT_PRELUDE = """
local registry_prefix, job_prefix, index_prefix = ARGV[1], ARGV[2], ARGV[3]
local ttl, limit, per_queue, band_count = ARGV[4], tonumber(ARGV[5]), ARGV[6] == '1', tonumber(ARGV[7])
local cutoff_scores, cutoff_texts = {}, {}
for b = 1, band_count do
  cutoff_scores[b] = ARGV[7 + b]
  cutoff_texts[b] = ARGV[7 + band_count + b]
end
local field_count = tonumber(ARGV[8 + 2 * band_count])
local fields = {}
for f = 1, field_count do fields[f] = ARGV[8 + 2 * band_count + f] end
local queues = {}
for i = 9 + 2 * band_count + field_count, #ARGV do table.insert(queues, ARGV[i]) end
local counts, runs = {}, {}

local function job_id_of(entry)  -- entries are job_id:execution_id (32 hex) in RQ 2+
  local length = string.len(entry)
  if length > 33 and string.byte(entry, length - 32) == 58 and string.find(entry, '^%x+$', length - 31) then
    return string.sub(entry, 1, length - 33)
  end
  return entry
end

local function start_score(text)  -- '2026-01-22T10:00:00.123456Z' -> 20260122100000; unreadable -> 1
  local digits = string.sub(text, 1, 4) .. string.sub(text, 6, 7) .. string.sub(text, 9, 10)
    .. string.sub(text, 12, 13) .. string.sub(text, 15, 16) .. string.sub(text, 18, 19)
  local score = tonumber(digits)
  if score and score > 0 then return score end
  return 1
end

-- Another program's key of another type where a job's hash or a registry should be reads as absent (pcall).
local function read_or(default, ...)
  local result = redis.pcall(...)
  if type(result) == 'table' and result.err then return default end
  return result
end

local function started_at(entry)
  return read_or(false, 'HGET', job_prefix .. job_id_of(entry), 'started_at')
end

local function emit(queue, entry)  -- queue, job id, then the job's fields
  local job_id = job_id_of(entry)
  table.insert(runs, queue)
  table.insert(runs, job_id)
  local values = read_or({}, 'HMGET', job_prefix .. job_id, unpack(fields))
  for f = 1, field_count do table.insert(runs, values[f] or false) end
end

local function by_start(a, b) return a[1] < b[1] end
"""


# Runs that started before cutoffs, counted and the longest-running read in Redis in one call, at a cost bounded
# by the limit, not by the number of running jobs: rqmon:run-starts:<queue> indexes the queue's started-registry
# entries by start time (seconds, as the number YYYYMMDDHHMMSS read from RQ's started_at text). Each call prunes
# the index to the registry, reads started_at only for entries it has not seen, counts with ZCOUNT (reading
# started_at only for the entries in each cutoff's own second), then takes the `limit` oldest entries: those of
# seconds before the limit's one at once, those of the limit's second ordered by their exact started_at.
# ZDIFF needs Redis 6.2; on older servers the script fails and `_STARTED_BEFORE_SCAN_LUA` reads every run instead.
_STARTED_BEFORE_LUA = (
    _RUN_SCRIPT_PRELUDE
    + """
local function refresh(queue)
  local registry, index = registry_prefix .. queue, index_prefix .. queue
  local registry_type, index_type = redis.call('TYPE', registry)['ok'], redis.call('TYPE', index)['ok']
  if registry_type ~= 'zset' and registry_type ~= 'none' or index_type ~= 'zset' and index_type ~= 'none' then
    redis.call('DEL', index)  -- a registry of another type has no runs; an index of another type is rebuilt
    if registry_type ~= 'zset' then return 0 end
  end
  local ended = redis.call('ZDIFF', 2, index, registry)
  for at = 1, #ended, 1000 do redis.call('ZREM', index, unpack(ended, at, math.min(at + 999, #ended))) end
  for _, entry in ipairs(redis.call('ZDIFF', 2, registry, index)) do
    local started = started_at(entry)
    if started then redis.call('ZADD', index, start_score(started), entry) end
  end
  redis.call('EXPIRE', index, ttl)
  return redis.call('ZCARD', registry)
end

local function started_before(index, b)  -- runs whose start is at or before cutoff b (unreadable ones: never)
  local n = redis.call('ZCOUNT', index, '(1', '(' .. cutoff_scores[b])
  for _, entry in ipairs(redis.call('ZRANGEBYSCORE', index, cutoff_scores[b], cutoff_scores[b])) do
    local started = started_at(entry)
    if started and started <= cutoff_texts[b] then n = n + 1 end
  end
  return n
end

local function started_by(group, score)  -- runs of `group` whose indexed start is at or before `score`
  local n = 0
  for _, queue in ipairs(group) do n = n + redis.call('ZCOUNT', index_prefix .. queue, '(1', score) end
  return n
end

-- The `limit` oldest runs of `group` (queue names) that started at or before the first cutoff, without reading
-- more entries than it returns: the second of the limit-th oldest start is found by bisection on the index
-- scores (ZCOUNTs only), then the runs of earlier seconds are taken at once, those of that second by exact start.
local function select(group)
  local cutoff = tonumber(cutoff_scores[1])
  local bound = cutoff
  if started_by(group, cutoff_scores[1]) > limit then
    local low = cutoff
    for _, queue in ipairs(group) do
      local index = index_prefix .. queue
      local first = redis.call('ZRANGEBYSCORE', index, '(1', cutoff_scores[1], 'WITHSCORES', 'LIMIT', 0, 1)
      if first[2] then low = math.min(low, tonumber(first[2])) end
    end
    local high = cutoff  -- invariant: started_by(high) >= limit
    while low < high do
      local middle = math.floor((low + high) / 2)
      if started_by(group, string.format('%.0f', middle)) >= limit then high = middle else low = middle + 1 end
    end
    bound = high
  end
  bound = string.format('%.0f', bound)
  local taken, ties = 0, {}
  for _, queue in ipairs(group) do
    local index = index_prefix .. queue
    for _, entry in ipairs(redis.call('ZRANGEBYSCORE', index, '(1', '(' .. bound)) do
      emit(queue, entry)
      taken = taken + 1
    end
    for _, entry in ipairs(redis.call('ZRANGEBYSCORE', index, bound, bound)) do
      local started = started_at(entry)
      if started and started <= cutoff_texts[1] then table.insert(ties, {started, queue, entry}) end
    end
  end
  table.sort(ties, by_start)
  for at = 1, math.min(#ties, limit - taken) do emit(ties[at][2], ties[at][3]) end
end

for _, queue in ipairs(queues) do
  table.insert(counts, queue)
  table.insert(counts, refresh(queue))
  local index = index_prefix .. queue
  for b = 1, band_count do table.insert(counts, started_before(index, b)) end
end
if limit > 0 then
  if per_queue then
    for _, queue in ipairs(queues) do select({queue}) end
  else
    select(queues)
  end
end
return {counts, runs}
"""
)


# The same answer without the index, for Redis before 6.2 (no ZDIFF) or a read-only replica: reads started_at
# of every running job on every call. Same ARGV (the index prefix and TTL unused) and reply.
_STARTED_BEFORE_SCAN_LUA = (
    _RUN_SCRIPT_PRELUDE
    + """
local candidates = {}
for _, queue in ipairs(queues) do
  local registry = read_or({}, 'ZRANGE', registry_prefix .. queue, 0, -1)
  local started_counts, own = {}, {}
  for b = 1, band_count do started_counts[b] = 0 end
  for _, entry in ipairs(registry) do
    local started = started_at(entry)
    if started and start_score(started) > 1 then
      for b = 1, band_count do
        if started <= cutoff_texts[b] then started_counts[b] = started_counts[b] + 1 end
      end
      if started <= cutoff_texts[1] then table.insert(per_queue and own or candidates, {started, queue, entry}) end
    end
  end
  table.insert(counts, queue)
  table.insert(counts, #registry)
  for b = 1, band_count do table.insert(counts, started_counts[b]) end
  if per_queue then
    table.sort(own, by_start)
    for at = 1, math.min(#own, limit) do emit(own[at][2], own[at][3]) end
  end
end
table.sort(candidates, by_start)
for at = 1, math.min(#candidates, limit) do emit(candidates[at][2], candidates[at][3]) end
return {counts, runs}
"""
)


def _index_unusable(error: ResponseError) -> bool:
    message = str(error).lower()
    return "unknown redis command" in message or "unknown command" in message or "readonly" in message


@dataclass
class QueueRuns:
    """One queue's running jobs: how many are in its registry, and how many started at or before each cutoff."""

    active: int
    started_before: list[int]


def longest_runs(
    connection: Redis,
    queue_names: list[str],
    bands_minutes: tuple[float, ...],
    limit: int,
    now: float,
    per_queue: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, QueueRuns]]:
    """The `limit` longest-running runs (over all the queues, or `per_queue`) among those that have lasted at
    least `bands_minutes[0]`, with their job fields and how long they have run, longest first; and per queue the
    runs that have lasted at least each band. One round trip; Redis's work is bounded by the limit."""
    if not queue_names:
        return [], {}
    arguments = _longest_runs_arguments(queue_names, bands_minutes, limit, now, per_queue)
    try:
        reply = connection.eval(_STARTED_BEFORE_LUA, 0, *arguments)
    except ResponseError as error:
        if not _index_unusable(error):
            raise
        reply = connection.eval(_STARTED_BEFORE_SCAN_LUA, 0, *arguments)
    return parse_longest_runs(reply, len(bands_minutes), now)


def _longest_runs_arguments(
    queue_names: list[str], bands_minutes: tuple[float, ...], limit: int, now: float, per_queue: bool
) -> list[Any]:
    cutoffs = [datetime.fromtimestamp(now - minutes * 60, UTC) for minutes in bands_minutes]
    return [
        QueueKeys("").active,
        job_key(""),
        keys.run_starts(""),
        keys.RUN_STARTS_TTL_SECONDS,
        limit,
        "1" if per_queue else "0",
        len(cutoffs),
        *(cutoff.strftime("%Y%m%d%H%M%S") for cutoff in cutoffs),
        *(cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for cutoff in cutoffs),
        len(RUN_FIELDS),
        *RUN_FIELDS,
        *queue_names,
    ]


def longest_runs_reads(
    pipe: Any, queue_names: list[str], bands_minutes: tuple[float, ...], limit: int, now: float
) -> None:
    """Queue `longest_runs` on a caller's pipeline (parse with `parse_longest_runs`). A server without ZDIFF answers
    it with an error (`stuck_index_unusable`): call `longest_runs` then, which falls back to scanning."""
    pipe.eval(_STARTED_BEFORE_LUA, 0, *_longest_runs_arguments(queue_names, bands_minutes, limit, now, False))


def stuck_index_unusable(reply: Any) -> bool:
    return isinstance(reply, ResponseError) and _index_unusable(reply)


def parse_longest_runs(
    reply: list[Any], cutoff_count: int, now: float
) -> tuple[list[dict[str, Any]], dict[str, QueueRuns]]:
    flat_counts, flat_runs = reply
    counts_width = 2 + cutoff_count
    counts = {
        flat_counts[at].decode(): QueueRuns(
            int(flat_counts[at + 1]), [int(n) for n in flat_counts[at + 2 : at + counts_width]]
        )
        for at in range(0, len(flat_counts), counts_width)
    }
    width = 2 + len(RUN_FIELDS)
    runs = []
    for at in range(0, len(flat_runs), width):
        raw = _fields(flat_runs[at + 2 : at + width])
        started = rq_epoch(raw.get(b"started_at"))
        running_ms = max(0, int((now - started) * 1000)) if started is not None else 0
        runs.append(
            {
                "queueName": flat_runs[at].decode(),
                "jobId": safe_text(flat_runs[at + 1].decode("utf-8", "surrogateescape")),
                "raw": raw,
                "runningFor": running_ms,
            }
        )
    runs.sort(key=lambda run: run["runningFor"], reverse=True)
    return runs, counts
