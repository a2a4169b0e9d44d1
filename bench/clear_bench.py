"""Clearing the completed jobs of one queue: app.domain.clear.clear_queue(connection, name, "completed").

A private redis-server gets N finished jobs of one queue made through RQ's APIs as a worker leaves them
(Queue.create_job, status FINISHED, Job.save, rq.results.Result.create, FinishedJobRegistry.add; in pipelines of
1,000 jobs), plus one waiting and a few failed jobs of the same queue that must survive. Each run clears twice:
- timed: clear_queue with the slowlog off, total wall time (budget <= 1.5 s);
- probed: the same data again, with `CONFIG SET slowlog-log-slower-than 0`, then SLOWLOG GET: the slowest single
  command Redis ran (budget <= 20 ms). Redis 6.2+ also logs the commands a Lua script runs, each on its own line;
  the EVAL line's duration covers the whole script, i.e. how long Redis was blocked by one call.
Then it checks that no key of a cleared job is left (job hash, results, executions) and the others are intact.

    .venv/bin/python bench/clear_bench.py [--jobs 20000] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rq import Queue
from rq.job import JobStatus
from rq.results import Result

from app.domain.clear import CHUNK, clear_queue
from bench._common import private_redis, verdict

QUEUE = "clear-bench"
BUDGET_SECONDS = 1.5
BUDGET_COMMAND_MS = 20.0


def seed_finished(connection: redis.Redis, count: int) -> tuple[list[str], list[str]]:
    """`count` finished jobs with their results; returns their ids and the ids of the jobs that must stay."""
    queue = Queue(QUEUE, connection=connection)
    ids = []
    now = datetime.now(UTC).replace(tzinfo=None)
    for start in range(0, count, 1000):
        with connection.pipeline(transaction=False) as pipe:
            for index in range(start, min(count, start + 1000)):
                job = queue.create_job("workers.tasks.add", args=(index, 1))
                job.started_at = job.ended_at = now
                job.set_status(JobStatus.FINISHED, pipeline=pipe)
                job.save(pipeline=pipe)
                Result.create(job, Result.Type.SUCCESSFUL, ttl=3600, return_value=index + 1, pipeline=pipe)
                queue.finished_job_registry.add(job, ttl=3600, pipeline=pipe)
                ids.append(job.id)
            pipe.execute()
    kept = [queue.enqueue("workers.tasks.noop").id]
    with connection.pipeline(transaction=False) as pipe:
        for _ in range(3):
            job = queue.create_job("workers.tasks.fail")
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            job.save(pipeline=pipe)
            queue.failed_job_registry.add(job, ttl=3600, exc_string="RuntimeError", pipeline=pipe)
            kept.append(job.id)
        pipe.execute()
    return ids, kept


def leftovers(connection: redis.Redis, ids: list[str], kept: list[str]) -> tuple[int, int, int]:
    """(keys of cleared jobs still there, jobs that had to stay but are gone, entries left in the registry)."""
    with connection.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.exists(f"rq:job:{job_id}", f"rq:results:{job_id}", f"rq:executions:{job_id}")
        left = sum(pipe.execute())
    lost = len(kept) - sum(connection.exists(f"rq:job:{job_id}") for job_id in kept)
    registry = connection.zcard(Queue(QUEUE, connection=connection).finished_job_registry.key)
    return left, lost, registry


def one_run(connection: redis.Redis, jobs: int) -> dict[str, float]:
    connection.flushall()
    ids, kept = seed_finished(connection, jobs)
    keys_before = connection.dbsize()
    connection.config_set("slowlog-log-slower-than", -1)
    started = time.perf_counter()
    result = clear_queue(connection, QUEUE, "completed")
    elapsed = time.perf_counter() - started
    assert result["removed"]["completed"] == jobs, result
    left, lost, registry = leftovers(connection, ids, kept)
    keys_after = connection.dbsize()

    connection.flushall()
    ids, kept = seed_finished(connection, jobs)
    connection.config_set("slowlog-max-len", 10 * jobs + 10_000)
    connection.slowlog_reset()  # before logging starts: freeing a long log is itself a slow command
    connection.config_set("slowlog-log-slower-than", 0)
    clear_queue(connection, QUEUE, "completed")
    connection.config_set("slowlog-log-slower-than", -1)
    # The bench's own CONFIG SET is logged too; only the clear's commands count.
    entries = [
        entry
        for entry in connection.slowlog_get(10 * jobs + 10_000)
        if not entry["command"].upper().startswith((b"CONFIG", b"SLOWLOG"))
    ]
    connection.slowlog_reset()
    left2, lost2, registry2 = leftovers(connection, ids, kept)
    evals = [entry for entry in entries if entry["command"].startswith((b"EVAL", b"EVALSHA"))]
    slowest = max(entries, key=lambda entry: entry["duration"])
    return {
        "seconds": elapsed,
        "slowest_ms": slowest["duration"] / 1000,
        "slowest_command": slowest["command"][:24].decode(errors="replace"),
        "evals": len(evals),
        "eval_median_ms": statistics.median(entry["duration"] for entry in evals) / 1000,
        "left": left + left2,
        "lost": lost + lost2,
        "registry": registry + registry2,
        "keys_before": keys_before,
        "keys_after": keys_after,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one run")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    with private_redis() as (_url, connection):
        results = [one_run(connection, args.jobs) for _ in range(runs)]
    print(f"\nclear_queue(..., 'completed') of {args.jobs:,} finished jobs with results; chunk {CHUNK}; {runs} runs\n")
    header = (
        f"{'run':>3} {'total s':>8} {'EVAL calls':>10} {'EVAL p50 ms':>11} {'slowest ms':>10} {'slowest command':<24} "
        f"{'keys before':>11} {'after':>6} {'job keys left':>13} {'kept lost':>9}"
    )
    print(header)
    print("-" * len(header))
    for index, r in enumerate(results, 1):
        print(
            f"{index:>3} {r['seconds']:8.3f} {r['evals']:>10} {r['eval_median_ms']:11.2f} {r['slowest_ms']:10.2f} "
            f"{r['slowest_command']:<24} {r['keys_before']:>11,} {r['keys_after']:>6,} {r['left']:>13} {r['lost']:>9}"
        )
    seconds = statistics.median(r["seconds"] for r in results)
    slowest = max(r["slowest_ms"] for r in results)
    clean = all(r["left"] == 0 and r["lost"] == 0 and r["registry"] == 0 for r in results)
    print(
        f"\nmedian total {seconds:.3f} s: {verdict(seconds <= BUDGET_SECONDS)} (<= {BUDGET_SECONDS} s); "
        f"slowest single command over all runs {slowest:.2f} ms: {verdict(slowest <= BUDGET_COMMAND_MS)} "
        f"(<= {BUDGET_COMMAND_MS:.0f} ms); every cleared job's keys gone, waiting/failed kept: {verdict(clean)}"
    )
    return 0 if seconds <= BUDGET_SECONDS and slowest <= BUDGET_COMMAND_MS and clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
