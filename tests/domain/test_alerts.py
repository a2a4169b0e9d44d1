"""The rule engine against a real redis-server: every default rule of ALERTS.md fires from crafted tick documents
(or data seeded the way the product writes it) and resolves once its condition has been false for a whole tick;
`for` durations, no flapping, the capped history, per-queue thresholds, settings."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from redis import Redis

import config
from app.domain import alerts, health, history, keys
from app.domain.alert_rules import RULES, settings_from
from app.domain.queues import QueueKeys
from app.domain.severity import StuckThresholds
from tests.helpers import make_active_job

BANDS = StuckThresholds((10, 30, 60, 120))


def settings(**overrides: Any):
    """Every rule with `for` 0 unless overridden."""
    values = config.defaults() | {f"ALERT_{rule.name.upper()}_FOR": 0 for rule in RULES}
    return settings_from(values | overrides)


def queue(name: str, waiting: int = 0, prioritized: int = 0) -> dict[str, Any]:
    return {"queueName": name, "waiting": waiting, "prioritized": prioritized, "successRate": None}


def worker(name: str, queues: list[str], liveness: str = "active", rss=None, limit=None, age=1.0) -> dict[str, Any]:
    return {
        "worker_name": name,
        "queues": queues,
        "liveness": liveness,
        "memory_usage_mb": rss,
        "memory_limit_mb": limit,
        "seconds_since_heartbeat": age,
    }


class Documents:
    """What the tick would have computed: the metrics document and the workers, changed by each case."""

    def __init__(self) -> None:
        self.queues: list[dict[str, Any]] = []
        self.workers: list[dict[str, Any]] = []
        self.success_rate: float | None = None

    def evaluate(self, connection: Redis, now: float, rule_settings=None) -> alerts.Transitions:
        metrics = {"queues": self.queues, "successRate": self.success_rate}
        return alerts.evaluate(connection, now, metrics, self.workers, BANDS, rule_settings or settings())


def firing_rules(connection: Redis) -> set[str]:
    return {alert["rule"] for alert in alerts.get_alerts(connection)["firing"]}


# Each case: (rule, subject, make it true, make it false); both get the connection, the documents and `now`.
Case = tuple[str, str, Callable[..., None], Callable[..., None]]


def _no_workers_on(c, d, now):
    d.queues = [queue("q-idle", waiting=3)]
    d.workers = [worker("w1", ["elsewhere"])]


def _no_workers_off(c, d, now):
    d.workers = [worker("w1", ["elsewhere", "q-idle"])]


def _backlog_on(c, d, now):
    d.queues = [queue("q-big", waiting=90, prioritized=20)]
    d.workers = [worker("w1", ["q-big"])]


def _backlog_off(c, d, now):
    d.queues = [queue("q-big", waiting=90, prioritized=10)]


def _stale_on(c, d, now):
    d.workers = [worker("w-old", [], liveness="stale", age=900)]


def _stale_off(c, d, now):
    d.workers = [worker("w-old", [], liveness="active")]


def _attempts(c, queue_name: str, outcome: str, count: int, ms: int, at: float) -> None:
    for n in range(count):
        history.record_attempt(c, queue_name, outcome, ms, f"job-{outcome}-{n}", "f", ended_at=at)  # type: ignore[arg-type]


def _slow_on(c, d, now):
    d.queues = [queue("q-slow")]
    _attempts(c, "q-slow", "ok", 2, 90_000, now - 30)


def _window_moves_on(c, d, now):
    pass  # evaluated 10 minutes later: the 5-minute window no longer holds those attempts


def _errors_on(c, d, now):
    d.queues = [queue("q-err")]
    _attempts(c, "q-err", "ok", 15, 10, now - 30)
    _attempts(c, "q-err", "fail", 3, 10, now - 30)
    _attempts(c, "q-err", "retry", 2, 10, now - 30)  # 5 of 20 attempts failed: 25 %


def _success_on(c, d, now):
    d.success_rate = 80.0


def _success_off(c, d, now):
    d.success_rate = 95.0


def _stuck_on(c, d, now):
    d.queues = [queue("q-stuck")]
    make_active_job(c, "q-stuck", 45)


def _stuck_off(c, d, now):
    c.delete(QueueKeys("q-stuck").active)  # the run ended: it leaves RQ's started registry


def _memory_on(c, d, now):
    d.workers = [worker("w-fat", [], rss=450, limit=500)]


def _memory_off(c, d, now):
    d.workers = [worker("w-fat", [], rss=100, limit=500)]


def _redis_memory_on(c, d, now):
    used = int(c.info("memory")["used_memory"])
    c.config_set("maxmemory", used * 3)  # about 33 % used: over the 10 % the case sets, far from refusing writes


def _redis_memory_off(c, d, now):
    c.config_set("maxmemory", 0)


def _scheduler_on(c, d, now):
    c.hset(keys.SCHEDULES, "nightly", json.dumps({"name": "nightly"}))
    c.hset(keys.SCHEDULER_HEARTBEAT, mapping={"name": "s", "at": now - 300})


def _scheduler_off(c, d, now):
    c.hset(keys.SCHEDULER_HEARTBEAT, "at", now + 1)


def _missed_on(c, d, now):
    c.hincrby(keys.SCHEDULE_MISSED, "hourly", 2)


CASES: list[Case] = [
    ("no_workers", "queue:q-idle", _no_workers_on, _no_workers_off),
    ("queue_backlog", "queue:q-big", _backlog_on, _backlog_off),
    ("workers_stale", "worker:w-old", _stale_on, _stale_off),
    ("slow_processing", "queue:q-slow", _slow_on, _window_moves_on),
    ("high_error_rate", "queue:q-err", _errors_on, _window_moves_on),
    ("low_success_rate", "system:all", _success_on, _success_off),
    ("stuck_jobs", "queue:q-stuck", _stuck_on, _stuck_off),
    ("worker_memory", "worker:w-fat", _memory_on, _memory_off),
    ("redis_memory", "system:redis", _redis_memory_on, _redis_memory_off),
    ("scheduler_down", "system:scheduler", _scheduler_on, _scheduler_off),
    ("schedule_missed", "schedule:hourly", _missed_on, _window_moves_on),
]


def test_every_rule_but_redis_unreachable_has_a_case():
    assert {case[0] for case in CASES} == {rule.name for rule in RULES} - {"redis_unreachable"}


@pytest.mark.parametrize(("rule", "subject", "make_true", "make_false"), CASES, ids=[case[0] for case in CASES])
def test_rule_fires_and_resolves(connection, rule, subject, make_true, make_false):
    rule_settings = settings(ALERT_REDIS_MEMORY=10)
    documents = Documents()
    now = time.time()
    if rule == "schedule_missed":  # the first evaluation learns the count; growth after it is a missed run
        documents.evaluate(connection, now - 2, rule_settings)
    try:
        make_true(connection, documents, now)
        fired = documents.evaluate(connection, now, rule_settings)
        assert [alert["id"] for alert in fired.fired] == [f"{rule}:{subject}"]
        alert = alerts.get_alerts(connection)["firing"][0]
        assert alert["rule"] == rule and alert["value"] is not None and alert["message"]
        assert alert["since"] and alert["threshold"] is not None
        later = now + (600 if make_false is _window_moves_on else 2)
        if rule == "schedule_missed":
            later = now + 1000  # past the 15-minute window
        make_false(connection, documents, later)
        assert documents.evaluate(connection, later, rule_settings).resolved == []  # false for one tick: still firing
        assert rule in firing_rules(connection)
        resolved = documents.evaluate(connection, later + 2, rule_settings).resolved
        assert [alert["id"] for alert in resolved] == [f"{rule}:{subject}"]
        assert resolved[0]["resolved_at"]
        assert firing_rules(connection) == set()
        assert alerts.get_alerts(connection)["recent"][0]["id"] == f"{rule}:{subject}"
    finally:
        connection.config_set("maxmemory", 0)


def test_for_duration_holds_before_firing(connection):
    documents = Documents()
    _backlog_on(connection, documents, 0)
    rule_settings = settings(ALERT_QUEUE_BACKLOG_FOR=60)
    now = time.time()
    assert documents.evaluate(connection, now, rule_settings).fired == []
    assert documents.evaluate(connection, now + 30, rule_settings).fired == []
    assert connection.hexists(keys.ALERTS_PENDING, "queue_backlog:queue:q-big")
    fired = documents.evaluate(connection, now + 60, rule_settings).fired
    assert [alert["rule"] for alert in fired] == ["queue_backlog"]
    assert fired[0]["since"] == alerts.iso_from_timestamp(now)  # since the condition was first seen
    assert not connection.hexists(keys.ALERTS_PENDING, "queue_backlog:queue:q-big")


def test_a_condition_that_stops_before_its_for_duration_never_fires(connection):
    documents = Documents()
    _backlog_on(connection, documents, 0)
    rule_settings = settings(ALERT_QUEUE_BACKLOG_FOR=60)
    now = time.time()
    documents.evaluate(connection, now, rule_settings)
    _backlog_off(connection, documents, 0)
    documents.evaluate(connection, now + 30, rule_settings)
    _backlog_on(connection, documents, 0)
    assert documents.evaluate(connection, now + 61, rule_settings).fired == []  # the clock started again
    assert [a["rule"] for a in documents.evaluate(connection, now + 121, rule_settings).fired] == ["queue_backlog"]


def test_no_flapping_one_false_tick_keeps_the_alert(connection):
    documents = Documents()
    _backlog_on(connection, documents, 0)
    now = time.time()
    first = documents.evaluate(connection, now).fired[0]
    _backlog_off(connection, documents, 0)
    documents.evaluate(connection, now + 2)
    _backlog_on(connection, documents, 0)
    again = documents.evaluate(connection, now + 4)
    assert again.fired == [] and again.resolved == []
    assert alerts.get_alerts(connection)["firing"][0]["since"] == first["since"]
    _backlog_off(connection, documents, 0)
    assert documents.evaluate(connection, now + 6).resolved == []  # the earlier false tick does not count
    assert len(documents.evaluate(connection, now + 8).resolved) == 1


def test_stuck_jobs_is_critical_at_the_critical_band(connection):
    documents = Documents()
    documents.queues = [queue("q-crit")]
    make_active_job(connection, "q-crit", 130)
    alert = documents.evaluate(connection, time.time()).fired[0]
    assert (alert["rule"], alert["severity"], alert["value"]) == ("stuck_jobs", "critical", 1)


def test_disabled_rule_and_per_queue_threshold(connection):
    documents = Documents()
    documents.queues = [queue("q-a", waiting=150), queue("q-b", waiting=150)]
    documents.workers = [worker("w", ["q-a", "q-b"])]
    overrides = config.RulesFile(per_queue={"queue_backlog": {"q-a": 500.0, "q-b": None}})
    fired = documents.evaluate(connection, time.time(), settings(ALERT_RULES_FILE=overrides)).fired
    assert fired == []  # q-a under its own threshold, q-b's rule off
    fired = documents.evaluate(connection, time.time(), settings(ALERT_QUEUE_BACKLOG=None)).fired
    assert fired == []


def test_history_is_capped(connection):
    documents = Documents()
    now = time.time()
    for n in range(keys.ALERTS_RECENT_CAP + 5):
        documents.queues = [queue(f"q{n}", waiting=200)]
        documents.workers = [worker("w", [f"q{n}"])]
        documents.evaluate(connection, now + 3 * n)  # q{n} fires, q{n-1} clears, q{n-2} resolves
    assert connection.llen(keys.ALERTS_RECENT) == keys.ALERTS_RECENT_CAP


def test_health_rolls_up_the_worst_severity():
    assert alerts.status_of({"critical": 0, "warning": 0}) == "healthy"
    assert alerts.status_of({"critical": 0, "warning": 2}) == "degraded"
    assert alerts.status_of({"critical": 1, "warning": 2}) == "critical"


def test_high_error_rate_of_a_worker_over_its_last_minutes(connection):
    documents = Documents()
    busy = worker("w-err", ["q"]) | {"tasks_processed": 10, "tasks_failed": 0}
    documents.workers = [busy]
    now = time.time()
    assert documents.evaluate(connection, now).fired == []  # the first sample of RQ's counters
    busy.update(tasks_processed=40, tasks_failed=10)  # 30 attempts since, 10 failed: 33 %
    fired = documents.evaluate(connection, now + 60).fired
    assert [(a["id"], a["value"]) for a in fired] == [("high_error_rate:worker:w-err", 33.33)]
    busy.update(tasks_processed=41, tasks_failed=10)
    documents.evaluate(connection, now + 400)  # the failures left the 5-minute window
    assert [a["id"] for a in documents.evaluate(connection, now + 402).resolved] == ["high_error_rate:worker:w-err"]


def test_a_worker_with_too_few_attempts_or_restarted_counters_does_not_fire(connection):
    documents = Documents()
    busy = worker("w-few", ["q"]) | {"tasks_processed": 100, "tasks_failed": 0}
    documents.workers = [busy]
    now = time.time()
    documents.evaluate(connection, now)
    busy.update(tasks_processed=110, tasks_failed=10)  # 10 attempts, all failed: under the 20 needed
    assert documents.evaluate(connection, now + 60).fired == []
    busy.update(tasks_processed=25, tasks_failed=20)  # a new worker under the same name: counters went down
    assert documents.evaluate(connection, now + 120).fired == []


def test_a_steady_tick_costs_one_round_trip_and_writes_nothing(connection, round_trips):
    documents = Documents()
    _backlog_on(connection, documents, 0)
    now = time.time()
    documents.evaluate(connection, now)  # fires: state and facts written
    written = connection.get(keys.ALERTS_FACTS)
    round_trips[0] = 0
    assert documents.evaluate(connection, now + 2).fired == []
    assert round_trips[0] == 1  # the read pipeline only: nothing changed, nothing sent
    assert connection.get(keys.ALERTS_FACTS) == written
    documents.evaluate(connection, now + 2 + alerts.FACTS_REFRESH_SECONDS)
    assert json.loads(connection.get(keys.ALERTS_FACTS))["at"] > json.loads(written)["at"]  # kept current


def extra(*rules: config.ExtraRule, **overrides: Any):
    """The test settings with extra rules of ALERT_RULES_FILE (and its per-queue thresholds, if given)."""
    per_queue = overrides.pop("per_queue", {})
    return settings(ALERT_RULES_FILE=config.RulesFile(per_queue, rules), **overrides)


def test_an_extra_rule_fires_and_resolves_with_its_own_id_severity_and_for(connection):
    critical = config.ExtraRule("backlog_critical", "queue_backlog", "critical", 1000, 120, ("q-x",))
    rule_settings = extra(critical)
    documents = Documents()
    documents.queues = [queue("q-x", waiting=1200, prioritized=100), queue("q-y", waiting=1500)]
    documents.workers = [worker("w", ["q-x", "q-y"])]
    now = time.time()
    fired = documents.evaluate(connection, now, rule_settings).fired
    assert sorted(a["id"] for a in fired) == ["queue_backlog:queue:q-x", "queue_backlog:queue:q-y"]  # the default
    assert connection.hexists(keys.ALERTS_PENDING, "backlog_critical:queue:q-x")  # its own `for`
    assert not connection.hexists(keys.ALERTS_PENDING, "backlog_critical:queue:q-y")  # not its queue
    assert documents.evaluate(connection, now + 60, rule_settings).fired == []
    fired = documents.evaluate(connection, now + 120, rule_settings)
    assert [(a["id"], a["rule"], a["severity"], a["value"], a["threshold"]) for a in fired.fired] == [
        ("backlog_critical:queue:q-x", "backlog_critical", "critical", 1300, 1000)
    ]
    assert fired.fired[0]["since"] == alerts.iso_from_timestamp(now)
    assert fired.health == "critical"
    assert alerts.alerts_summary(connection)["alerts"] == {"critical": 1, "warning": 2}

    documents.queues = [queue("q-x", waiting=500), queue("q-y", waiting=1500)]  # under 1000, over 100
    assert documents.evaluate(connection, now + 122, rule_settings).resolved == []  # false for one tick
    resolved = documents.evaluate(connection, now + 124, rule_settings)
    assert [a["id"] for a in resolved.resolved] == ["backlog_critical:queue:q-x"]
    assert resolved.health == "degraded"
    assert firing_rules(connection) == {"queue_backlog"}  # the default rule's alerts go on
    assert alerts.get_alerts(connection)["recent"][0]["rule"] == "backlog_critical"


def test_an_extra_high_error_rate_for_one_queue(connection):
    strict = config.ExtraRule("payments_errors", "high_error_rate", None, 5, 0, ("q-pay",))
    documents = Documents()
    documents.queues = [queue("q-pay"), queue("q-other")]
    now = time.time()
    busy = worker("w-err", ["q-pay"]) | {"tasks_processed": 0, "tasks_failed": 0}
    documents.workers = [busy]
    documents.evaluate(connection, now - 60, extra(strict))  # the worker's first sample, no attempt yet
    for name in ("q-pay", "q-other"):
        _attempts(connection, name, "ok", 18, 10, now - 30)
        _attempts(connection, name, "fail", 2, 10, now - 30)  # 10 %: over 5, under the default 15
    busy.update(tasks_processed=40, tasks_failed=4)  # a worker at 10 % too: the queue-limited rule ignores workers
    fired = documents.evaluate(connection, now, extra(strict)).fired
    assert [(a["id"], a["severity"], a["value"]) for a in fired] == [("payments_errors:queue:q-pay", "warning", 10)]


def test_extra_stuck_jobs_rule_and_per_queue_thresholds_count_their_own_runs(connection):
    early = config.ExtraRule("stuck_early", "stuck_jobs", None, 5, 0, ("q-s1",))
    documents = Documents()
    documents.queues = [queue("q-s1"), queue("q-s2")]
    make_active_job(connection, "q-s1", 12)  # 12 min: over 5, under the default 30
    make_active_job(connection, "q-s2", 25)  # over q-s2's own 20, under the default 30
    fired = documents.evaluate(connection, time.time(), extra(early, per_queue={"stuck_jobs": {"q-s2": 20.0}})).fired
    assert sorted((a["id"], a["value"], a["threshold"]) for a in fired) == [
        ("stuck_early:queue:q-s1", 1, 5),
        ("stuck_jobs:queue:q-s2", 1, 20),
    ]


def test_an_alert_of_an_extra_rule_no_longer_in_force_resolves(connection):
    documents = Documents()
    documents.queues = [queue("q-gone", waiting=50)]
    documents.workers = [worker("w", ["q-gone"])]
    low = config.ExtraRule("backlog_low", "queue_backlog", None, 10)
    now = time.time()
    assert [a["id"] for a in documents.evaluate(connection, now, extra(low)).fired] == ["backlog_low:queue:q-gone"]
    assert [a["id"] for a in documents.evaluate(connection, now + 2).resolved] == ["backlog_low:queue:q-gone"]


def test_redis_unreachable_follows_its_threshold_for_and_off():
    rules = settings(ALERT_REDIS_UNREACHABLE=5, ALERT_REDIS_UNREACHABLE_FOR=10)
    assert not health.unreachable_fires(1014.9, 1000, rules["redis_unreachable"])  # continuously 5 + 10 s needed
    assert health.unreachable_fires(1015, 1000, rules["redis_unreachable"])
    assert health.unreachable_fires(1000, 1000, settings()["redis_unreachable"])  # the default: at once
    off = settings(ALERT_REDIS_UNREACHABLE=None)["redis_unreachable"]
    assert not health.unreachable_fires(10**9, 0, off)
    assert health.unreachable_health(10**9, 0, "ConnectionError", off)["status"] == "healthy"
