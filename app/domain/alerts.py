"""Alert state: the rules evaluated once per tick by the tick's publisher, `for` durations, firing and resolved
alerts kept in Redis (current hash + capped history), and the health roll-up of ALERTS.md.

An alert fires once its condition has held for the rule's `for` seconds (since = when it was first seen true), and
resolves once its condition has been false at two evaluations in a row (false for one whole tick: no flapping).
Every transition is returned to the caller, which queues its notifications (app/domain/notifications.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from app.domain import history, keys
from app.domain.alert_rules import (
    MISSED_WINDOW_SECONDS,
    Condition,
    Facts,
    RuleSetting,
    conditions,
    stuck_thresholds,
)
from app.domain.run_starts import longest_runs, longest_runs_reads, parse_longest_runs, stuck_index_unusable
from app.domain.severity import SEVERITIES, StuckThresholds
from app.domain.states import AlertSeverity, HealthStatus
from app.domain.timeutil import iso_from_timestamp
from app.domain.workers import parse_workers, workers_reads

FACTS_REFRESH_SECONDS = 20
CLEARING = "clearing_since"  # internal field of a firing alert whose condition was false at the last evaluation


@dataclass
class Transitions:
    fired: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    health: str = HealthStatus.HEALTHY.value  # the status once they happened


def public(alert: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in alert.items() if name != CLEARING}


_SEVERITY_VALUES = frozenset(severity.value for severity in AlertSeverity)


def read_alert(raw: bytes) -> dict[str, Any] | None:
    """One stored alert (firing or resolved); None when the entry is not one (another program's write): readers
    leave it out, and the next evaluation fires the alert again while its condition holds."""
    try:
        alert = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(alert, dict) or alert.get("severity") not in _SEVERITY_VALUES:
        return None
    if not all(isinstance(alert.get(name), str) for name in ("id", "since", "message")):
        return None
    return alert


def read_alerts(raws: list[bytes]) -> list[dict[str, Any]]:
    return [alert for alert in map(read_alert, raws) if alert is not None]


def read_facts(raw: bytes | None) -> dict[str, Any]:
    """The last evaluation's facts (keys.ALERTS_FACTS); none when the value is not what the evaluator writes."""
    try:
        facts = json.loads(raw) if raw else {}
    except (ValueError, RecursionError):
        return {}
    return facts if isinstance(facts, dict) else {}


def _alert(condition: Condition, since: float) -> dict[str, Any]:
    return {
        "id": condition.id,
        "rule": condition.rule,
        "severity": condition.severity.value,
        "subject": {"kind": condition.subject_kind, "name": condition.subject_name},
        "value": condition.value,
        "threshold": condition.threshold,
        "since": iso_from_timestamp(since),
        "message": condition.message,
    }


# --- the facts of one tick ----------------------------------------------------------------------------------


WINDOW_MINUTES = 5  # the outcome window of the rules, and of the workers overview's rates


def window_reads(pipe: Any, now: float) -> None:
    """Queue the minute buckets of the window on `pipe`: WINDOW_MINUTES + 1 HGETALL, oldest first."""
    current = int(now // history.MINUTE.seconds)
    for minute in range(current - WINDOW_MINUTES, current + 1):
        pipe.hgetall(keys.stats_bucket(history.MINUTE.name, minute))


def parse_window(minutes: list[dict[bytes, bytes]], now: float) -> dict[str, dict[str, int]]:
    """Per queue ok / fail / retry / ms over the 5 minutes before now (history's minute buckets; the oldest one
    counts for its part inside the window, as the processing rate does)."""
    oldest_weight = 1.0 - (now % history.MINUTE.seconds) / history.MINUTE.seconds
    totals: dict[str, dict[str, float]] = {}
    for index, fields in enumerate(minutes):
        weight = oldest_weight if index == 0 else 1.0
        for raw_field, value in fields.items():
            queue, _, kind = raw_field.decode(errors="replace").rpartition(history.FIELD_SEPARATOR)
            if queue and kind in ("ok", "fail", "retry", "ms"):
                counts = totals.setdefault(queue, {})
                counts[kind] = counts.get(kind, 0.0) + history.count_value(value) * weight
    return {queue: {kind: round(value) for kind, value in counts.items()} for queue, counts in totals.items()}


def _stuck(
    connection: Redis, reply: Any, names: list[str], bands: StuckThresholds, thresholds: tuple[float, ...], now: float
) -> tuple[dict[str, dict[str, int]], dict[str, dict[float, int]]]:
    """Per queue: runs in each severity band; and runs lasting at least each threshold of the stuck_jobs rules."""
    cutoffs = _stuck_cutoffs(bands, thresholds)
    band_count = len(bands.minutes)
    if stuck_index_unusable(reply):  # a server without ZDIFF: the scanning fallback, one more round trip
        _, counts = longest_runs(connection, names, cutoffs, 0, now)
    else:
        _, counts = parse_longest_runs(reply, len(cutoffs), now)
    found: dict[str, dict[str, int]] = {}
    at: dict[str, dict[float, int]] = {}
    for queue, runs in counts.items():
        started = runs.started_before
        per_band = {
            severity: max(0, started[index] - (started[index + 1] if index + 1 < band_count else 0))
            for index, severity in enumerate(SEVERITIES)
        }
        if sum(per_band.values()):
            found[queue] = per_band
        lasting = {limit: started[band_count + index] for index, limit in enumerate(thresholds)}
        if any(lasting.values()):
            at[queue] = lasting
    return found, at


def _stuck_cutoffs(bands: StuckThresholds, thresholds: tuple[float, ...]) -> tuple[float, ...]:
    return bands.minutes + thresholds


def _missed_recently(previous: dict[str, Any] | None, missed: dict[bytes, bytes], now: float) -> dict[str, Any]:
    """{schedule: [missed count, when it last grew, how much within the window]} carried from tick to tick. The
    first evaluation (nothing carried) takes the counts as they are; after it, a new schedule starts from 0."""
    tracked: dict[str, Any] = {}
    for raw_name, raw_count in missed.items():
        name, count = raw_name.decode(errors="replace"), int(raw_count)
        last_count, grew_at, recent = (previous or {}).get(name, [count if previous is None else 0, 0.0, 0])
        if count > last_count:
            recent = (recent if now - grew_at <= MISSED_WINDOW_SECONDS else 0) + count - last_count
            grew_at = now
        elif now - grew_at > MISSED_WINDOW_SECONDS:
            recent = 0
        tracked[name] = [count, grew_at, recent]
    return tracked


WORKER_SAMPLE_SECONDS = 60  # one sample of a worker's RQ counters a minute, kept for the 5-minute window


def _worker_windows(previous: dict[str, Any] | None, workers: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """{worker: [[time, attempts, failed], ...]} samples of RQ's own counters, one a minute over the last 5 minutes,
    carried from tick to tick; a counter that went down (a new worker under the same name) starts again."""
    carried: dict[str, Any] = {}
    for worker in workers:
        attempts, failed = int(worker.get("tasks_processed") or 0), int(worker.get("tasks_failed") or 0)
        samples = [s for s in (previous or {}).get(worker["worker_name"], []) if now - s[0] <= 5 * 60]
        if samples and (attempts < samples[-1][1] or failed < samples[-1][2]):
            samples = []
        if not samples or now - samples[-1][0] >= WORKER_SAMPLE_SECONDS:
            samples.append([now, attempts, failed])
        carried[worker["worker_name"]] = samples
    return carried


def _window_of(samples: list[list[float]], worker: dict[str, Any]) -> dict[str, int]:
    attempts, failed = int(worker.get("tasks_processed") or 0), int(worker.get("tasks_failed") or 0)
    return {"attempts": attempts - int(samples[0][1]), "failed": failed - int(samples[0][2])}


@dataclass
class Inputs:
    facts: Facts
    firing: dict[str, dict[str, Any]]
    pending: dict[str, float]
    carried: dict[str, Any]  # what the next evaluation needs (missed-run tracking, worker samples)
    previous: dict[str, Any]  # the facts the last evaluation wrote


def gather(
    connection: Redis,
    now: float,
    metrics: dict[str, Any],
    workers: list[dict[str, Any]] | None,
    stuck_bands: StuckThresholds,
    settings: Mapping[str, RuleSetting],
    liveness: tuple[float, float] = (60.0, 300.0),
) -> Inputs:
    """The facts beyond the tick's shared documents, and the alert state: one pipeline (the worker registry too
    when the tick has not read it; `liveness` = active and stale seconds for it)."""
    names = [queue["queueName"] for queue in metrics["queues"]]
    thresholds = stuck_thresholds(settings)
    with connection.pipeline(transaction=False) as pipe:
        window_reads(pipe, now)
        pipe.info("memory")
        pipe.hlen(keys.SCHEDULES)
        pipe.hget(keys.SCHEDULER_HEARTBEAT, "at")
        pipe.hgetall(keys.SCHEDULE_MISSED)
        pipe.hgetall(keys.ALERTS_FIRING)
        pipe.hgetall(keys.ALERTS_PENDING)
        pipe.get(keys.ALERTS_FACTS)
        if names:
            longest_runs_reads(pipe, names, _stuck_cutoffs(stuck_bands, thresholds), 0, now)
        if workers is None:
            workers_reads(pipe)
        replies = pipe.execute(raise_on_error=False)
    fixed = WINDOW_MINUTES + 1 + 7  # the minute buckets, then the seven single reads above
    *minutes, memory, schedule_count, beat, missed, firing, pending, facts = replies[:fixed]
    rest = replies[fixed:]
    stuck, stuck_at = _stuck(connection, rest.pop(0), names, stuck_bands, thresholds, now) if names else ({}, {})
    if workers is None:
        workers = parse_workers(rest.pop(0), now, *liveness)
    for reply in (*minutes, memory, schedule_count, beat, missed, firing, pending, facts):
        if isinstance(reply, Exception):
            raise reply
    previous = read_facts(facts)
    tracked = _missed_recently(previous.get("missed"), missed, now)
    samples = _worker_windows(previous.get("workers"), workers, now)
    return Inputs(
        Facts(
            now=now,
            queues=metrics["queues"],
            success_rate=metrics.get("successRate"),
            workers=workers,
            stuck=stuck,
            stuck_at=stuck_at,
            window=parse_window(minutes, now),
            redis_used_bytes=int(memory.get("used_memory", 0)),
            redis_max_bytes=int(memory.get("maxmemory", 0)),
            schedules_exist=bool(schedule_count),
            scheduler_heartbeat=float(beat) if beat else None,
            missed_recently={name: entry[2] for name, entry in tracked.items() if entry[2]},
            worker_window={w["worker_name"]: _window_of(samples[w["worker_name"]], w) for w in workers},
        ),
        {key.decode(errors="replace"): alert for key, raw in firing.items() if (alert := read_alert(raw))},
        {key.decode(): float(value) for key, value in pending.items()},
        {"missed": tracked, "workers": samples},
        previous,
    )


# --- the state machine ----------------------------------------------------------------------------------------


def step(inputs: Inputs, settings: Mapping[str, RuleSetting], now: float) -> tuple[Transitions, dict[str, Any]]:
    """Pure: this evaluation's transitions and the new state {"firing", "pending"} from the old one."""
    holding = {condition.id: condition for condition in conditions(inputs.facts, settings)}
    firing: dict[str, dict[str, Any]] = {}
    pending: dict[str, float] = {}
    transitions = Transitions()
    for alert_id, condition in holding.items():
        if alert_id in inputs.firing:
            firing[alert_id] = _alert(condition, 0) | {"since": inputs.firing[alert_id]["since"]}
            continue
        since = inputs.pending.get(alert_id, now)
        if now - since >= settings[condition.rule].for_seconds:
            firing[alert_id] = _alert(condition, since)
            transitions.fired.append(firing[alert_id])
        else:
            pending[alert_id] = since
    for alert_id, alert in inputs.firing.items():
        if alert_id in holding:
            continue
        if CLEARING in alert or alert.get("rule") not in settings:  # a rule no longer in force resolves at once
            resolved = public(alert) | {"resolved_at": iso_from_timestamp(now)}
            transitions.resolved.append(resolved)
        else:
            firing[alert_id] = alert | {CLEARING: now}
    transitions.health = status_of(severity_counts(list(firing.values())))
    return transitions, {"firing": firing, "pending": pending}


def evaluate(
    connection: Redis,
    now: float,
    metrics: dict[str, Any],
    workers: list[dict[str, Any]] | None,
    stuck_bands: StuckThresholds,
    settings: Mapping[str, RuleSetting],
    liveness: tuple[float, float] = (60.0, 300.0),
) -> Transitions:
    """One evaluation in two round trips: gather (one pipeline), step, write what changed (one pipeline). Called
    by the tick's publisher only. `workers`: the tick's worker registry read, or None to read it in the gather."""
    inputs = gather(connection, now, metrics, workers, stuck_bands, settings, liveness)
    transitions, state = step(inputs, settings, now)
    facts = {"stuck": inputs.facts.stuck, **inputs.carried}
    # The facts are rewritten when they change, and at least every FACTS_REFRESH_SECONDS (their `at` tells
    # /metrics that the stuck counts are current): most ticks encode and send nothing of them.
    previous_at = inputs.previous.get("at")
    previous_at = float(previous_at) if isinstance(previous_at, int | float) else 0.0
    stale = now - previous_at >= FACTS_REFRESH_SECONDS or now < previous_at
    write_facts = stale or {k: v for k, v in inputs.previous.items() if k != "at"} != facts  # JSON-shaped both
    with connection.pipeline(transaction=True) as pipe:
        gone_firing = set(inputs.firing) - set(state["firing"])
        gone_pending = set(inputs.pending) - set(state["pending"])
        if gone_firing:
            pipe.hdel(keys.ALERTS_FIRING, *gone_firing)
        if gone_pending:
            pipe.hdel(keys.ALERTS_PENDING, *gone_pending)
        # Only what changed is written: a steady state (the usual tick) writes nothing but the facts.
        changed = {k: v for k, v in state["firing"].items() if inputs.firing.get(k) != v}
        if changed:
            pipe.hset(keys.ALERTS_FIRING, mapping={k: json.dumps(v) for k, v in changed.items()})
        started = {k: v for k, v in state["pending"].items() if inputs.pending.get(k) != v}
        if started:
            pipe.hset(keys.ALERTS_PENDING, mapping={k: repr(v) for k, v in started.items()})
        if transitions.resolved:
            pipe.lpush(keys.ALERTS_RECENT, *(json.dumps(alert) for alert in transitions.resolved))
            pipe.ltrim(keys.ALERTS_RECENT, 0, keys.ALERTS_RECENT_CAP - 1)
        if write_facts:
            pipe.set(keys.ALERTS_FACTS, json.dumps({"at": now, **facts}), ex=keys.ALERTS_FACTS_TTL_SECONDS)
        pipe.execute()
    return transitions


# --- reading --------------------------------------------------------------------------------------------------


def _sorted(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(alerts, key=lambda alert: (alert["severity"] != AlertSeverity.CRITICAL, alert["since"], alert["id"]))


def get_alerts(connection: Redis) -> dict[str, Any]:
    """GET /api/v1/alerts: firing (critical first, oldest first) and the last resolved ones, newest first."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.hvals(keys.ALERTS_FIRING)
        pipe.lrange(keys.ALERTS_RECENT, 0, keys.ALERTS_RECENT_CAP - 1)
        firing, recent = pipe.execute()
    return {
        "firing": _sorted([public(alert) for alert in read_alerts(firing)]),
        "recent": read_alerts(recent),
    }


def status_of(counts: Mapping[str, int]) -> str:
    if counts.get(AlertSeverity.CRITICAL):
        return HealthStatus.CRITICAL.value
    return (HealthStatus.DEGRADED if counts.get(AlertSeverity.WARNING) else HealthStatus.HEALTHY).value


def firing_health(firing: list[bytes]) -> tuple[str, list[str]]:
    """The health of the firing alerts (HVALS of keys.ALERTS_FIRING), rolled up as GET /api/v1/health does, and
    their messages, critical first: the workers overview's overall_health and health_reasons."""
    found = _sorted(read_alerts(firing))
    return status_of(severity_counts(found)), [str(alert["message"]) for alert in found]


def severity_counts(alerts: list[dict[str, Any]]) -> dict[str, int]:
    counts = {severity.value: 0 for severity in reversed(AlertSeverity)}  # critical first, as before
    for alert in alerts:
        counts[alert["severity"]] = counts.get(alert["severity"], 0) + 1
    return counts


def alerts_summary(connection: Redis, now: float | None = None) -> dict[str, Any]:
    """The small document of the navigation's badge (the `alerts` live feed): status and counts."""
    firing = read_alerts(connection.hvals(keys.ALERTS_FIRING))
    counts = severity_counts(firing)
    return {
        "status": status_of(counts),
        "firing": len(firing),
        "alerts": counts,
        "timestamp": iso_from_timestamp(time.time() if now is None else now),
    }
