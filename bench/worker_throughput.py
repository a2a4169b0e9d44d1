"""MonitoredWorker vs plain rq.Worker on no-op jobs, side by side in the same run (budget: >= 90 %).
Each round enqueues N jobs and times `rq worker --burst` until the queue is drained; rounds alternate.
`python bench/worker_throughput.py [--jobs N] [--rounds R]`."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis
from rq import Queue

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.embedded_redis import start_private_redis  # noqa: E402

RQ = str(Path(sys.executable).parent / "rq")


def round_trip(url: str, connection: redis.Redis, jobs: int, monitored: bool) -> float:
    queue = Queue("throughput", connection=connection)
    queue.enqueue_many([Queue.prepare_data("workers.tasks.noop") for _ in range(jobs)])
    command = [RQ, "worker", "--burst", "--url", url, "--logging_level", "ERROR", "throughput"]
    if monitored:
        command[2:2] = ["-w", "workers.MonitoredWorker"]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    elapsed = time.perf_counter() - started
    assert queue.count == 0
    return jobs / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    process, url = start_private_redis()
    connection = redis.Redis.from_url(url)
    try:
        plain, monitored = [], []
        for index in range(args.rounds):
            first_monitored = index % 2 == 1  # alternate which goes first
            for is_monitored in (first_monitored, not first_monitored):
                rate = round_trip(url, connection, args.jobs, is_monitored)
                (monitored if is_monitored else plain).append(rate)
                print(
                    f"round {index + 1}: {'MonitoredWorker' if is_monitored else 'rq.Worker      '} {rate:7.1f} jobs/s"
                )
        ratio = statistics.median(monitored) / statistics.median(plain)
        print(
            f"\nmedian jobs/s: rq.Worker {statistics.median(plain):.1f}, MonitoredWorker "
            f"{statistics.median(monitored):.1f}; ratio {ratio:.1%} ({'PASS' if ratio >= 0.9 else 'FAIL'} >= 90%)"
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
