"""An idle MonitoredWorker outlives a Redis restart and an outage, as rq.Worker does (issue 10, item 1).

Each test runs its own redis-server, never the session's: it is stopped and started again under the worker.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, Worker
from rq.job import JobStatus

from tests.helpers import ROOT, RestartableRedis, stop_worker, wait_for, worker_command


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path / "redis")
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.mark.parametrize("outage_seconds", [0, 10], ids=["restart", "10s-outage"])
def test_an_idle_monitored_worker_survives_redis_going_away_then_takes_jobs_again(own_redis, outage_seconds):
    connection = Redis.from_url(own_redis.url)
    command = worker_command(own_redis.url, "w-outage", burst=False)
    worker = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(w.state == "idle" for w in Worker.all(connection=connection)), timeout=30)
        time.sleep(1.5)  # idle: blocked in its dequeue when Redis goes
        own_redis.stop()
        time.sleep(outage_seconds)
        own_redis.start()
        job = Queue("w-outage", connection=connection).enqueue("workers.tasks.add", 2, 3)
        finished = lambda: job.get_status(refresh=True) == JobStatus.FINISHED  # noqa: E731
        wait_for(lambda: worker.poll() is not None or finished(), timeout=60, interval=0.2)
        assert worker.poll() is None, worker.stderr.read()[-3000:] if worker.stderr else ""
        assert job.return_value() == 5
    finally:
        stop_worker(worker)
        connection.close()
