"""Every worker RQ knows, read from RQ's own registry in one round trip whatever their number (Sidekiq's
`ProcessSet`), never with RQ's `Worker.all()` (two round trips per worker, and it deletes while it reads).

Reads both layouts of the current job (RQ 2.x `current_job` field, RQ 3 `rq:worker:<name>:executions` set),
MonitoredWorkers (the `rqmon_*` fields below) and plain `rq worker` processes. Liveness and status: WORKERS.md.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import zlib
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any, NamedTuple

from redis import Redis
from rq.defaults import DEFAULT_WORKER_TTL
from rq.serializers import DefaultSerializer

from app.domain import keys
from app.domain.errors import WorkerNotFound, WorkerNotStale
from app.domain.stalled import recover_stalled
from app.domain.states import Liveness, WorkerStatus  # re-exported: the worker vocabularies live in states.py
from app.domain.strict_json import loads_checked
from app.domain.timeutil import rq_epoch

WORKERS_SET = "rq:workers"
WORKER_PREFIX = "rq:worker:"
SUSPENDED_KEY = "rq:suspended"
JOB_PREFIX = "rq:job:"

# The product's fields in RQ's worker hash, written by MonitoredWorker; never one of RQ's names. Facts written
# together share a field (`monitored_value`, `usage_value`): every field costs each registry read, for every worker.
MONITORED = keys.WORKER_MONITORED_FIELD  # a MonitoredWorker (it honours pause): memory limit, pool, slot, capabilities
HEARTBEAT_AT = "rqmon_heartbeat_at"  # epoch seconds of the last heartbeat
USAGE = "rqmon_usage"  # "<RSS MB> <CPU %>" of the worker and its work horse, at every heartbeat
PAUSED = "rqmon_paused"  # "1" / "0"
STATE_OVERRIDE = "rqmon_state_override"  # "stopping" once a stop was accepted; "stopped" for a stopped pool slot
MONITORED_SEPARATOR = keys.WORKER_MONITORED_SEPARATOR


def monitored_value(
    memory_limit_mb: float | None = None, pool: str | None = None, slot: int | None = None, capabilities: str = "{}"
) -> str:
    """MONITORED's value: never empty (its presence marks a MonitoredWorker); capabilities as JSON text."""
    parts = ("" if memory_limit_mb is None else repr(memory_limit_mb), pool or "", "" if slot is None else str(slot))
    return MONITORED_SEPARATOR.join((*parts, capabilities))


def usage_value(rss_mb: float | None, cpu_percent: float | None) -> str:
    """USAGE's value."""
    return f"{'' if rss_mb is None else rss_mb} {'' if cpu_percent is None else cpu_percent}"


# A plain worker promises its next heartbeat within worker_ttl, and RQ lets its key live 60 s longer.
RQ_KEY_GRACE_SECONDS = 60


# The hash fields read, in this order.
# RQ's last_heartbeat is written with every MonitoredWorker beat (super().heartbeat() runs first), so it is the
# one time read. The VOLATILE ones first: they change at every heartbeat (every few seconds for a busy worker, every
# WORKER_HEARTBEAT_SECONDS for an idle MonitoredWorker) or with every job (state, current job, counts); the rest only
# when a worker starts or is controlled, so it is parsed once per distinct content (see _static) and a busy
# deployment's reads stay warm.
VOLATILE = (
    *("last_heartbeat", USAGE),
    *("state", "current_job", "successful_job_count", "failed_job_count", "total_working_time"),
)
FIELDS = (
    *VOLATILE,
    *("birth", "queues", "pid", "hostname", "version", MONITORED, PAUSED, STATE_OVERRIDE),
    "shutdown_requested_date",  # RQ's warm shutdown under way (any worker): stopping
)

_by_name = itemgetter("worker_name")
# Every field of a worker as read_workers returns it (API.md's <worker> and a few more), in this order.
WORKER_FIELDS = (
    *("worker_name", "hostname", "pid", "queues", "pool", "slot", "monitored", "birth", "memory_limit_mb"),
    *("capabilities", "rq_version", "state", "tasks_processed", "tasks_successful", "tasks_failed", "error_rate"),
    *("total_working_time", "avg_processing_time", "status", "liveness", "uptime_seconds", "current_job"),
    *("last_heartbeat", "seconds_since_heartbeat", "memory_usage_mb", "cpu_percent", "control"),
)
FIELD_SEPARATOR, RECORD_SEPARATOR = "\x1f", "\x1e"  # ASCII unit and record separators: in no RQ field

# One round trip: the registry (or one named worker) and RQ's suspension flag. The workers come back as ONE string,
# a record per worker (key, TTL of a plain worker's hash, then its FIELDS, missing ones empty; each record ends with
# RECORD_SEPARATOR as a field of its own) - far cheaper for Redis to build (one concatenation) and for Python to
# parse than nested replies - and the jobs they run (the worker's key, job id, origin, start, data for its
# name, description) as a flat list: a job's data may hold any byte. A key in the registry that is not a hash reads
# as a registration without one (pcall): one odd key never fails the read of every worker.
# KEYS: rq:workers, rq:suspended. ARGV: job key prefix, one worker key to read alone (or ""), then FIELDS.
_READ_LUA = """
local worker_keys
if ARGV[2] ~= '' then worker_keys = {ARGV[2]} else worker_keys = redis.call('SMEMBERS', KEYS[1]) end
local fields = {unpack(ARGV, 3)}
local count = #fields
local out, at, jobs = {}, 0, {}
for _, key in ipairs(worker_keys) do
  local values = redis.pcall('HMGET', key, unpack(fields))
  if values.err then values = {} end
  local job_id = values[@CURRENT_JOB@]
  if (not job_id or job_id == '') and values[@STATE@] == 'busy' then
    local execution = redis.pcall('SRANDMEMBER', key .. ':executions')
    if type(execution) == 'string' then job_id = string.match(execution, '^(.*):[^:]*$') end
  end
  if job_id and job_id ~= '' then
    local job = redis.pcall('HMGET', ARGV[1] .. job_id, 'origin', 'started_at', 'data', 'description')
    if job.err then job = {false, false, false, false} end
    jobs[#jobs + 1] = key
    jobs[#jobs + 1] = job_id
    for j = 1, 4 do jobs[#jobs + 1] = job[j] end
  end
  out[at + 1] = key
  out[at + 2] = -3  -- the TTL, not read for a MonitoredWorker: its liveness does not depend on it
  if not values[@MONITORED@] then out[at + 2] = redis.call('TTL', key) end
  for f = 1, count do out[at + 2 + f] = values[f] or '' end
  at = at + count + 3
  out[at] = '\\030'
end
return {redis.call('EXISTS', KEYS[2]), table.concat(out, '\\031'), jobs}
"""
_READ_LUA = (
    _READ_LUA.replace("@CURRENT_JOB@", str(FIELDS.index("current_job") + 1))  # Lua counts from 1
    .replace("@STATE@", str(FIELDS.index("state") + 1))
    .replace("@MONITORED@", str(FIELDS.index(MONITORED) + 1))
)
_RECORD_END = FIELD_SEPARATOR + RECORD_SEPARATOR  # how the script ends every record
_BETWEEN_RECORDS = _RECORD_END + FIELD_SEPARATOR

Running = dict[str, tuple[str, list[Any]]]  # worker key -> the job it runs: id, then origin, start, data, description
log = logging.getLogger(__name__)


def _records(reply: list[Any]) -> tuple[list[str], Running]:
    """The script's records (key, TTL, FIELDS joined), and the jobs being run."""
    _suspended, records, jobs = reply
    running = {
        jobs[at].decode(errors="replace"): (jobs[at + 1].decode(errors="replace"), jobs[at + 2 : at + 6])
        for at in range(0, len(jobs), 6)
    }
    if not records:
        return [], running
    return records.decode(errors="replace").removesuffix(_RECORD_END).split(_BETWEEN_RECORDS), running


def status_of(
    *, state: str | None, paused: bool, override: str | None, suspended: bool, busy: bool, stale: bool = False
) -> WorkerStatus:
    """One precedence for the views and for a worker answering a command: stale > stopped > stopping > paused
    > suspended > busy > idle."""
    if stale:
        return WorkerStatus.STALE
    if override in (WorkerStatus.STOPPED, WorkerStatus.STOPPING):
        return WorkerStatus(override)
    if paused:
        return WorkerStatus.PAUSED
    return _activity(state, suspended, busy)


def _activity(state: str | None, suspended: bool, busy: bool) -> WorkerStatus:
    """status_of's last three: suspended > busy > idle."""
    if state == "suspended" or (suspended and not busy):
        return WorkerStatus.SUSPENDED
    return WorkerStatus.BUSY if busy else WorkerStatus.IDLE


# Delete one worker's registration if its heartbeat is still the one seen as stale (a worker that came back in
# between is kept). KEYS: hash, rq:workers. ARGV: last_heartbeat, queues. Its executions
# set stays until its runs are recovered: the stalled-job check finds a dead worker's runs there.
_REMOVE_LUA = """
if (redis.call('HGET', KEYS[1], 'last_heartbeat') or '') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], KEYS[1])
for i = 2, #ARGV do redis.call('SREM', 'rq:workers:' .. ARGV[i], KEYS[1]) end
return 1
"""


def read_workers(connection: Redis, now: float, active_seconds: float, stale_seconds: float) -> list[dict[str, Any]]:
    """Every registered worker (API.md `<worker>`, the fields the registry holds), sorted by name."""
    reply = connection.eval(_READ_LUA, 2, WORKERS_SET, SUSPENDED_KEY, JOB_PREFIX, "", *FIELDS)
    return parse_workers(reply, now, active_seconds, stale_seconds)


def workers_reads(pipe: Any) -> None:
    """Queue the registry read of `read_workers` on a caller's pipeline (parse its reply with `parse_workers`), so
    a view can read the workers and its other data in one round trip."""
    pipe.eval(_READ_LUA, 2, WORKERS_SET, SUSPENDED_KEY, JOB_PREFIX, "", *FIELDS)


def parse_workers(reply: list[Any], now: float, active_seconds: float, stale_seconds: float) -> list[dict[str, Any]]:
    """The workers of a `workers_reads` reply, as `read_workers` returns them."""
    suspended = bool(reply[0])
    records, running = _records(reply)
    found = []
    for record in records:
        try:
            found.append(_worker(record, running, suspended, now, active_seconds, stale_seconds))
        except Exception:  # a hash someone else wrote (a separator in a field...): never the read of every worker
            found.append(_unreadable(record, now))
    found.sort(key=_by_name)
    return found


def _unreadable(record: str, now: float) -> dict[str, Any]:
    """A registration whose hash cannot be read, shown as one without a hash: its name, stale (it may be removed)."""
    key = record.partition(FIELD_SEPARATOR)[0]
    log.warning("Worker registration %r: its hash cannot be read; shown as stale", key)
    return _worker(f"{key}{FIELD_SEPARATOR}-2{FIELD_SEPARATOR * len(FIELDS)}", {}, False, now, 0.0, 0.0)


def read_worker(
    connection: Redis, name: str, now: float, active_seconds: float, stale_seconds: float
) -> dict[str, Any]:
    """One worker by name, in one round trip; WorkerNotFound when RQ has neither its hash nor its registration."""
    return parse_workers(_read_one(connection, name), now, active_seconds, stale_seconds)[0]


def remove_stale_worker(
    connection: Redis, name: str, now: float, active_seconds: float, stale_seconds: float
) -> dict[str, Any]:
    """Delete the registration of a stale worker (seed 001 `remove_worker`); the job it ran is recovered at once
    as a stalled job (stalled.recover_stalled: back to the head of its queue, or failed past maxStalledCount).

    WorkerNotFound for an unknown worker, WorkerNotStale for an active or inactive one (or one that heartbeats
    again while being removed)."""
    reply = _read_one(connection, name)
    worker = parse_workers(reply, now, active_seconds, stale_seconds)[0]
    if worker["liveness"] != Liveness.STALE:
        raise WorkerNotStale(f"Worker '{name}' is {worker['liveness']}, not stale; only stale workers are removed")
    parts = _records(reply)[0][0].split(FIELD_SEPARATOR, 3)
    seen_beat = parts[2] if len(parts) > 2 else ""  # the raw last_heartbeat, FIELDS' first
    key = WORKER_PREFIX + name
    removed = connection.eval(_REMOVE_LUA, 2, key, WORKERS_SET, seen_beat, *worker["queues"])
    if not removed:
        raise WorkerNotStale(f"Worker '{name}' sent a heartbeat while being removed; it is kept")
    abandoned = worker["current_job"]
    if abandoned is not None:
        recover_stalled(connection, now, stale_seconds, dead_workers=[name])
    connection.delete(key + ":executions")
    return {"worker_name": name, "removed": True, "abandoned_job": abandoned["job_id"] if abandoned else None}


def cleanup_stale_workers(connection: Redis, now: float, active_seconds: float, stale_seconds: float) -> list[str]:
    """Remove every stale worker (`POST /cleanup`); returns the names removed."""
    removed = []
    for worker in read_workers(connection, now, active_seconds, stale_seconds):
        if worker["liveness"] != Liveness.STALE:
            continue
        try:
            remove_stale_worker(connection, worker["worker_name"], now, active_seconds, stale_seconds)
        except (WorkerNotFound, WorkerNotStale):  # gone or back meanwhile
            continue
        removed.append(worker["worker_name"])
    return removed


def _read_one(connection: Redis, name: str) -> list[Any]:
    """The script's reply for one worker; WorkerNotFound when RQ has neither its hash nor its registration."""
    key = WORKER_PREFIX + name
    with connection.pipeline(transaction=False) as pipe:
        pipe.eval(_READ_LUA, 2, WORKERS_SET, SUSPENDED_KEY, JOB_PREFIX, key, *FIELDS)
        pipe.sismember(WORKERS_SET, key)
        reply, registered = pipe.execute()
    _key, _ttl, *values = _records(reply)[0][0].split(FIELD_SEPARATOR, 2)
    if not "".join(values).strip(FIELD_SEPARATOR) and not registered:
        raise WorkerNotFound(name)
    return reply


class _Facts(NamedTuple):
    """What a worker's hash says but for its VOLATILE fields, parsed once per distinct content (see _static)."""

    shown: dict[str, Any]  # the <worker> fields that depend on neither the volatile fields nor the time
    monitored: bool
    paused: bool
    override: str | None
    in_pool: bool
    birth: float | None
    status: WorkerStatus | None  # stopped, stopping or paused whatever the rest (status_of's precedence), else None
    nested: bool  # capabilities hold lists or objects: a read's copy must be deep
    actions: dict[WorkerStatus, tuple[str, ...]]  # allowed_actions by status, for this kind of worker


@lru_cache(maxsize=8192)
def _static(key: str, values: str) -> _Facts:
    """Between two reads most hashes are unchanged but for their VOLATILE fields: the parsing of the rest is kept,
    keyed by its content, and only the volatile and time-dependent fields are computed at each read."""
    birth_at, queues, pid, hostname, version, own, paused, override, shutdown = values.split(FIELD_SEPARATOR)
    if shutdown and not override:
        override = WorkerStatus.STOPPING
    monitored = own != ""
    # padded: a value someone else wrote (fewer parts) must not break the read of every worker
    limit, pool, slot, capabilities = [*own.split(MONITORED_SEPARATOR, 3), "", "", ""][:4]

    parsed = _capabilities(capabilities) if monitored else None
    birth = _rq_time(birth_at)
    shown = dict.fromkeys(WORKER_FIELDS)  # every field in place: a read's copy never grows (see _worker)
    shown.update(
        worker_name=key[len(WORKER_PREFIX) :],
        hostname=hostname or None,
        pid=_int(pid) if pid else None,
        queues=queues.split(",") if queues else [],
        pool=pool or None,
        slot=_int(slot) if slot else None,
        monitored=monitored,
        birth=_shown_time(birth_at, birth),
        memory_limit_mb=_float(limit),
        capabilities=parsed,
        rq_version=version or None,
    )
    is_paused = paused == "1"
    fixed = None
    if override in (WorkerStatus.STOPPED, WorkerStatus.STOPPING) or is_paused:
        fixed = status_of(state=None, paused=is_paused, override=override, suspended=False, busy=False)
    nested = parsed is not None and any(isinstance(value, dict | list) for value in parsed.values())
    actions = _ACTIONS[monitored, bool(pool)]
    return _Facts(shown, monitored, is_paused, override or None, bool(pool), birth, fixed, nested, actions)


# Read once per worker per tick: module-level names, not attribute look-ups on the enum classes.
_ACTIVE, _INACTIVE, _STALE = Liveness.ACTIVE, Liveness.INACTIVE, Liveness.STALE


def _worker(record: str, running: Running, suspended: bool, now: float, active: float, stale: float) -> dict:
    # The read's hot loop, once per worker per tick: plain local arithmetic where a helper call would double its
    # cost; a value someone else wrote that is not a clean figure goes through the helpers' careful paths.
    key, ttl, beat_at, usage, state, _current, successful, failed, working, rest = record.split(FIELD_SEPARATOR, 9)
    shown, monitored, _paused, _override, _in_pool, birth, fixed, nested, actions = _static(key, rest)
    job = running.get(key)
    heartbeat = _heartbeat_time(beat_at)
    if heartbeat is None:  # a registration without a hash (expired) or without any heartbeat
        age = None
        liveness = _STALE
    else:
        age = now - heartbeat if now > heartbeat else 0.0
        if monitored:
            liveness = _ACTIVE if age <= active else _STALE if age > stale else _INACTIVE
        else:
            liveness = _plain_liveness(age, int(ttl), stale)
    if liveness is _STALE:
        status = WorkerStatus.STALE
    elif fixed is not None:  # stopped, stopping or paused: known from the hash alone
        status = fixed
    else:
        status = _activity(state, suspended, job is not None or state == "busy")
    try:
        ok_count = int(successful) if successful else 0
        failed_count = int(failed) if failed else 0
        if not (0 <= ok_count < _COUNT_LIMIT and 0 <= failed_count < _COUNT_LIMIT):
            raise ValueError("not a count")
    except ValueError:
        ok_count, failed_count = _int(successful), _int(failed)
    processed = ok_count + failed_count
    working_time = _float(working) or 0.0
    rss, _, cpu = usage.partition(" ")
    worker = shown.copy()  # the cached dict is never handed out, nor are its lists and objects
    worker["queues"] = list(worker["queues"])
    if monitored:
        capabilities = worker["capabilities"]
        worker["capabilities"] = copy.deepcopy(capabilities) if nested else dict(capabilities)
    worker["state"] = state or None
    worker["tasks_processed"] = processed
    worker["tasks_successful"] = ok_count
    worker["tasks_failed"] = failed_count
    worker["error_rate"] = _hundredths(100.0 * failed_count / processed) if processed else 0.0
    worker["total_working_time"] = working_time
    worker["avg_processing_time"] = _millis(working_time / processed) if processed else None
    worker["status"] = status  # str enums: plain strings in JSON and in comparisons
    worker["liveness"] = liveness
    worker["uptime_seconds"] = _millis(now - birth) if birth is not None else None
    worker["current_job"] = _current_job(*job, now) if job is not None else None
    worker["last_heartbeat"] = _shown_time(beat_at, heartbeat)
    worker["seconds_since_heartbeat"] = None if age is None else _millis(age)
    worker["memory_usage_mb"] = _float(rss)
    worker["cpu_percent"] = _float(cpu)
    worker["control"] = list(actions[status])
    return worker


def allowed_actions(status: WorkerStatus, monitored: bool, in_pool: bool) -> list[str]:
    """The control actions that make sense now (WORKERS.md § Control); `remove` is the DELETE of a stale one."""
    if status is WorkerStatus.STALE or status is WorkerStatus.STOPPING:
        return []
    if status is WorkerStatus.STOPPED:
        return ["start"] if in_pool else []
    if not monitored:
        return ["stop"]
    actions = ["resume" if status is WorkerStatus.PAUSED else "pause", "stop"]
    return [*actions, "restart"] if in_pool else actions


_ACTIONS = {
    (monitored, in_pool): {status: tuple(allowed_actions(status, monitored, in_pool)) for status in WorkerStatus}
    for monitored in (False, True)
    for in_pool in (False, True)
}


def _plain_liveness(age: float, ttl: int, stale_seconds: float) -> Liveness:
    """A plain worker's liveness (a MonitoredWorker's is measured against WORKER_ACTIVE/STALE_SECONDS)."""
    if ttl >= 0:  # measured against the expiry it set itself at its last heartbeat
        promised = ttl + age
        active, stale = max(promised - RQ_KEY_GRACE_SECONDS, 0.0), promised
    else:  # an "immortal" hash: RQ's default cadence
        active, stale = DEFAULT_WORKER_TTL, max(stale_seconds, DEFAULT_WORKER_TTL + RQ_KEY_GRACE_SECONDS)
    if age <= active:
        return Liveness.ACTIVE
    return Liveness.STALE if age > stale else Liveness.INACTIVE


def _current_job(job_id: str, job: list[bytes | None], now: float) -> dict[str, Any]:
    origin, started_at, data, description = (list(job) + [None] * 4)[:4]
    started = _rq_time(started_at.decode(errors="replace")) if started_at else None
    return {
        "job_id": job_id,
        "queue": origin.decode(errors="replace") if origin else None,
        "job_name": _job_name(data, description),
        "started_at": _iso(started),
        "running_for": round(max(0.0, now - started), 3) if started is not None else None,
    }


def _job_name(data: bytes | None, description: bytes | None) -> str | None:
    """RQ's func_name, from the job's pickled data (default serializer); else the call string's function."""
    if data:
        try:
            return str(DefaultSerializer.loads(zlib.decompress(data))[0])
        except Exception:  # another serializer, or unreadable: the description still names the function
            pass
    return description.decode(errors="replace").split("(", 1)[0] if description else None


@lru_cache(maxsize=4096)  # the same few objects at every read
def _capabilities(raw: str | None) -> dict[str, Any]:
    """A MonitoredWorker's capabilities as config accepts them (an object, at most MAX_JSON_DEPTH deep); {} for
    anything else someone wrote, which copying at every read or a page could not handle."""
    try:
        parsed = loads_checked(raw) if raw else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


_rq_time = lru_cache(maxsize=16384)(rq_epoch)  # births never change: most reads hit


def _heartbeat_time(raw: str) -> float | None:
    """`_rq_time` of a heartbeat, which changes at every read: RQ's `2026-12-01T05:25:28.385444Z` (utcformat) as
    the epoch of its minute (cached: one parse a minute) plus its seconds; any other form goes through the full
    parse."""
    if (
        len(raw) == 27
        and raw[16] == ":"
        and raw[19] == "."
        and raw[26] == "Z"
        and raw[17] < "6"
        and raw.isascii()  # float() reads any script's digits, fromisoformat only ASCII ones
        and (raw[17:19] + raw[20:26]).isdigit()
    ):
        minute = _minute_time(raw[:16])
        if minute is not None:
            return minute + float(raw[17:26])
    return _rq_time(raw)


_MINUTE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d", re.ASCII)


@lru_cache(maxsize=256)
def _minute_time(minute: str) -> float | None:
    """The epoch of `YYYY-MM-DDTHH:MM` (UTC), else None: an offset or any other form is the full parse's."""
    return _rq_time(minute) if _MINUTE.fullmatch(minute) else None


def _millis(seconds: float) -> float:
    """Seconds to the millisecond (half a millisecond up, where round() would go to even): a fifth of round()'s
    cost, three times per worker per read."""
    return int(seconds * 1000.0 + 0.5) / 1000.0 if 0 <= seconds < 1e15 else round(seconds, 3)


def _shown_time(raw: str, epoch: float | None) -> str | None:
    """A time RQ stored (`raw`, read as `epoch`) as the API shows it, UTC with milliseconds: RQ's own form
    (utcformat, UTC with microseconds) is cut short; any other readable one is written anew, its offset applied."""
    if epoch is None:
        return None
    if len(raw) == 27 and raw[26] == "Z" and raw[19] == ".":
        return raw[:23] + "Z"
    return _iso(epoch)


def _iso(epoch: float | None) -> str | None:
    """None for a time no date can hold (a job's start in the year 10000 is someone else's garbage)."""
    if epoch is None:
        return None
    try:
        return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    except (ValueError, OverflowError, OSError):
        return None


def _hundredths(value: float) -> float:
    """A percentage to two decimals (half up, as _millis), a fifth of round()'s cost."""
    return int(value * 100.0 + 0.5) / 100.0 if 0 <= value < 1e15 else round(value, 2)


_COUNT_LIMIT = 2**63  # RQ's counters are Redis integers (HINCRBY): a count beyond is someone else's garbage


def _int(raw: str | None) -> int:
    """A count: a non-negative Redis integer, else 0."""
    try:
        value = int(raw or 0)
    except ValueError:
        return 0
    return value if 0 <= value < _COUNT_LIMIT else 0


def _float(raw: str | None) -> float | None:
    """A finite number, else None (an "inf" or "nan" someone wrote is not a figure)."""
    try:
        value = float(raw) if raw not in (None, "") else None
    except ValueError:
        return None
    return value if value is None or math.isfinite(value) else None
