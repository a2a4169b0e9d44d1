"""Active runs and stuck alerts: jobs whose current run started at least the first threshold ago.

Round trips do not grow with the number of active jobs. Stuck alerts: the queue list, then one script that
finds the runs started before the cutoff (through an index of start times, so Redis does not read every running
job on every call) and returns their fields. Active runs (one queue's live view): the
registry, every run's start time, then the fields of the runs shown.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError

from app.domain import keys
from app.domain.jobs import job_key, started_entry_job_id, summarize_raw
from app.domain.queues import QueueKeys, list_queue_names
from app.domain.severity import DEFAULT_THRESHOLDS_MINUTES, severity_for


def _parse_started_at(raw: bytes | None) -> float | None:
    if not raw:
        return None
    try:
        text = raw.decode().rstrip("Z")
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def active_runs(connection: Redis, queue_names: list[str], now: float) -> list[dict[str, Any]]:
    """Every job in the started registries of `queue_names`, with how long its current run has lasted.

    Only `started_at` is read here (small replies, however many jobs run); `load_jobs` fetches the full
    hashes of the runs that are shown.
    """
    with connection.pipeline(transaction=False) as pipe:
        for name in queue_names:
            pipe.zrange(QueueKeys(name).active, 0, -1)
        registries = pipe.execute()
    entries = [
        (name, started_entry_job_id(entry.decode()))
        for name, registry in zip(queue_names, registries, strict=True)
        for entry in registry
    ]
    with connection.pipeline(transaction=False) as pipe:
        for _, job_id in entries:
            pipe.hget(job_key(job_id), "started_at")
        starts = pipe.execute()
    runs = []
    for (queue_name, job_id), started_at in zip(entries, starts, strict=True):
        started = _parse_started_at(started_at)
        running_ms = int((now - started) * 1000) if started is not None else 0
        runs.append({"queueName": queue_name, "jobId": job_id, "raw": None, "runningFor": max(0, running_ms)})
    return runs


# The hash fields a run's summary reads (not exc_info or results, which can be large).
RUN_FIELDS = ("data", "meta", "status", "created_at", "enqueued_at", "started_at", "worker_name", "description")


def load_jobs(connection: Redis, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill in each run's job fields, in one round trip."""
    with connection.pipeline(transaction=False) as pipe:
        for run in runs:
            pipe.hmget(job_key(run["jobId"]), RUN_FIELDS)
        for run, values in zip(runs, pipe.execute(), strict=True):
            run["raw"] = _fields(values)
    return runs


def _fields(values: list[bytes | None]) -> dict[bytes, bytes]:
    return {name.encode(): value for name, value in zip(RUN_FIELDS, values, strict=True) if value is not None}


# What both scripts below share: their ARGV, the job id of a registry entry, the start score of a started_at
# text, and how a selected run is returned.
_RUN_SCRIPT_PRELUDE = """
local registry_prefix, job_prefix, index_prefix = ARGV[1], ARGV[2], ARGV[3]
local cutoff, ttl, field_count = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local fields = {}
for f = 1, field_count do fields[f] = ARGV[6 + f] end
local out = {}

local function job_id_of(entry)  -- entries are job_id:execution_id (32 hex) in RQ 2+
  local length = string.len(entry)
  if length > 33 and string.byte(entry, length - 32) == 58 and string.find(entry, '^%x+$', length - 31) then
    return string.sub(entry, 1, length - 33)
  end
  return entry
end

local function start_score(text)  -- '2026-01-22T10:00:00.123456Z' -> 20260122100000; unreadable -> 1 (selected)
  local digits = string.sub(text, 1, 4) .. string.sub(text, 6, 7) .. string.sub(text, 9, 10)
    .. string.sub(text, 12, 13) .. string.sub(text, 15, 16) .. string.sub(text, 18, 19)
  local score = tonumber(digits)
  if score and score > 0 then return score end
  return 1
end

local function emit(queue, job_id)  -- queue, job id, then the job's fields
  table.insert(out, queue)
  table.insert(out, job_id)
  for _, value in ipairs(redis.call('HMGET', job_prefix .. job_id, unpack(fields))) do
    table.insert(out, value)
  end
end
"""


# Runs that started before a cutoff, found and read in Redis in one call, without reading every running job:
# rqmon:run-starts:<queue> indexes the queue's started-registry entries by start time (seconds, as the number
# YYYYMMDDHHMMSS read from RQ's started_at text). Each call prunes the index to the registry, reads started_at
# only for entries it has not seen, then takes the entries started at or before the cutoff and returns their
# fields. The index only pre-selects: an entry's indexed start is never later than its run's real one, and
# the caller recomputes every duration from the returned started_at.
# ZDIFF needs Redis 6.2; on older servers the script fails and `_STARTED_BEFORE_SCAN_LUA` reads every run instead.
# ARGV: started-registry key prefix, job key prefix, index key prefix, cutoff, TTL, field count n,
# n field names, queue names...  Returns, per stuck run: queue, job id, then its n fields (false when absent).
_STARTED_BEFORE_LUA = (
    _RUN_SCRIPT_PRELUDE
    + """
for i = 7 + field_count, #ARGV do
  local registry, index = registry_prefix .. ARGV[i], index_prefix .. ARGV[i]
  local ended = redis.call('ZDIFF', 2, index, registry)
  for at = 1, #ended, 1000 do redis.call('ZREM', index, unpack(ended, at, math.min(at + 999, #ended))) end
  for _, entry in ipairs(redis.call('ZDIFF', 2, registry, index)) do
    local started = redis.call('HGET', job_prefix .. job_id_of(entry), 'started_at')
    if started then redis.call('ZADD', index, start_score(started), entry) end
  end
  redis.call('EXPIRE', index, ttl)
  for _, entry in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', cutoff)) do emit(ARGV[i], job_id_of(entry)) end
end
return out
"""
)


# The same answer without the index, for Redis before 6.2 (no ZDIFF) or a read-only replica: reads started_at
# of every running job on every call. Same ARGV (the index prefix and TTL unused) and reply.
_STARTED_BEFORE_SCAN_LUA = (
    _RUN_SCRIPT_PRELUDE
    + """
for i = 7 + field_count, #ARGV do
  for _, entry in ipairs(redis.call('ZRANGE', registry_prefix .. ARGV[i], 0, -1)) do
    local job_id = job_id_of(entry)
    local started = redis.call('HGET', job_prefix .. job_id, 'started_at')
    if started and start_score(started) <= cutoff then emit(ARGV[i], job_id) end
  end
end
return out
"""
)


def _index_unusable(error: ResponseError) -> bool:
    message = str(error).lower()
    return "unknown redis command" in message or "unknown command" in message or "readonly" in message


def runs_started_before(connection: Redis, queue_names: list[str], cutoff: float) -> list[dict[str, Any]]:
    """The runs of `queue_names` that started at or before `cutoff` (some later ones too, by under a second:
    the caller checks), with their job fields, in one round trip."""
    if not queue_names:
        return []
    cutoff_score = datetime.fromtimestamp(cutoff, UTC).strftime("%Y%m%d%H%M%S")
    arguments = [
        QueueKeys("").active,
        job_key(""),
        keys.run_starts(""),
        cutoff_score,
        keys.RUN_STARTS_TTL_SECONDS,
        len(RUN_FIELDS),
        *RUN_FIELDS,
        *queue_names,
    ]
    try:
        flat = connection.eval(_STARTED_BEFORE_LUA, 0, *arguments)
    except ResponseError as error:
        if not _index_unusable(error):
            raise
        flat = connection.eval(_STARTED_BEFORE_SCAN_LUA, 0, *arguments)
    width = 2 + len(RUN_FIELDS)
    return [
        {"queueName": flat[at].decode(), "jobId": flat[at + 1].decode(), "raw": _fields(flat[at + 2 : at + width])}
        for at in range(0, len(flat), width)
    ]


def describe_run(connection: Redis, run: dict[str, Any]) -> dict[str, Any]:
    """An active run as the per-queue live view shows it (shown even when its payload cannot be read)."""
    summary = summarize_raw(connection, run["jobId"], run["queueName"], "active", run["raw"] or {})
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


def stuck_alert(connection: Redis, run: dict[str, Any], severity: str) -> dict[str, Any]:
    alert = describe_run(connection, run)
    running_for = alert.pop("runningFor")
    return {**alert, "queueName": run["queueName"], "severity": severity, "stuckDuration": running_for}


def get_stuck_jobs(
    connection: Redis,
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS_MINUTES,
    queue_name: str | None = None,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """Stuck alerts with severity bands, longest first; two round trips whatever the number of jobs."""
    now = time.time() if now is None else now
    names = [queue_name] if queue_name else list_queue_names(connection)
    alerts = []
    for run in runs_started_before(connection, names, now - thresholds[0] * 60):
        run["runningFor"] = max(0, int((now - (_parse_started_at(run["raw"].get(b"started_at")) or now)) * 1000))
        severity = severity_for(run["runningFor"], thresholds)
        if severity is not None:  # it may have ended between the two reads
            alerts.append(stuck_alert(connection, run, severity))
    alerts.sort(key=lambda alert: alert["stuckDuration"], reverse=True)
    return alerts
