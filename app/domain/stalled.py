"""Stalled jobs (WORKERS.md, BullMQ's stalled-job check over RQ): an active job whose worker is gone goes back to
the head of its queue with its stalled counter + 1 (not an attempt), or fails for good past MAX_STALLED_COUNT.

A worker is gone when its registration expired or was removed, registered its death, its last heartbeat (RQ's
`last_heartbeat`, or the product's `rqmon_heartbeat_at`) is older than the stale threshold, or its pool names it
as dead. The check is one script call: it reads only the started-registry entries whose execution heartbeat
(RQ refreshes the entry's score to "now + monitoring interval + 60 s" on every heartbeat of a running job) is
old enough for their worker to be stale, plus the executions of the workers named dead; with every worker alive
it reads no job at all. The move is a second script that re-checks everything against what the first one read
(compare-and-set on the job's meta), so of several web processes and pools checking at once exactly one moves a
job. The stalled counter lives in job.meta (pickled by RQ), which is why Python computes the new meta in between.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from redis import Redis
from redis.commands.core import Script
from rq.defaults import DEFAULT_FAILURE_TTL
from rq.job import Job
from rq.results import Result
from rq.serializers import DefaultSerializer

from app.domain import keys, outcomes
from app.domain.timeutil import iso_from_timestamp

STALLED_COUNTER = "rqmon_stalled_counter"  # job.meta: how many times the job was found stalled
INTERRUPTED_COUNTER = "rqmon_interrupted_counter"  # job.meta: runs put back by a pool's shutdown
MAX_STALLED_COUNT = 1  # BullMQ's maxStalledCount default: the second stall fails the job
STALLED_REASON = "job stalled more than allowable limit"  # BullMQ's failedReason, word for word
STALLED_EXCEPTION = "StalledJobError"  # its failedException (BullMQ has none: it fails the job in a script)
# RQ's heartbeat sets a running entry's score to its last execution heartbeat + at most (monitoring interval, 30 s
# by default, + 60 s): an entry whose worker's last heartbeat is before a cutoff scores below cutoff + this.
_ENTRY_LEAD_SECONDS = 120

Mode = Literal["requeue", "fail", "interrupt"]

# Shared by both scripts. ARGV[1..5]: now (epoch), stale cutoff (epoch), the same cutoff as RQ's timestamp text,
# entry score cutoff, number n of workers named dead; then the n names. `gone(name)` is memoized per call.
# A worker or job key someone else wrote with another type reads as absent (pcall): one odd key never stops the
# recovery of every other run, and no error can leave a move half done.
_PRELUDE = """
local now, cutoff, cutoff_text = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local score_cutoff, dead_count = ARGV[4], tonumber(ARGV[5])
local dead, verdicts = {}, {}
for i = 1, dead_count do dead[ARGV[5 + i]] = true end
local next_arg = 6 + dead_count

local function gone(name)
  if not name or name == '' then return false end  -- no worker named: not ours to judge
  if dead[name] then return true end
  if verdicts[name] == nil then
    local f = redis.pcall('HMGET', 'rq:worker:' .. name, 'last_heartbeat', 'rqmon_heartbeat_at', 'death', 'birth')
    if f.err then f = {} end  -- not a hash: no worker there
    local fresh = (tonumber(f[2]) or 0) >= cutoff or (f[1] and f[1] >= cutoff_text)
    verdicts[name] = (not f[1] and not f[4]) or f[3] ~= false or not fresh
  end
  return verdicts[name]
end

local function job_id_of(entry)  -- entries are job_id:execution_id (32 hex) in RQ 2+
  local length = string.len(entry)
  if length > 33 and string.byte(entry, length - 32) == 58 and string.find(entry, '^%x+$', length - 31) then
    return string.sub(entry, 1, length - 33), string.sub(entry, length - 31)
  end
  return entry, nil
end
"""

# Finds stalled runs. ARGV after the prelude's: none. Reads rq:queues itself (every queue RQ knows).
# Returns, per stalled run: queue, registry entry, job id, worker name, raw meta (false when absent).
_FIND_LUA = (
    _PRELUDE
    + """
local out, seen = {}, {}
local function consider(queue, entry)
  if seen[entry] then return end
  seen[entry] = true
  local job_id = job_id_of(entry)
  local job = redis.pcall('HMGET', 'rq:job:' .. job_id, 'status', 'worker_name', 'meta', 'origin')
  if job.err or job[1] ~= 'started' or not gone(job[2]) then return end
  queue = queue or job[4]
  if not queue or redis.call('ZSCORE', 'rq:wip:' .. queue, entry) == false then return end
  table.insert(out, queue); table.insert(out, entry); table.insert(out, job_id)
  table.insert(out, job[2]); table.insert(out, job[3])
end
for name in pairs(dead) do
  local executions = redis.pcall('SMEMBERS', 'rq:worker:' .. name .. ':executions')
  if not executions.err then
    for _, entry in ipairs(executions) do consider(nil, entry) end
  end
end
for _, queue_key in ipairs(redis.call('SMEMBERS', 'rq:queues')) do
  local queue = string.sub(queue_key, 10)  -- 'rq:queue:' .. name
  for _, entry in ipairs(redis.call('ZRANGEBYSCORE', 'rq:wip:' .. queue, '-inf', score_cutoff)) do
    consider(queue, entry)
  end
end
return out
"""
)

# Moves the runs found above, each only if nothing changed since: still in the started registry, still started,
# same worker, still gone, same meta. ARGV after the prelude's: events stream, its cap, now as RQ's time text and
# as ISO text; then per run 8 values: mode (requeue | fail | interrupt), queue, entry, job id, worker, expected
# meta ('' = none), new meta, failure TTL.
# Returns the entries moved.
_MOVE_LUA = (
    (
        _PRELUDE
        + """
local stream, cap, now_text, event_time = ARGV[next_arg], ARGV[next_arg + 1], ARGV[next_arg + 2], ARGV[next_arg + 3]
local EVENT_FIELDS = {"""
        + ", ".join(f"'{field}'" for field in keys.POOL_EVENT_FIELDS)
        + """}
local moved = {}
for at = next_arg + 4, #ARGV, 8 do
  local mode, queue, entry, job_id = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  local worker, expected_meta, new_meta, failure_ttl = ARGV[at + 4], ARGV[at + 5], ARGV[at + 6], ARGV[at + 7]
  local job_key, registry = 'rq:job:' .. job_id, 'rq:wip:' .. queue
  local job = redis.pcall('HMGET', job_key, 'status', 'worker_name', 'meta')
  if not job.err and redis.call('ZSCORE', registry, entry) ~= false and job[1] == 'started' and job[2] == worker
      and gone(worker) and (job[3] or '') == expected_meta then
    local _, execution_id = job_id_of(entry)
    redis.call('ZREM', registry, entry)
    redis.call('ZREM', 'rqmon:run-starts:' .. queue, entry)
    redis.pcall('SREM', 'rq:worker:' .. worker .. ':executions', entry)  -- a script's error keeps what it wrote
    if execution_id then
      redis.call('DEL', 'rq:execution:' .. entry)
      redis.call('ZREM', 'rq:executions:' .. job_id, execution_id)
    end
    if mode == 'fail' then
      redis.call('HSET', job_key, 'status', 'failed', 'ended_at', now_text, 'meta', new_meta)
      redis.call('ZADD', 'rq:failed:' .. queue, now + tonumber(failure_ttl), job_id)
    else
      redis.call('HSET', job_key, 'status', 'queued', 'meta', new_meta)
      redis.call('LPUSH', 'rq:queue:' .. queue, job_id)
      redis.call('SADD', 'rq:queues', 'rq:queue:' .. queue)
    end
    -- a pool's child? app.domain.workers.monitored_value: limit, pool, slot, capabilities
    local own = redis.pcall('HGET', 'rq:worker:' .. worker, @MONITORED_FIELD@)
    if type(own) ~= 'string' then own = '' end
    local _, pool, slot = string.match(own, '^([^@SEP@]*)@SEP@([^@SEP@]*)@SEP@([^@SEP@]*)')
    local values = {event = mode == 'interrupt' and 'forceShutdown' or 'workerStalled', pool = pool or '',
      slot = slot or '', worker = worker, jobId = job_id, at = event_time,
      details = cjson.encode({action = mode, queue = queue})}
    local xadd = {'XADD', stream, 'MAXLEN', '~', cap, '*'}
    for _, field in ipairs(EVENT_FIELDS) do  -- pools.add_event's entry
      table.insert(xadd, field)
      table.insert(xadd, values[field])
    end
    redis.call(unpack(xadd))
    table.insert(moved, entry)
  end
end
return moved
"""
    )
    .replace("@MONITORED_FIELD@", f"'{keys.WORKER_MONITORED_FIELD}'")
    .replace(
        "@SEP@",
        "\\" + str(ord(keys.WORKER_MONITORED_SEPARATOR)),  # a Lua decimal escape
    )
)


@dataclass(frozen=True)
class StalledRun:
    """A run found stalled: where it is and what it was (the meta as read, to compare before moving)."""

    queue: str
    entry: str
    job_id: str
    worker: str
    raw_meta: bytes | None


@dataclass(frozen=True)
class Recovered:
    """A run this call moved: back to its queue's head (`requeue`, `interrupt`) or failed for good (`fail`)."""

    queue: str
    job_id: str
    worker: str
    action: Mode
    stalled_counter: int


def _rq_time(epoch: float) -> str:
    """RQ's own timestamp text (utcformat), comparable as a string with `last_heartbeat`."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _prelude_args(now: float, stale_seconds: float, dead_workers: list[str]) -> list[Any]:
    cutoff = now - stale_seconds
    score_cutoff = max(now, cutoff + _ENTRY_LEAD_SECONDS)  # below `now`: expired for RQ too, cheap to include
    return [repr(now), repr(cutoff), _rq_time(cutoff), repr(score_cutoff), len(dead_workers), *dead_workers]


def find_stalled(
    connection: Redis, now: float, stale_seconds: float, dead_workers: list[str] | tuple[str, ...] = ()
) -> list[StalledRun]:
    """The active runs whose worker is gone, in one round trip; reads no job when every worker is alive."""
    flat = Script(connection, _FIND_LUA)(args=_prelude_args(now, stale_seconds, list(dead_workers)))
    return [
        StalledRun(
            flat[at].decode(), flat[at + 1].decode(), flat[at + 2].decode(), flat[at + 3].decode(), flat[at + 4] or None
        )
        for at in range(0, len(flat), 5)
    ]


def _new_meta(run: StalledRun, mode: Mode) -> tuple[dict[str, Any], Mode]:
    meta = DefaultSerializer.loads(run.raw_meta) if run.raw_meta else {}
    if mode == "interrupt":
        meta[INTERRUPTED_COUNTER] = int(meta.get(INTERRUPTED_COUNTER, 0)) + 1
        return meta, mode
    meta[STALLED_COUNTER] = int(meta.get(STALLED_COUNTER, 0)) + 1
    return meta, "requeue" if meta[STALLED_COUNTER] <= MAX_STALLED_COUNT else "fail"


def move_runs(
    connection: Redis,
    runs: list[StalledRun],
    now: float,
    stale_seconds: float,
    dead_workers: list[str] | tuple[str, ...] = (),
    interrupted: bool = False,
) -> list[Recovered]:
    """Move `runs` (from find_stalled) if they are still as found; returns the ones this call moved."""
    if not runs:
        return []
    planned: dict[str, tuple[StalledRun, dict[str, Any], Mode]] = {}
    arguments: list[Any] = [keys.POOL_EVENTS, keys.POOL_EVENTS_CAP, _rq_time(now), iso_from_timestamp(now)]
    for run in runs:
        try:
            meta, mode = _new_meta(run, "interrupt" if interrupted else "requeue")
        except Exception:  # an unreadable meta: leave the run to RQ's own maintenance
            continue
        planned[run.entry] = (run, meta, mode)
        arguments += [mode, run.queue, run.entry, run.job_id, run.worker, run.raw_meta or b""]
        arguments += [DefaultSerializer.dumps(meta), _failure_ttl(connection, run, mode)]
    if not planned:
        return []
    prelude = _prelude_args(now, stale_seconds, list(dead_workers))
    moved = Script(connection, _MOVE_LUA)(args=[*prelude, *arguments])
    recovered = []
    for entry in moved:
        run, meta, mode = planned[entry.decode()]
        recovered.append(Recovered(run.queue, run.job_id, run.worker, mode, int(meta.get(STALLED_COUNTER, 0))))
    _record_failures(connection, [r for r in recovered if r.action == "fail"])
    return recovered


def _failure_ttl(connection: Redis, run: StalledRun, mode: Mode) -> int:
    if mode != "fail":
        return 0
    raw = connection.hget(f"rq:job:{run.job_id}", "failure_ttl")
    return int(raw) if raw else DEFAULT_FAILURE_TTL


def _record_failures(connection: Redis, failed: list[Recovered]) -> None:
    """The run that failed for good, as every abandoned run is recorded (attempt made, failedReason, trends,
    worker history, counters), and what RQ keeps of a failure (a failed Result); by the one caller that moved it."""
    for run in failed:
        try:
            job = Job.fetch(run.job_id, connection=connection)
        except Exception:  # deleted meanwhile: nothing left to annotate
            continue
        with connection.pipeline() as pipe:
            outcomes.record_abandoned_attempt(pipe, job, STALLED_REASON, STALLED_EXCEPTION, "fail")
            Result.create_failure(job, job.failure_ttl or DEFAULT_FAILURE_TTL, STALLED_REASON, run.worker, pipe)
            pipe.execute()


def recover_stalled(
    connection: Redis,
    now: float | None = None,
    stale_seconds: float = 300.0,
    dead_workers: list[str] | tuple[str, ...] = (),
) -> list[Recovered]:
    """The per-tick stalled-job check: one round trip when nothing is stalled. `dead_workers`: workers known to be
    dead (a pool's child that exited), whose runs are stalled whatever their heartbeat says."""
    now = time.time() if now is None else now
    runs = find_stalled(connection, now, stale_seconds, dead_workers)
    return move_runs(connection, runs, now, stale_seconds, dead_workers)


def requeue_interrupted(connection: Redis, worker_names: list[str], now: float | None = None) -> list[Recovered]:
    """Put the runs of workers a pool has just killed at shutdown back at the head of their queues, as interrupted
    runs (no stalled counter, no failure)."""
    now = time.time() if now is None else now
    runs = [run for run in find_stalled(connection, now, now, worker_names) if run.worker in worker_names]
    return move_runs(connection, runs, now, now, worker_names, interrupted=True)
