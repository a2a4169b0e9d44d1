"""Alert settings (config.py): ALERT_<RULE>, ALERT_<RULE>_FOR and `off`; ALERT_RULES_FILE's per-queue thresholds;
a threshold that is not a number refuses start-up with one clear line."""

from __future__ import annotations

import re
from pathlib import Path

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
    [
        ("[queue_backlog.queues]\nemails = 'many'\n", "emails = 'many'"),
        ("[nope.queues]\n", "[nope] is not a rule"),
        ("rules = 3\n", "rules must be [[rules]] tables"),
    ],
)
def test_a_bad_rules_file_is_refused(tmp_path, text, reason):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        config.from_env({"ALERT_RULES_FILE": str(path)})


EXTRA_RULES = """
[queue_backlog.queues]
emails = 500

[[rules]]
name = "backlog_critical"
kind = "queue_backlog"
severity = "critical"
threshold = 1000
for = 120
queues = ["emails", "reports"]

[[rules]]
name = "payments_errors"
kind = "high_error_rate"
threshold = 5
"""


def test_rules_file_extra_rules_beside_per_queue_thresholds(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(EXTRA_RULES)
    rules = settings_from(config.defaults() | config.from_env({"ALERT_RULES_FILE": str(path)}))
    assert list(rules)[-2:] == ["backlog_critical", "payments_errors"]  # after the default rules
    critical = rules["backlog_critical"]
    assert (critical.rule.kind, critical.rule.severity, critical.rule.subject_kind) == (
        "queue_backlog",
        "critical",
        "queue",
    )
    assert (critical.threshold, critical.for_seconds, critical.queues) == (1000, 120, {"emails", "reports"})
    assert critical.threshold_of("emails") == 1000  # the default rule's per-queue threshold is not its own
    assert rules["queue_backlog"].threshold_of("emails") == 500
    errors = rules["payments_errors"]
    assert (errors.rule.severity, errors.for_seconds, errors.queues) == ("warning", 0, None)  # the kind's, 0, all


BAD_EXTRA_RULES = [
    ('name = "x1"\nkind = "queue_size"\nthreshold = 1', "x1): kind 'queue_size' is not a rule kind (kinds: no_workers"),
    ('name = "x1"\nkind = "redis_unreachable"\nthreshold = 1', "kind 'redis_unreachable' is not a rule kind"),
    ('name = "x1"\nkind = "queue_backlog"\nseverity = "urgent"\nthreshold = 1', "severity 'urgent': expected"),
    ('name = "x1"\nkind = "queue_backlog"\nseverity = ["critical"]\nthreshold = 1', "severity ['critical']: expected"),
    ('name = "queue_backlog"\nkind = "queue_backlog"\nthreshold = 1', "name 'queue_backlog' is a default rule's"),
    ('name = "Big Backlog"\nkind = "queue_backlog"\nthreshold = 1', "name 'Big Backlog': expected 1-64 lowercase"),
    ('kind = "queue_backlog"\nthreshold = 1', "#1: name None: expected"),
    ('name = "x1"\nkind = "queue_backlog"\nthreshold = "1000"', "threshold = '1000': expected a number >= 0"),
    ('name = "x1"\nkind = "queue_backlog"\nthreshold = true', "threshold = True: expected a number >= 0"),
    ('name = "x1"\nkind = "queue_backlog"\nthreshold = -1', "threshold = -1: expected a number >= 0"),
    ('name = "x1"\nkind = "queue_backlog"\nthreshold = nan', "threshold = nan: expected a number >= 0"),
    ('name = "x1"\nkind = "queue_backlog"', "threshold is missing"),
    ('name = "x1"\nkind = "queue_backlog"\nthreshold = 1\nfor = "2m"', "for = '2m': expected a number >= 0"),
    ('name = "x1"\nkind = "queue_backlog"\nthreshold = 1\nqueues = "emails"', "queues = 'emails': expected a list"),
    ('name = "x1"\nkind = "queue_backlog"\nthreshold = 1\nqueues = []', "queues = []: expected a list"),
    ('name = "x1"\nkind = "queue_backlog"\nthreshold = 1\nqueues = ["a b"]', "queues = ['a b']: expected a list"),
    ('name = "x1"\nkind = "queue_backlog"\nthreshold = 1\nqueues = ["a", "a"]', "of distinct queue names"),
    ('name = "x1"\nkind = "redis_memory"\nthreshold = 1\nqueues = ["a"]', "a redis_memory rule is not about queues"),
    ('name = "x1"\nkind = "queue_backlog"\nthreshold = 1\nthresold = 2', "unknown key 'thresold'"),
]


@pytest.mark.parametrize(("table", "reason"), BAD_EXTRA_RULES, ids=[reason[:40] for _, reason in BAD_EXTRA_RULES])
def test_a_bad_extra_rule_is_refused_with_one_line(tmp_path, table, reason):
    path = tmp_path / "rules.toml"
    path.write_text(f"[[rules]]\n{table}\n")
    with pytest.raises(config.ConfigError) as refused:
        config.from_env({"ALERT_RULES_FILE": str(path)})
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"ALERT_RULES_FILE={str(path)!r} is not valid: [[rules]] #1")
    assert reason in message


def test_a_duplicate_extra_rule_name_is_refused(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(EXTRA_RULES + '\n[[rules]]\nname = "backlog_critical"\nkind = "no_workers"\nthreshold = 0\n')
    with pytest.raises(config.ConfigError, match=r"#3 \(backlog_critical\): name 'backlog_critical' is already an"):
        config.from_env({"ALERT_RULES_FILE": str(path)})


def test_start_up_stops_with_one_line_per_error_of_the_rules_file(tmp_path, monkeypatch, capsys):
    path = tmp_path / "rules.toml"
    path.write_text(
        '[queue_backlog.queues]\nemails = "lots"\n\n'
        '[[rules]]\nname = "a1"\nkind = "queue_backlog"\nseverity = "urgent"\nthreshold = "high"\n'
    )
    monkeypatch.setenv("ALERT_RULES_FILE", str(path))
    with pytest.raises(SystemExit) as stopped:
        create_app({"TESTING": True, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert stopped.value.code == 4
    prefix = f"rq-monitor: configuration error: ALERT_RULES_FILE={str(path)!r} is not valid:"
    assert capsys.readouterr().err.splitlines() == [
        f"{prefix} [[rules]] #1 (a1): severity 'urgent': expected warning or critical",
        f"{prefix} [[rules]] #1 (a1): threshold = 'high': expected a number >= 0",
        f"{prefix} queue_backlog.queues.emails = 'lots': expected a number >= 0 or off",
    ]


@pytest.mark.parametrize("document", ["README.md", "docs/ALERTS.md"])
def test_the_documented_rules_files_are_valid(tmp_path, document):
    text = (Path(__file__).resolve().parents[2] / document).read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        path = tmp_path / "rules.toml"
        path.write_text(block)
        rules = settings_from(config.defaults() | config.from_env({"ALERT_RULES_FILE": str(path)}))
        assert rules["backlog_critical"].rule.kind == "queue_backlog"
