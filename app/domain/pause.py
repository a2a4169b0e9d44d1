"""Per-queue pause: a flag in Redis that workers.MonitoredWorker honours (RQ itself only has a global suspend)."""

from __future__ import annotations

from redis import Redis

from app.domain import keys
from app.domain.queues import require_queue


def set_paused(connection: Redis, queue_name: str, paused: bool) -> dict[str, object]:
    """Idempotent; the queue stays known to the monitor even if RQ forgets it while it is paused."""
    require_queue(connection, queue_name)
    with connection.pipeline() as pipe:
        if paused:
            pipe.sadd(keys.PAUSED_QUEUES, queue_name)
        else:
            pipe.srem(keys.PAUSED_QUEUES, queue_name)
        pipe.sadd(keys.KNOWN_QUEUES, queue_name)
        pipe.execute()
    return {"success": True, "queueName": queue_name, "paused": paused}


def pause_queue(connection: Redis, queue_name: str) -> dict[str, object]:
    return set_paused(connection, queue_name, True)


def resume_queue(connection: Redis, queue_name: str) -> dict[str, object]:
    return set_paused(connection, queue_name, False)


def is_paused(connection: Redis, queue_name: str) -> bool:
    return bool(connection.sismember(keys.PAUSED_QUEUES, queue_name))
