"""Throughput of `rq worker -w workers.MonitoredWorker` against plain `rq worker` on no-op jobs (budget >= 95 %).

A private redis-server; each round (Redis flushed first) enqueues N `workers.tasks.noop` jobs with
Queue.enqueue_many and times `rq worker --burst` until it exits with the queue drained, for both workers one after
the other, alternating which goes first; R rounds in the same run. The wall time includes starting the worker
process (imports, registration), so a second figure subtracts each worker's start-up cost, measured as a
`--burst` run on an empty queue in the same round. CPU ms per job (the worker and its work horses, start-up
included) is steadier than wall time on a shared machine.

    .venv/bin/python bench/worker_throughput.py [--jobs 2000] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rq import Queue

from app.domain import keys
from bench._common import ROOT, private_redis, verdict

RQ = str(Path(sys.executable).parent / "rq")
QUEUE = "throughput"
KINDS = ("rq.Worker", "MonitoredWorker")


def run_worker(url: str, monitored: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the worker and its work horses)."""
    command = [RQ, "worker", "--burst", "--url", url, "--logging_level", "ERROR", QUEUE]
    if monitored:
        command[2:2] = ["-w", "workers.MonitoredWorker"]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)


def one(url: str, connection: redis.Redis, jobs: int, monitored: bool) -> tuple[float, float, float]:
    """(wall seconds for `jobs` jobs, seconds of an empty burst run, CPU seconds for the jobs)."""
    connection.flushall()
    empty, _ = run_worker(url, monitored)
    queue = Queue(QUEUE, connection=connection)
    queue.enqueue_many([Queue.prepare_data("workers.tasks.noop") for _ in range(jobs)])
    elapsed, cpu = run_worker(url, monitored)
    assert queue.count == 0, queue.count
    finished = queue.finished_job_registry.count
    assert finished == jobs, (finished, jobs)
    recorded = int(connection.hget(keys.OUTCOME_COUNTS, "|all") or 0)
    assert recorded == (min(jobs, keys.OUTCOMES_CAP) if monitored else 0), recorded
    return elapsed, empty, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 jobs, 2 rounds")
    args = parser.parse_args()
    jobs, rounds = (500, 2) if args.quick else (args.jobs, args.rounds)
    rates: dict[str, list[float]] = {kind: [] for kind in KINDS}
    net: dict[str, list[float]] = {kind: [] for kind in KINDS}
    cpu_ms: dict[str, list[float]] = {kind: [] for kind in KINDS}
    print(f"{jobs:,} no-op jobs per worker run, {rounds} rounds, alternating\n")
    header = (
        f"{'round':>5} {'worker':<16} {'wall s':>7} {'jobs/s':>8} {'start-up s':>10} {'net jobs/s':>10} "
        f"{'CPU ms/job':>10}"
    )
    print(header)
    print("-" * len(header))
    with private_redis() as (url, connection):
        for index in range(rounds):
            order = (False, True) if index % 2 == 0 else (True, False)
            for monitored in order:
                kind = KINDS[monitored]
                elapsed, empty, cpu = one(url, connection, jobs, monitored)
                rates[kind].append(jobs / elapsed)
                net[kind].append(jobs / max(1e-3, elapsed - empty))
                cpu_ms[kind].append(1000 * cpu / jobs)
                print(
                    f"{index + 1:>5} {kind:<16} {elapsed:7.2f} {jobs / elapsed:8.1f} {empty:10.2f} "
                    f"{net[kind][-1]:10.1f} {cpu_ms[kind][-1]:10.2f}",
                    flush=True,
                )
    plain, monitored_rate = statistics.median(rates["rq.Worker"]), statistics.median(rates["MonitoredWorker"])
    plain_net, monitored_net = statistics.median(net["rq.Worker"]), statistics.median(net["MonitoredWorker"])
    ratio, ratio_net = monitored_rate / plain, monitored_net / plain_net
    print(
        f"\nmedian jobs/s   rq.Worker {plain:8.1f}   MonitoredWorker {monitored_rate:8.1f}   ratio {ratio:6.1%}  "
        f"{verdict(ratio >= 0.95)} (>= 95%)"
    )
    print(f"net of start-up rq.Worker {plain_net:8.1f}   MonitoredWorker {monitored_net:8.1f}   ratio {ratio_net:6.1%}")
    plain_cpu, monitored_cpu = statistics.median(cpu_ms["rq.Worker"]), statistics.median(cpu_ms["MonitoredWorker"])
    extra = monitored_cpu - plain_cpu
    print(f"CPU ms per job  rq.Worker {plain_cpu:8.2f}   MonitoredWorker {monitored_cpu:8.2f}   extra {extra:+.2f}")
    return 0 if ratio >= 0.9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
