"""A pool's child (`rq-monitor-pool`): a MonitoredWorker that adds its job events to the pool's stream and stops
with its pool."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

import redis
from redis.client import Pipeline
from rq import Queue
from rq.job import Job

from app.domain import keys, pools
from workers import processes
from workers.monitored_worker import MonitoredWorker

MEMORY_KILL_REASON = "memory limit exceeded"


class PoolWorker(MonitoredWorker):
    """A pool's child: a MonitoredWorker that adds its job events to the pool's stream (inside RQ's own pipelines)
    and names the memory limit when its pool killed the work horse for it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _stop_with_parent()
        super().__init__(*args, **kwargs)
        self._pool_name = os.environ.get("RQMON_POOL", "")
        self._pool_slot = int(os.environ.get("RQMON_SLOT") or 0) or None
        self._announce: Job | None = None

    def _event(self, pipeline: Pipeline, event: str, job: Job) -> None:
        pools.add_event(pipeline, event, self._pool_name, self._pool_slot, self.name, job.id, {"queue": job.origin})

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        self._announce = job  # written by heartbeat() inside RQ's start-of-job pipeline
        try:
            super().prepare_job_execution(job, remove_from_intermediate_queue)
        finally:
            self._announce = None

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is not None and self._announce is not None:
            job, self._announce = self._announce, None
            self._event(pipeline, "workerActive", job)
        super().heartbeat(timeout, pipeline)

    def handle_job_failure(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        if str(kwargs.get("exc_string", "")).startswith("Work-horse terminated unexpectedly"):
            with contextlib.suppress(redis.RedisError):
                if self.connection.delete(keys.memory_kill(job.id)):
                    kwargs["exc_string"] = MEMORY_KILL_REASON
        super().handle_job_failure(job, queue, *args, **kwargs)

    def _record_ending(self, pipeline: Pipeline | None) -> None:
        """MonitoredWorker's record of an ended attempt (in RQ's end-of-job pipeline), and the pool's event beside."""
        ending = self._ending
        super()._record_ending(pipeline)
        if ending is not None and pipeline is not None:
            job, outcome, _ = ending
            self._event(pipeline, "workerCompleted" if outcome == "ok" else "workerFailed", job)


def _stop_with_parent() -> None:
    """Linux: a child gets SIGTERM (RQ's warm shutdown) when its pool dies, even by SIGKILL, instead of running on
    unsupervised."""
    with contextlib.suppress(Exception):
        processes.signal_at_parent_death(signal.SIGTERM)
        if str(os.getppid()) != os.environ.get("RQMON_POOL_PID", str(os.getppid())):  # it died before that line
            os.kill(os.getpid(), signal.SIGTERM)
