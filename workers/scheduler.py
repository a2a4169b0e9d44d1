"""`rq-monitor-scheduler --url REDIS_URL`: rq-scheduler's Scheduler with small overrides (SCHEDULES.md).

- A schedule's rq-scheduler job is a template: each firing enqueues a NEW job from it (app.domain.schedule_runs),
  with overlap protection and one catch-up for missed due times; other rq-scheduler jobs keep rq-scheduler's
  behaviour.
- rq-scheduler's own lock keeps one active instance per Redis: the active one keeps it (renewed every loop)
  instead of dropping it after each loop, so a second instance waits, and takes over within one lock period
  (interval + 10 s) of the first one's death.
- The active instance heartbeats into the product's status and records the ends of runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from typing import Any

import redis
from rq.job import Job
from rq_scheduler import Scheduler

from app.domain import schedule_runs, scheduler_status

log = logging.getLogger(__name__)

RECORD_ENDS_EVERY_SECONDS = 2.0
FIRE_ERROR_REPORT_SECONDS = 60.0  # a template that keeps failing is logged and recorded once a minute

# Extends the lock only while it still holds this instance's token.
_EXTEND_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class MonitoredScheduler(Scheduler):
    def __init__(self, connection: redis.Redis, interval: float = 1.0, grace_seconds: float = 60.0, **kwargs: Any):
        super().__init__(connection=connection, interval=interval, **kwargs)
        self.grace_seconds = grace_seconds
        self._lock_token: bytes | None = None
        self._stopping = False
        self._ends_recorded_at = 0.0
        self._fire_errors_at: dict[str, float] = {}

    @property
    def lock_seconds(self) -> int:
        """rq-scheduler's lock period."""
        return int(self._interval) + 10

    def acquire_lock(self) -> bool:
        if self._lock_token is not None:
            if self.connection.eval(_EXTEND_LUA, 1, self.scheduler_lock_key, self._lock_token, self.lock_seconds):
                self._lock_acquired = True
                return True
            log.warning("%s: lost the scheduler lock", self.key)
            self._lock_token = None
        if super().acquire_lock():
            self._lock_token = self.connection.get(self.scheduler_lock_key)
            log.info("%s: active (holds %s)", self.key, self.scheduler_lock_key)
            return True
        return False

    def remove_lock(self) -> None:
        """Kept between loops (rq-scheduler drops it after each one); released when the scheduler stops."""
        if not self._stopping:
            return
        if self._lock_token is not None:
            self.connection.eval(_RELEASE_LUA, 1, self.scheduler_lock_key, self._lock_token)
            self._lock_token = None
        self._lock_acquired = False

    def register_death(self) -> None:
        self._stopping = True
        super().register_death()

    def run(self, burst: bool = False) -> None:
        try:
            super().run(burst=burst)
        finally:
            self._stopping = True
            self.remove_lock()

    def heartbeat(self) -> None:
        super().heartbeat()
        if self._lock_token is not None:
            scheduler_status.heartbeat(self.connection, self.name, socket.gethostname(), self.pid, time.time())

    def enqueue_job(self, job: Job) -> None:
        if not schedule_runs.is_schedule_template(job):
            super().enqueue_job(job)
            return
        due = self.connection.zscore(self.scheduled_jobs_key, job.id)
        if due is None:
            return
        try:
            runs = schedule_runs.fire(self.connection, job.id, float(due), time.time(), self.grace_seconds)
        except (redis.ConnectionError, redis.TimeoutError):
            raise  # main() waits for Redis and starts again
        except Exception as exc:  # one bad schedule never stops the others
            self._fire_failed(job, float(due), exc)
            return
        for run in runs:
            log.info("%s: %s run %s (%s)", job.meta.get("rqmon_schedule"), run["state"], run["jobId"], run["dueAt"])

    def _fire_failed(self, job: Job, due: float, exc: Exception) -> None:
        now = time.time()
        if now - self._fire_errors_at.get(job.id, 0.0) < FIRE_ERROR_REPORT_SECONDS:
            return
        self._fire_errors_at[job.id] = now
        log.exception("%s: could not fire %s", job.meta.get("rqmon_schedule"), job.id, exc_info=exc)
        schedule_runs.record_fire_error(self.connection, job.id, due, now, f"{type(exc).__name__}: {exc}")

    def enqueue_jobs(self) -> Any:
        jobs = super().enqueue_jobs()
        if time.monotonic() - self._ends_recorded_at >= RECORD_ENDS_EVERY_SECONDS:
            self._ends_recorded_at = time.monotonic()
            schedule_runs.record_ends(self.connection)
        # A due time before the next loop is waited for here, so a firing lands at its time, not up to a whole
        # interval later (rq-scheduler's loop then sleeps only what is left of its interval).
        upcoming = self.connection.zrange(self.scheduled_jobs_key, 0, 0, withscores=True)
        wait = upcoming[0][1] - time.time() if upcoming else None
        if wait is not None and 0 < wait < self._interval * 0.9:
            time.sleep(wait)
            super().enqueue_jobs()
        return jobs


class _OncePerMinute(logging.Filter):
    """rq-scheduler logs 'Lock already taken' every loop of a waiting instance: keep one a minute."""

    def __init__(self) -> None:
        super().__init__()
        self._last = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if "Lock already taken" not in record.getMessage():
            return True
        if time.monotonic() - self._last < 60:
            return False
        self._last = time.monotonic()
        return True


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rq-monitor-scheduler", description="Runs the periodic jobs (schedules).")
    parser.add_argument("--url", default=os.environ.get("REDIS_URL") or "redis://localhost:6379/0")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between two loops (default 1)")
    parser.add_argument("--name", default=None, help="instance name (default host.pid)")
    parser.add_argument("--burst", action="store_true", help="fire what is due once, then exit")
    parser.add_argument("--logging-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import config

    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.logging_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("rq_scheduler.scheduler").addFilter(_OncePerMinute())
    settings = {**config.defaults(), **config.from_env()}
    connection = redis.Redis.from_url(args.url)
    restarts = 0
    while True:
        name = args.name or f"{socket.gethostname()}.{os.getpid()}" + (f".{restarts}" if restarts else "")
        scheduler = MonitoredScheduler(
            connection, interval=args.interval, grace_seconds=float(settings["SCHEDULE_GRACE_SECONDS"]), name=name
        )
        try:
            scheduler.run(burst=args.burst)
            return 0
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # Redis restarted or unreachable: keep trying; the schedules are in Redis, so the cadence resumes.
            log.warning("Redis unreachable (%s); retrying in 1 s", exc)
            restarts += 1
            time.sleep(1.0)


if __name__ == "__main__":
    raise SystemExit(main())
