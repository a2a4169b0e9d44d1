"""Reading every registered worker: app.domain.workers.read_workers against RQ's Worker.all() (budget: at most 2
round trips and p50 <= 10 ms in-process for 1,000 workers).

A private redis-server; N workers registered by RQ itself (`Worker.register_birth`), half of them with the
MonitoredWorker fields, a tenth busy with an RQ 3 execution of a real job. Round trips are counted at the client
(one packed send = one round trip); each reader runs R times, p50 and p95 reported. The budget is checked on
the cold read (its parse cache emptied before each call, as if every hash had changed); "next tick" is the usual
case: every worker has heartbeated since the previous read (new last_heartbeat and RSS), nothing else changed.

    .venv/bin/python bench/workers_bench.py [--workers 1000] [--runs 50]
"""

from __future__ import annotations

import argparse
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
                        registry.HONOURS_PAUSE: "1",
                        registry.HEARTBEAT_AT: f"{time.time():.3f}",
                        registry.RSS_MB: "85.2",
                        registry.CPU_PERCENT: "3.5",
                        registry.MEMORY_LIMIT_MB: "",
                        registry.CAPABILITIES: '{"gpu": false, "cpu": 4}',
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
    """Every worker heartbeats (as between two ticks: a MonitoredWorker's RQ heartbeat runs every second)."""
    stamp = utcformat(now())
    with connection.pipeline(transaction=False) as pipe:
        for key in connection.smembers(registry.WORKERS_SET):
            pipe.hset(key, mapping={"last_heartbeat": stamp, registry.RSS_MB: f"{80 + time.time() % 10:.1f}"})
        pipe.execute()


def measure(read, runs: int, before=None) -> tuple[list[float], int, int]:  # type: ignore[no-untyped-def]
    """Timings (ms), round trips of one call, and how many workers it returned; `before` runs untimed."""
    with RoundTrips() as trips:
        found = len(read())
    timings = []
    for _ in range(runs):
        if before is not None:
            before()
        started = time.perf_counter()
        read()
        timings.append((time.perf_counter() - started) * 1000)
    return timings, trips.count, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with private_redis() as (_url, connection):
        seed(connection, args.workers)

        def cold() -> list:
            registry._static.cache_clear()  # as if every hash had changed since the previous read
            return registry.read_workers(connection, time.time(), 60, 300)

        ours = measure(cold, args.runs)
        read = lambda: registry.read_workers(connection, time.time(), 60, 300)  # noqa: E731
        warm = measure(read, args.runs, before=lambda: beat_all(connection))
        theirs = measure(lambda: Worker.all(connection=connection), max(5, args.runs // 10))
    print(f"{args.workers:,} registered workers (half MonitoredWorker, a tenth busy), {args.runs} runs\n")
    header = f"{'reader':<28} {'workers':>7} {'round trips':>11} {'min ms':>8} {'p50 ms':>8} {'p95 ms':>8}"
    print(header)
    print("-" * len(header))
    rows = (("read_workers, cold", ours), ("read_workers, next tick", warm), ("rq Worker.all()", theirs))
    for label, (timings, trips, found) in rows:
        p50, p95 = percentile(timings, 0.5), percentile(timings, 0.95)
        print(f"{label:<28} {found:>7} {trips:>11} {min(timings):8.2f} {p50:8.2f} {p95:8.2f}")
    p50, trips, found = percentile(ours[0], 0.5), ours[1], ours[2]
    ok = trips <= 2 and p50 <= 10.0 and found == args.workers
    print(f"\nread_workers, cold: {trips} round trip(s), p50 {p50:.2f} ms  {verdict(ok)} (<= 2, p50 <= 10 ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
