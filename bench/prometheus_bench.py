"""GET /metrics (Prometheus) beside rq-exporter 3.1 on the same Redis, interleaved request by request, in one run
(budget: at most 3 Redis round trips including the API token check, and at least 8x faster than rq-exporter).

rq-exporter is NOT a dependency of the product: install it into a virtualenv of its own,

    python3 -m venv /tmp/rqexp-venv && /tmp/rqexp-venv/bin/pip install rq-exporter==3.1.0

and point the bench at it with RQEXP_VENV=/tmp/rqexp-venv (the default). Without it, this product is measured alone.

Seeds a private redis-server with 50 queues x 20,000 jobs (bench/seed.py), WORKERS workers registered by RQ and,
unless --no-counters, the monotonic counters a MonitoredWorker records for every ended attempt (every queue with
attempts of each outcome in every duration bucket: what a deployment whose workers ran those jobs exports),
serves the product with gunicorn + gevent (one worker, the ticker off) scraped with an API token, and rq-exporter
(its own HTTP server); then one request to each, round after round, over keep-alive connections, with our /healthz
between them as the floor. Medians and p95, Redis round trips of ours (in-process twin, token check included),
server commands per scrape of each, the load average.

    .venv/bin/python bench/prometheus_bench.py [--queues 50 --jobs 20000 --workers 100 --requests 200] [--no-counters]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app
from app.domain import counters, tokens, users
from app.domain.users import Role
from app.embedded_redis import free_port
from bench import seed as seeding
from bench._common import (
    SECRET,
    calls_delta,
    command_calls,
    percentile,
    private_redis,
    stop_process,
    verdict,
    web_process,
)
from bench.alerts_bench import register_workers
from bench.api_bench import KeepAliveClient, in_process_cost

RATIO_BUDGET = 8.0
ROUND_TRIP_BUDGET = 3
OURS = "ours /metrics (API token)"
FLOOR = "ours /healthz (floor)"
EXPORTER = "rq-exporter 3.1 /metrics"


def exporter_venv() -> Path | None:
    venv = Path(os.environ.get("RQEXP_VENV", "/tmp/rqexp-venv"))
    return venv if (venv / "bin" / "rq-exporter").exists() else None


def record_attempts(connection, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Ended attempts in every queue, of each outcome and in every duration bucket, through the worker's own record."""
    durations = [int(bound * 1000) for bound in counters.DURATION_BUCKETS] + [7_200_000]
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            for outcome in counters.OUTCOME_LABELS:
                for duration_ms in durations:
                    counters.record_counters(pipe, name, outcome, duration_ms)  # type: ignore[arg-type]
        pipe.execute()


def start_exporter(venv: Path, url: str) -> tuple[int, subprocess.Popen]:
    port = free_port()
    command = [str(venv / "bin" / "rq-exporter"), "--host", "127.0.0.1", "-p", str(port), "--redis-url", url]
    process = subprocess.Popen(command + ["--log-level", "ERROR"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if KeepAliveClient(port).get("/metrics")[0] == 200:
                return port, process
        except OSError:
            time.sleep(0.2)
    stop_process(process)
    raise RuntimeError("rq-exporter did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--no-counters", action="store_true", help="no ended attempts recorded (fewer samples)")
    args = parser.parse_args()
    venv = exporter_venv()
    if venv is None:
        print("rq-exporter not found: the comparison is SKIPPED. Install it apart:\n"
              "  python3 -m venv /tmp/rqexp-venv && /tmp/rqexp-venv/bin/pip install rq-exporter==3.1.0")  # fmt: skip
    with private_redis() as (url, connection):
        print(f"seeding {args.queues} queues x {args.jobs:,} jobs and {args.workers} workers ...", flush=True)
        names = seeding.seed(connection, args.queues, args.jobs, 0, quiet=True)["names"]
        register_workers(connection, names, args.workers)  # type: ignore[arg-type]
        if not args.no_counters:
            record_attempts(connection, names)
        users.create_user(connection, "bench", "bench-password", Role.SUPER_ADMIN)
        secret, _ = tokens.create_token(connection, "scraper", Role.MODERATOR, "bench", Role.SUPER_ADMIN)
        headers = {"Authorization": f"Bearer {secret}"}
        exporter = start_exporter(venv, url) if venv else None
        try:
            with web_process(url, LIVE_PUBLISHER_ENABLED="false") as (port, _web):
                # Ours, then our /healthz (the floor: the same server without Redis or exposition, asked after
                # ours so it warms nothing for it), then rq-exporter, round after round.
                cases = {
                    OURS: (KeepAliveClient(port, headers), "/metrics"),
                    FLOOR: (KeepAliveClient(port), "/healthz"),
                }
                if exporter:
                    cases[EXPORTER] = (KeepAliveClient(exporter[0]), "/metrics")
                for client, path in cases.values():
                    for _ in range(5):
                        assert client.get(path)[0] == 200
                samples: dict[str, list[float]] = {label: [] for label in cases}
                for _ in range(args.requests):
                    for label, (client, path) in cases.items():
                        started = time.perf_counter()
                        status, _body = client.get(path)
                        samples[label].append((time.perf_counter() - started) * 1000)
                        assert status == 200, (label, status)
                commands = {}
                for label, (client, path) in cases.items():
                    before = command_calls(connection)
                    for _ in range(20):
                        client.get(path)
                    commands[label] = calls_delta(before, command_calls(connection)) / 20
                app = create_app({"REDIS_URL": url, "JWT_SECRET_KEY": SECRET, "LIVE_PUBLISHER_ENABLED": False})
                trips = in_process_cost(app, "/metrics", headers)[0]
        finally:
            if exporter:
                stop_process(exporter[1])
    recorded = "no ended attempts recorded" if args.no_counters else "ended attempts recorded in every queue"
    print(f"\n{args.queues} queues x {args.jobs:,} jobs, {args.workers} workers, {recorded}; {args.requests} scrapes, "
          "interleaved; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    medians = {label: statistics.median(values) for label, values in samples.items()}
    for label, values in samples.items():
        print(f"{label:<30} p50 {medians[label]:7.2f} ms  p95 {percentile(values, 0.95):7.2f} ms  "
              f"server commands {commands[label]:8.0f}")  # fmt: skip
    trips_ok = trips <= ROUND_TRIP_BUDGET
    print(f"ours: {trips} Redis round trips incl. the token check (budget {ROUND_TRIP_BUDGET}): {verdict(trips_ok)}")
    if not exporter:
        return 0 if trips_ok else 1
    ratio = medians[EXPORTER] / medians[OURS]
    print(f"rq-exporter / ours: {ratio:.1f}x (budget >= {RATIO_BUDGET:.0f}x): {verdict(ratio >= RATIO_BUDGET)}")
    return 0 if trips_ok and ratio >= RATIO_BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
