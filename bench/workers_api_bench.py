"""The worker API at 1,000 registered workers (half MonitoredWorkers with 30 days of history), under gunicorn +
gevent: `/api/v1/workers/overview` (budget p50 <= 15 ms, <= 3 round trips incl. auth), `/queue/status` at 50
queues (<= 2 round trips beyond auth), `/performance/metrics?hours=720` (p50 <= 20 ms), and one tick of the
`workers` feed with its sample task, in-process (<= 30 ms).

A private redis-server; workers registered by RQ itself (bench/workers_bench.seed), each monitored one with one
ended attempt every 10 hours over 30 days (recorded through worker_history.record_attempt, as the worker does)
and the minute samples of every hour. Round trips are counted in-process (one packed send = one round trip).

    .venv/bin/python bench/workers_api_bench.py [--workers 1000] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rq import Queue

from app import create_app
from app.domain import keys, users, worker_history, worker_performance, worker_views, workers
from app.domain.users import Role
from bench._common import SECRET, percentile, private_redis, verdict, web_process
from bench.api_bench import KeepAliveClient, RedisCounter
from bench.workers_bench import seed as seed_workers

API = "/api/v1/workers"


def seed_history(connection, names: list[str], days: int = 30) -> None:
    now = time.time()
    with connection.pipeline(transaction=False) as pipe:
        for index, name in enumerate(names):
            for step in range(days * 24 // 10):
                ended = now - step * 36000 - index
                outcome = "fail" if (index + step) % 17 == 0 else "ok"
                queue = f"bench-{index % 10}"
                worker_history.record_attempt(
                    pipe, name, queue, outcome, 50 + (step * 37) % 4000, f"j{index}-{step}", "workers.tasks.add", ended
                )
            if index % 50 == 49:
                pipe.execute()
        pipe.execute()
    for hour in range(days * 24):  # one sample per hour back (the ticker takes one a minute)
        worker_history.take_sample(connection, now - hour * 3600, 40, [])


def seed_queues(connection, count: int) -> None:
    for index in range(count):
        queue = Queue(f"bench-{index}", connection=connection)
        with connection.pipeline() as pipe:
            for _ in range(5):
                queue.enqueue("workers.tasks.noop", pipeline=pipe)
            pipe.execute()


def timed_requests(client: KeepAliveClient, path: str, count: int) -> list[float]:
    status, body = client.get(path)
    assert status == 200, body[:300]
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        status, _ = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        assert status == 200
    return samples


def in_process_trips(app, path: str, headers: dict[str, str]) -> int:
    client = app.test_client()
    client.get(path, headers=headers)
    with RedisCounter() as counter:
        response = client.get(path, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return counter.round_trips


def tick_timings(app, runs: int) -> tuple[list[float], int]:
    from app.blueprints.workers import WORKERS_FEED, _sample
    from app.ticker import Ticker

    ticker = Ticker(app.extensions["redis"], 2.0, [WORKERS_FEED], [], app.config)
    samples, trips = [], 0
    for run in range(runs):
        started = time.perf_counter()
        with RedisCounter() as counter:
            tick = ticker.publish(time.time() + run * 60)  # a new minute each time: the sample is taken too
            _sample(tick)
        samples.append((time.perf_counter() - started) * 1000)
        trips = counter.round_trips
    return samples, trips


def domain_p50(compute, runs: int = 50) -> float:  # type: ignore[no-untyped-def]
    compute()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        compute()
        samples.append((time.perf_counter() - started) * 1000)
    return percentile(samples, 0.5)


def compare_with_dashboard(url: str, client: KeepAliveClient, rounds: int) -> tuple[float, float] | None:
    """rq-dashboard's /0/data/workers.json (RQ's Worker.all(): two round trips per worker) beside /overview,
    interleaved request by request; None when no rq-dashboard venv is installed (optional)."""
    import tempfile

    from bench._common import stop_process
    from bench.dashboard_bench import dashboard_venv, start_dashboard

    venv = dashboard_venv()
    if venv is None:
        return None
    with tempfile.TemporaryDirectory(prefix="rqdash-") as folder:
        port, process = start_dashboard(venv, url, Path(folder))
        try:
            theirs_client = KeepAliveClient(port)
            ours, theirs = [], []
            for _ in range(rounds):
                for samples, target, path in (
                    (ours, client, f"{API}/overview"),
                    (theirs, theirs_client, "/0/data/workers.json"),
                ):
                    started = time.perf_counter()
                    status, _ = target.get(path)
                    samples.append((time.perf_counter() - started) * 1000)
                    assert status == 200
        finally:
            stop_process(process)
    return percentile(ours, 0.5), percentile(theirs, 0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with private_redis() as (url, connection):
        seed_workers(connection, args.workers)
        seed_queues(connection, 50)
        monitored = [w["worker_name"] for w in workers.read_workers(connection, time.time(), 60, 300) if w["monitored"]]
        seed_history(connection, monitored)
        users.create_user(connection, "bench", "bench-password", Role.MODERATOR)
        print(f"{args.workers:,} workers ({len(monitored)} monitored with 30 days of history), 50 queues, "
              f"{connection.dbsize():,} keys; {args.requests} sequential requests each\n")  # fmt: skip
        with web_process(url, LIVE_PUBLISHER_ENABLED="false") as (port, _web):
            status, body = KeepAliveClient(port).post_json(
                "/api/v1/auth/login", {"username": "bench", "password": "bench-password"}
            )
            assert status == 200, body[:200]
            headers = {"Authorization": f"Bearer {json.loads(body)['access_token']}"}
            client = KeepAliveClient(port, headers)
            app = create_app({"REDIS_URL": url, "JWT_SECRET_KEY": SECRET, "LIVE_PUBLISHER_ENABLED": False})
            cases = [
                ("floor /healthz", "/healthz", None, None),
                ("overview", f"{API}/overview", 15.0, 3),
                ("queue/status", f"{API}/queue/status", None, 3),
                ("performance hours=720", f"{API}/performance/metrics?hours=720", 20.0, None),
                ("performance hours=24", f"{API}/performance/metrics?hours=24", None, None),
            ]
            results = []
            for label, path, budget_ms, budget_trips in cases:
                samples = timed_requests(client, path, args.requests)
                trips = in_process_trips(app, path, headers) if path != "/healthz" else 0
                size = len(client.get(path)[1])
                results.append((label, samples, trips, size, budget_ms, budget_trips))
            ticks, tick_trips = tick_timings(app, 20)
            dashboard = compare_with_dashboard(url, client, max(20, args.requests // 4))
        settings = worker_views.Thresholds(60.0, 300.0, 1000)
        in_process = [
            ("get_overview", domain_p50(lambda: worker_views.get_overview(connection, settings))),
            ("get_queue_status", domain_p50(lambda: worker_views.get_queue_status(connection, settings))),
            ("get_performance(720)", domain_p50(lambda: worker_performance.get_performance(connection, 720))),
        ]
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (a loaded machine inflates every figure)")
    for label, compute in in_process:
        print(f"in-process {label:<22} p50 {compute:6.2f} ms (the domain function alone, no HTTP)")
    print()
    header = f"{'request':<24} {'p50 ms':>8} {'p95 ms':>8} {'round trips':>11} {'KB':>8}  budget"
    print(header)
    print("-" * len(header))
    ok = True
    for label, samples, trips, size, budget_ms, budget_trips in results:
        p50, p95 = percentile(samples, 0.5), percentile(samples, 0.95)
        passed = (budget_ms is None or p50 <= budget_ms) and (budget_trips is None or trips <= budget_trips)
        budget = " ".join(
            part
            for part in (
                f"p50 <= {budget_ms:g} ms" if budget_ms else "",
                f"<= {budget_trips} trips" if budget_trips else "",
            )
            if part
        )
        mark = verdict(passed) if budget else ""
        ok &= passed
        print(f"{label:<24} {p50:8.2f} {p95:8.2f} {trips:>11} {size / 1024:8.1f}  {budget} {mark}")
    tick_p50 = percentile(ticks, 0.5)
    tick_ok = tick_p50 <= 30.0
    ok &= tick_ok
    tick_p95 = percentile(ticks, 0.95)
    print(f"\nworkers feed tick + minute sample (in-process): p50 {tick_p50:.2f} ms, p95 {tick_p95:.2f} ms, "
          f"{tick_trips} round trips  {verdict(tick_ok)} (p50 <= 30 ms)")  # fmt: skip
    if dashboard is None:
        print("rq-dashboard comparison skipped: no rq-dashboard venv (see bench/dashboard_bench.py to make one)")
    else:
        ours, theirs = dashboard
        print(f"interleaved on the same Redis: /overview p50 {ours:.2f} ms vs rq-dashboard's workers.json "
              f"{theirs:.2f} ms: {theirs / ours:.1f}x")  # fmt: skip
    print(f"history keys kept {keys.WORKER_HISTORY_DAYS} days")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
