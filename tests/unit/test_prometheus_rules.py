"""deploy/prometheus: the alerting rules file carries every rule of ALERTS.md (config's defaults), promtool accepts
it and the scrape config when promtool is installed, and the rules only use families the export has."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import config
from app.prometheus import FAMILIES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def rules() -> list[dict]:
    document = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    assert [group["name"] for group in document["groups"]] == ["rq-monitor"]
    return document["groups"][0]["rules"]


def test_every_default_rule_is_in_the_rules_file():
    names = {rule["alert"] for rule in rules()}
    assert set(config.ALERT_RULE_DEFAULTS) <= names
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


def test_rules_use_only_exported_families():
    exported = set(FAMILIES) | {f"rqmon_job_duration_seconds_{part}" for part in ("sum", "count", "bucket")} | {"up"}
    for rule in rules():
        for name in re.findall(r"\b(rq_\w+|rqmon_\w+|up)\b", rule["expr"]):
            assert name in exported, (rule["alert"], name)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_accepts_the_rules(tmp_path):
    result = subprocess.run(["promtool", "check", "rules", str(DEPLOY / "alerts.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # The scrape config names a token file that only a deployment has: check it with an empty one.
    token = tmp_path / "token"
    token.write_text("rqm_x\n")
    scrape = (DEPLOY / "prometheus.yml").read_text().replace("/etc/prometheus/rq-monitor.token", str(token))
    (tmp_path / "prometheus.yml").write_text(scrape)
    shutil.copy(DEPLOY / "alerts.yml", tmp_path / "alerts.yml")
    result = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scrape_target_is_the_procfile_port():
    procfile = (DEPLOY.parents[1] / "Procfile").read_text()
    port = re.search(r"^web:.*\$\{PORT:-(\d+)\}", procfile, re.MULTILINE)
    assert port is not None
    targets = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"][0]["static_configs"]
    assert targets == [{"targets": [f"localhost:{port.group(1)}"]}]


@pytest.mark.parametrize("rule", ["workers_stale", "worker_memory", "redis_memory", "scheduler_down"])
def test_rules_that_depend_on_each_workers_cadence_or_limits_take_the_monitors_verdict(rule):
    """An idle plain RQ worker heartbeats every ~405 s: a fixed heartbeat age would call it stale (WORKERS.md)."""
    (found,) = [r for r in rules() if r["alert"] == rule]
    assert found["expr"].strip() == f'rqmon_alerts_firing{{rule="{rule}"}} > 0'
