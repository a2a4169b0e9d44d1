"""rq-monitor-pool against RQ's own `rq worker-pool`, and the cost of the stalled-job check per tick.

1. Throughput: N short jobs (`workers.tasks.noop`), a pool of 4 children run with `--burst` until the queue is
   drained and the pool exits: `rq worker-pool -n 4` (plain rq.Worker children), `rq worker-pool -n 4 -w
   workers.MonitoredWorker` (the same children as ours, to separate the pool's overhead from the worker's), and
   `rq-monitor-pool --workers 4`. Alternating order, R rounds, medians. Budget: rq-monitor-pool >= 95 % of
   `rq worker-pool -n 4`.
2. Stall check: 1,000 active jobs in 10 queues run by 1,000 registered workers whose heartbeats are fresh (as RQ
   writes them: registry entry scored at execution heartbeat + 90 s, worker `last_heartbeat`), none stalled;
   `recover_stalled` timed in-process (p50 / p95 over 300 calls), its round trips (redis-py socket writes) and
   the commands Redis ran. Budget: <= 2 ms and one round trip. For comparison: the same check when every entry
   must be examined (a stale threshold shorter than RQ's heartbeat lead), and one stalled job among the 1,000.

    .venv/bin/python bench/pool_bench.py [--jobs 2000] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rq import Queue  # noqa: E402
from rq.executions import Execution  # noqa: E402
from rq.job import JobStatus  # noqa: E402
from rq.utils import utcformat  # noqa: E402

from app.domain.stalled import recover_stalled  # noqa: E402
from bench._common import ROOT, calls_delta, command_calls, percentile, private_redis, verdict  # noqa: E402

RQ = str(Path(sys.executable).parent / "rq")
QUEUE = "pool-bench"
POOLS = {
    "rq worker-pool": [RQ, "worker-pool", "-n", "4", "--burst", "-l", "ERROR"],
    "rq worker-pool -w Monitored": [
        RQ,
        "worker-pool",
        "-n",
        "4",
        "--burst",
        "-l",
        "ERROR",
        "-w",
        "workers.MonitoredWorker",
    ],
    "rq-monitor-pool": [sys.executable, "-m", "workers.pool", "--workers", "4", "--burst", "--logging-level", "ERROR"],
}


def run_pool(url: str, connection: redis.Redis, kind: str, jobs: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the pool and all its processes) for `jobs` jobs."""
    connection.flushall()
    queue = Queue(QUEUE, connection=connection)
    queue.enqueue_many([Queue.prepare_data("workers.tasks.noop") for _ in range(jobs)])
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [*POOLS[kind], "--url", url, QUEUE],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=900,
    )
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    finished = queue.finished_job_registry.count
    assert queue.count == 0 and finished == jobs, (kind, queue.count, finished)
    return elapsed, cpu


def throughput(url: str, connection: redis.Redis, jobs: int, rounds: int) -> bool:
    rates: dict[str, list[float]] = {kind: [] for kind in POOLS}
    cpu_ms: dict[str, list[float]] = {kind: [] for kind in POOLS}
    print(f"{jobs:,} no-op jobs per pool run, 4 children, {rounds} rounds, alternating\n")
    print(f"{'round':>5} {'pool':<30} {'wall s':>7} {'jobs/s':>8} {'CPU ms/job':>10}")
    for index in range(rounds):
        kinds = list(POOLS) if index % 2 == 0 else list(reversed(POOLS))
        for kind in kinds:
            elapsed, cpu = run_pool(url, connection, kind, jobs)
            rates[kind].append(jobs / elapsed)
            cpu_ms[kind].append(1000 * cpu / jobs)
            print(
                f"{index + 1:>5} {kind:<30} {elapsed:7.2f} {jobs / elapsed:8.1f} {cpu_ms[kind][-1]:10.2f}", flush=True
            )
    medians = {kind: statistics.median(values) for kind, values in rates.items()}
    ratio = medians["rq-monitor-pool"] / medians["rq worker-pool"]
    same_children = medians["rq-monitor-pool"] / medians["rq worker-pool -w Monitored"]
    print("\nmedian jobs/s  " + "   ".join(f"{kind} {rate:.1f}" for kind, rate in medians.items()))
    print(f"rq-monitor-pool / rq worker-pool: {ratio:.1%} {verdict(ratio >= 0.95)} (>= 95%)")
    print(f"rq-monitor-pool / rq worker-pool with the same MonitoredWorker children: {same_children:.1%}")
    cpu = {kind: statistics.median(values) for kind, values in cpu_ms.items()}
    print(
        "median CPU ms per job (all the pool's processes; steadier than wall time on a shared machine)  "
        + "   ".join(f"{kind} {value:.2f}" for kind, value in cpu.items())
        + "\n"
    )
    return ratio >= 0.95


def seed_active(connection: redis.Redis, count: int, queues: int = 10) -> list[str]:
    """`count` running jobs, each on its own registered worker, as RQ 3 leaves them between two heartbeats."""
    now = datetime.now(UTC)
    worker_names = []
    with connection.pipeline() as pipe:
        for index in range(count):
            queue = Queue(f"{QUEUE}-{index % queues}", connection=connection)
            job = queue.create_job("workers.tasks.sleep_for", args=(3600,))
            name = f"bench-worker-{index}"
            worker_names.append(name)
            job.started_at = now.replace(tzinfo=None)
            job.worker_name = name
            job.set_status(JobStatus.STARTED, pipeline=pipe)
            job.save(pipeline=pipe)
            pipe.sadd(Queue.redis_queues_keys, queue.key)
            Execution.create(job, ttl=90, pipeline=pipe, worker_name=name)  # RQ: monitoring interval + 60 s
            pipe.hset(f"rq:worker:{name}", mapping={"birth": utcformat(now), "last_heartbeat": utcformat(now)})
            pipe.expire(f"rq:worker:{name}", 480)
            pipe.sadd("rq:workers", f"rq:worker:{name}")
            if index % 200 == 199:
                pipe.execute()
        pipe.execute()
    return worker_names


class RoundTrips:
    """Counts socket writes of a redis-py client (a pipeline is one)."""

    def __init__(self, connection: redis.Redis) -> None:
        self.count = 0
        original = connection.connection_pool.get_connection

        def get_connection(*args, **kwargs):  # type: ignore[no-untyped-def]
            conn = original(*args, **kwargs)
            if not getattr(conn, "_bench_counted", False):
                send = conn.send_packed_command

                def counted(command, check_health=True):  # type: ignore[no-untyped-def]
                    self.count += 1
                    return send(command, check_health)

                conn.send_packed_command = counted
                conn._bench_counted = True
            return conn

        connection.connection_pool.get_connection = get_connection  # type: ignore[method-assign]


def time_check(connection: redis.Redis, calls: int, stale_seconds: float) -> tuple[float, float, float, int]:
    """(p50 ms, p95 ms, round trips per call, Redis commands per call)."""
    recover_stalled(connection, stale_seconds=stale_seconds)  # loads the script
    before = command_calls(connection)
    trips = RoundTrips(connection)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        moved = recover_stalled(connection, stale_seconds=stale_seconds)
        samples.append((time.perf_counter() - started) * 1000)
        assert moved == [], moved
    round_trips = trips.count / calls
    commands = calls_delta(before, command_calls(connection), exclude=("info",))
    return percentile(samples, 0.5), percentile(samples, 0.95), round_trips, round(commands / calls)


def stall_check(connection: redis.Redis, active: int, calls: int) -> bool:
    connection.flushall()
    names = seed_active(connection, active)
    p50, p95, trips, commands = time_check(connection, calls, stale_seconds=300)
    ok = p50 <= 2.0 and trips == 1
    print(
        f"stall check, {active:,} active jobs, none stalled: p50 {p50:.3f} ms, p95 {p95:.3f} ms, "
        f"{trips:g} round trip(s), {commands} Redis commands per call  {verdict(ok)} (<= 2 ms, 1 round trip)"
    )
    p50, p95, trips, commands = time_check(connection, max(20, calls // 10), stale_seconds=1)
    print(
        f"  every entry examined (stale threshold 1 s, workers fresh): p50 {p50:.3f} ms, p95 {p95:.3f} ms, "
        f"{commands} commands per call"
    )
    connection.delete(f"rq:worker:{names[0]}")
    started = time.perf_counter()
    moved = recover_stalled(connection, stale_seconds=1)
    print(
        f"  one worker gone among {active:,}: recovered {len(moved)} job in "
        f"{(time.perf_counter() - started) * 1000:.2f} ms (find + move + record)"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--active", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="500 jobs, 1 round")
    args = parser.parse_args()
    jobs, rounds = (500, 1) if args.quick else (args.jobs, args.rounds)
    with private_redis() as (url, connection):
        check_ok = stall_check(connection, args.active, 300)
        print()
        pool_ok = throughput(url, connection, jobs, rounds)
    return 0 if check_ok and pool_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
