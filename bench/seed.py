"""Seed a Redis through RQ's own APIs, in pipelines of BATCH jobs.

Per queue, out of every 20 jobs: 5 waiting (Queue.enqueue_many), 7 completed (FinishedJobRegistry.add),
6 failed (FailedJobRegistry.add), 2 delayed (Queue.schedule_job, i.e. the ScheduledJobRegistry); plus active jobs
spread over the queues (rq.executions.Execution.create, as tests.helpers.make_active_job does): one in ten
started 10-200 minutes ago, a stuck alert in one of the four bands, the rest 0-3 minutes ago (so they are not
stuck yet for the few minutes a benchmark runs); plus 30 days of outcome history
(app.domain.history.record_attempt, one ok per queue per hour and a failure every 7 hours).

Importable (`seed(connection, ...)`) and a CLI that seeds a private redis-server it starts and stops itself:

    .venv/bin/python bench/seed.py [--quick] [--save DUMP.rdb]

Full: 50 queues x 20,000 jobs (1,000,000) + 10,000 active. --quick: 20 queues x 1,000 + 1,000 active.
`--save` writes the seeded data set as an RDB file that `api_bench.py --rdb` starts from instead of seeding.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rq import Queue
from rq.executions import Execution
from rq.job import JobStatus

from app.domain import attempts, history

BATCH = 1000  # jobs per pipeline
SHARES = (("waiting", 5), ("completed", 7), ("failed", 6), ("delayed", 2))  # out of 20
FULL = {"queues": 50, "jobs_per_queue": 20_000, "active": 10_000}
QUICK = {"queues": 20, "jobs_per_queue": 1_000, "active": 1_000}
HISTORY_DAYS = 30
FUNC = "workers.tasks.send_email"


def queue_names(count: int) -> list[str]:
    return [f"bench-{index:02d}" for index in range(count)]


def state_counts(jobs_per_queue: int) -> dict[str, int]:
    """How many jobs of each state one queue gets (the remainder of the division goes to `waiting`)."""
    counts = {state: jobs_per_queue * share // 20 for state, share in SHARES}
    counts["waiting"] += jobs_per_queue - sum(counts.values())
    return counts


def _batches(total: int) -> list[int]:
    return [min(BATCH, total - start) for start in range(0, total, BATCH)]


def seed_queue(connection: redis.Redis, name: str, jobs_per_queue: int) -> None:
    queue = Queue(name, connection=connection)
    now = datetime.now(UTC).replace(tzinfo=None)
    counter = 0
    for state, total in state_counts(jobs_per_queue).items():
        for size in _batches(total):
            with connection.pipeline(transaction=False) as pipe:
                if state == "waiting":
                    data = [
                        Queue.prepare_data(FUNC, args=(f"user{counter + i}@example.com",), kwargs={"subject": "Hi"})
                        for i in range(size)
                    ]
                    queue.enqueue_many(data, pipeline=pipe)
                else:
                    for i in range(size):
                        job = queue.create_job(FUNC, args=(f"user{counter + i}@example.com",), kwargs={"subject": "Hi"})
                        job.enqueued_at = now - timedelta(seconds=30)
                        if state == "delayed":
                            queue.schedule_job(job, now + timedelta(hours=1), pipeline=pipe)
                            continue
                        job.started_at, job.ended_at = now - timedelta(seconds=2), now - timedelta(seconds=1)
                        job.worker_name = "bench-worker"
                        if state == "completed":
                            job.meta = {attempts.ATTEMPTS_STARTED: 1, attempts.ATTEMPTS_MADE: 1}
                            job.set_status(JobStatus.FINISHED, pipeline=pipe)
                            job.save(pipeline=pipe)
                            queue.finished_job_registry.add(job, ttl=86400, pipeline=pipe)
                        else:
                            job.meta = {
                                attempts.ATTEMPTS_STARTED: 1,
                                attempts.ATTEMPTS_MADE: 1,
                                attempts.ERRORS: [
                                    {"message": "RuntimeError: SMTP down", "stacktrace": "Traceback ...", "at": None}
                                ],
                            }
                            job.set_status(JobStatus.FAILED, pipeline=pipe)
                            job.save(pipeline=pipe)
                            queue.failed_job_registry.add(
                                job, ttl=86400, exc_string="RuntimeError: SMTP down", pipeline=pipe
                            )
                pipe.execute()
            counter += size


STUCK_SHARE = 10  # one active job in ten is stuck


def stuck_count(active: int) -> int:
    return len(range(0, active, STUCK_SHARE))


def seed_active(
    connection: redis.Redis,
    names: list[str],
    count: int,
    seed: int = 1,
    stuck_share: int = STUCK_SHARE,
    kwargs: dict | None = None,
) -> None:
    """`count` running jobs over the queues; every `stuck_share`-th started 10-200 minutes ago (stuck), the
    others 0-3 minutes ago (running, not stuck yet). `kwargs`: the jobs' keyword arguments (payload size)."""
    rng = random.Random(seed)
    queues = [Queue(name, connection=connection) for name in names]
    now = datetime.now(UTC).replace(tzinfo=None)
    done = 0
    for size in _batches(count):
        with connection.pipeline(transaction=False) as pipe:
            for index in range(done, done + size):
                queue = queues[index % len(queues)]
                job = queue.create_job("workers.tasks.sleep_for", args=(3600,), kwargs=kwargs or {})
                job.meta = {attempts.ATTEMPTS_STARTED: 1, attempts.ATTEMPTS_MADE: 0}
                minutes = rng.uniform(10.5, 200) if index % stuck_share == 0 else rng.uniform(0, 3)
                job.enqueued_at = job.started_at = now - timedelta(minutes=minutes)
                job.worker_name = f"bench-worker-{index % 20}"
                job.set_status(JobStatus.STARTED, pipeline=pipe)
                job.save(pipeline=pipe)
                pipe.sadd(Queue.redis_queues_keys, queue.key)
                Execution.create(job, ttl=86400, pipeline=pipe, worker_name=job.worker_name)
            pipe.execute()
        done += size


def seed_history(connection: redis.Redis, names: list[str], days: int = HISTORY_DAYS) -> int:
    """Recorded outcomes over `days` days: per queue one ok each hour, one failure every 7 hours."""
    now = time.time()
    recorded = 0
    with connection.pipeline(transaction=False) as pipe:
        for hour in range(days * 24):
            ended_at = now - hour * 3600 - 60
            for name in names:
                history.record_attempt(pipe, name, "ok", 120, f"h{hour}", FUNC, ended_at=ended_at)
                recorded += 1
                if hour % 7 == 0:
                    history.record_attempt(pipe, name, "fail", 300, f"f{hour}", FUNC, ended_at=ended_at)
                    recorded += 1
            if len(pipe) >= BATCH:
                pipe.execute()
        pipe.execute()
    return recorded


def seed(
    connection: redis.Redis, queues: int, jobs_per_queue: int, active: int, quiet: bool = False
) -> dict[str, object]:
    """Seed everything; returns the queue names and the seconds each phase took."""
    names = queue_names(queues)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for name in names:
        seed_queue(connection, name, jobs_per_queue)
    timings["jobs"] = time.perf_counter() - started
    mark = time.perf_counter()
    seed_active(connection, names, active)
    timings["active"] = time.perf_counter() - mark
    mark = time.perf_counter()
    recorded = seed_history(connection, names)
    timings["history"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    result = {"names": names, "timings": timings, "history_records": recorded}
    if not quiet:
        print_summary(connection, queues, jobs_per_queue, active, result)
    return result


def print_summary(connection: redis.Redis, queues: int, jobs_per_queue: int, active: int, result: dict) -> None:
    from app.domain.metrics import get_metrics

    totals = get_metrics(connection)["totals"]
    timings = result["timings"]
    expected = {state: count * queues for state, count in state_counts(jobs_per_queue).items()}
    expected["active"] = active
    print(
        f"seeded {queues} queues x {jobs_per_queue:,} jobs + {active:,} active + {result['history_records']:,} "
        f"history records"
    )
    print(f"{'state':<10} {'expected':>10} {'in Redis':>10}")
    for state in ("waiting", "completed", "failed", "delayed", "active"):
        print(f"{state:<10} {expected[state]:>10,} {totals[state]:>10,}")
    memory = connection.info("memory")["used_memory_human"]
    print(
        f"time: jobs {timings['jobs']:.1f} s, active {timings['active']:.1f} s, history {timings['history']:.1f} s, "
        f"total {timings['total']:.1f} s ({(queues * jobs_per_queue + active) / timings['total']:,.0f} jobs/s); "
        f"dbsize {connection.dbsize():,}, used memory {memory}"
    )


def save_rdb(connection: redis.Redis, target: Path) -> None:
    connection.save()
    data_dir = Path(connection.config_get("dir")["dir"])
    shutil.copyfile(data_dir / connection.config_get("dbfilename")["dbfilename"], target)


def main() -> int:
    from bench._common import private_redis

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 queues x 1,000 jobs, 1,000 active")
    parser.add_argument("--save", type=Path, help="write the seeded data set to this RDB file")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    with private_redis() as (_url, connection):
        seed(connection, size["queues"], size["jobs_per_queue"], size["active"])
        if args.save:
            save_rdb(connection, args.save)
            print(f"saved to {args.save}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
