"""`rq-monitor`: run the whole product on one machine — web (gunicorn + gevent), a pool of two MonitoredWorkers
(rq-monitor-pool), an embedded Redis when REDIS_URL is not set, and demo data — and print the URL and a login."""

from __future__ import annotations

import argparse
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import redis

from app.embedded_redis import free_port, stop_embedded_redis

DEMO_POOL_SIZE = 2  # rq-monitor-pool children running the demo's jobs


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


# Above the app's own limits (4 KiB request line, 8 KiB header field: app/errors.py), so that the app answers
# those with the JSON error shape instead of gunicorn's HTML page; 8190 is the most gunicorn allows for a line.
# The Procfile passes the same.
GUNICORN_LIMITS = ["--limit-request-line", "8190", "--limit-request-field_size", "16384"]


def start_web(env: dict[str, str], port: int, worker_connections: int = 1000, **popen: object) -> subprocess.Popen:
    """The product as deployed: gunicorn with one gevent worker on 127.0.0.1:`port`, configured by `env`."""
    command = [
        _bin("gunicorn"),
        "-k",
        "gevent",
        "-w",
        "1",
        "--worker-connections",
        str(worker_connections),
        "--graceful-timeout",
        "5",  # open SSE streams never end by themselves: do not wait gunicorn's default 30 s for them
        *GUNICORN_LIMITS,
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "app:create_app()",
    ]
    return subprocess.Popen(command, env=env, **popen)  # type: ignore[call-overload]


def wait_for_web(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Until /healthz answers; fails at once if the process died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the web process exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the web process did not answer within {timeout}s")
        time.sleep(0.1)


def _feed_demo_jobs(url: str, stop: threading.Event) -> None:
    """Keep producing a trickle of jobs so the live views move."""
    from app.demo import enqueue_demo_jobs  # noqa: PLC0415

    connection = redis.Redis.from_url(url)
    rng = random.Random()
    while not stop.wait(5.0):
        try:
            enqueue_demo_jobs(connection, rng)
        except redis.RedisError:
            continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rq-monitor", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--no-demo", action="store_true", help="no demo users, jobs or history")
    parser.add_argument("--no-worker", action="store_true", help="do not start the worker pool")
    args = parser.parse_args(argv)

    from app import create_app  # noqa: PLC0415
    from app.demo import DEMO_QUEUES, seed_demo  # noqa: PLC0415

    embedded = not os.environ.get("REDIS_URL")
    os.environ.setdefault("RQMON_ENV", "development")
    app = create_app()
    url = app.config["REDIS_URL"]
    env = {**os.environ, "REDIS_URL": url, "JWT_SECRET_KEY": app.config["JWT_SECRET_KEY"]}
    port = args.port if _port_free(args.port) else free_port()
    password = secrets.token_urlsafe(9)

    summary = None
    if not args.no_demo:
        summary = seed_demo(redis.Redis.from_url(url), password)

    children = [start_web(env, port)]
    worker_log = Path(app.instance_path) / "worker.log"
    if not args.no_worker:  # the demo's failing jobs log tracebacks: keep them out of the terminal
        command = [sys.executable, "-m", "workers.pool", "--workers", str(DEMO_POOL_SIZE), "--url", url]
        command += ["--grace-period", "5", "--logging-level", "WARNING", *DEMO_QUEUES]
        log_file = worker_log.open("a")
        children.append(subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file))
    stop = threading.Event()
    if not args.no_demo:
        threading.Thread(target=_feed_demo_jobs, args=(url, stop), daemon=True).start()

    def shut_down(*_: object) -> None:
        stop.set()
        for child in children:
            child.terminate()

    # SIGINT too: a launcher started in the background inherits SIGINT ignored, and Ctrl-C would never arrive.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, shut_down)
    try:
        wait_for_web(port, children[0])  # the URL printed below answers at once
        print(f"\nRQ Monitor is running: http://127.0.0.1:{port}/admin/", flush=True)
        print(f"Redis: {url}{' (embedded)' if embedded else ''}; worker log: {worker_log}")
        if summary:
            for name, role in summary["users"]:
                print(f"Login: {name} / {password}  ({role})")
        print(
            "API:   POST /api/v1/auth/login, then Authorization: Bearer <access_token>; Ctrl-C stops.\n",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except RuntimeError:  # the web process died before answering: unless we were told to stop, say so
        if not stop.is_set():
            raise
    finally:
        shut_down()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded:
            stop_embedded_redis(Path(app.instance_path) / "redis")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
