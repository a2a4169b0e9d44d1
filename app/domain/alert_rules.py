"""The default rules of ALERTS.md: what each watches, its severity, and the conditions true in one tick's facts.

Pure functions over plain data (no Redis, no Flask): `Facts` is what one tick already computed (metrics, workers,
stuck runs, the 5-minute outcome window, Redis's memory, the scheduler), `conditions(facts, settings)` lists every
alert whose condition holds now. Time (`for`, resolution) is the state machine's business (app/domain/alerts.py).
Thresholds and `for` durations come from config.py (ALERT_<RULE>, ALERT_<RULE>_FOR, per queue from ALERT_RULES_FILE).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain.severity import SEVERITIES
from app.domain.states import AlertSeverity, Liveness


@dataclass(frozen=True)
class Rule:
    name: str
    severity: AlertSeverity
    subject_kind: str  # queue | worker | schedule | system
    meaning: str  # the threshold's unit, for the rules list and messages


RULES: tuple[Rule, ...] = (
    Rule("redis_unreachable", AlertSeverity.CRITICAL, "system", "Redis does not answer"),
    Rule("no_workers", AlertSeverity.CRITICAL, "queue", "waiting jobs with no active worker listening"),
    Rule("workers_stale", AlertSeverity.WARNING, "worker", "stale workers"),
    Rule("queue_backlog", AlertSeverity.WARNING, "queue", "waiting + prioritized jobs"),
    Rule("slow_processing", AlertSeverity.WARNING, "queue", "mean processing seconds over 5 min"),
    Rule(
        "high_error_rate",
        AlertSeverity.WARNING,
        "queue",
        "% of a queue's or worker's attempts failed over 5 min (20 at least)",
    ),
    Rule("low_success_rate", AlertSeverity.WARNING, "system", "% of the last 1,000 finished jobs that succeeded"),
    Rule("stuck_jobs", AlertSeverity.WARNING, "queue", "minutes a run has lasted (critical at the critical band)"),
    Rule("worker_memory", AlertSeverity.WARNING, "worker", "% of the worker's memory limit"),
    Rule("redis_memory", AlertSeverity.WARNING, "system", "% of Redis's maxmemory"),
    Rule("scheduler_down", AlertSeverity.CRITICAL, "system", "seconds without a scheduler heartbeat"),
    Rule("schedule_missed", AlertSeverity.WARNING, "schedule", "missed runs in the last 15 minutes"),
)
RULES_BY_NAME = {rule.name: rule for rule in RULES}
MIN_ATTEMPTS_FOR_ERROR_RATE = 20
MISSED_WINDOW_SECONDS = 900


@dataclass(frozen=True)
class RuleSetting:
    threshold: float | None  # None: disabled
    for_seconds: float
    per_queue: Mapping[str, float | None] = field(default_factory=dict)

    def threshold_of(self, queue: str | None) -> float | None:
        if queue is not None and queue in self.per_queue:
            return self.per_queue[queue]
        return self.threshold


def settings_from(config: Mapping[str, Any]) -> dict[str, RuleSetting]:
    """Every rule's setting from the app's configuration (config.py parsed and validated them)."""
    overrides: Mapping[str, Mapping[str, float | None]] = config.get("ALERT_RULES_FILE") or {}
    found = {}
    for rule in RULES:
        upper = rule.name.upper()
        threshold = config.get(f"ALERT_{upper}")
        for_seconds = config.get(f"ALERT_{upper}_FOR")
        found[rule.name] = RuleSetting(
            None if threshold is None else float(threshold),
            0.0 if for_seconds is None else float(for_seconds),
            overrides.get(rule.name, {}),
        )
    return found


@dataclass
class Condition:
    """One alert whose condition holds in this tick's facts."""

    rule: str
    subject_kind: str
    subject_name: str
    value: float
    threshold: float
    message: str
    severity: AlertSeverity

    @property
    def id(self) -> str:
        return f"{self.rule}:{self.subject_kind}:{self.subject_name}"


@dataclass
class Facts:
    """What one tick knows. `window` is per queue {"ok", "fail", "retry", "ms"} over the last 5 minutes;
    `stuck` per queue {"atThreshold": runs lasting at least the stuck_jobs threshold, <severity band>: runs}."""

    now: float
    queues: list[dict[str, Any]]  # the metrics document's queue entries
    success_rate: float | None  # the last 1,000 finished jobs, every queue
    workers: list[dict[str, Any]]  # read_workers
    stuck: dict[str, dict[str, int]] = field(default_factory=dict)
    window: dict[str, dict[str, int]] = field(default_factory=dict)
    redis_used_bytes: int = 0
    redis_max_bytes: int = 0
    schedules_exist: bool = False
    scheduler_heartbeat: float | None = None
    missed_recently: dict[str, int] = field(default_factory=dict)  # schedule -> runs missed in the window
    worker_window: dict[str, dict[str, int]] = field(default_factory=dict)  # worker -> attempts, failed (~5 min)


def _queue_conditions(facts: Facts, settings: Mapping[str, RuleSetting]) -> Iterator[Condition]:
    listened = {q for w in facts.workers if w["liveness"] == Liveness.ACTIVE for q in w["queues"]}
    for queue in facts.queues:
        name = queue["queueName"]
        waiting = queue["waiting"] + queue["prioritized"]
        limit = settings["no_workers"].threshold_of(name)
        if limit is not None and waiting > limit and name not in listened:
            yield _condition("no_workers", name, waiting, limit, f"{waiting} jobs wait in {name} and no worker listens")
        limit = settings["queue_backlog"].threshold_of(name)
        if limit is not None and waiting > limit:
            yield _condition("queue_backlog", name, waiting, limit, f"{waiting} jobs wait in {name} (over {limit:g})")
        yield from _window_conditions(name, facts.window.get(name), settings)
        yield from _stuck_condition(name, facts.stuck.get(name), settings)


def _window_conditions(
    name: str, window: dict[str, int] | None, settings: Mapping[str, RuleSetting]
) -> Iterator[Condition]:
    if not window:
        return
    finished = window.get("ok", 0) + window.get("fail", 0)
    limit = settings["slow_processing"].threshold_of(name)
    if limit is not None and finished:
        mean = round(window.get("ms", 0) / finished / 1000.0, 3)
        if mean > limit:
            yield _condition("slow_processing", name, mean, limit, f"jobs of {name} took {mean:g} s on average")
    attempts = finished + window.get("retry", 0)
    limit = settings["high_error_rate"].threshold_of(name)
    if limit is not None and attempts >= MIN_ATTEMPTS_FOR_ERROR_RATE:
        rate = round(100.0 * (window.get("fail", 0) + window.get("retry", 0)) / attempts, 2)
        if rate > limit:
            yield _condition(
                "high_error_rate", name, rate, limit, f"{rate:g} % of {attempts} attempts of {name} failed"
            )


def _stuck_condition(
    name: str, stuck: dict[str, int] | None, settings: Mapping[str, RuleSetting]
) -> Iterator[Condition]:
    limit = settings["stuck_jobs"].threshold_of(name)
    if limit is None or not stuck or not stuck.get("atThreshold"):
        return
    count = stuck["atThreshold"]
    condition = _condition(
        "stuck_jobs", name, count, limit, f"{count} runs of {name} have lasted {limit:g} min or more"
    )
    if stuck.get(SEVERITIES[-1]):
        condition.severity = AlertSeverity.CRITICAL
        condition.message += f" ({stuck[SEVERITIES[-1]]} in the critical band)"
    yield condition


def _worker_conditions(facts: Facts, settings: Mapping[str, RuleSetting]) -> Iterator[Condition]:
    stale_limit = settings["workers_stale"].threshold
    memory_limit = settings["worker_memory"].threshold
    for worker in facts.workers:
        name = worker["worker_name"]
        if stale_limit is not None and worker["liveness"] == "stale":
            age = worker["seconds_since_heartbeat"] or 0.0
            yield _condition("workers_stale", name, age, stale_limit, f"worker {name} is stale ({age:.0f} s)")
        yield from _worker_error_rate(name, facts.worker_window.get(name), settings)
        rss, cap = worker.get("memory_usage_mb"), worker.get("memory_limit_mb")
        if memory_limit is not None and rss is not None and cap:
            percent = round(100.0 * rss / cap, 1)
            if percent > memory_limit:
                text = f"worker {name} uses {percent:g} % of its {cap:g} MB limit"
                yield _condition("worker_memory", name, percent, memory_limit, text)


def _worker_error_rate(
    name: str, window: dict[str, int] | None, settings: Mapping[str, RuleSetting]
) -> Iterator[Condition]:
    limit = settings["high_error_rate"].threshold
    if limit is None or not window or window["attempts"] < MIN_ATTEMPTS_FOR_ERROR_RATE:
        return
    rate = round(100.0 * window["failed"] / window["attempts"], 2)
    if rate > limit:
        text = f"{rate:g} % of {window['attempts']} attempts of worker {name} failed"
        yield _condition("high_error_rate", name, rate, limit, text, kind="worker")


def _system_conditions(facts: Facts, settings: Mapping[str, RuleSetting]) -> Iterator[Condition]:
    limit = settings["low_success_rate"].threshold
    if limit is not None and facts.success_rate is not None and facts.success_rate < limit:
        rate = facts.success_rate
        yield _condition("low_success_rate", "all", rate, limit, f"{rate:g} % of the last finished jobs succeeded")
    limit = settings["redis_memory"].threshold
    if limit is not None and facts.redis_max_bytes:
        percent = round(100.0 * facts.redis_used_bytes / facts.redis_max_bytes, 1)
        if percent > limit:
            yield _condition("redis_memory", "redis", percent, limit, f"Redis uses {percent:g} % of its maxmemory")
    limit = settings["scheduler_down"].threshold
    if limit is not None and facts.schedules_exist:
        age = None if facts.scheduler_heartbeat is None else max(0.0, facts.now - facts.scheduler_heartbeat)
        if age is None or age > limit:
            value = -1.0 if age is None else round(age, 1)
            text = (
                "no scheduler has ever sent a heartbeat" if age is None else f"no scheduler heartbeat for {age:.0f} s"
            )
            yield _condition("scheduler_down", "scheduler", value, limit, text)
    limit = settings["schedule_missed"].threshold
    for name, missed in sorted(facts.missed_recently.items()):
        if limit is not None and missed > limit:
            yield _condition("schedule_missed", name, missed, limit, f"schedule {name} missed {missed} runs")


def _condition(
    rule: str, subject: str, value: float, threshold: float, message: str, kind: str | None = None
) -> Condition:
    definition = RULES_BY_NAME[rule]
    return Condition(rule, kind or definition.subject_kind, subject, value, threshold, message, definition.severity)


EVALUATORS: tuple[Callable[[Facts, Mapping[str, RuleSetting]], Iterator[Condition]], ...] = (
    _queue_conditions,
    _worker_conditions,
    _system_conditions,
)


def conditions(facts: Facts, settings: Mapping[str, RuleSetting]) -> list[Condition]:
    """Every alert whose condition holds now (redis_unreachable is the web process's own: see alerts.py)."""
    return [condition for evaluate in EVALUATORS for condition in evaluate(facts, settings)]


def rules_in_force(settings: Mapping[str, RuleSetting]) -> list[dict[str, Any]]:
    """GET /api/v1/alerts/rules."""
    return [
        {
            "rule": rule.name,
            "severity": rule.severity.value,
            "subject": rule.subject_kind,
            "enabled": settings[rule.name].threshold is not None,
            "threshold": settings[rule.name].threshold,
            "for_seconds": settings[rule.name].for_seconds,
            "per_queue": dict(settings[rule.name].per_queue),
            "meaning": rule.meaning,
        }
        for rule in RULES
    ]
