"""Reading every registered worker: app.domain.workers.read_workers against RQ's Worker.all() (budget: at most 2
round trips and p50 <= 10 ms in-process for 1,000 workers).

A private redis-server; N workers registered by RQ itself (`Worker.register_birth`), half of them with the
MonitoredWorker fields, a tenth busy with an RQ 3 execution of a real job. Round trips are counted at the client
(one packed send = one round trip); each reader runs R times, p50 and p95 reported. Interleaved run by
run: a process's first read (its parse cache emptied), and the read at every tick of a busy deployment, where every
worker has heartbeated (new last_heartbeat and RSS) and ended a job (new counters) since the previous read: the
budget is checked on the latter, the steady state of every process that reads the workers.

    .venv/bin/python bench/workers_bench.py [--workers 1000] [--runs 50]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import redis
import redis.connection

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rq import Queue, Worker
from rq.executions import Execution
from rq.job import JobStatus
from rq.utils import now, utcformat

from app.domain import workers as registry
from bench._common import percentile, private_redis, verdict


class RoundTrips:
    """Counts packed sends (one per command, one per pipeline or script call) while active."""

    def __init__(self) -> None:
        self.count = 0
        self._real = redis.connection.AbstractConnection.send_packed_command

    def __enter__(self) -> RoundTrips:
        real, counter = self._real, self

        def counting(conn, command, check_health=True):  # type: ignore[no-untyped-def]
            counter.count += 1
            return real(conn, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        redis.connection.AbstractConnection.send_packed_command = self._real  # type: ignore[method-assign]


def seed(connection: redis.Redis, count: int) -> None:
    queues = [Queue(f"bench-{i}", connection=connection) for i in range(10)]
    for i in range(count):
        queue = queues[i % len(queues)]
        worker = Worker([queue], connection=connection, name=f"host-{i // 100}.{i}")
        worker.register_birth()
        with connection.pipeline() as pipe:
            if i % 2:
                pipe.hset(
                    worker.key,
                    mapping={
                        registry.HEARTBEAT_AT: f"{time.time():.3f}",
                        registry.USAGE: registry.usage_value(85.2, 3.5),
                        registry.MONITORED: registry.monitored_value(capabilities='{"gpu": false, "cpu": 4}'),
                        registry.PAUSED: "0",
                    },
                )
            if i % 10 == 0:
                job = queue.create_job("workers.tasks.sleep_for", args=(60,))
                job.worker_name = worker.name
                job.set_status(JobStatus.STARTED, pipeline=pipe)
                job.save(pipeline=pipe)
                Execution.create(job, ttl=3600, pipeline=pipe, worker_name=worker.name)
                worker.set_state("busy", pipeline=pipe)
            pipe.execute()


def beat_all(connection: redis.Redis) -> None:
    """Between two ticks of a busy deployment: every worker heartbeats with its own new RSS and CPU, and ends a job
    (RQ's counters and total working time move), each worker's figures distinct from every other's, as they are in
    life (the parse caches nothing a tick could share)."""
    stamp = utcformat(now())
    with connection.pipeline(transaction=False) as pipe:
        for index, key in enumerate(sorted(connection.smembers(registry.WORKERS_SET))):
            rss, cpu = round(80 + index / 10 + random.random(), 2), round(random.uniform(0, 100), 1)
            pipe.hset(key, mapping={"last_heartbeat": stamp, registry.USAGE: registry.usage_value(rss, cpu)})
            pipe.hincrby(key, "successful_job_count", index + 1)
            pipe.hincrby(key, "failed_job_count", index % 3)
            pipe.hincrbyfloat(key, "total_working_time", round(random.uniform(0.01, 9.99), 6))
        pipe.execute()


def round_trips(read) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Round trips of one call, and how many workers it returned."""
    with RoundTrips() as trips:
        found = len(read())
    return trips.count, found


def timed(read) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    read()
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with private_redis() as (_url, connection):
        seed(connection, args.workers)

        def cold() -> list:
            registry._static.cache_clear()  # a process's first read: nothing parsed yet
            return registry.read_workers(connection, time.time(), 60, 300)

        read = lambda: registry.read_workers(connection, time.time(), 60, 300)  # noqa: E731
        theirs_read = lambda: Worker.all(connection=connection)  # noqa: E731
        trips = {name: round_trips(reader) for name, reader in (("cold", cold), ("tick", read), ("rq", theirs_read))}
        timings: dict[str, list[float]] = {"cold": [], "tick": [], "rq": []}
        for run in range(args.runs):  # interleaved: a cold read, a tick, a next-tick read (and RQ's, 1 run in 5)
            timings["cold"].append(timed(cold))
            beat_all(connection)
            timings["tick"].append(timed(read))
            if run % 5 == 0:
                timings["rq"].append(timed(theirs_read))
    print(f"{args.workers:,} registered workers (half MonitoredWorker, a tenth busy), {args.runs} runs\n")
    header = f"{'reader':<36} {'round trips':>11} {'min ms':>8} {'p50 ms':>8} {'p95 ms':>8}"
    print(header)
    print("-" * len(header))
    labels = {
        "cold": "read_workers, a process's first read",
        "tick": "read_workers, next tick (busy)",
        "rq": "rq Worker.all()",
    }
    for name, label in labels.items():
        p50, p95 = percentile(timings[name], 0.5), percentile(timings[name], 0.95)
        print(f"{label:<36} {trips[name][0]:>11} {min(timings[name]):8.2f} {p50:8.2f} {p95:8.2f}")
    p50, (count, found) = percentile(timings["tick"], 0.5), trips["tick"]
    ok = count <= 2 and p50 <= 10.0 and found == args.workers
    print(f"\nread_workers at every tick: {count} round trip(s), p50 {p50:.2f} ms  {verdict(ok)} (<= 2, p50 <= 10 ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
