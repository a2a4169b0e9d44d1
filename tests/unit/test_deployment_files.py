"""What deployments and CI rely on: the Procfile's processes, the live defaults, and CI running the README's
test command."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

import config
from app.domain import keys
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
    assert worker[:3] == ["rq-monitor-pool", "--workers", "2"] and "default" in worker
    assert keys.NOTIFICATIONS_QUEUE in worker  # the alerts' webhook deliveries, else never sent
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


def test_the_test_command_never_touches_the_products_venv():
    """`bash tests/run` next to a running demo: its own gitignored .venv-test, never the README's .venv."""
    lines = (ROOT / "tests" / "run").read_text().splitlines()
    venvs = re.findall(r"\.venv[\w-]*", "\n".join(line for line in lines if not line.lstrip().startswith("#")))
    assert venvs and set(venvs) == {".venv-test"}, venvs
    assert ".venv-test/" in (ROOT / ".gitignore").read_text().splitlines()
    readme = (ROOT / "README.md").read_text()
    assert ".venv/bin/rq-monitor" in readme


@pytest.mark.parametrize("setting", [None, "~/rqmon-elsewhere"])
def test_the_instance_folder_follows_the_environment_not_the_install(redis_url, tmp_path, setting):
    """RQMON_INSTANCE, else ./instance: the same for an editable install, `pip install .` and the `flask` commands."""
    env = {name: value for name, value in os.environ.items() if name != "RQMON_INSTANCE"}
    env["HOME"] = str(tmp_path / "home")
    if setting:
        env["RQMON_INSTANCE"] = setting
    code = (
        "from app import create_app; "
        f"print(create_app({{'TESTING': True, 'REDIS_URL': {redis_url!r}, 'JWT_SECRET_KEY': 'x' * 40}}).instance_path)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=True
    )
    expected = tmp_path / "home" / "rqmon-elsewhere" if setting else tmp_path / "instance"
    assert shown.stdout.strip() == str(expected)


def test_the_readme_links_only_to_files_shipped_in_the_repository():
    readme = (ROOT / "README.md").read_text()
    assert "../" not in readme
    targets = [target for target in re.findall(r"\]\(([^)#]+)", readme) if "://" not in target]
    assert "docs/API.md" in targets and "docs/SEMANTICS.md" in targets
    for target in targets:
        path = (ROOT / target).resolve()
        assert path.is_relative_to(ROOT) and path.is_file(), target
    contract = {path.name for path in (ROOT / "docs").glob("*.md")}
    assert {"API.md", "SEMANTICS.md", "WORKERS.md", "SCHEDULES.md", "ALERTS.md"} <= contract
