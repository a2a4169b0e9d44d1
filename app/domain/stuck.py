"""Active runs and stuck alerts: jobs whose current run started at least the first threshold ago.

Round trips do not grow with the number of active jobs, and neither does Redis's work: one script counts the
runs past each threshold and returns the fields of the N longest-running only, through an index of start times
(so Redis does not read every running job on every call). Stuck alerts: the queue list, then that script; one
queue's live view: that script alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError

from app.domain import keys
from app.domain.jobs import job_key, summarize_raw
from app.domain.queues import QueueKeys, list_queue_names, parse_queue_names, queue_names_reads
from app.domain.severity import DEFAULT_STUCK_THRESHOLDS, SEVERITIES, StuckThresholds
from app.domain.states import JobState

DEFAULT_STUCK_LIMIT = 100
MAX_STUCK_LIMIT = 1000


def _parse_started_at(raw: bytes | None) -> float | None:
    if not raw:
        return None
    try:
        text = raw.decode().rstrip("Z")
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


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

local function started_at(entry)
  return redis.call('HGET', job_prefix .. job_id_of(entry), 'started_at')
end

local function emit(queue, entry)  -- queue, job id, then the job's fields
  local job_id = job_id_of(entry)
  table.insert(runs, queue)
  table.insert(runs, job_id)
  for _, value in ipairs(redis.call('HMGET', job_prefix .. job_id, unpack(fields))) do table.insert(runs, value) end
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
  local registry = redis.call('ZRANGE', registry_prefix .. queue, 0, -1)
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
        started = _parse_started_at(raw.get(b"started_at"))
        running_ms = max(0, int((now - started) * 1000)) if started is not None else 0
        runs.append(
            {
                "queueName": flat_runs[at].decode(),
                "jobId": flat_runs[at + 1].decode(),
                "raw": raw,
                "runningFor": running_ms,
            }
        )
    runs.sort(key=lambda run: run["runningFor"], reverse=True)
    return runs, counts


def describe_run(connection: Redis, run: dict[str, Any]) -> dict[str, Any]:
    """An active run as the per-queue live view shows it (shown even when its payload cannot be read)."""
    summary = summarize_raw(connection, run["jobId"], run["queueName"], JobState.ACTIVE.value, run["raw"] or {})
    view = {
        "jobId": run["jobId"],
        "jobName": summary.get("jobName"),
        "startedAt": summary.get("processedOn"),
        "runningFor": run["runningFor"],
        "workerName": summary.get("workerName"),
        "attemptsMade": summary.get("attemptsMade", 0),
    }
    if "dataError" in summary:
        view["dataError"] = summary["dataError"]
    if summary.get("unreadable"):
        view["unreadable"] = True
    return view | {"data": summary.get("data")}


def stuck_alert(
    connection: Redis, run: dict[str, Any], severity: str, view: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`view`: the run's `describe_run` when the caller already has it."""
    alert = dict(view) if view is not None else describe_run(connection, run)
    running_for = alert.pop("runningFor")
    return {**alert, "queueName": run["queueName"], "severity": severity, "stuckDuration": running_for}


def _severity_counts(runs: QueueRuns) -> dict[str, int]:
    """Cumulative counts per threshold (started at or before each) -> runs per band."""
    bands = runs.started_before
    counts = {
        severity: bands[at] - (bands[at + 1] if at + 1 < len(bands) else 0) for at, severity in enumerate(SEVERITIES)
    }
    return {severity: max(0, count) for severity, count in counts.items()}


def summarize_stuck(counts: dict[str, QueueRuns]) -> dict[str, Any]:
    """{"total", "bySeverity", "byQueue": {queue: {"total", <severity>: n}}} (queues with a stuck run only)."""
    by_severity = dict.fromkeys(SEVERITIES, 0)
    by_queue = {}
    for queue_name, runs in sorted(counts.items()):
        bands = _severity_counts(runs)
        total = sum(bands.values())
        if total:
            by_queue[queue_name] = {"total": total, **bands}
            for severity, count in bands.items():
                by_severity[severity] += count
    return {"total": sum(by_severity.values()), "bySeverity": by_severity, "byQueue": by_queue}


def get_stuck_page(
    connection: Redis,
    thresholds: StuckThresholds = DEFAULT_STUCK_THRESHOLDS,
    limit: int = DEFAULT_STUCK_LIMIT,
    queue_name: str | None = None,
    now: float | None = None,
    queue_names: list[str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The `limit` longest-stuck alerts, longest first, and the summary of every stuck run; two round trips
    (the queue list, unless given in `queue_names`; one script), Redis's work bounded by the limit."""
    now = time.time() if now is None else now
    names = [queue_name] if queue_name else queue_names if queue_names is not None else list_queue_names(connection)
    runs, counts = longest_runs(connection, names, thresholds.minutes, limit, now)
    alerts = []
    for run in runs[:limit]:
        severity = thresholds.severity_of(run["runningFor"])
        if severity is not None:
            alerts.append(stuck_alert(connection, run, severity))
    return alerts, summarize_stuck(counts)


def get_stuck_summary(
    connection: Redis,
    thresholds: StuckThresholds = DEFAULT_STUCK_THRESHOLDS,
    now: float | None = None,
    queue_names: list[str] | None = None,
) -> dict[str, Any]:
    return get_stuck_page(connection, thresholds, 0, now=now, queue_names=queue_names)[1]


def queue_names_read(pipe: Any) -> Callable[[list[Any]], list[str]]:
    """The queue list's reads on `pipe` (to join another round trip, the auth lookup's), and their parser."""
    queue_names_reads(pipe)
    return lambda results: parse_queue_names(*results)


def get_stuck_jobs(
    connection: Redis,
    thresholds: StuckThresholds = DEFAULT_STUCK_THRESHOLDS,
    queue_name: str | None = None,
    now: float | None = None,
    limit: int = MAX_STUCK_LIMIT,
) -> list[dict[str, Any]]:
    """Stuck alerts with severity bands, longest first (at most `limit`)."""
    return get_stuck_page(connection, thresholds, limit, queue_name, now)[0]
