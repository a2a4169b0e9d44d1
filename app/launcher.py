"""`rq-monitor`: run the whole product on one machine — web (gunicorn + gevent), a pool of two MonitoredWorkers
(rq-monitor-pool), an embedded Redis when REDIS_URL is not set, and demo data — and print the URL and a login."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE

import config
from app.domain import keys
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


def wait_for_web(
    port: int, process: subprocess.Popen, timeout: float = 30.0, stop: threading.Event | None = None
) -> bool:
    """Until /healthz answers (True), or `stop` is set (False); fails at once if the process died."""
    deadline = time.monotonic() + timeout
    while stop is None or not stop.is_set():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the web process exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the web process did not answer within {timeout}s")
        time.sleep(0.1)
    return False


def _feed_demo_jobs(url: str, stop: threading.Event) -> None:
    """Keep producing a trickle of jobs so the live views move."""
    from app.demo import enqueue_demo_jobs

    connection = redis.Redis.from_url(url)
    rng = random.Random()
    while not stop.wait(5.0):
        try:
            enqueue_demo_jobs(connection, rng)
        except redis.RedisError:
            continue


@dataclass
class Child:
    """A process the launcher started, and how it is stopped: a polite SIGTERM (gunicorn: graceful; rq worker:
    warm shutdown), `grace` seconds to finish, then a second SIGTERM (RQ's cold shutdown, which kills the work
    horse) and finally SIGKILL for its process group and for every descendant seen (a horse has its own group)."""

    name: str
    process: subprocess.Popen
    grace: float
    running_jobs: Callable[[], int] | None = None  # what a warm shutdown waits for
    seen: set[tuple[int, str]] = field(default_factory=set)  # descendants: (pid, start time)


def _proc_children() -> dict[int, list[tuple[int, str]]]:
    """Parent pid -> [(pid, start time)] of every process, from /proc (empty where there is no /proc)."""
    children: dict[int, list[tuple[int, str]]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return children
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    return children


def _remember_descendants(child: Child) -> None:
    tree = _proc_children()
    pending = [child.process.pid]
    while pending:
        for pid, started in tree.get(pending.pop(), []):
            child.seen.add((pid, started))
            pending.append(pid)


def _kill_remembered(child: Child) -> None:
    """SIGKILL what the child left behind, checking the start time so that a reused pid is never hit."""
    for pid, started in child.seen:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[19] == started and fields[0] != "Z":
                os.kill(pid, signal.SIGKILL)
        except (OSError, IndexError):
            continue


def _count(child: Child) -> int:
    try:
        return child.running_jobs() if child.running_jobs else 0
    except redis.RedisError:
        return 0


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def stop_child(child: Child, hurry: threading.Event, say: Callable[[str], None]) -> None:
    """Wait for a child asked to stop, saying what it waits for; force it when its grace is over or on `hurry`."""
    asked = time.monotonic()
    deadline = asked + child.grace
    said = None
    while child.process.poll() is None and time.monotonic() < deadline and not hurry.is_set():
        _remember_descendants(child)
        running = _count(child)
        if running and running != said:
            left = max(1, round(deadline - time.monotonic()))
            say(f"{child.name}: waiting for {_plural(running, 'running job')} (at most {left} s; Ctrl-C to stop now)…")
            said = running
        hurry.wait(0.2)
    if child.process.poll() is None:
        _remember_descendants(child)
        running = _count(child)
        say(f"{child.name}: stopping {_plural(running, 'running job') if running else 'it'} now…")
        # RQ ignores a second signal within a second of the first (it may be the same Ctrl-C twice).
        time.sleep(max(0.0, asked + 1.2 - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(signal.SIGTERM)
        try:
            child.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
    with contextlib.suppress(ProcessLookupError):  # anything left in its group (gunicorn's workers)
        os.killpg(child.process.pid, signal.SIGKILL)
    _kill_remembered(child)
    say(f"{child.name}: stopped")


def stop_children(children: list[Child], hurry: threading.Event, say: Callable[[str], None]) -> None:
    """Ask every child to stop at once, then wait for (or force) each in order."""
    for child in children:
        _remember_descendants(child)
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    for child in children:
        stop_child(child, hurry, say)


PR_SET_PDEATHSIG = 1  # prctl(2)


def _die_with_launcher() -> dict[str, Any]:
    """Linux: a child gets SIGTERM when the launcher dies, even by SIGKILL (it runs in a process group of its own,
    so a kill of the launcher's group does not reach it). Elsewhere: nothing."""
    if not sys.platform.startswith("linux"):
        return {}
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork: the child only calls it
    launcher = os.getpid()

    def set_parent_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != launcher:  # the launcher died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return {"preexec_fn": set_parent_death_signal}


def _running_jobs_of(url: str, worker_names: list[str]) -> Callable[[], int]:
    """Jobs the named workers are running: RQ's per-worker set of active executions."""
    connection = redis.Redis.from_url(url, socket_timeout=2)

    def count() -> int:
        with connection.pipeline(transaction=False) as pipe:
            for name in worker_names:
                pipe.scard(WORKER_EXECUTIONS_KEY_TEMPLATE.format(name))
            return sum(pipe.execute())

    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rq-monitor", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--no-demo", action="store_true", help="no demo users, jobs or history")
    parser.add_argument("--no-worker", action="store_true", help="do not start the worker pool")
    parser.add_argument("--no-scheduler", action="store_true", help="do not start the scheduler (periodic jobs)")
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds running jobs get to finish on Ctrl-C (default 10)"
    )
    args = parser.parse_args(argv)

    stop, hurry = threading.Event(), threading.Event()

    def on_signal(*_: object) -> None:
        if stop.is_set():
            hurry.set()
        stop.set()

    # SIGINT too: a launcher started in the background inherits SIGINT ignored, and Ctrl-C would never arrive.
    # The children run in process groups of their own, so a Ctrl-C or a signal to our group reaches only us,
    # and we stop them in order (Redis last).
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)

    from app import create_app
    from app.demo import DEMO_QUEUES, seed_demo

    embedded = not os.environ.get("REDIS_URL")
    os.environ.setdefault("RQMON_ENV", "development")
    instance = config.instance_folder()
    instance.mkdir(parents=True, exist_ok=True)
    print(f"Instance folder: {instance} (embedded Redis, secret, logs)", flush=True)
    app = create_app()
    url = app.config["REDIS_URL"]
    env = {
        **os.environ,
        "REDIS_URL": url,
        "JWT_SECRET_KEY": app.config["JWT_SECRET_KEY"],
        "RQMON_INSTANCE": str(instance),
    }
    port = args.port if _port_free(args.port) else free_port()
    password = secrets.token_urlsafe(9)

    summary = None
    if not args.no_demo:
        summary = seed_demo(redis.Redis.from_url(url), password)

    own_group: dict[str, Any] = {"process_group": 0, "stdin": subprocess.DEVNULL, **_die_with_launcher()}
    children = [Child("web", start_web(env, port, **own_group), grace=10.0)]
    worker_log = instance / "worker.log"
    if not args.no_worker:  # the demo's failing jobs log tracebacks: keep them out of the terminal
        name = f"rq-monitor-{socket.gethostname().split('.')[0]}-{os.getpid()}"  # the pool's children: <name>.<slot>
        command = [sys.executable, "-m", "workers.pool", "--workers", str(DEMO_POOL_SIZE), "--name", name]
        command += ["--url", url, "--grace-period", str(args.grace), "--logging-level", "WARNING", *DEMO_QUEUES]
        command.append(keys.NOTIFICATIONS_QUEUE)  # the alerts' webhook deliveries (ALERT_WEBHOOK_URLS)
        with worker_log.open("a") as log_file:
            worker = subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file, **own_group)
        slots = [f"{name}.{slot}" for slot in range(1, DEMO_POOL_SIZE + 1)]
        children.append(Child("worker", worker, grace=args.grace, running_jobs=_running_jobs_of(url, slots)))
    if not args.no_scheduler:  # rq-monitor-scheduler: the periodic jobs (SCHEDULES.md)
        command = [sys.executable, "-m", "workers.scheduler", "--url", url, "--logging-level", "WARNING"]
        with (instance / "scheduler.log").open("a") as log_file:
            scheduler = subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file, **own_group)
        children.append(Child("scheduler", scheduler, grace=5.0))
    if not args.no_demo:
        threading.Thread(target=_feed_demo_jobs, args=(url, stop), daemon=True).start()

    status = 0
    try:
        if wait_for_web(port, children[0].process, stop=stop):  # the URL printed below answers at once
            print(f"\nRQ Monitor is running: http://127.0.0.1:{port}/admin/", flush=True)
            print(f"Redis: {url}{' (embedded)' if embedded else ''}; worker log: {worker_log}")
            if summary:
                for user, role in summary["users"]:
                    print(f"Login: {user} / {password}  ({role})")
            print(
                "API:   POST /api/v1/auth/login, then Authorization: Bearer <access_token>; Ctrl-C stops.\n",
                flush=True,
            )
        while not stop.wait(0.5):
            exited = [child.name for child in children if child.process.poll() is not None]
            if exited:
                print(f"{', '.join(exited)} exited on its own; stopping the rest.", flush=True)
                status = 1
                break
    except RuntimeError as error:  # the web process died before answering: unless we were told to stop, say so
        if not stop.is_set():
            print(f"rq-monitor: {error}; its output is above.", file=sys.stderr, flush=True)
            status = 1
    finally:
        stop.set()
        print("Stopping (Ctrl-C again to stop at once)…", flush=True)
        stop_children(children, hurry, lambda line: print(line, flush=True))
        if embedded:
            print("Redis: saving and stopping…", flush=True)
            stop_embedded_redis(instance / "redis")
            print("Redis: stopped", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
