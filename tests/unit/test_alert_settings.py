"""Alert settings (config.py): ALERT_<RULE>, ALERT_<RULE>_FOR and `off`; ALERT_RULES_FILE's per-queue thresholds;
a threshold that is not a number refuses start-up with one clear line."""

from __future__ import annotations

import pytest

import config
from app import create_app
from app.domain.alert_rules import settings_from


def test_thresholds_for_durations_and_off():
    found = config.from_env(
        {"ALERT_QUEUE_BACKLOG": "250", "ALERT_QUEUE_BACKLOG_FOR": "30", "ALERT_WORKER_MEMORY": "off"}
    )
    rules = settings_from(config.defaults() | found)
    assert (rules["queue_backlog"].threshold, rules["queue_backlog"].for_seconds) == (250, 30)
    assert rules["worker_memory"].threshold is None
    assert (rules["no_workers"].threshold, rules["no_workers"].for_seconds) == (0, 60)  # the defaults


@pytest.mark.parametrize("value", ["lots", "-1", "nan", "inf", "1e999"])
def test_a_threshold_that_is_not_a_number_is_refused(value):
    with pytest.raises(
        config.ConfigError, match=f"ALERT_HIGH_ERROR_RATE_FOR={value!r} is not valid: expected a number"
    ):
        config.from_env({"ALERT_HIGH_ERROR_RATE_FOR": value})


def test_start_up_stops_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("ALERT_QUEUE_BACKLOG", "a hundred")
    with pytest.raises(SystemExit) as stopped:
        create_app({"TESTING": True, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert stopped.value.code == 4
    error = capsys.readouterr().err
    expected = "ALERT_QUEUE_BACKLOG='a hundred' is not valid: expected a number >= 0 or off"
    assert error == f"rq-monitor: configuration error: {expected}\n"


def test_rules_file_per_queue(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[queue_backlog.queues]\nemails = 500\nreports = "off"\n')
    rules = settings_from(config.defaults() | config.from_env({"ALERT_RULES_FILE": str(path)}))
    assert rules["queue_backlog"].threshold_of("emails") == 500
    assert rules["queue_backlog"].threshold_of("reports") is None
    assert rules["queue_backlog"].threshold_of("other") == 100


@pytest.mark.parametrize(
    ("text", "reason"),
    [("[queue_backlog.queues]\nemails = 'many'\n", "emails = 'many'"), ("[nope.queues]\n", "[nope] is not a rule")],
)
def test_a_bad_rules_file_is_refused(tmp_path, text, reason):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        config.from_env({"ALERT_RULES_FILE": str(path)})
