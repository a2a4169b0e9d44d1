"""GET /metrics beside rq-dashboard's queue list on the same Redis, interleaved request by request, in one run.

rq-dashboard is NOT a dependency of the product: install it into a virtualenv of its own, e.g.

    python3 -m venv /tmp/rqdash-venv && /tmp/rqdash-venv/bin/pip install rq-dashboard six gunicorn

and point the bench at it with RQDASH_VENV=/tmp/rqdash-venv (that path is the default). Without it, the bench
measures this product alone and says the comparison was skipped.

Seeds a private redis-server with 20 queues x 10,000 jobs (bench/seed.py, every state), serves the product with
gunicorn + gevent (ONE worker, LIVE_PUBLISHER_ENABLED=false) and rq-dashboard 0.9 with gunicorn (ONE sync worker,
its `/0/data/queues.json`: per queue the count and the five registries' counts), then sends, round after round, one
request to each of: our `/healthz` (the HTTP floor: no auth, no Redis), our `/api/v1/auth/me` (auth alone), our
`/api/v1/admin/jobs/metrics`, the same route served by the last revision with app/live.py (`before`, extracted with
`git archive`, its own gunicorn), rq-dashboard's queue list; each over its own keep-alive connection. Prints the
median and p95 of each, Redis round trips per request of ours (in-process twin, as in api_bench.py: auth included)
and server commands per request of each (INFO commandstats deltas, measured apart).

    .venv/bin/python bench/dashboard_bench.py [--queues 20 --jobs 10000 --requests 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app
from app.domain import users
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
from bench.api_bench import KeepAliveClient, in_process_cost
from bench.tick_bench import old_code

RATIO_BUDGET = 10.0
ROUND_TRIP_BUDGET = 2
DASHBOARD_PATH = "/0/data/queues.json"
WSGI = """
import os
from rq_dashboard.cli import make_flask_app
from rq_dashboard.web import setup_rq_connection

app = make_flask_app(None, None, None, "")
app.config["RQ_DASHBOARD_REDIS_URL"] = os.environ["RQ_DASHBOARD_REDIS_URL"]
setup_rq_connection(app)
"""


def dashboard_venv() -> Path | None:
    venv = Path(os.environ.get("RQDASH_VENV", "/tmp/rqdash-venv"))
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    found = subprocess.run([str(python), "-c", "import rq_dashboard, gunicorn"], capture_output=True)
    return venv if found.returncode == 0 else None


def start_dashboard(venv: Path, url: str, folder: Path) -> tuple[int, subprocess.Popen]:
    (folder / "rqdash_wsgi.py").write_text(WSGI)
    port = free_port()
    process = subprocess.Popen(
        [str(venv / "bin" / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", "--chdir", str(folder)]
        + ["rqdash_wsgi:app"],
        env={**os.environ, "RQ_DASHBOARD_REDIS_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if KeepAliveClient(port).get(DASHBOARD_PATH)[0] == 200:
                return port, process
        except OSError:
            time.sleep(0.2)
    stop_process(process)
    raise RuntimeError("rq-dashboard did not start")


def signed_in(port: int) -> dict[str, str]:
    status, body = KeepAliveClient(port).post_json(
        "/api/v1/auth/login", {"username": "bench", "password": "bench-password"}
    )
    assert status == 200, body[:200]
    return {"Authorization": f"Bearer {json.loads(body)['access_token']}"}


def server_commands(connection, client: KeepAliveClient, path: str, count: int = 50) -> float:
    before = command_calls(connection)
    for _ in range(count):
        client.get(path)
    return calls_delta(before, command_calls(connection)) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per queue")
    parser.add_argument("--requests", type=int, default=1000, help="requests to each endpoint, interleaved")
    parser.add_argument("--before", help="revision of the 'before' server (default: the last with app/live.py)")
    args = parser.parse_args()
    label, before_code = old_code(args.before)
    venv = dashboard_venv()
    if venv is None:
        print(
            "rq-dashboard not found: the comparison is SKIPPED (only this product is measured). Install it apart:\n"
            "  python3 -m venv /tmp/rqdash-venv && /tmp/rqdash-venv/bin/pip install rq-dashboard six gunicorn\n"
            "then run again (RQDASH_VENV=<venv> if elsewhere)."
        )

    with private_redis() as (url, connection), tempfile.TemporaryDirectory() as folder:
        seeding.seed(connection, args.queues, args.jobs, 0, quiet=True)
        users.create_user(connection, "bench", "bench-password", Role.MODERATOR)
        dashboard = start_dashboard(venv, url, Path(folder)) if venv else None
        try:
            with (
                web_process(url, LIVE_PUBLISHER_ENABLED="false") as (port, _web),
                web_process(url, cwd=before_code, LIVE_PUBLISHER_ENABLED="false") as (before_port, _before),
            ):
                headers = signed_in(port)
                cases = {
                    "ours /healthz (floor)": (KeepAliveClient(port), "/healthz"),
                    "ours /api/v1/auth/me": (KeepAliveClient(port, headers), "/api/v1/auth/me"),
                    "ours /api/v1/admin/jobs/metrics": (KeepAliveClient(port, headers), "/api/v1/admin/jobs/metrics"),
                    f"before ({label}) /api/v1/admin/jobs/metrics": (
                        KeepAliveClient(before_port, signed_in(before_port)),
                        "/api/v1/admin/jobs/metrics",
                    ),
                }
                if dashboard:
                    cases["rq-dashboard " + DASHBOARD_PATH] = (KeepAliveClient(dashboard[0]), DASHBOARD_PATH)
                for client, path in cases.values():
                    for _ in range(20):
                        assert client.get(path)[0] == 200, path
                samples: dict[str, list[float]] = {label: [] for label in cases}
                for _ in range(args.requests):  # interleaved: one request to each, round after round
                    for label, (client, path) in cases.items():
                        started = time.perf_counter()
                        status, _body = client.get(path)
                        samples[label].append((time.perf_counter() - started) * 1000)
                        assert status == 200, (label, status)
                commands = {label: server_commands(connection, *case) for label, case in cases.items()}
                app = create_app({"REDIS_URL": url, "JWT_SECRET_KEY": SECRET, "LIVE_PUBLISHER_ENABLED": False})
                round_trips = {
                    label: in_process_cost(app, path, headers)[0]
                    for label, (_client, path) in cases.items()
                    if label.startswith("ours")
                }
        finally:
            if dashboard:
                stop_process(dashboard[1])
            shutil.rmtree(before_code, ignore_errors=True)

    print(
        f"\n{args.queues} queues x {args.jobs:,} jobs; {args.requests} requests to each endpoint, interleaved "
        "request by request; gunicorn, one worker each; medians\n"
    )
    header = f"{'endpoint':<52} {'p50 ms':>7} {'p95 ms':>7} {'RTs':>4} {'srv cmds':>9}"
    print(header + "\n" + "-" * len(header))
    medians = {}
    for label, values in samples.items():
        medians[label] = statistics.median(values)
        trips = round_trips.get(label)
        print(
            f"{label:<52} {medians[label]:7.2f} {percentile(values, 0.95):7.2f} "
            f"{'' if trips is None else trips:>4} {commands[label]:9.0f}"
        )
    ours = medians["ours /api/v1/admin/jobs/metrics"]
    trips_ok = round_trips["ours /api/v1/admin/jobs/metrics"] <= ROUND_TRIP_BUDGET
    print(f"\n/metrics round trips incl. auth <= {ROUND_TRIP_BUDGET}: {verdict(trips_ok)}")
    if not dashboard:
        print("rq-dashboard comparison SKIPPED (not installed; see above)")
        return 0 if trips_ok else 1
    ratio = medians["rq-dashboard " + DASHBOARD_PATH] / ours
    before = next(value for name, value in medians.items() if name.startswith("before"))
    print(f"rq-dashboard / before (/metrics): {medians['rq-dashboard ' + DASHBOARD_PATH] / before:.1f}x")
    ok = ratio >= RATIO_BUDGET
    print(f"rq-dashboard / ours (/metrics): {ratio:.1f}x (budget >= {RATIO_BUDGET:.0f}x): {verdict(ok)}")
    return 0 if trips_ok and ratio >= RATIO_BUDGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
