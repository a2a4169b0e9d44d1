"""What the alert rules add to a tick (budget: at most 5 ms at 50 queues x 20,000 jobs and 100 workers), and what
GET /metrics costs (round trips, time) on the same Redis.

A private redis-server seeded by bench/seed.py (50 queues x 20,000 jobs, ACTIVE running jobs, 30 days of history)
plus WORKERS workers registered by RQ itself, half with the MonitoredWorker fields, each listening to one queue.
Then, in one run, alternating tick by tick: the app's own tick (every feed and task create_app registers) without
the alert-rules task (`without`) and with it (`with`). The rules reuse the tick's shared documents (the metrics,
the workers feed's registry read), as in the product, so the difference is what they add: one read pipeline
(outcome window, Redis memory, scheduler, alert state, stuck count) and the write of what changed. Wall time per
tick, median and p95, and the round trips (client sends) of each.

    .venv/bin/python bench/alerts_bench.py [--queues 50 --jobs 20000 --active 100 --workers 100 --ticks 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import redis.connection

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rq import Queue, Worker

from app import create_app
from app.domain import workers as registry
from app.domain.scrape import read_scrape
from app.ticker import Ticker, registry_of
from bench import seed as seeding
from bench._common import SECRET, percentile, private_redis, verdict

BUDGET_MS = 5.0


def register_workers(connection: redis.Redis, names: list[str], count: int) -> None:
    for i in range(count):
        worker = Worker([Queue(names[i % len(names)], connection=connection)], connection=connection, name=f"w{i}")
        worker.register_birth()
        if i % 2:
            own = {registry.MONITORED: registry.monitored_value(512.0), registry.USAGE: registry.usage_value(80, None)}
            connection.hset(worker.key, mapping=own)


class Counter:
    """Client round trips: one packed send is one."""

    def __init__(self) -> None:
        self.sends = 0
        original = redis.connection.AbstractConnection.send_packed_command
        counter = self

        def counting(connection, command, check_health=True):  # type: ignore[no-untyped-def]
            counter.sends += 1
            return original(connection, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--active", type=int, default=100)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=40)
    args = parser.parse_args()
    with private_redis() as (_url, connection):
        print(f"seeding {args.queues} queues x {args.jobs} jobs, {args.active} running, {args.workers} workers ...")
        names = seeding.seed(connection, args.queues, args.jobs, args.active, quiet=True)["names"]
        register_workers(connection, names, args.workers)  # type: ignore[arg-type]
        app = create_app({"REDIS_URL": _url, "JWT_SECRET_KEY": SECRET, "LIVE_PUBLISHER_ENABLED": False})
        registry = registry_of(app)
        others = [task for task in registry.tasks if task.name != "alert-rules"]
        counter = Counter()
        tickers = {
            "without": Ticker(connection, 2.0, registry.feeds, others, app.config),
            "with": Ticker(connection, 2.0, registry.feeds, registry.tasks, app.config),
        }
        print(
            "feeds:", ", ".join(f.name for f in registry.feeds), "| tasks:", ", ".join(t.name for t in registry.tasks)
        )
        # Ticks 2 s apart from now on (the private Redis has no other ticker): the workers registered a moment ago
        # stay within their liveness and the stuck runs keep their ages, as in a running deployment.
        base = int(time.time() // 2) * 2.0
        for ticker in tickers.values():  # warm: connections, scripts, parse caches
            base += 2.0
            ticker.tick(base)
        wall: dict[str, list[float]] = {kind: [] for kind in tickers}
        trips: dict[str, list[int]] = {kind: [] for kind in tickers}
        for _ in range(args.ticks):
            for kind, ticker in tickers.items():
                base += 2.0
                counter.sends = 0
                started = time.perf_counter()
                assert ticker.tick(base)
                wall[kind].append((time.perf_counter() - started) * 1000)
                trips[kind].append(counter.sends)
        firing = connection.hlen("rqmon:alerts:firing")
        counter.sends = 0
        started = time.perf_counter()
        read_scrape(connection, None, 60.0, 300.0)
        scrape_ms, scrape_trips = (time.perf_counter() - started) * 1000, counter.sends
    for kind in tickers:
        print(
            f"tick {kind:>7} the rules: median {statistics.median(wall[kind]):7.2f} ms  p95 "
            f"{percentile(wall[kind], 0.95):7.2f} ms  round trips {statistics.median(trips[kind]):.0f}"
        )
    added = statistics.median(wall["with"]) - statistics.median(wall["without"])
    print(f"added by the rules: {added:.2f} ms per tick (budget {BUDGET_MS} ms) {verdict(added <= BUDGET_MS)}")
    print(f"alerts firing at the end: {firing}")
    print(f"GET /metrics data read (scrape): {scrape_ms:.2f} ms, {scrape_trips} round trips (+1 for the API token)")
    return 0 if added <= BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
