"""What one live tick costs the elected process and Redis: the publisher before the ticker rework vs the ticker.

Seeds a private redis-server with 20 queues x 200 running jobs, every one past the stuck threshold (10.5-200
minutes), each with a ~400-byte payload. Then, in ONE run, alternating round by round:
- `before`: the publisher of the last commit that had `app/live.py` (extracted with `git archive` into a
  temporary folder and run there in a subprocess);
- `after`: this checkout's ticker (`app.ticker.Ticker` with the jobs area's feeds), in a subprocess too;
each for two cases: nobody connected, and a subscriber on every queue's channel (20 watched queues).

Per tick (median over the rounds of each round's median): CPU time of the process (`time.process_time`, the
tick's own thread is the only one working), wall time (the budgets: CPU + waiting for Redis), Redis round trips
(redis-py `send_packed_command` calls: a pipeline is one), Redis commands (server INFO commandstats delta, INFO
itself excluded; a Lua script's commands count) and bytes written to Redis (INFO stats total_net_input_bytes
delta: SET and PUBLISH payloads, commands).

    .venv/bin/python bench/tick_bench.py [--queues 20 --jobs 200 --ticks 10 --rounds 3 --before REV]
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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_UNWATCHED_MS, BUDGET_UNWATCHED_ROUND_TRIPS, BUDGET_WATCHED_MS = 20, 5, 100


def measure(code: str, kind: str, url: str, ticks: int) -> dict[str, float]:
    """In a subprocess whose sys.path starts at `code`: `ticks` ticks of the publisher (kind before|after)."""
    sys.path.insert(0, code)
    import redis
    from redis.connection import AbstractConnection

    import app

    assert Path(app.__file__).resolve().is_relative_to(Path(code).resolve()), app.__file__
    connection = redis.Redis.from_url(url)
    thresholds = (10, 30, 60, 120)
    if kind == "before":
        from app.live import Publisher  # type: ignore[import-not-found]

        publisher = Publisher(connection, 2.0, thresholds)
    else:
        from app.blueprints.live import JOBS_FEED, QUEUE_FEED
        from app.domain.severity import StuckThresholds
        from app.ticker import Ticker

        settings = {"STUCK_THRESHOLDS": StuckThresholds(thresholds)}
        publisher = Ticker(connection, 2.0, [JOBS_FEED, QUEUE_FEED], [], settings)
    probe = redis.Redis.from_url(url)
    round_trips = [0]
    send = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        if self is not probe_connection[0]:
            round_trips[0] += 1
        return send(self, command, check_health)

    probe_connection = [probe.connection_pool.get_connection("INFO")]
    probe.connection_pool.release(probe_connection[0])
    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]

    def server() -> tuple[int, int]:
        stats = probe.info("commandstats")
        calls = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
        return calls, int(probe.info("stats")["total_net_input_bytes"])

    base = (int(time.time() // 2) + 10_000 + os.getpid() % 1000 * 10) * 2.0  # future ticks nobody else claims
    publisher.tick(base)  # warm: connections open, scripts parsed
    cpu, wall, trips, commands, written = [], [], [], [], []
    for index in range(1, ticks + 1):
        calls_before, bytes_before = server()
        round_trips[0] = 0
        started, started_wall = time.process_time(), time.perf_counter()
        assert publisher.tick(base + 2.0 * index), "the tick was not won"
        cpu.append((time.process_time() - started) * 1000)
        wall.append((time.perf_counter() - started_wall) * 1000)
        trips.append(round_trips[0])
        calls_after, bytes_after = server()
        commands.append(calls_after - calls_before)
        written.append(bytes_after - bytes_before - 2 * len(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n"))
    return {
        "cpu_ms": statistics.median(cpu),
        "wall_ms": statistics.median(wall),
        "round_trips": statistics.median(trips),
        "commands": statistics.median(commands),
        "bytes_written": statistics.median(written),
    }


def old_code(revision: str | None) -> tuple[str, Path]:
    """The last revision with app/live.py (or `revision`), extracted into a temporary folder."""
    if revision is None:
        deleting = subprocess.run(
            ["git", "log", "-1", "--format=%H", "--diff-filter=D", "--", "app/live.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        revision = f"{deleting}^" if deleting else "HEAD"
    folder = Path(tempfile.mkdtemp(prefix="rqmon-tick-before-"))
    archive = subprocess.run(
        ["git", "archive", revision, "app", "config.py", "workers"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    label = subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    return label, folder


def run_measure(code: Path, kind: str, url: str, ticks: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--measure", kind, "--code", str(code), "--url", url, "--ticks", str(ticks)],
        capture_output=True,
        text=True,
        cwd=code,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{kind} measurement failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class Watchers:
    """A subscriber on every queue's channel, drained in a background thread."""

    def __init__(self, connection, channels: list[str]) -> None:
        self.pubsub = connection.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(*channels)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.drain, daemon=True)
        self.thread.start()

    def drain(self) -> None:
        while not self.stopped.is_set():
            self.pubsub.get_message(timeout=0.2)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.pubsub.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=200, help="running jobs per queue, all stuck")
    parser.add_argument("--ticks", type=int, default=10, help="ticks per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", help="revision of the 'before' publisher (default: the last with app/live.py)")
    parser.add_argument("--measure", choices=["before", "after"], help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.code, args.measure, args.url, args.ticks)))
        return 0

    sys.path.insert(0, str(ROOT))
    from app.domain import keys
    from bench import seed as seeding
    from bench._common import private_redis, verdict

    label, before_code = old_code(args.before)
    try:
        with private_redis() as (url, connection):
            names = seeding.queue_names(args.queues)
            per_queue = [name for name in names for _ in range(args.jobs)]
            seeding.seed_active(connection, names, len(per_queue), stuck_share=1, kwargs={"note": "x" * 400})
            print(
                f"{args.queues} queues x {args.jobs} running jobs, all stuck; {args.ticks} ticks per round, "
                f"{args.rounds} rounds alternating before/after; before = {label} (app/live.py), after = this "
                "checkout (app/ticker.py); medians"
            )
            results: dict[tuple[str, str], list[dict[str, float]]] = {}
            for _ in range(args.rounds):
                for case in ("nobody watching", f"{args.queues} queues watched"):
                    watchers = (
                        Watchers(connection, [keys.live_channel(n) for n in names]) if "watched" in case else None
                    )
                    try:
                        for kind, code in (("before", before_code), ("after", ROOT)):
                            results.setdefault((case, kind), []).append(run_measure(code, kind, url, args.ticks))
                    finally:
                        if watchers:
                            watchers.close()
    finally:
        shutil.rmtree(before_code, ignore_errors=True)

    header = f"{'case':<20} {'code':<7} {'CPU ms/tick':>11} {'wall ms':>8} {'round trips':>11} {'commands':>9}"
    header += f" {'bytes written':>14}"
    print("\n" + header + "\n" + "-" * len(header))
    failures = 0
    for (case, kind), rounds in results.items():
        figures = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
        print(
            f"{case:<20} {kind:<7} {figures['cpu_ms']:11.1f} {figures['wall_ms']:8.1f} {figures['round_trips']:11.0f} "
            f"{figures['commands']:9,.0f} {figures['bytes_written']:14,.0f}"
        )
        if kind == "after":
            if case == "nobody watching":
                ok = (
                    figures["wall_ms"] <= BUDGET_UNWATCHED_MS and figures["round_trips"] <= BUDGET_UNWATCHED_ROUND_TRIPS
                )
                budget = f"wall <= {BUDGET_UNWATCHED_MS} ms and <= {BUDGET_UNWATCHED_ROUND_TRIPS} round trips"
            else:
                ok = figures["wall_ms"] <= BUDGET_WATCHED_MS
                budget = f"wall <= {BUDGET_WATCHED_MS} ms"
            failures += not ok
            print(f"{'':<28} budget {budget}: {verdict(ok)}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
