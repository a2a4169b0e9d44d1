"""Which queues exist, and the names of their RQ keys (taken from RQ's own classes, never re-typed)."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
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


def queue_keys(name: str) -> QueueKeys:
    return QueueKeys(check_queue_name(name))


def queue_names_reads(pipeline: Pipeline) -> None:
    """Queue the two reads behind `parse_queue_names` (RQ's registry of queues, and ours)."""
    pipeline.smembers(ALL_QUEUES_KEY)
    pipeline.smembers(keys.KNOWN_QUEUES)


def parse_queue_names(rq_queue_keys: set[bytes], known: set[bytes]) -> list[str]:
    names = {key.decode()[len(QUEUE_KEY_PREFIX) :] for key in rq_queue_keys if key.startswith(b"rq:queue:")}
    names.update(name.decode() for name in known)
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
