"""Helpers for tests that need real `rq worker` processes and jobs in given states."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.executions import Execution
from rq.job import Job, JobStatus

from app.domain import attempts, keys
from app.domain.schedules import utc_day
from app.embedded_redis import start_redis_server

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def worker_command(redis_url: str, *queues: str, burst: bool = True, plain: bool = False) -> list[str]:
    command = [str(BIN / "rq"), "worker", "--url", redis_url, "--logging_level", "WARNING"]
    if not plain:
        command += ["-w", "workers.MonitoredWorker"]
    if burst:
        command.append("--burst")
    return [*command, *queues]


def run_worker(redis_url: str, *queues: str, timeout: float = 60, plain: bool = False) -> subprocess.CompletedProcess:
    """A real `rq worker --burst` process, run to completion."""
    result = subprocess.run(
        worker_command(redis_url, *queues, plain=plain), capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def start_worker(redis_url: str, *queues: str, with_scheduler: bool = False) -> subprocess.Popen:
    """A real long-running `rq worker` process; stop it with stop_worker()."""
    command = worker_command(redis_url, *queues, burst=False)
    if with_scheduler:
        command.insert(2, "--with-scheduler")
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_worker(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def make_active_job(
    connection: Redis,
    queue_name: str,
    minutes_running: float,
    func: str = "workers.tasks.sleep_for",
    args: tuple = (3600,),
    kwargs: dict | None = None,
) -> Job:
    """A job whose current run started `minutes_running` ago, registered through RQ's Execution API."""
    queue = Queue(queue_name, connection=connection)
    job = queue.create_job(func, args=args, kwargs=kwargs or {})
    job.meta = {attempts.ATTEMPTS_STARTED: 1, attempts.ATTEMPTS_MADE: 0}
    job.started_at = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=minutes_running)
    job.worker_name = "test-worker"
    with connection.pipeline() as pipe:
        job.set_status(JobStatus.STARTED, pipeline=pipe)
        job.save(pipeline=pipe)
        pipe.sadd(Queue.redis_queues_keys, queue.key)
        Execution.create(job, ttl=3600, pipeline=pipe, worker_name="test-worker")
        pipe.execute()
    return job


def start_gunicorn(redis_url: str, port: int, **settings: str) -> subprocess.Popen:
    """The product as deployed (gunicorn + gevent), configured through the environment."""
    import os

    from app.launcher import start_web, wait_for_web

    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "JWT_SECRET_KEY": "live-test-secret-key-long-enough-for-hs256",
        "RQMON_ENV": "production",
        **settings,
    }
    process = start_web(env, port, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_web(port, process)
    return process


def every_value(connection: Redis, skipped: tuple[bytes, ...] = ()) -> dict[bytes, bytes | None]:
    """Every key with its serialized value, but those under the `skipped` prefixes: proves a request wrote nothing."""
    return {key: connection.dump(key) for key in connection.keys("*") if not key.startswith(skipped)}


def runs_on_the_days(connection: Redis, schedule: str, *moments: float) -> set[int]:
    """What a schedule's runsToday may be for a read made between `moments` (say, just before and just after it):
    the runs recorded on each moment's UTC day, from their recorded times. Two values only when a midnight fell
    between the moments: the test then does not depend on the clock not crossing a day."""
    recorded = [utc_day(score) for _, score in connection.zrange(keys.schedule_runs(schedule), 0, -1, withscores=True)]
    return {recorded.count(utc_day(moment)) for moment in moments}


class RestartableRedis:
    """A private redis-server (never the session's) that a test stops and starts again on the same port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process = start_redis_server(data_dir, persist=False)
        self.port = int((data_dir / "redis.port").read_text().strip())
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def start(self) -> None:
        self.process = start_redis_server(self.data_dir, port=self.port, persist=False)

    def restart(self) -> None:
        self.stop()
        self.start()
