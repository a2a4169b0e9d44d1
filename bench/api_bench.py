"""Latency and Redis cost of the job API at scale, against the issues' budgets, with the plain redis-py floor.

Seeds a private redis-server through RQ's APIs (bench/seed.py: 50 queues x 20,000 jobs + 10,000 active jobs, 1,000
of them stuck (the stuck page shows the 100 longest), + 30 days of history; --quick: 20 x 1,000 + 1,000 active), or
starts it from an RDB file written by `seed.py --save`. Serves the app with gunicorn, ONE gevent worker
(LIVE_PUBLISHER_ENABLED=false, so nothing but the requests talks to Redis), logs in as a user made with
app.domain.users.create_user, then requests each endpoint N times sequentially over one keep-alive connection
(http.client), in R runs; prints the median over runs of p50 and p95.

Redis cost per request, two ways:
- `RTs` / `cli cmds`: round trips and commands as the client sends them, counted in-process: the same app
  (create_app, same config) serves the same request through Flask's test client while redis-py's
  `send_packed_command` (one call per command or per pipeline = one round trip) and `pack_command(s)` are counted.
  (A counting Connection class cannot be slipped into the gunicorn worker, hence the in-process twin.)
  Both include the auth check: ONE pipelined round trip of 2 commands (EXISTS revoked-token, HGET role).
- `srv cmds`: server side, the delta of INFO commandstats calls (INFO itself excluded) over the N requests / N.
  Redis counts the commands a Lua script runs, so an EVAL that counts 350 keys shows as 351 here.

    .venv/bin/python bench/api_bench.py [--quick] [--requests N] [--runs R] [--rdb DUMP.rdb]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app
from app.domain import history, jobs, metrics, stuck, users
from app.domain.metrics import COUNTS
from app.domain.queues import QueueKeys, list_queue_names
from app.domain.severity import StuckThresholds
from app.domain.users import Role
from bench import seed as seeding
from bench._common import SECRET, calls_delta, command_calls, percentile, private_redis, verdict, web_process

BUDGETS_MS = {"metrics": 4, "page": 8, "stuck": 60, "trends": 10}
PREFIX = "/api/v1/admin/jobs"


class RedisCounter:
    """Counts round trips and commands redis-py sends while active (in-process only)."""

    def __init__(self) -> None:
        self.round_trips = 0
        self.commands = 0

    def __enter__(self) -> RedisCounter:
        from redis.connection import AbstractConnection

        self._cls = AbstractConnection
        self._originals = (
            AbstractConnection.send_packed_command,
            AbstractConnection.pack_command,
            AbstractConnection.pack_commands,
        )
        send, pack, pack_many = self._originals
        counter = self

        def send_packed_command(self, command, check_health=True):  # type: ignore[no-untyped-def]
            counter.round_trips += 1
            return send(self, command, check_health)

        def pack_command(self, *args):  # type: ignore[no-untyped-def]
            counter.commands += 1
            return pack(self, *args)

        def pack_commands(self, commands):  # type: ignore[no-untyped-def]
            commands = list(commands)
            counter.commands += len(commands)
            return pack_many(self, commands)

        AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
        AbstractConnection.pack_command = pack_command  # type: ignore[method-assign]
        AbstractConnection.pack_commands = pack_commands  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        (self._cls.send_packed_command, self._cls.pack_command, self._cls.pack_commands) = self._originals


class KeepAliveClient:
    """Sequential requests over one keep-alive connection with the standard library's http.client: the client's
    own cost (about 0.5 ms a request less than requests' Session here) stays out of the figures."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = headers or {}

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            self.connection.request("GET", path, headers=self.headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError):  # the server's keep-alive timeout: again
            self.connection.close()
            self.connection.request("GET", path, headers=self.headers)
            response = self.connection.getresponse()
        return response.status, response.read()

    def post_json(self, path: str, body: dict) -> tuple[int, bytes]:
        self.connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = self.connection.getresponse()
        return response.status, response.read()


def in_process_cost(app, path: str, headers: dict[str, str]) -> tuple[int, int]:
    client = app.test_client()
    client.get(path, headers=headers)  # warm: pooled connection open
    with RedisCounter() as counter:
        response = client.get(path, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return counter.round_trips, counter.commands


def timed(function, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def floor_pipeline(connection, names: list[str]) -> None:
    """One pipeline of every count (LLEN/ZCARD per queue per state) with plain redis-py."""
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            queue = QueueKeys(name)
            for _, command, attribute in COUNTS:
                if command == "live":  # an expiry-scored registry: its entries not yet expired
                    pipe.zcount(getattr(queue, attribute), time.time(), "+inf")
                else:
                    getattr(pipe, command)(getattr(queue, attribute))
        pipe.execute()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 queues x 1,000 jobs, 1,000 active")
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per endpoint per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rdb", type=Path, help="start Redis from this seed.py --save file instead of seeding")
    args = parser.parse_args()
    size = seeding.QUICK if args.quick else seeding.FULL
    if args.rdb and not args.rdb.exists():
        parser.error(f"{args.rdb} does not exist")

    with private_redis(rdb=args.rdb) as (url, connection):
        if args.rdb:
            print(f"Redis started from {args.rdb} (dbsize {connection.dbsize():,})")
        else:
            seeding.seed(connection, size["queues"], size["jobs_per_queue"], size["active"])
        names = list_queue_names(connection)
        totals = metrics.get_metrics(connection)["totals"]
        per_queue = seeding.state_counts(size["jobs_per_queue"])
        users.create_user(connection, "bench", "bench-password", Role.MODERATOR)

        with web_process(url, LIVE_PUBLISHER_ENABLED="false") as (port, _web):
            status, body = KeepAliveClient(port).post_json(
                "/api/v1/auth/login", {"username": "bench", "password": "bench-password"}
            )
            assert status == 200, body[:200]
            headers = {"Authorization": f"Bearer {json.loads(body)['access_token']}"}
            client = KeepAliveClient(port, headers)
            app = create_app({"REDIS_URL": url, "JWT_SECRET_KEY": SECRET, "LIVE_PUBLISHER_ENABLED": False})

            queue = names[len(names) // 2]
            last = {state: (per_queue[state] + 24) // 25 for state in ("failed", "completed")}
            cases = [("floor", "/healthz"), ("metrics", f"{PREFIX}/metrics")]
            for state in ("failed", "completed"):
                for page in (1, max(1, last[state] // 2), last[state]):
                    cases.append(("page", f"{PREFIX}/queue/{queue}/jobs?state={state}&page={page}&perPage=25"))
            cases += [("stuck", f"{PREFIX}/alerts/stuck"), ("trends", f"{PREFIX}/trends?period=30d")]

            # sanity: the responses hold what was seeded
            summary = json.loads(client.get(f"{PREFIX}/alerts/stuck/summary")[1])
            stuck_expected = seeding.stuck_count(totals["active"])
            if args.rdb:  # the dump's runs have aged since it was written: more of them are stuck now
                stuck_expected = summary["total"]
            assert summary["total"] == stuck_expected, (summary["total"], stuck_expected)
            assert len(json.loads(client.get(f"{PREFIX}/alerts/stuck")[1])) == min(100, stuck_expected)
            page = json.loads(client.get(cases[4][1])[1])
            assert len(page["jobs"]) == 25 and page["total"] == per_queue["failed"], page["total"]

            results: dict[str, list[tuple[float, float, float]]] = {path: [] for _, path in cases}
            for _ in range(args.runs):
                for _kind, path in cases:
                    for _ in range(5):
                        client.get(path)
                    before = command_calls(connection)
                    samples = []
                    for _ in range(args.requests):
                        started = time.perf_counter()
                        status, body = client.get(path)
                        samples.append((time.perf_counter() - started) * 1000)
                        assert status == 200, body[:200]
                    server = calls_delta(before, command_calls(connection)) / args.requests
                    results[path].append((percentile(samples, 0.5), percentile(samples, 0.95), server))

            print(
                f"\n{len(names)} queues, {sum(totals[s] for s in ('waiting', 'completed', 'failed', 'delayed')):,} "
                f"jobs (waiting {totals['waiting']:,}, completed {totals['completed']:,}, failed {totals['failed']:,}, "
                f"delayed {totals['delayed']:,}), {totals['active']:,} active ({stuck_expected:,} stuck); "
                f"gunicorn -k gevent, 1 worker; {args.requests} sequential requests x {args.runs} runs; "
                "medians over runs\n"
            )
            header = f"{'endpoint':<62} {'p50 ms':>7} {'p95 ms':>7} {'RTs':>4} {'cli cmds':>8} {'srv cmds':>9}  budget"
            print(header)
            print("-" * len(header))
            failures = 0
            for kind, path in cases:
                runs = results[path]
                p50 = statistics.median(r[0] for r in runs)
                p95 = statistics.median(r[1] for r in runs)
                server = statistics.median(r[2] for r in runs)
                round_trips, client_commands = in_process_cost(app, path, headers)
                if kind == "floor":
                    budget = "HTTP floor: no auth, no Redis"
                else:
                    ok = p50 <= BUDGETS_MS[kind]
                    failures += not ok
                    budget = f"p50 <= {BUDGETS_MS[kind]} ms {verdict(ok)}"
                label = path[len(PREFIX) :] if path.startswith(PREFIX) else path
                print(
                    f"{label:<62} {p50:7.2f} {p95:7.2f} {round_trips:4d} {client_commands:8d} {server:9.0f}  {budget}"
                )
                print(f"{'':<62} p50 per run: {', '.join(f'{r[0]:.2f}' for r in runs)}")
            print("RTs and cli cmds include auth: 1 pipelined round trip (EXISTS revoked token + HGET role).")

            repeat = max(50, args.requests)
            floor = timed(lambda: floor_pipeline(connection, names), repeat)
            now = time.time()
            print(f"\nin-process, plain redis-py client, median of {repeat} calls (no HTTP, no auth):")
            print(
                f"  floor: ONE pipeline of all {len(names) * len(COUNTS)} counts (LLEN/ZCARD x {len(COUNTS)} "
                f"states x {len(names)} queues)    {floor:7.2f} ms"
            )
            domain = [
                ("metrics.get_metrics", lambda: metrics.get_metrics(connection)),
                (
                    "jobs.list_jobs failed, last page",
                    lambda: jobs.list_jobs(connection, queue, "failed", last["failed"], 25),
                ),
                (f"stuck.get_stuck_page, 100 of {stuck_expected:,} stuck", lambda: stuck.get_stuck_page(connection)),
                (
                    f"stuck.get_stuck_page, 100 of all {totals['active']:,} active stuck (first threshold 0 min)",
                    lambda: stuck.get_stuck_page(connection, thresholds=StuckThresholds((0, 30, 60, 120))),
                ),
                ("history.get_trends 30d", lambda: history.get_trends(connection, "30d", names, now=now)),
            ]
            for label, function in domain:
                count = 10 if label.startswith("stuck") else repeat
                print(f"  {label:<78} {timed(function, count):7.2f} ms")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
