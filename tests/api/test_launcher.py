"""The README's run command, `rq-monitor`: web + MonitoredWorker + demo data, the login it prints, a clean stop."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from rq import Queue
from rq.job import JobStatus

from app.domain import keys
from app.embedded_redis import free_port
from tests.helpers import ROOT, wait_for

BIN = Path(sys.executable).parent
RQ_MONITOR = str(BIN / "rq-monitor")


def processes_mentioning(marker: str) -> list[str]:
    """Every live process whose command line or environment names `marker` (the test's own instance folder is
    in every child's environment, work horses included), as 'pid command'."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            text = (entry / "cmdline").read_bytes() + b"\0" + (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours
            continue
        if state != "Z" and marker.encode() in text:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name} {command}")
    return found


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


class Launcher:
    """`rq-monitor` started as a user would, in its own session (a failing test kills its whole group)."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [RQ_MONITOR, "--port", str(self.port), *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []

    def read_until(self, prefix: str) -> str:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith(prefix):
                break
        return "".join(self.lines)

    def rest(self, timeout: float = 90) -> str:
        """Everything printed until the launcher exits."""
        out, _ = self.process.communicate(timeout=timeout)
        self.lines.append(out)
        return "".join(self.lines)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Path]:
    """The launcher's own instance folder: its path marks every process the launcher started."""
    folder = tmp_path / "instance"
    yield folder
    for line in processes_mentioning(str(folder)):  # never leave anything behind, even when the test failed
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split()[0]), signal.SIGKILL)


@pytest.fixture
def launch(instance: Path) -> Iterator:
    started: list[Launcher] = []

    def start(env: dict[str, str], *args: str) -> Launcher:
        launcher = Launcher({**env, "RQMON_INSTANCE": str(instance)}, *args)
        started.append(launcher)
        return launcher

    yield start
    for launcher in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.process.pid, signal.SIGKILL)
        launcher.process.wait()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_rq_monitor_serves_the_demo_with_the_printed_login_and_stops_everything(
    redis_url, instance, launch, stop_signal
):
    launcher = launch({**os.environ, "REDIS_URL": redis_url})
    printed = launcher.read_until("API:")
    port = launcher.port
    assert f"http://127.0.0.1:{port}/admin/" in printed, printed
    assert f"Instance folder: {instance}" in printed, printed
    username, password = re.search(r"Login: (\w+) / (\S+)\s+\(super_admin\)", printed).groups()  # type: ignore[union-attr]

    base = f"http://127.0.0.1:{port}"
    login = requests.post(f"{base}/api/v1/auth/login", json={"username": username, "password": password}, timeout=5)
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    def completed_by_the_worker() -> int:
        metrics = requests.get(f"{base}/api/v1/admin/jobs/metrics", headers=headers, timeout=5).json()
        return metrics["totals"]["completed"]

    before = completed_by_the_worker()
    wait_for(lambda: completed_by_the_worker() > before, timeout=30)  # the MonitoredWorker runs the demo's jobs

    def firing() -> list[dict]:
        return requests.get(f"{base}/api/v1/alerts", headers=headers, timeout=5).json()["firing"]

    wait_for(firing, timeout=60)  # an alert fires within a minute (the demo's stuck runs: stuck_jobs)
    assert "stuck_jobs" in {alert["rule"] for alert in firing()}
    connection = redis.Redis.from_url(redis_url)
    pool_queues = [connection.hget(key, "queues") or b"" for key in connection.smembers("rq:workers")]
    assert any(keys.NOTIFICATIONS_QUEUE.encode() in queues.split(b",") for queues in pool_queues)  # deliveries run

    def periodic(path: str = "") -> dict:
        return requests.get(f"{base}/api/v1/periodic{path}", headers=headers, timeout=5).json()

    assert {"demo.digest-every-minute", "demo.report-sometimes-fails"} <= {s["name"] for s in periodic()["schedules"]}
    wait_for(lambda: periodic("/status")["isMonitoringActive"], timeout=30)  # rq-monitor-scheduler is running

    launcher.process.send_signal(stop_signal)
    launcher.rest()
    assert launcher.process.returncode == 0
    assert processes_mentioning(str(instance)) == []  # gunicorn and the worker are gone with their launcher
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/healthz", timeout=2)


@pytest.mark.parametrize(
    "how",
    [
        "ctrl-c",  # a terminal sends SIGINT to the whole foreground process group
        "group-sigterm",  # `kill -TERM -- -PGID`
    ],
)
def test_a_stop_during_a_long_job_waits_then_leaves_no_work_horse_behind(redis_url, connection, instance, launch, how):
    launcher = launch({**os.environ, "REDIS_URL": redis_url}, "--no-demo", "--grace", "3")
    launcher.read_until("API:")
    job = Queue("reports", connection=connection).enqueue("workers.tasks.sleep_for", 3600, job_timeout=7200)
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, timeout=30)
    running = processes_mentioning(str(instance))
    workers = {int(line.split()[0]) for line in running if "workers.pool" in line}  # the pool, children, horses
    (worker_pid,) = {pid for pid in workers if parent_of(pid) not in workers}
    assert any(parent_of(pid) == worker_pid for pid in workers), running  # its work horse runs the job

    os.killpg(launcher.process.pid, signal.SIGINT if how == "ctrl-c" else signal.SIGTERM)
    printed = launcher.rest()
    assert "waiting for 1 running job" in printed, printed
    assert launcher.process.returncode == 0, printed
    left = processes_mentioning(str(instance))
    assert left == [], left


def test_the_readmes_user_commands_work_next_to_the_running_demo(instance, launch):
    """REDIS_URL and JWT_SECRET_KEY unset, as the README's reader has them: `flask --app app users …` finds the
    demo's embedded Redis through the instance folder; stopping the demo then stops that Redis too."""
    shell = {name: value for name, value in os.environ.items() if name not in {"REDIS_URL", "JWT_SECRET_KEY"}}
    shell.pop("RQMON_ENV", None)
    launcher = launch(shell, "--no-worker")
    launcher.read_until("API:")
    flask = [str(BIN / "flask"), "--app", "app", "users"]
    env = {**shell, "RQMON_INSTANCE": str(instance)}

    listed = subprocess.run([*flask, "list"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "admin\tsuper_admin" in listed.stdout and "viewer\tmoderator" in listed.stdout
    created = subprocess.run(
        [*flask, "create", "kim", "--role", "admin", "--password-stdin"],
        input="password-kim\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    login = requests.post(
        f"http://127.0.0.1:{launcher.port}/api/v1/auth/login",
        json={"username": "kim", "password": "password-kim"},
        timeout=5,
    )
    assert login.status_code == 200, login.text  # the demo sees the user the command created

    launcher.process.send_signal(signal.SIGINT)
    printed = launcher.rest()
    assert launcher.process.returncode == 0, printed
    assert processes_mentioning(str(instance)) == []  # the embedded redis-server (--dir under it) included


def test_children_stop_even_when_the_launchers_group_is_killed_outright(redis_url, connection, instance, launch):
    """SIGKILL cannot be handled: the children, in process groups of their own, are told by the kernel that
    their parent died, and stop as on Ctrl-C (the running job gets the grace, then its horse is killed)."""
    launcher = launch({**os.environ, "REDIS_URL": redis_url}, "--no-demo", "--grace", "3")
    launcher.read_until("API:")
    job = Queue("reports", connection=connection).enqueue("workers.tasks.sleep_for", 3600, job_timeout=7200)
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, timeout=30)

    os.killpg(launcher.process.pid, signal.SIGKILL)
    launcher.process.wait(timeout=10)
    wait_for(lambda: processes_mentioning(str(instance)) == [], timeout=60, interval=0.5)
