"""The README's run command, `rq-monitor`: web + MonitoredWorker + demo data, the login it prints, a clean stop."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from app.embedded_redis import free_port
from tests.helpers import ROOT, wait_for

RQ_MONITOR = str(Path(sys.executable).parent / "rq-monitor")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_rq_monitor_serves_the_demo_with_the_printed_login_and_stops_everything(redis_url, stop_signal):
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url}
    command = [RQ_MONITOR, "--port", str(port)]
    process = subprocess.Popen(  # its own process group: a failing test kills the launcher and its children
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        lines: list[str] = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("API:"):
                break
        printed = "".join(lines)
        assert f"http://127.0.0.1:{port}/admin/" in printed, printed
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

        process.send_signal(stop_signal)
        process.wait(timeout=20)
        children = subprocess.run(["pgrep", "-f", f"127.0.0.1:{port}"], capture_output=True, text=True)
        assert children.stdout.strip() == "", children.stdout  # gunicorn is gone with its launcher
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/healthz", timeout=2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
