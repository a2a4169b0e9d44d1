"""GET /alerts/stuck at 4,000 stuck runs: the version that returned every run vs the bounded page, in ONE run.

Seeds a private redis-server with 20 queues x 200 running jobs, every one stuck (10.5-200 minutes, ~400-byte
payloads), then serves two gunicorn + gevent processes on that Redis (ONE worker each, live publisher off):
`before`, the last revision with app/live.py (before the bounded stuck page; extracted with `git archive`), and
`after`, this checkout. Requests, interleaved one by one: /healthz of each (the floor), before's /alerts/stuck
(every run), after's /alerts/stuck (the default page of 100, with X-Total-Count and X-Severity-Counts) and after's
/alerts/stuck/summary. Prints p50/p95, response bytes and server commands per request (measured apart).

    .venv/bin/python bench/stuck_bench.py [--queues 20 --jobs 200 --requests 200 --before REV]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain import users
from app.domain.users import Role
from bench import seed as seeding
from bench._common import calls_delta, command_calls, percentile, private_redis, verdict, web_process
from bench.api_bench import KeepAliveClient
from bench.tick_bench import old_code

BUDGET_MS = 20
API = "/api/v1/admin/jobs"


def signed_in(port: int) -> KeepAliveClient:
    status, body = KeepAliveClient(port).post_json("/api/v1/auth/login", {"username": "bench", "password": "bench-pw"})
    assert status == 200, body[:200]
    return KeepAliveClient(port, {"Authorization": f"Bearer {json.loads(body)['access_token']}"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=200, help="running jobs per queue, all stuck")
    parser.add_argument("--requests", type=int, default=200, help="requests to each endpoint, interleaved")
    parser.add_argument("--before", help="revision of the 'before' server (default: the last with app/live.py)")
    args = parser.parse_args()
    label, before_code = old_code(args.before)
    try:
        with private_redis() as (url, connection):
            names = seeding.queue_names(args.queues)
            total = args.queues * args.jobs
            seeding.seed_active(connection, names, total, stuck_share=1, kwargs={"note": "x" * 400})
            users.create_user(connection, "bench", "bench-pw", Role.MODERATOR)
            settings = {"LIVE_PUBLISHER_ENABLED": "false"}
            with (
                web_process(url, cwd=before_code, **settings) as (before_port, _b),
                web_process(url, **settings) as (after_port, _a),
            ):
                before, after = signed_in(before_port), signed_in(after_port)
                status, body = after.get(f"{API}/alerts/stuck")
                assert status == 200 and len(json.loads(body)) == 100
                assert len(json.loads(before.get(f"{API}/alerts/stuck")[1])) == total
                cases = {
                    f"before ({label}) /healthz": (before, "/healthz"),
                    "after /healthz": (after, "/healthz"),
                    f"before ({label}) /alerts/stuck (all)": (before, f"{API}/alerts/stuck"),
                    "after /alerts/stuck (default 100)": (after, f"{API}/alerts/stuck"),
                    "after /alerts/stuck/summary": (after, f"{API}/alerts/stuck/summary"),
                }
                for client, path in cases.values():
                    for _ in range(5):
                        client.get(path)
                samples: dict[str, list[float]] = {name: [] for name in cases}
                sizes: dict[str, int] = {}
                for _ in range(args.requests):
                    for name, (client, path) in cases.items():
                        started = time.perf_counter()
                        status, body = client.get(path)
                        samples[name].append((time.perf_counter() - started) * 1000)
                        assert status == 200, (name, status, body[:200])
                        sizes[name] = len(body)
                commands = {}
                for name, (client, path) in cases.items():
                    mark = command_calls(connection)
                    for _ in range(20):
                        client.get(path)
                    commands[name] = calls_delta(mark, command_calls(connection)) / 20
                after.connection.request("GET", f"{API}/alerts/stuck", headers=after.headers)
                response = after.connection.getresponse()
                response.read()
                total_header = response.getheader("X-Total-Count")
                severity_header = response.getheader("X-Severity-Counts")
    finally:
        shutil.rmtree(before_code, ignore_errors=True)

    print(
        f"\n{args.queues} queues x {args.jobs} running jobs = {total:,} stuck; {args.requests} requests to each "
        f"endpoint, interleaved; gunicorn -k gevent, one worker per server; medians\n"
        f"after's headers: X-Total-Count {total_header}, X-Severity-Counts {severity_header}\n"
    )
    header = f"{'endpoint':<46} {'p50 ms':>7} {'p95 ms':>7} {'bytes':>10} {'srv cmds':>9}"
    print(header + "\n" + "-" * len(header))
    for name, values in samples.items():
        print(
            f"{name:<46} {statistics.median(values):7.2f} {percentile(values, 0.95):7.2f} {sizes[name]:10,} "
            f"{commands[name]:9.0f}"
        )
    page = statistics.median(samples["after /alerts/stuck (default 100)"])
    ok = page <= BUDGET_MS
    print(f"\nthe default page at {total:,} stuck: p50 {page:.2f} ms, budget <= {BUDGET_MS} ms: {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
