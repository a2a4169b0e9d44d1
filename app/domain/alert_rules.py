"""The default rules of ALERTS.md: what each watches, its severity, and the conditions true in one tick's facts.

Pure functions over plain data (no Redis, no Flask): `Facts` is what one tick already computed (metrics, workers,
stuck runs, the 5-minute outcome window, Redis's memory, the scheduler), `conditions(facts, settings)` lists every
alert whose condition holds now. Time (`for`, resolution) is the state machine's business (app/domain/alerts.py).
Thresholds and `for` durations come from config.py (ALERT_<RULE>, ALERT_<RULE>_FOR, per queue from ALERT_RULES_FILE);
so do extra rules (ALERT_RULES_FILE's [[rules]]): each is evaluated by the one evaluator of its kind, as a default is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain.severity import SEVERITIES
from app.domain.states import AlertSeverity, Liveness
from config import RulesFile


@dataclass(frozen=True)
class Rule:
    name: str
    severity: AlertSeverity
    subject_kind: str  # queue | worker | schedule | system
    meaning: str  # the threshold's unit, for the rules list and messages
    kind: str = ""  # the default rule whose condition it evaluates: its own name for a default rule

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", self.name)


RULES: tuple[Rule, ...] = (
    Rule("redis_unreachable", AlertSeverity.CRITICAL, "system", "seconds Redis has not answered"),
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
QUEUE_KINDS = tuple(rule.name for rule in RULES if rule.subject_kind == "queue")  # those an extra rule may limit
MIN_ATTEMPTS_FOR_ERROR_RATE = 20
MISSED_WINDOW_SECONDS = 900


@dataclass(frozen=True)
class RuleSetting:
    """A rule in force: a default rule or an extra one of ALERT_RULES_FILE, with its thresholds."""

    rule: Rule
    threshold: float | None  # None: disabled
    for_seconds: float
    per_queue: Mapping[str, float | None] = field(default_factory=dict)
    queues: frozenset[str] | None = None  # an extra rule's queues; None: every queue

    def threshold_of(self, queue: str | None) -> float | None:
        if queue is not None and queue in self.per_queue:
            return self.per_queue[queue]
        return self.threshold

    def watches(self, queue: str) -> bool:
        return self.queues is None or queue in self.queues


def settings_from(config: Mapping[str, Any]) -> dict[str, RuleSetting]:
    """Every rule in force, by name: the default rules, then the extra ones (config.py parsed and validated them)."""
    rules_file: RulesFile = config.get("ALERT_RULES_FILE") or RulesFile()
    found = {}
    for rule in RULES:
        upper = rule.name.upper()
        threshold = config.get(f"ALERT_{upper}")
        for_seconds = config.get(f"ALERT_{upper}_FOR")
        found[rule.name] = RuleSetting(
            rule,
            None if threshold is None else float(threshold),
            0.0 if for_seconds is None else float(for_seconds),
            rules_file.per_queue.get(rule.name, {}),
        )
    for extra in rules_file.extra:
        kind = RULES_BY_NAME[extra.kind]
        severity = kind.severity if extra.severity is None else AlertSeverity(extra.severity)
        rule = Rule(extra.name, severity, kind.subject_kind, kind.meaning, kind=kind.name)
        queues = None if extra.queues is None else frozenset(extra.queues)
        found[extra.name] = RuleSetting(rule, extra.threshold, extra.for_seconds, {}, queues)
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
    """What one tick knows. `window` is per queue {"ok", "fail", "retry", "ms"} over the last 5 minutes; `stuck`
    per queue {<severity band>: runs}; `stuck_at` per queue {minutes: runs lasting at least that many minutes}, for
    each threshold of the stuck_jobs rules (`stuck_thresholds`)."""

    now: float
    queues: list[dict[str, Any]]  # the metrics document's queue entries
    success_rate: float | None  # the last 1,000 finished jobs, every queue
    workers: list[dict[str, Any]]  # read_workers
    stuck: dict[str, dict[str, int]] = field(default_factory=dict)
    stuck_at: dict[str, dict[float, int]] = field(default_factory=dict)
    window: dict[str, dict[str, int]] = field(default_factory=dict)
    redis_used_bytes: int = 0
    redis_max_bytes: int = 0
    schedules_exist: bool = False
    scheduler_heartbeat: float | None = None
    missed_recently: dict[str, int] = field(default_factory=dict)  # schedule -> runs missed in the window
    worker_window: dict[str, dict[str, int]] = field(default_factory=dict)  # worker -> attempts, failed (~5 min)


def stuck_thresholds(settings: Mapping[str, RuleSetting]) -> tuple[float, ...]:
    """Every minutes threshold of the stuck_jobs rules in force (default, per queue, extra), shortest first."""
    found = {
        limit
        for setting in settings.values()
        if setting.rule.kind == "stuck_jobs"
        for limit in (setting.threshold, *setting.per_queue.values())
        if limit is not None
    }
    return tuple(sorted(found))


# --- the condition of each kind, evaluated for one rule in force (a default rule or an extra one of its kind) ---

Evaluator = Callable[[Facts, RuleSetting], Iterator[Condition]]


def _queues(facts: Facts, rule: RuleSetting) -> Iterator[tuple[str, float]]:
    """(queue, threshold) of every queue the rule watches and is not off for."""
    for queue in facts.queues:
        name = queue["queueName"]
        limit = rule.threshold_of(name) if rule.watches(name) else None
        if limit is not None:
            yield name, limit


def _no_workers(facts: Facts, rule: RuleSetting) -> Iterator[Condition]:
    listened = {q for w in facts.workers if w["liveness"] == Liveness.ACTIVE for q in w["queues"]}
    waiting = {queue["queueName"]: queue["waiting"] + queue["prioritized"] for queue in facts.queues}
    for name, limit in _queues(facts, rule):
        if waiting[name] > limit and name not in listened:
            text = f"{waiting[name]} jobs wait in {name} and no worker listens"
            yield _condition(rule, name, waiting[name], limit, text)


def _queue_backlog(facts: Facts, rule: RuleSetting) -> Iterator[Condition]:
    waiting = {queue["queueName"]: queue["waiting"] + queue["prioritized"] for queue in facts.queues}
    for name, limit in _queues(facts, rule):
        if waiting[name] > limit:
            yield _condition(rule, name, waiting[name], limit, f"{waiting[name]} jobs wait in {name} (over {limit:g})")


def _slow_processing(facts: Facts, rule: RuleSetting) -> Iterator[Condition]:
    for name, limit in _queues(facts, rule):
        window = facts.window.get(name) or {}
        finished = window.get("ok", 0) + window.get("fail", 0)
        mean = round(window.get("ms", 0) / finished / 1000.0, 3) if finished else 0.0
        if finished and mean > limit:
            yield _condition(rule, name, mean, limit, f"jobs of {name} took {mean:g} s on average")


def _high_error_rate(facts: Facts, rule: RuleSetting) -> Iterator[Condition]:
    """A queue's attempts, and a worker's (the latter only for a rule about every queue)."""
    for name, limit in _queues(facts, rule):
        window = facts.window.get(name) or {}
        attempts = window.get("ok", 0) + window.get("fail", 0) + window.get("retry", 0)
        if attempts >= MIN_ATTEMPTS_FOR_ERROR_RATE:
            rate = round(100.0 * (window.get("fail", 0) + window.get("retry", 0)) / attempts, 2)
            if rate > limit:
                yield _condition(rule, name, rate, limit, f"{rate:g} % of {attempts} attempts of {name} failed")
    worker_limit = rule.threshold
    if worker_limit is None or rule.queues is not None:
        return
    for name, counts in sorted(facts.worker_window.items()):
        if counts["attempts"] >= MIN_ATTEMPTS_FOR_ERROR_RATE:
            rate = round(100.0 * counts["failed"] / counts["attempts"], 2)
            if rate > worker_limit:
                text = f"{rate:g} % of {counts['attempts']} attempts of worker {name} failed"
                yield _condition(rule, name, rate, worker_limit, text, kind="worker")


def _stuck_jobs(facts: Facts, rule: RuleSetting) -> Iterator[Condition]:
    for name, limit in _queues(facts, rule):
        count = facts.stuck_at.get(name, {}).get(limit, 0)
        if not count:
            continue
        condition = _condition(rule, name, count, limit, f"{count} runs of {name} have lasted {limit:g} min or more")
        critical = facts.stuck.get(name, {}).get(SEVERITIES[-1])
        if critical:
            condition.severity = AlertSeverity.CRITICAL
            condition.message += f" ({critical} in the critical band)"
        yield condition


def _workers_stale(facts: Facts, rule: RuleSetting) -> Iterator[Condition]:
    limit = rule.threshold
    if limit is None:
        return
    for worker in facts.workers:
        if worker["liveness"] == "stale":
            name, age = worker["worker_name"], worker["seconds_since_heartbeat"] or 0.0
            yield _condition(rule, name, age, limit, f"worker {name} is stale ({age:.0f} s)")


def _worker_memory(facts: Facts, rule: RuleSetting) -> Iterator[Condition]:
    limit = rule.threshold
    if limit is None:
        return
    for worker in facts.workers:
        name, rss, cap = worker["worker_name"], worker.get("memory_usage_mb"), worker.get("memory_limit_mb")
        percent = round(100.0 * rss / cap, 1) if rss is not None and cap else None
        if percent is not None and percent > limit:
            text = f"worker {name} uses {percent:g} % of its {cap:g} MB limit"
            yield _condition(rule, name, percent, limit, text)


def _low_success_rate(facts: Facts, rule: RuleSetting) -> Iterator[Condition]:
    limit, rate = rule.threshold, facts.success_rate
    if limit is not None and rate is not None and rate < limit:
        yield _condition(rule, "all", rate, limit, f"{rate:g} % of the last finished jobs succeeded")


def _redis_memory(facts: Facts, rule: RuleSetting) -> Iterator[Condition]:
    limit = rule.threshold
    if limit is not None and facts.redis_max_bytes:
        percent = round(100.0 * facts.redis_used_bytes / facts.redis_max_bytes, 1)
        if percent > limit:
            yield _condition(rule, "redis", percent, limit, f"Redis uses {percent:g} % of its maxmemory")


def _scheduler_down(facts: Facts, rule: RuleSetting) -> Iterator[Condition]:
    limit = rule.threshold
    if limit is None or not facts.schedules_exist:
        return
    age = None if facts.scheduler_heartbeat is None else max(0.0, facts.now - facts.scheduler_heartbeat)
    if age is None or age > limit:
        value = -1.0 if age is None else round(age, 1)
        text = "no scheduler has ever sent a heartbeat" if age is None else f"no scheduler heartbeat for {age:.0f} s"
        yield _condition(rule, "scheduler", value, limit, text)


def _schedule_missed(facts: Facts, rule: RuleSetting) -> Iterator[Condition]:
    limit = rule.threshold
    if limit is None:
        return
    for name, missed in sorted(facts.missed_recently.items()):
        if missed > limit:
            yield _condition(rule, name, missed, limit, f"schedule {name} missed {missed} runs")


def _condition(
    rule: RuleSetting, subject: str, value: float, threshold: float, message: str, kind: str | None = None
) -> Condition:
    definition = rule.rule
    return Condition(
        definition.name, kind or definition.subject_kind, subject, value, threshold, message, definition.severity
    )


# Every kind but redis_unreachable, which each web process evaluates from its own memory (app/domain/health.py).
EVALUATORS: dict[str, Evaluator] = {
    "no_workers": _no_workers,
    "workers_stale": _workers_stale,
    "queue_backlog": _queue_backlog,
    "slow_processing": _slow_processing,
    "high_error_rate": _high_error_rate,
    "low_success_rate": _low_success_rate,
    "stuck_jobs": _stuck_jobs,
    "worker_memory": _worker_memory,
    "redis_memory": _redis_memory,
    "scheduler_down": _scheduler_down,
    "schedule_missed": _schedule_missed,
}


def conditions(facts: Facts, settings: Mapping[str, RuleSetting]) -> list[Condition]:
    """Every alert whose condition holds now: each rule in force by its kind's evaluator."""
    return [
        condition
        for setting in settings.values()
        if setting.rule.kind in EVALUATORS
        for condition in EVALUATORS[setting.rule.kind](facts, setting)
    ]


def rules_in_force(settings: Mapping[str, RuleSetting]) -> list[dict[str, Any]]:
    """GET /api/v1/alerts/rules: the default rules, then the extra ones."""
    return [
        {
            "rule": setting.rule.name,
            "kind": setting.rule.kind,
            "severity": setting.rule.severity.value,
            "subject": setting.rule.subject_kind,
            "enabled": setting.threshold is not None,
            "threshold": setting.threshold,
            "for_seconds": setting.for_seconds,
            "per_queue": dict(setting.per_queue),
            "queues": None if setting.queues is None else sorted(setting.queues),
            "meaning": setting.rule.meaning,
        }
        for setting in settings.values()
    ]
