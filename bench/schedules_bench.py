"""Periodic jobs with many schedules (issue 14): the scheduler's loop when nothing is due (budget <= 10 ms with
10,000 schedules), GET /api/v1/periodic (budget: a page of 200 <= 50 ms, the default page of 50 <= 10 ms) and
/periodic/status, and firing lateness (budget: p99 within 1 s of the due time, 100 schedules due every minute).

A private redis-server; N schedules created through the domain (each an rq-scheduler template job). The loop is
MonitoredScheduler's own per-second work (heartbeat, lock renewal, the due-jobs query, recording run ends), timed
in-process; the API through the Flask test client with an admin token. Lateness: a real `rq-monitor-scheduler`
process for `--minutes` minutes, lateness = enqueue time - due time of every recorded run.

    .venv/bin/python bench/schedules_bench.py [--schedules 10000] [--runs 200] [--minutes 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain import schedule_runs, schedules
from bench._common import SECRET, percentile, private_redis, stop_process, verdict
from workers.scheduler import MonitoredScheduler

ROOT = Path(__file__).resolve().parents[1]


def definition(index: int, **timing: object) -> dict:
    return {
        "name": f"bench-{index:05d}",
        "description": None,
        "func": "workers.tasks.noop",
        "args": [],
        "kwargs": {},
        "queue": "bench-periodic",
        "enabled": True,
        "overlap": "allow",
        "timeout": None,
        "attempts": 1,
        "backoff": None,
        "cron": None,
        "intervalSeconds": None,
        **timing,
    }


def timed(function, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def report(label: str, samples: list[float], budget: float | None = None) -> None:
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    tail = f"  budget {budget:g} ms: {verdict(p50 <= budget)}" if budget is not None else ""
    print(f"{label:<44} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms{tail}")


def seed(connection, count: int) -> None:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for index in range(count):
        timing = {"cron": "0 3 * * *"} if index % 2 else {"intervalSeconds": 86_400}
        schedules.save_schedule(connection, definition(index, **timing))
    print(f"created {count} schedules in {time.perf_counter() - started:.1f} s")


def loop_and_api(url: str, connection, count: int, runs: int) -> None:  # type: ignore[no-untyped-def]
    seed(connection, count)
    scheduler = MonitoredScheduler(connection, interval=1.0, name="bench")
    scheduler.acquire_lock()

    def one_loop() -> None:
        scheduler.heartbeat()
        scheduler.acquire_lock()
        scheduler.enqueue_jobs()

    report(f"scheduler loop, nothing due ({count} schedules)", timed(one_loop, runs), 10)

    from app import create_app  # noqa: PLC0415
    from app.domain.users import Role, create_user  # noqa: PLC0415
    from app.security import issue_tokens  # noqa: PLC0415

    app = create_app({"TESTING": True, "REDIS_URL": url, "JWT_SECRET_KEY": SECRET, "LIVE_PUBLISHER_ENABLED": False})
    create_user(connection, "bench-admin", "bench-password", Role.ADMIN, "pbkdf2:sha256:1")
    client = app.test_client()
    with app.test_request_context():
        from app.domain.users import get_user  # noqa: PLC0415

        token = issue_tokens(get_user(connection, "bench-admin"))["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    for path, label, budget in (
        ("/api/v1/periodic", "GET /periodic (default page of 50)", 10.0),
        ("/api/v1/periodic?perPage=200", "GET /periodic?perPage=200 (largest page)", 50.0),
        (f"/api/v1/periodic?page={max(1, count // 200)}&perPage=200", "GET /periodic, a late page of 200", 50.0),
        ("/api/v1/periodic/status", "GET /periodic/status", None),
    ):
        assert client.get(path, headers=headers).status_code == 200
        report(label, timed(lambda p=path: client.get(p, headers=headers), max(5, runs // 4)), budget)
    report("domain list_schedules, default page", timed(lambda: schedules.list_schedules(connection), runs))


def lateness(url: str, connection, minutes: float) -> None:  # type: ignore[no-untyped-def]
    for index in range(100):
        schedules.save_schedule(connection, definition(50_000 + index, cron="* * * * *"))
    command = [sys.executable, "-m", "workers.scheduler", "--url", url, "--logging-level", "WARNING"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(minutes * 60)
    finally:
        stop_process(process)
    late = []
    for index in range(100):
        for run in schedule_runs.list_runs(connection, f"bench-{50_000 + index:05d}", limit=1000)["runs"]:
            if run["dueAt"] and run["enqueuedAt"]:
                late.append((_seconds(run["enqueuedAt"]) - _seconds(run["dueAt"])) * 1000)
    if not late:
        print("no firing recorded (run longer than a minute)")
        return
    print(f"firings: {len(late)} over {minutes:g} min, 100 schedules due every minute")
    report("lateness of a firing (enqueued - due)", late, None)
    print(f"  p99 within 1 s: {verdict(percentile(late, 0.99) <= 1000)}")


def _seconds(iso: str) -> float:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=2.0, help="lateness run (0: skip)")
    args = parser.parse_args()
    with private_redis() as (url, connection):
        loop_and_api(url, connection, args.schedules, args.runs)
    if args.minutes > 0:
        with private_redis() as (url, connection):
            lateness(url, connection, args.minutes)


if __name__ == "__main__":
    main()
