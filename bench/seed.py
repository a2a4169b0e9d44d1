"""Seed a Redis through RQ's own APIs: queues with waiting, completed, failed, delayed and active jobs,
plus 30 days of recorded history. `python bench/seed.py --url redis://... [--quick]`."""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

import redis
from rq import Queue
from rq.executions import Execution
from rq.job import Job, JobStatus

from app.domain import attempts, history

BATCH = 1000
# Per queue, out of each 20 jobs: 5 waiting, 7 completed, 6 failed, 2 delayed.
SHARES = (("waiting", 5), ("completed", 7), ("failed", 6), ("delayed", 2))


def _jobs(queue: Queue, count: int) -> list[Job]:
    return [
        queue.create_job("workers.tasks.send_email", args=(f"user{i}@example.com",), kwargs={"subject": "Hi"})
        for i in range(count)
    ]


def seed_queue(connection: redis.Redis, name: str, jobs_per_queue: int) -> None:
    queue = Queue(name, connection=connection)
    now = datetime.now(UTC)
    for state, share in SHARES:
        remaining = jobs_per_queue * share // 20
        while remaining > 0:
            size = min(BATCH, remaining)
            remaining -= size
            with connection.pipeline() as pipe:
                if state == "waiting":
                    data = [
                        Queue.prepare_data("workers.tasks.send_email", args=(f"u{i}@example.com",)) for i in range(size)
                    ]
                    queue.enqueue_many(data, pipeline=pipe)
                    pipe.execute()
                    continue
                for job in _jobs(queue, size):
                    job.started_at, job.ended_at = now - timedelta(seconds=2), now - timedelta(seconds=1)
                    if state == "completed":
                        job.set_status(JobStatus.FINISHED, pipeline=pipe)
                        job.save(pipeline=pipe)
                        queue.finished_job_registry.add(job, ttl=86400, pipeline=pipe)
                    elif state == "failed":
                        job.meta = {
                            attempts.ATTEMPTS_MADE: 1,
                            attempts.ERRORS: [
                                {"message": "RuntimeError: SMTP down", "stacktrace": "Traceback ...", "at": None}
                            ],
                        }
                        job.set_status(JobStatus.FAILED, pipeline=pipe)
                        job.save(pipeline=pipe)
                        queue.failed_job_registry.add(job, ttl=86400, pipeline=pipe, exc_string="RuntimeError")
                    else:
                        job.save(pipeline=pipe)
                        queue.scheduled_job_registry.schedule(job, now + timedelta(hours=1), pipeline=pipe)
                pipe.execute()


def seed_active(connection: redis.Redis, queue_names: list[str], count: int, stuck_share: float) -> None:
    """`count` running jobs spread over the queues; `stuck_share` of them started 10-200 minutes ago."""
    rng = random.Random(1)
    queues = [Queue(name, connection=connection) for name in queue_names]
    now = datetime.now(UTC).replace(tzinfo=None)
    for start in range(0, count, BATCH):
        with connection.pipeline() as pipe:
            for index in range(start, min(count, start + BATCH)):
                queue = queues[index % len(queues)]
                job = queue.create_job("workers.tasks.sleep_for", args=(3600,))
                stuck = rng.random() < stuck_share
                job.started_at = now - timedelta(minutes=rng.uniform(10, 200) if stuck else rng.uniform(0, 9))
                job.worker_name = f"bench-worker-{index % 20}"
                job.set_status(JobStatus.STARTED, pipeline=pipe)
                job.save(pipeline=pipe)
                Execution.create(job, ttl=86400, pipeline=pipe, worker_name=job.worker_name)
            pipe.execute()


def seed_history(connection: redis.Redis, queue_names: list[str], days: int = 30) -> None:
    now = time.time()
    with connection.pipeline(transaction=False) as pipe:
        for hour in range(days * 24):
            for name in queue_names:
                history.record_attempt(pipe, name, "ok", 120, "h", "f", ended_at=now - hour * 3600)
                if hour % 7 == 0:
                    history.record_attempt(pipe, name, "fail", 300, "h", "f", ended_at=now - hour * 3600)
            if hour % 24 == 0:
                pipe.execute()
        pipe.execute()


def seed(url: str, queues: int, jobs_per_queue: int, active: int, stuck_share: float) -> list[str]:
    connection = redis.Redis.from_url(url)
    names = [f"bench-{index:02d}" for index in range(queues)]
    started = time.perf_counter()
    for name in names:
        seed_queue(connection, name, jobs_per_queue)
    seed_active(connection, names, active, stuck_share)
    seed_history(connection, names)
    print(
        f"seeded {queues} queues x {jobs_per_queue} jobs + {active} active in {time.perf_counter() - started:.1f}s "
        f"(dbsize {connection.dbsize():,})"
    )
    return names


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--quick", action="store_true", help="20 queues x 1,000 jobs, 1,000 active")
    args = parser.parse_args()
    if args.quick:
        seed(args.url, 20, 1000, 1000, 0.05)
    else:
        seed(args.url, 50, 20_000, 10_000, 0.05)
