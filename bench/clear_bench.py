"""Clearing 20,000 completed jobs of one queue: total time (budget 1.5 s) and the slowest single Redis command
(budget 20 ms, from SLOWLOG). Jobs are created through RQ's APIs with their results, as a worker leaves them.
`python bench/clear_bench.py [--jobs N]`."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from rq import Queue
from rq.job import JobStatus
from rq.results import Result

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain.clear import clear_queue  # noqa: E402
from app.embedded_redis import start_private_redis  # noqa: E402


def seed_finished(connection: redis.Redis, name: str, count: int) -> list[str]:
    queue = Queue(name, connection=connection)
    ids = []
    for start in range(0, count, 1000):
        with connection.pipeline() as pipe:
            for index in range(start, min(count, start + 1000)):
                job = queue.create_job("workers.tasks.add", args=(index, 1))
                job.started_at = job.ended_at = datetime.now(UTC)
                job.set_status(JobStatus.FINISHED, pipeline=pipe)
                job.save(pipeline=pipe)
                Result.create(job, Result.Type.SUCCESSFUL, ttl=3600, return_value=index + 1, pipeline=pipe)
                queue.finished_job_registry.add(job, ttl=3600, pipeline=pipe)
                ids.append(job.id)
            pipe.execute()
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    args = parser.parse_args()
    process, url = start_private_redis()
    connection = redis.Redis.from_url(url)
    try:
        ids = seed_finished(connection, "clear-bench", args.jobs)
        waiting = Queue("clear-bench", connection=connection).enqueue("workers.tasks.noop")
        keys_before = connection.dbsize()
        connection.config_set("slowlog-log-slower-than", 0)
        connection.config_set("slowlog-max-len", 1_000_000)
        connection.slowlog_reset()
        started = time.perf_counter()
        result = clear_queue(connection, "clear-bench", "completed")
        elapsed = time.perf_counter() - started
        entries = connection.slowlog_get(1_000_000)
        connection.config_set("slowlog-log-slower-than", 10_000)
        slowest = max(entries, key=lambda entry: entry["duration"])
        leftovers = sum(connection.exists(f"rq:job:{job_id}", f"rq:results:{job_id}") for job_id in ids)
        print(
            f"cleared {result['removed']['completed']:,} completed jobs in {elapsed:.3f} s "
            f"({'PASS' if elapsed <= 1.5 else 'FAIL'} <= 1.5 s)"
        )
        calls = sum(1 for entry in entries if entry["command"].startswith((b"EVAL", b"ZCARD", b"SISMEMBER")))
        print(
            f"client commands: {calls:,} (slowlog entries incl. commands inside scripts: {len(entries):,}); "
            f"slowest {slowest['duration'] / 1000:.2f} ms ({slowest['command'][:40]!r}) "
            f"({'PASS' if slowest['duration'] <= 20_000 else 'FAIL'} <= 20 ms)"
        )
        print(
            f"keys before {keys_before:,}, after {connection.dbsize():,}; job or result keys left: {leftovers}; "
            f"waiting job kept: {connection.exists(f'rq:job:{waiting.id}') == 1}"
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
