"""Which queues exist, and the names of their RQ keys (taken from RQ's own classes, never re-typed)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis import Redis, ResponseError
from redis.client import Pipeline
from rq import Queue
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

from app.domain import keys
from app.domain.errors import QueueNotFound
from app.domain.job_data import safe_text
from app.domain.names import check_queue_name

QUEUE_KEY_PREFIX = Queue.redis_queue_namespace_prefix  # "rq:queue:"
ALL_QUEUES_KEY = Queue.redis_queues_keys  # "rq:queues"


@dataclass(frozen=True)
class QueueKeys:
    """The Redis keys RQ keeps for one queue, plus the ones the product owns."""

    name: str

    @property
    def waiting(self) -> str:
        return QUEUE_KEY_PREFIX + self.name

    @property
    def active(self) -> str:
        return StartedJobRegistry.key_template.format(self.name)

    @property
    def completed(self) -> str:
        return FinishedJobRegistry.key_template.format(self.name)

    @property
    def failed(self) -> str:
        return FailedJobRegistry.key_template.format(self.name)

    @property
    def delayed(self) -> str:
        return ScheduledJobRegistry.key_template.format(self.name)

    @property
    def waiting_children(self) -> str:
        return DeferredJobRegistry.key_template.format(self.name)

    @property
    def canceled(self) -> str:
        return CanceledJobRegistry.key_template.format(self.name)

    @property
    def prioritized(self) -> str:
        return keys.prioritized(self.name)


# Registries scored by expiry (RQ's finished and failed) keep an entry after RQ has expired its job, until
# RQ's cleanup runs. An entry is live while its score is now or later, or negative: RQ's "forever" (a failure_ttl
# of -1 is stored as -1; other registries store -1 as +inf), which its cleanup (scores 0..now) never removes.
# Counted as all entries less the expired ones (0 <= score < now, the few RQ has not cleaned up yet): the same
# number as ZCOUNT now..+inf plus ZCOUNT -inf..(0, without walking the skiplist to its far end (the expensive part
# of those ZCOUNTs on a large registry: 50 queues' counts 0.79 -> 0.56 ms, 2.8 -> 1.9 ms after Redis idled 40 ms).
# A read of RQ's keys in the scripts that go through every queue: a key another program left of another type (a
# queue "list" that is a string) reads as `default` instead of failing the read of every queue.
SAFE_READ_LUA = """
local function read_or(default, ...)
  local result = redis.pcall(...)
  if type(result) == 'table' and result.err then return default end
  return result
end
"""
LIVE_COUNT_LUA = (
    SAFE_READ_LUA
    + """
local function live_count(key, now)
  return read_or(0, 'ZCARD', key) - read_or(0, 'ZCOUNT', key, 0, '(' .. now)
end
"""
)
# Every queue RQ knows (its set of queue keys, `prefix` stripped) or the monitor has seen (its set of names), as a
# Lua set {name = true}: the scripts that go through all queues in one call start with it.
KNOWN_QUEUES_LUA = """
local function known_queues(rq_queues_key, known_key, prefix)
  local seen, prefix_length = {}, string.len(prefix)
  for _, key in ipairs(redis.call('SMEMBERS', rq_queues_key)) do
    if string.sub(key, 1, prefix_length) == prefix then seen[string.sub(key, prefix_length + 1)] = true end
  end
  for _, name in ipairs(redis.call('SMEMBERS', known_key)) do seen[name] = true end
  return seen
end
"""
_LIVE_COUNT_SCRIPT = LIVE_COUNT_LUA + "return live_count(KEYS[1], ARGV[1])"
# Live entries latest expiry first (the most recent), then the negative ("forever") ones.
_LIVE_PAGE_SCRIPT = """
local key, now, start, count = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = redis.call('ZREVRANGEBYSCORE', key, '+inf', now, 'LIMIT', start, count)
if #ids < count then
  local dated = redis.call('ZCOUNT', key, now, '+inf')
  local rest = redis.call('ZREVRANGEBYSCORE', key, '(0', '-inf', 'LIMIT', math.max(0, start - dated), count - #ids)
  for _, id in ipairs(rest) do table.insert(ids, id) end
end
return ids
"""


def live_count_reads(pipe: Pipeline, key: str, now: float | None = None) -> None:
    """Queue the count of an expiry-scored registry's live entries (read-only: never RQ's cleanup)."""
    # EVAL, not EVALSHA: redis-py checks SCRIPT EXISTS before every pipeline holding a Script (one more round trip).
    pipe.eval(_LIVE_COUNT_SCRIPT, 1, key, repr(time.time() if now is None else now))


def live_page_reads(pipe: Pipeline, key: str, start: int, end: int, now: float | None = None) -> None:
    """Queue the ids of an expiry-scored registry's live entries `start..end` (inclusive), most recent first."""
    pipe.eval(_LIVE_PAGE_SCRIPT, 1, key, repr(time.time() if now is None else now), start, end - start + 1)


def wrong_type(value: Any) -> bool:
    """True for the error of a read (from a pipeline run with `raise_on_error=False`) of a key another program left
    of another type (WRONGTYPE: of the command, or of a script that ran it); any other error is raised."""
    if isinstance(value, ResponseError):
        if "WRONGTYPE" in str(value):
            return True
        raise value
    return False


def count_or_zero(value: Any) -> Any:
    """A count read on its own from a key of another type is 0, as in the scripts (SAFE_READ_LUA)."""
    return 0 if wrong_type(value) else value


def queue_keys(name: str) -> QueueKeys:
    return QueueKeys(check_queue_name(name))


def queue_names_reads(pipeline: Pipeline) -> None:
    """Queue the two reads behind `parse_queue_names` (RQ's registry of queues, and ours)."""
    pipeline.smembers(ALL_QUEUES_KEY)
    pipeline.smembers(keys.KNOWN_QUEUES)


def name_text(raw: bytes) -> str:
    """A queue name as read from Redis: another program may have left any bytes; not UTF-8, it is shown escaped
    (and refused as a name by the views that take one) instead of failing every queue's read."""
    return safe_text(raw.decode("utf-8", "surrogateescape"))


def parse_queue_names(rq_queue_keys: set[bytes], known: set[bytes]) -> list[str]:
    prefix = QUEUE_KEY_PREFIX.encode()
    names = {name_text(key[len(prefix) :]) for key in rq_queue_keys if key.startswith(prefix)}
    names.update(name_text(name) for name in known)
    return sorted(names)


def list_queue_names(connection: Redis) -> list[str]:
    """Every queue RQ knows or the monitor has seen, sorted by name; one round trip."""
    with connection.pipeline(transaction=False) as pipe:
        queue_names_reads(pipe)
        rq_queue_keys, known = pipe.execute()
    return parse_queue_names(rq_queue_keys, known)


def queue_exists_reads(pipe: Pipeline, name: str) -> None:
    """Queue the two reads behind a queue's existence (any of them true), to join another pipeline."""
    pipe.sismember(ALL_QUEUES_KEY, QUEUE_KEY_PREFIX + name)
    pipe.sismember(keys.KNOWN_QUEUES, name)


def queue_exists(connection: Redis, name: str) -> bool:
    with connection.pipeline(transaction=False) as pipe:
        queue_exists_reads(pipe, name)
        return any(pipe.execute())


def require_queue(connection: Redis, name: str) -> QueueKeys:
    """Validate the name, then 404 (QueueNotFound) unless the queue exists."""
    queue = queue_keys(name)
    if not queue_exists(connection, name):
        raise QueueNotFound(name)
    return queue


def remember_queue(connection: Redis | Pipeline, name: str) -> None:
    """Mark a queue as seen by the monitor, so it keeps existing after RQ drops an empty queue."""
    connection.sadd(keys.KNOWN_QUEUES, name)
