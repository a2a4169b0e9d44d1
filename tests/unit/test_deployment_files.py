"""What deployments and CI rely on: the Procfile's processes, the live defaults, and CI running the README's
test command."""

from __future__ import annotations

import re
import shlex

import config
from tests.helpers import ROOT


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: shlex.split(command) for name, command in (line.split(":", 1) for line in lines if line.strip())}


def test_procfile_serves_with_gevent_and_runs_a_worker_pool_and_the_publisher():
    processes = procfile()
    web = processes["web"]
    assert web[:3] == ["gunicorn", "-k", "gevent"] and web[-1] == "app:create_app()"
    assert "--graceful-timeout" in web
    worker = processes["worker"]
    assert worker[:3] == ["rq-monitor-pool", "--workers", "2"] and worker[-1] == "default"
    assert processes["publisher"] == ["flask", "--app", "app", "monitor", "publish"]


def test_live_defaults_tick_every_two_seconds_and_heartbeat_within_fifteen():
    defaults = config.defaults()
    assert defaults["LIVE_TICK_SECONDS"] == 2.0
    assert 0 < defaults["SSE_HEARTBEAT_SECONDS"] <= 15


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```\n(.+?)\n```", readme, flags=re.S)
    assert "bash tests/run" in commands, commands[:3]
    assert "exec bash tests/run" in (ROOT / ".ci" / "run").read_text()
    assert any(command.endswith(".venv/bin/rq-monitor") and "pip install" in command for command in commands)
