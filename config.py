"""Settings of the product. The environment is read here and only here, and only when asked."""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any


class Config:
    """Defaults for every setting; `from_env` overlays the environment."""

    ENV = "production"
    TESTING = False
    # None means: start (or reuse) the embedded redis-server under the instance folder.
    REDIS_URL: str | None = None
    JWT_SECRET_KEY: str | None = None
    JWT_ACCESS_TOKEN_EXPIRES = timedelta(minutes=15)
    JWT_REFRESH_TOKEN_EXPIRES = timedelta(days=7)
    JWT_TOKEN_LOCATION = ["headers", "cookies"]
    JWT_COOKIE_SECURE = False
    JWT_COOKIE_SAMESITE = "Lax"
    JWT_COOKIE_CSRF_PROTECT = True
    JWT_ACCESS_COOKIE_PATH = "/"
    JWT_REFRESH_COOKIE_PATH = "/"
    MAX_CONTENT_LENGTH = 64 * 1024
    # Stuck bands, minutes since the current run started: low, medium, high, critical.
    STUCK_THRESHOLDS_MINUTES = (10, 30, 60, 120)
    # Failed logins allowed before 429, per username from one client address, and per client address.
    LOGIN_LIMIT_PER_USER = "5 per 5 minutes"
    LOGIN_LIMIT_PER_ADDRESS = "20 per 5 minutes"
    # werkzeug's hash method for new passwords (its strong default); the tests use a cheap one.
    PASSWORD_HASH_METHOD = "scrypt"
    # Number of proxies in front of the app whose X-Forwarded-For is trusted (0: none).
    TRUSTED_PROXIES = 0
    # Seconds between two published snapshots of the live streams.
    LIVE_TICK_SECONDS = 2.0
    # Whether each web process takes part in publishing the live snapshots (a Redis lock elects one).
    LIVE_PUBLISHER_ENABLED = True
    SSE_HEARTBEAT_SECONDS = 15.0
    SSE_RETRY_MS = 2000
    # Webhooks of the alerts (comma list), their format (auto: Slack's shape for Slack's host), and whether
    # GET /metrics needs no API token.
    ALERT_WEBHOOK_URLS: tuple[str, ...] = ()
    ALERT_WEBHOOK_FORMAT = "auto"
    ALERT_WEBHOOK_BACKOFF_SECONDS = 10.0  # first wait before a failed delivery is retried; doubled each time
    # The TOML file named by ALERT_RULES_FILE, parsed: per-queue thresholds and extra rules (RulesFile below).
    ALERT_RULES_FILE: RulesFile
    METRICS_PUBLIC = False
    # Worker liveness (WORKERS.md): how often a MonitoredWorker heartbeats, and how old its last heartbeat may be
    # for the worker to count as active, and beyond which it is stale.
    WORKER_HEARTBEAT_SECONDS = 10.0
    WORKER_ACTIVE_SECONDS = 60.0
    WORKER_STALE_SECONDS = 300.0
    QUEUE_MAX_SIZE = 1000  # a queue's max_size in /api/v1/workers/queue/status (its utilization)
    # Set by a pool in its children's environment (or by hand for one MonitoredWorker): pool name, slot, memory
    # limit and the capabilities JSON object shown in the views.
    RQMON_POOL: str | None = None
    RQMON_SLOT: int | None = None
    RQMON_MEMORY_LIMIT_MB: float | None = None
    RQMON_WORKER_CAPABILITIES: dict[str, Any] = {}
    # Periodic jobs (SCHEDULES.md): the module prefixes a schedule's function must be under, and how late a firing
    # may be before it counts as missed. When the scheduler is down: ALERT_SCHEDULER_DOWN (scheduler_down_seconds).
    PERIODIC_ALLOWED_MODULES: tuple[str, ...] = ("workers.tasks",)
    SCHEDULE_GRACE_SECONDS = 60.0


# Alert rules (ALERTS.md): rule -> (threshold, `for` seconds). ALERT_<RULE> and ALERT_<RULE>_FOR override them
# (`off` disables a rule); the meaning of each threshold is in app/domain/alert_rules.py.
ALERT_RULE_DEFAULTS: dict[str, tuple[float, float]] = {
    "redis_unreachable": (0, 0),  # seconds without an answer (each web process, from memory)
    "no_workers": (0, 60),  # waiting jobs in a queue that no active worker listens to
    "workers_stale": (0, 0),  # stale workers
    "queue_backlog": (100, 60),  # waiting + prioritized jobs in a queue
    "slow_processing": (60, 0),  # mean processing seconds of a queue over 5 min
    "high_error_rate": (15, 0),  # failed % of a queue's attempts over 5 min (at least 20 attempts)
    "low_success_rate": (90, 0),  # success % of the last 1,000 finished jobs (below fires)
    "stuck_jobs": (30, 0),  # minutes a run has lasted
    "worker_memory": (80, 0),  # % of a worker's memory limit
    "redis_memory": (80, 0),  # % of Redis's maxmemory
    "scheduler_down": (60, 0),  # seconds since the scheduler's heartbeat, when schedules exist
    "schedule_missed": (0, 0),  # missed firings of a schedule in the last 15 minutes
}
for _rule, (_threshold, _for) in ALERT_RULE_DEFAULTS.items():
    setattr(Config, f"ALERT_{_rule.upper()}", _threshold)
    setattr(Config, f"ALERT_{_rule.upper()}_FOR", _for)


@dataclass(frozen=True)
class ExtraRule:
    """A rule of ALERT_RULES_FILE's `[[rules]]`: its own name, the default rule whose condition it evaluates
    (`kind`), and its own severity (None: the kind's), threshold, `for` and queues (None: every queue)."""

    name: str
    kind: str
    severity: str | None
    threshold: float
    for_seconds: float = 0.0
    queues: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RulesFile:
    """ALERT_RULES_FILE parsed: {rule: {queue: threshold|None}} per-queue thresholds, and the extra rules."""

    per_queue: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    extra: tuple[ExtraRule, ...] = ()


Config.ALERT_RULES_FILE = RulesFile()


def scheduler_down_seconds(settings: Mapping[str, Any]) -> float:
    """How old the scheduler's heartbeat may be before it is down: the scheduler_down rule's threshold, the one
    value behind the alert, /periodic/status and /api/v1/health; its default while the rule is `off`."""
    value = settings.get("ALERT_SCHEDULER_DOWN")
    return float(ALERT_RULE_DEFAULTS["scheduler_down"][0] if value is None else value)


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _alert_threshold(value: str) -> float | None:
    """A finite number, or `off` (None: the rule is disabled)."""
    if value.strip().lower() == "off":
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise ValueError("expected a number >= 0 or off")
    return number


def _webhook_urls(value: str) -> tuple[str, ...]:
    urls = tuple(part.strip() for part in value.split(",") if part.strip())
    if not all(url.startswith(("http://", "https://")) for url in urls):
        raise ValueError("needs comma-separated http:// or https:// URLs")
    return urls


def _rules_file(path: str) -> RulesFile:
    """ALERT_RULES_FILE: per-queue thresholds (`[queue_backlog.queues]` then `emails = 500` or `emails = "off"`)
    and extra rules (`[[rules]]` tables, see _extra_rules). Every error found is one line of the ValueError."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read it: {exc}") from None
    errors: list[str] = []
    extra = _extra_rules(document.pop(EXTRA_RULES_TABLE, []), errors)
    found: dict[str, dict[str, float | None]] = {}
    for rule, section in document.items():
        if rule not in ALERT_RULE_DEFAULTS or not isinstance(section, dict) or set(section) - {"queues"}:
            rules = ", ".join(ALERT_RULE_DEFAULTS)
            errors.append(f"[{rule}] is not a rule with a queues table, nor [[{EXTRA_RULES_TABLE}]] (rules: {rules})")
            continue
        queues = section.get("queues", {})
        if not isinstance(queues, dict):
            errors.append(f"[{rule}.queues] must be a table of queue = threshold")
            continue
        found[rule] = {}
        for queue, threshold in queues.items():
            try:
                found[rule][queue] = _alert_threshold(str(threshold))
            except ValueError:
                errors.append(f"{rule}.queues.{queue} = {threshold!r}: expected a number >= 0 or off")
    if errors:
        raise ValueError("\n".join(errors))
    return RulesFile(found, extra)


EXTRA_RULES_TABLE = "rules"  # [[rules]] in ALERT_RULES_FILE
EXTRA_RULE_KEYS = ("name", "kind", "severity", "threshold", "for", "queues")
_RULE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _extra_rules(tables: Any, errors: list[str]) -> tuple[ExtraRule, ...]:
    """The `[[rules]]` tables: name, kind (a default rule but redis_unreachable), threshold; optional severity
    (warning|critical, default the kind's), for (seconds, default 0), queues (kinds about queues only)."""
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        errors.append(f"{EXTRA_RULES_TABLE} must be [[{EXTRA_RULES_TABLE}]] tables")
        return ()
    found: list[ExtraRule] = []
    for number, table in enumerate(tables, start=1):
        name = table.get("name")
        where = f"[[{EXTRA_RULES_TABLE}]] #{number}" + (f" ({name})" if isinstance(name, str) else "")
        problems = _extra_rule_problems(table, {rule.name for rule in found})
        errors.extend(f"{where}: {problem}" for problem in problems)
        if not problems:
            queues = table.get("queues")
            found.append(
                ExtraRule(
                    name=table["name"],
                    kind=table["kind"],
                    severity=table.get("severity"),
                    threshold=float(table["threshold"]),
                    for_seconds=float(table.get("for", 0)),
                    queues=None if queues is None else tuple(queues),
                )
            )
    return tuple(found)


def _extra_rule_problems(table: dict[str, Any], taken: set[str]) -> list[str]:
    from app.domain.alert_rules import QUEUE_KINDS  # noqa: PLC0415 - the rule vocabulary, needed only here
    from app.domain.names import is_queue_name  # noqa: PLC0415
    from app.domain.states import AlertSeverity  # noqa: PLC0415

    keys = ", ".join(EXTRA_RULE_KEYS)
    problems = [f"unknown key {key!r} (keys: {keys})" for key in table if key not in EXTRA_RULE_KEYS]
    name, kind = table.get("name"), table.get("kind")
    if not isinstance(name, str) or not _RULE_NAME.fullmatch(name):
        problems.append(f"name {name!r}: expected 1-64 lowercase letters, digits and _, starting with a letter")
    elif name in ALERT_RULE_DEFAULTS:
        problems.append(f"name {name!r} is a default rule's: an extra rule needs a name of its own")
    elif name in taken:
        problems.append(f"name {name!r} is already an extra rule's")
    kinds = [rule for rule in ALERT_RULE_DEFAULTS if rule != "redis_unreachable"]
    if kind not in kinds:
        problems.append(f"kind {kind!r} is not a rule kind (kinds: {', '.join(kinds)})")
    if "severity" in table and (
        not isinstance(table["severity"], str) or table["severity"] not in {word.value for word in AlertSeverity}
    ):
        words = " or ".join(word.value for word in AlertSeverity)
        problems.append(f"severity {table['severity']!r}: expected {words}")
    for key, required in (("threshold", True), ("for", False)):
        if key not in table:
            problems += [f"{key} is missing: expected a number >= 0"] if required else []
            continue
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
            problems.append(f"{key} = {value!r}: expected a number >= 0")
    queues = table.get("queues")
    if queues is not None:
        valid = isinstance(queues, list) and all(isinstance(queue, str) and is_queue_name(queue) for queue in queues)
        if not valid or not queues or len(set(queues)) != len(queues):
            problems.append(f"queues = {queues!r}: expected a list of distinct queue names")
        elif kind in kinds and kind not in QUEUE_KINDS:
            problems.append(f"queues: a {kind} rule is not about queues (queue kinds: {', '.join(QUEUE_KINDS)})")
    return problems


def _webhook_format(value: str) -> str:
    if value not in ("auto", "generic", "slack"):
        raise ValueError("needs auto, generic or slack")
    return value


class ConfigError(ValueError):
    """A setting from the environment that cannot be used; start-up stops with its message, one line per error."""


def _minutes(part: str) -> float:
    minutes = float(part)
    if not math.isfinite(minutes) or minutes * 60 < 1:
        raise ValueError(part)
    return int(minutes) if minutes.is_integer() else minutes


def _thresholds(value: str) -> tuple[float, ...]:
    """Four increasing minutes, fractions allowed down to a second (`0.5,1,2,3`: 30 s, 1, 2 and 3 min)."""
    try:
        bands = tuple(_minutes(part) for part in value.split(","))
    except ValueError:
        bands = ()
    if len(bands) != 4 or any(later <= earlier for earlier, later in zip(bands, bands[1:], strict=False)):
        raise ValueError("needs four increasing numbers of minutes (1/60 at least), e.g. 10,30,60,120 or 0.5,1,2,3")
    return bands


MAX_CAPABILITIES_BYTES = 4096


def _capabilities(value: str) -> dict[str, Any]:
    """A JSON object of at most 4 KiB, as the API takes JSON (at most 32 levels deep, no NaN or Infinity: what
    every reader of the worker registry can show); anything else stops the worker at start-up with the reason."""
    from app.domain.strict_json import loads_checked  # noqa: PLC0415 - the product's JSON rules, needed only here

    if len(value.encode()) > MAX_CAPABILITIES_BYTES:
        raise ValueError(f"RQMON_WORKER_CAPABILITIES is longer than {MAX_CAPABILITIES_BYTES} bytes")
    try:
        parsed = loads_checked(value)
    except ValueError as exc:
        raise ValueError(f"RQMON_WORKER_CAPABILITIES is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ValueError('RQMON_WORKER_CAPABILITIES must be a JSON object, e.g. {"gpu": true}')
    return parsed


def _positive(value: str) -> float:
    """A finite number above 0: 0, a negative, nan or inf would stop a loop or spin it."""
    number = float(value)
    if not (number > 0 and math.isfinite(number)):
        raise ValueError(f"expected a positive number of seconds or MB, got {value!r}")
    return number


def _lifetime(value: str) -> timedelta:
    """A token lifetime: whole seconds, at least 1."""
    seconds = int(value)
    if seconds < 1:
        raise ValueError(f"expected a whole number of seconds, at least 1, got {value!r}")
    return timedelta(seconds=seconds)


def _module_prefixes(value: str) -> tuple[str, ...]:
    """Comma-separated dotted module names (`workers.tasks,myapp.jobs`)."""
    prefixes = tuple(part.strip() for part in value.split(",") if part.strip())
    if not prefixes or not all(part.replace("_", "a").replace(".", "a").isalnum() for part in prefixes):
        raise ValueError("needs comma-separated module names, e.g. workers.tasks,myapp.jobs")
    return prefixes


# name -> parser; every setting a deployment may change.
ENVIRONMENT_SETTINGS: dict[str, Callable[[str], Any]] = {
    "ENV": str,
    "REDIS_URL": str,
    "JWT_SECRET_KEY": str,
    "JWT_ACCESS_TOKEN_EXPIRES": _lifetime,
    "JWT_REFRESH_TOKEN_EXPIRES": _lifetime,
    "JWT_COOKIE_SECURE": _bool,
    "STUCK_THRESHOLDS_MINUTES": _thresholds,
    "LOGIN_LIMIT_PER_USER": str,
    "LOGIN_LIMIT_PER_ADDRESS": str,
    "TRUSTED_PROXIES": int,
    "LIVE_TICK_SECONDS": _positive,
    "LIVE_PUBLISHER_ENABLED": _bool,
    "SSE_HEARTBEAT_SECONDS": _positive,
    "WORKER_HEARTBEAT_SECONDS": _positive,
    "WORKER_ACTIVE_SECONDS": _positive,
    "WORKER_STALE_SECONDS": _positive,
    "QUEUE_MAX_SIZE": int,
    "RQMON_POOL": str,
    "RQMON_SLOT": int,
    "RQMON_MEMORY_LIMIT_MB": _positive,
    "RQMON_WORKER_CAPABILITIES": _capabilities,
    "PERIODIC_ALLOWED_MODULES": _module_prefixes,
    "SCHEDULE_GRACE_SECONDS": _positive,
    "ALERT_WEBHOOK_URLS": _webhook_urls,
    "ALERT_WEBHOOK_FORMAT": _webhook_format,
    "ALERT_WEBHOOK_BACKOFF_SECONDS": _positive,
    "ALERT_RULES_FILE": _rules_file,
    "METRICS_PUBLIC": _bool,
}
for _rule in ALERT_RULE_DEFAULTS:
    ENVIRONMENT_SETTINGS[f"ALERT_{_rule.upper()}"] = _alert_threshold
    ENVIRONMENT_SETTINGS[f"ALERT_{_rule.upper()}_FOR"] = _alert_threshold


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings found in the environment (`RQMON_ENV` for ENV), parsed; ConfigError names a bad one."""
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for name, parse in ENVIRONMENT_SETTINGS.items():
        variable = "RQMON_ENV" if name == "ENV" else name
        raw = environ.get(variable)
        if raw in (None, ""):
            continue
        try:
            found[name] = parse(raw)
        except (ValueError, TypeError) as exc:
            lines = str(exc).splitlines() or [""]  # a rules file reports each of its errors on a line of its own
            raise ConfigError("\n".join(f"{variable}={raw!r} is not valid: {line}" for line in lines)) from None
    return found


def defaults() -> dict[str, Any]:
    return {name: getattr(Config, name) for name in dir(Config) if name.isupper()}


WORKER_SETTINGS = (
    "WORKER_HEARTBEAT_SECONDS",
    "RQMON_POOL",
    "RQMON_SLOT",
    "RQMON_MEMORY_LIMIT_MB",
    "RQMON_WORKER_CAPABILITIES",
)


def worker_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings a MonitoredWorker uses, and only those: a worker neither parses nor fails on the web's."""
    environ = os.environ if environ is None else environ
    found = from_env({name: environ[name] for name in WORKER_SETTINGS if name in environ})
    return {name: found.get(name, getattr(Config, name)) for name in WORKER_SETTINGS}


def instance_folder(environ: Mapping[str, str] | None = None) -> Path:
    """Where the embedded Redis, the development secret and the launcher's logs live: `RQMON_INSTANCE`, else
    `instance/` under the current directory — never inside the installed package, so an editable install and
    `pip install .` (and the `flask` commands next to a running demo) all use the same one."""
    environ = os.environ if environ is None else environ
    return Path(os.path.abspath(os.path.expanduser(environ.get("RQMON_INSTANCE") or "instance")))
