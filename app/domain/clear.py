"""Clearing completed and/or failed jobs: registry entries and job data, in bounded chunks.

Each chunk is one Lua call that takes at most CHUNK ids from the head of the registry, so Redis stays responsive
for other clients and no id is read in one round trip and deleted in another. Inside it a job's data is deleted
only if the job is still in one of the registry's statuses, so a job retried or re-enqueued meanwhile loses its
stale entry but keeps its data whole: every job is either deleted entirely or left intact.
"""

from __future__ import annotations

import math

from redis import Redis
from rq.executions import Execution, ExecutionRegistry
from rq.group import Group
from rq.job import Job, JobStatus
from rq.results import Result

from app.domain.errors import InvalidInput
from app.domain.queues import require_queue
from app.domain.states import JobState

CHUNK = 250  # ~5 ms of Redis time per call (bench/clear_bench.py), well under the 20 ms budget
CLEAR_ALL = "all"
CLEAR_TYPES = (JobState.COMPLETED.value, JobState.FAILED.value, CLEAR_ALL)

# The statuses a job has while it rightly sits in each registry (RQ files stopped jobs as failed).
COMPLETED_STATUSES = (JobStatus.FINISHED.value,)
FAILED_STATUSES = (JobStatus.FAILED.value, JobStatus.STOPPED.value)

# Key prefixes from RQ's own classes (identical in rq 2.12 and 3): job hash, result stream, execution index,
# execution hashes ("<prefix><job id>:<execution id>") and group sets.
_PREFIXES = (
    Job.redis_job_namespace_prefix,
    Result.get_key(""),
    ExecutionRegistry.key_template.format(""),
    Execution(id="", job_id="", connection=None).key[:-1],  # type: ignore[arg-type]
    Group.REDIS_GROUP_NAME_PREFIX,
)

# KEYS[1]: the registry. ARGV: chunk size, " status1 status2 ", then the five prefixes above.
# Returns the number of registry entries removed in this chunk.
_CLEAR_CHUNK_LUA = """
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local job = ARGV[3] .. id
  local fields = redis.call('HMGET', job, 'status', 'group_id')
  local status, group = fields[1], fields[2]
  if status == false or string.find(ARGV[2], ' ' .. status .. ' ', 1, true) then
    local executions = ARGV[5] .. id
    for _, execution in ipairs(redis.call('ZRANGE', executions, 0, -1)) do
      redis.call('UNLINK', ARGV[6] .. id .. ':' .. execution)
    end
    if group and group ~= '' then
      redis.call('SREM', ARGV[7] .. group, id)
    end
    redis.call('UNLINK', job, job .. ':dependents', job .. ':dependencies', ARGV[4] .. id, executions)
  end
end
return #ids
"""


def _clear_registry(connection: Redis, registry_key: str, statuses: tuple[str, ...]) -> int:
    script = connection.register_script(_CLEAR_CHUNK_LUA)
    # Bounded by what was there when the request came: a registry refilled meanwhile cannot keep us looping.
    chunks = math.ceil(int(connection.zcard(registry_key)) / CHUNK) + 1
    status_list = " " + " ".join(statuses) + " "
    removed = 0
    for _ in range(chunks):
        count = int(script(keys=[registry_key], args=[CHUNK, status_list, *_PREFIXES]))  # type: ignore[arg-type]
        removed += count
        if count < CHUNK:
            break
    return removed


def clear_queue(connection: Redis, queue_name: str, clear_type: str = CLEAR_ALL) -> dict[str, object]:
    """Delete the completed and/or failed jobs of a queue; never waiting, active, delayed or deferred ones."""
    if clear_type not in CLEAR_TYPES:
        raise InvalidInput("Unknown clear type", {"type": f"one of {', '.join(CLEAR_TYPES)}"})
    queue = require_queue(connection, queue_name)
    completed, failed = JobState.COMPLETED.value, JobState.FAILED.value
    removed = {completed: 0, failed: 0}
    if clear_type in (completed, CLEAR_ALL):
        removed[completed] = _clear_registry(connection, queue.completed, COMPLETED_STATUSES)
    if clear_type in (failed, CLEAR_ALL):
        removed[failed] = _clear_registry(connection, queue.failed, FAILED_STATUSES)
    return {"success": True, "queueName": queue_name, "type": clear_type, "removed": removed}
