"""The metrics document of GET /metrics and of the live stream.

One round trip whatever the number of queues: a read-only Lua script lists the queues (RQ's and the monitor's)
and counts every state of each server-side, in the same pipeline as the success and processing rates. Counting
350 keys in Lua costs Redis well under a millisecond and spares the client packing and parsing 350 commands.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from redis import Redis

from app.domain import history, keys
from app.domain.queues import (
    ALL_QUEUES_KEY,
    KNOWN_QUEUES_LUA,
    LIVE_COUNT_LUA,
    QUEUE_KEY_PREFIX,
    QueueKeys,
    count_or_zero,
    live_count_reads,
    name_text,
)
from app.domain.timeutil import iso_from_timestamp

# API field -> how it is counted. Reads never write: LLEN/ZCARD, and the live entries of the expiry-scored
# registries (see queues.LIVE_COUNT_LUA), never RQ's cleanup-running counts.
COUNTS = (
    ("waiting", "llen", "waiting"),
    ("active", "zcard", "active"),
    ("completed", "live", "completed"),
    ("failed", "live", "failed"),
    ("delayed", "zcard", "delayed"),
    ("prioritized", "zcard", "prioritized"),
    ("waitingChildren", "zcard", "waiting_children"),
)
TOTAL_FIELDS = [field for field, _, _ in COUNTS]

# KEYS: RQ's set of queue keys, the monitor's set of queue names, the paused set.
# ARGV: the queue-key prefix, now, then per count "LLEN|ZCARD|LIVE" and the key prefix (key = prefix .. name), or
# "HEAD" and the job-key prefix: the enqueued_at of the job at the head of the queue's list ('' for none).
# Returns name, paused, counts... per queue, sorted by name.
_COUNT_LUA = (
    LIVE_COUNT_LUA
    + KNOWN_QUEUES_LUA
    + """
local now = ARGV[2]
local names = {}
for name in pairs(known_queues(KEYS[1], KEYS[2], ARGV[1])) do table.insert(names, name) end
table.sort(names)
local out = {}
for _, name in ipairs(names) do
  table.insert(out, name)
  table.insert(out, redis.call('SISMEMBER', KEYS[3], name))
  for i = 3, #ARGV, 2 do
    if ARGV[i] == 'LIVE' then
      table.insert(out, live_count(ARGV[i + 1] .. name, now))
    elseif ARGV[i] == 'HEAD' then
      local head = read_or(false, 'LINDEX', ARGV[1] .. name, 0)
      table.insert(out, head and read_or(false, 'HGET', ARGV[i + 1] .. head, 'enqueued_at') or '')
    else
      table.insert(out, read_or(0, ARGV[i], ARGV[i + 1] .. name))
    end
  end
end
return out
"""
)


def _count_arguments(now: float) -> list[str]:
    template = QueueKeys("")  # every key of a queue is its prefix followed by the name
    arguments = [QUEUE_KEY_PREFIX, repr(now)]
    for _, command, attribute in COUNTS:
        arguments += [command.upper(), getattr(template, attribute)]
    return arguments


def queue_counts_reads(pipe: Any, now: float, extra: Sequence[tuple[str, str]] = ()) -> None:
    """Queue every queue's counts; `extra`: more columns per queue in the same script, (command, key prefix) pairs
    ("LLEN", "ZCARD", "LIVE" or "HEAD", see _COUNT_LUA), read back with queue_rows."""
    # EVAL, not EVALSHA: redis-py checks SCRIPT EXISTS before every pipeline holding a Script (one more round trip).
    script_keys = [ALL_QUEUES_KEY, keys.KNOWN_QUEUES, keys.PAUSED_QUEUES]
    extra_arguments = [part for pair in extra for part in pair]
    pipe.eval(_COUNT_LUA, len(script_keys), *script_keys, *_count_arguments(now), *extra_arguments)


def parse_queue_counts(flat: list[Any]) -> list[dict[str, Any]]:
    return [entry for entry, _ in queue_rows(flat, 0)]


def queue_rows(flat: list[Any], extra: int) -> list[tuple[dict[str, Any], list[Any]]]:
    """Each queue's entry and the raw values of its `extra` columns (queue_counts_reads' `extra`)."""
    width = 2 + len(COUNTS) + extra
    rows = []
    for start in range(0, len(flat), width):
        name, paused, *values = flat[start : start + width]
        counts, extra_values = values[: len(COUNTS)], values[len(COUNTS) :]
        entry: dict[str, Any] = {"queueName": name_text(name)}
        entry.update({field: int(value) for (field, _, _), value in zip(COUNTS, counts, strict=True)})
        entry["paused"] = bool(paused)
        rows.append((entry, extra_values))
    return rows


def get_metrics(connection: Redis, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    with connection.pipeline(transaction=False) as pipe:
        finish = metrics_reads(pipe, now)
        return finish(pipe.execute())


def metrics_reads(pipe: Any, now: float | None = None) -> Callable[[list[Any]], dict[str, Any]]:
    """Queue the metrics document's reads on `pipe` (a caller may add them to a round trip of its own, as the
    request's auth lookup does); the returned function builds the document from their results."""
    now = time.time() if now is None else now
    queue_counts_reads(pipe, now)
    history.queue_rate_reads(pipe, now)
    return lambda results: _metrics_document(results, now)


def _metrics_document(results: list[Any], now: float) -> dict[str, Any]:
    flat, *rate_results = results
    queues = parse_queue_counts(flat)
    rates = history.parse_rates(rate_results, now)
    for entry in queues:
        entry["successRate"], entry["processingRate"] = rates.of(entry["queueName"])
    return {
        "timestamp": iso_from_timestamp(now),
        "queues": queues,
        "totals": {field: sum(queue[field] for queue in queues) for field in TOTAL_FIELDS},
        "successRate": rates.success_rate,
        "processingRate": rates.processing_rate,
    }


def get_queue_metrics(connection: Redis, queue_name: str, now: float | None = None) -> dict[str, Any]:
    """One queue's entry of the metrics document, rates included (one round trip)."""
    now = time.time() if now is None else now
    queue = QueueKeys(queue_name)
    with connection.pipeline(transaction=False) as pipe:
        pipe.sismember(keys.PAUSED_QUEUES, queue_name)
        for _, command, attribute in COUNTS:
            if command == "live":
                live_count_reads(pipe, getattr(queue, attribute), now)
            else:
                getattr(pipe, command)(getattr(queue, attribute))
        history.queue_rate_reads(pipe, now)
        results = pipe.execute(raise_on_error=False)
    counted = 1 + len(COUNTS)
    entry = parse_queue_counts([queue_name.encode(), *map(count_or_zero, results[:counted])])[0]
    entry["successRate"], entry["processingRate"] = history.parse_rates(results[counted:], now).of(queue_name)
    return entry
