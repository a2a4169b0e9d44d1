"""Clearing completed and/or failed jobs: registry entries and job data, in bounded chunks.

Each chunk is one Lua call over at most CHUNK ids, so Redis stays responsive for other clients; inside it a job
is deleted only if it is still in the registry being cleared and still in that registry's status, so a job that
was retried or re-enqueued meanwhile is left whole (never half-deleted).
"""

from __future__ import annotations

import math
from typing import Literal

from redis import Redis
from redis.commands.core import Script
from rq.job import Job

from app.domain.errors import InvalidInput
from app.domain.queues import QueueKeys, require_queue

CHUNK = 250
ClearType = Literal["completed", "failed", "all"]

# KEYS[1]: the registry. ARGV: job key prefix, results key prefix, executions key prefix, expected status, ids...
_CLEAR_CHUNK_LUA = """
local removed = 0
for i = 5, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZREM', KEYS[1], id)
    removed = removed + 1
    local job = ARGV[1] .. id
    local status = redis.call('HGET', job, 'status')
    if status == false or status == ARGV[4] then
      redis.call('UNLINK', job, job .. ':dependents', job .. ':dependencies', ARGV[2] .. id, ARGV[3] .. id)
    end
  end
end
return removed
"""


def _clear_registry(connection: Redis, registry_key: str, status: str) -> int:
    script = Script(connection, _CLEAR_CHUNK_LUA)
    # Bounded by what was there when the request came: a registry refilled meanwhile cannot keep us looping.
    chunks = math.ceil(int(connection.zcard(registry_key)) / CHUNK) + 1
    removed = 0
    for _ in range(chunks):
        ids = [entry.decode() for entry in connection.zrange(registry_key, 0, CHUNK - 1)]
        if not ids:
            break
        removed += int(
            script(
                keys=[registry_key],
                args=[Job.redis_job_namespace_prefix, "rq:results:", "rq:executions:", status, *ids],
            )
        )
    return removed


def clear_queue(connection: Redis, queue_name: str, clear_type: str = "all") -> dict[str, object]:
    if clear_type not in ("completed", "failed", "all"):
        raise InvalidInput("Unknown clear type", {"type": "one of completed, failed, all"})
    queue: QueueKeys = require_queue(connection, queue_name)
    removed = {"completed": 0, "failed": 0}
    if clear_type in ("completed", "all"):
        removed["completed"] = _clear_registry(connection, queue.completed, "finished")
    if clear_type in ("failed", "all"):
        removed["failed"] = _clear_registry(connection, queue.failed, "failed")
    return {"success": True, "queueName": queue_name, "type": clear_type, "removed": removed}
