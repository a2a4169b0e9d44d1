"""Latency and Redis round trips of the job API at scale (issue budgets), with the plain-redis-py floor.

Seeds a private redis-server through RQ's APIs (bench/seed.py), serves the app with gunicorn + gevent (one
process), and requests each endpoint sequentially. Round trips are counted in-process (the same app through
Flask's test client, counting socket writes of redis-py: one per command or pipeline); commands per request
come from the server's INFO commandstats. `python bench/api_bench.py [--quick] [--requests N]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.domain import users  # noqa: E402
from app.domain.metrics import COUNTS  # noqa: E402
from app.domain.queues import QueueKeys  # noqa: E402
from app.domain.users import Role  # noqa: E402
from app.embedded_redis import free_port, start_private_redis  # noqa: E402
from app.launcher import start_web, wait_for_web  # noqa: E402
from bench.seed import seed  # noqa: E402

SECRET = "bench-secret-key-that-is-long-enough-for-hs256"
BUDGETS_MS = {"metrics": 4, "page": 8, "stuck": 60, "trends": 10}


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def commands_processed(connection: redis.Redis) -> int:
    stats = connection.info("commandstats")
    return sum(int(value["calls"]) for name, value in stats.items() if name != "cmdstat_info")


def count_round_trips(app, path: str, headers: dict[str, str]) -> int:
    """Socket writes of redis-py during one request: a pipeline is one write, so this is round trips."""
    from redis.connection import AbstractConnection

    original = AbstractConnection.send_packed_command
    writes = 0

    def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        nonlocal writes
        writes += 1
        return original(self, command, check_health)

    app.test_client().get(path, headers=headers)  # warm: connections open, scripts loaded
    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        response = app.test_client().get(path, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
    return writes


def floor_ms(connection: redis.Redis, names: list[str], repeat: int) -> float:
    """One pipeline of every count of every queue with plain redis-py: the least any /metrics can cost."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        with connection.pipeline(transaction=False) as pipe:
            for name in names:
                queue = QueueKeys(name)
                for _, command, attribute in COUNTS:
                    getattr(pipe, command)(getattr(queue, attribute))
            pipe.execute()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 queues x 1,000 jobs instead of 50 x 20,000")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    queues, per_queue, active = (20, 1000, 1000) if args.quick else (50, 20_000, 10_000)

    redis_process, url = start_private_redis()
    connection = redis.Redis.from_url(url)
    names = seed(url, queues, per_queue, active, 0.05)
    users.create_user(connection, "bench", "bench-password", Role.ADMIN)

    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": url,
        "JWT_SECRET_KEY": SECRET,
        "RQMON_ENV": "production",
        "LIVE_PUBLISHER_ENABLED": "false",
    }
    web = start_web(env, port, cwd=ROOT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_web(port, web)
        session = requests.Session()
        token = session.post(
            f"{base}/api/v1/auth/login", json={"username": "bench", "password": "bench-password"}, timeout=10
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        app = create_app({"REDIS_URL": url, "JWT_SECRET_KEY": SECRET, "LIVE_PUBLISHER_ENABLED": False})

        q = names[len(names) // 2]
        completed, failed = per_queue * 7 // 20, per_queue * 6 // 20
        last_completed, last_failed = (completed + 24) // 25, (failed + 24) // 25
        cases = [
            ("metrics", "/api/v1/admin/jobs/metrics"),
            ("page", f"/api/v1/admin/jobs/queue/{q}/jobs?state=failed&page=1&perPage=25"),
            ("page", f"/api/v1/admin/jobs/queue/{q}/jobs?state=failed&page={last_failed // 2}&perPage=25"),
            ("page", f"/api/v1/admin/jobs/queue/{q}/jobs?state=failed&page={last_failed}&perPage=25"),
            ("page", f"/api/v1/admin/jobs/queue/{q}/jobs?state=completed&page=1&perPage=25"),
            ("page", f"/api/v1/admin/jobs/queue/{q}/jobs?state=completed&page={last_completed // 2}&perPage=25"),
            ("page", f"/api/v1/admin/jobs/queue/{q}/jobs?state=completed&page={last_completed}&perPage=25"),
            ("stuck", "/api/v1/admin/jobs/alerts/stuck"),
            ("trends", "/api/v1/admin/jobs/trends?period=30d"),
        ]
        print(
            f"\n{queues} queues x {per_queue:,} jobs, {active:,} active; {args.requests} sequential requests each; "
            "gunicorn -k gevent, 1 process\n"
        )
        print(f"{'endpoint':<72} {'p50 ms':>7} {'p95 ms':>7} {'RTs':>4} {'cmds':>6}  budget")
        for kind, path in cases:
            for _ in range(5):
                session.get(base + path, headers=headers, timeout=30)
            before = commands_processed(connection)
            samples = []
            for _ in range(args.requests):
                started = time.perf_counter()
                response = session.get(base + path, headers=headers, timeout=30)
                samples.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text[:200]
            commands = (commands_processed(connection) - before) / args.requests
            round_trips = count_round_trips(app, path, headers)
            p50 = percentile(samples, 0.5)
            verdict = "PASS" if p50 <= BUDGETS_MS[kind] else "FAIL"
            print(
                f"{path:<72} {p50:7.2f} {percentile(samples, 0.95):7.2f} {round_trips:4d} {commands:6.0f}  "
                f"p50 <= {BUDGETS_MS[kind]} ms {verdict}"
            )
        print(
            f"\nfloor: one redis-py pipeline of all {len(names) * len(COUNTS)} counts: "
            f"{floor_ms(connection, names, args.requests):.2f} ms p50"
        )
        print("RTs include the auth check (1 round trip: token revoked? + current role).")
    finally:
        web.terminate()
        web.wait(timeout=10)
        redis_process.terminate()
        redis_process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
