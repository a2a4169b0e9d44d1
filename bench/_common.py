"""Shared by the benchmarks: a private redis-server, the web process, Redis command counters, percentiles.

Every bench starts its own redis-server (`app.embedded_redis.start_redis_server`, free port, temporary folder,
no persistence) and stops it, and everything else it started, on the way out; none ever touches another Redis.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.embedded_redis import free_port, start_redis_server  # noqa: E402

SECRET = "bench-secret-key-that-is-long-enough-for-hs256"


@contextlib.contextmanager
def private_redis(prefix: str = "rqmon-bench-", rdb: Path | None = None) -> Iterator[tuple[str, redis.Redis]]:
    """A throw-away redis-server on a free port; with `rdb`, it starts from that dump (copied, never written)."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    if rdb is not None:
        shutil.copyfile(rdb, data_dir / "dump.rdb")
    port = free_port()
    process = start_redis_server(data_dir, port=port, persist=False, ready_timeout=600 if rdb else 10)
    url = f"redis://127.0.0.1:{port}/0"
    connection = redis.Redis.from_url(url)
    try:
        yield url, connection
    finally:
        connection.close()
        stop_process(process)
        shutil.rmtree(data_dir, ignore_errors=True)


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate one process we started (by its own pid), kill it if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def web_process(
    url: str, worker_connections: int = 1000, cwd: Path = ROOT, **settings: str
) -> Iterator[tuple[int, subprocess.Popen]]:
    """The product as deployed: gunicorn, ONE gevent worker (`app.launcher.start_web`), on a free port; `cwd`:
    the source tree it serves (another revision's, extracted, for before/after runs)."""
    from app.launcher import start_web, wait_for_web

    env = {**os.environ, "REDIS_URL": url, "JWT_SECRET_KEY": SECRET, "RQMON_ENV": "production", **settings}
    port = free_port()
    process = start_web(env, port, worker_connections=worker_connections, cwd=cwd, stdout=subprocess.DEVNULL)
    try:
        wait_for_web(port, process)
        yield port, process
    finally:
        stop_process(process)


def command_calls(connection: redis.Redis) -> dict[str, int]:
    """INFO commandstats as {command: calls}. Redis counts the commands a Lua script runs as well."""
    return {name[len("cmdstat_") :]: int(value["calls"]) for name, value in connection.info("commandstats").items()}


def calls_delta(before: dict[str, int], after: dict[str, int], exclude: tuple[str, ...] = ("info",)) -> int:
    return sum(after[name] - before.get(name, 0) for name in after if name not in exclude)


def worker_pid(master_pid: int) -> int:
    """The gunicorn worker (the master's only child)."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return int(children[0])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(samples: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1)."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
