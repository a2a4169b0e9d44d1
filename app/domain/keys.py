"""Every Redis key the product owns, in one place, under one prefix (never inside RQ's `rq:` names).

Each key is bounded in size or carries a TTL; the comment beside it says which.
"""

from __future__ import annotations

PREFIX = "rqmon"

USERS = f"{PREFIX}:users"  # set of usernames; bounded by what admins create
KNOWN_QUEUES = f"{PREFIX}:queues"  # set of queue names the monitor has seen; bounded by RQ's queues
PAUSED_QUEUES = f"{PREFIX}:paused"  # set of paused queue names
OUTCOMES = f"{PREFIX}:outcomes"  # list, capped at OUTCOMES_CAP entries (LTRIM on every push)
OUTCOMES_CAP = 1000
OUTCOME_COUNTS = f"{PREFIX}:outcomes:counts"  # hash: <queue>|ok and <queue>|all over the OUTCOMES window
PRIORITY_SEQUENCE = f"{PREFIX}:priority:seq"  # one integer


def user(name: str) -> str:
    """Hash of one user (password hash, role); deleted with the user."""
    return f"{PREFIX}:user:{name}"


def revoked_token(jti: str) -> str:
    """Marker of a revoked JWT; TTL = the token's remaining lifetime."""
    return f"{PREFIX}:revoked:{jti}"


def revoked_session(sid: str) -> str:
    """Marker of a logged-out session (every token of one login); TTL = its refresh token's remaining lifetime."""
    return f"{PREFIX}:revoked-session:{sid}"


def login_failures(address: str, username: str | None = None) -> str:
    """Failed logins from one address (for one username, or all); TTL = the throttling window."""
    scope = "address" if username is None else f"user:{username}"
    return f"{PREFIX}:ratelimit:login:{scope}@{address}"


def prioritized(queue: str) -> str:
    """Sorted set of prioritized job ids of one queue, scored priority * 2**32 + sequence."""
    return f"{PREFIX}:prioritized:{queue}"


RUN_STARTS_TTL_SECONDS = 86400


def run_starts(queue: str) -> str:
    """Sorted set: one queue's started-registry entries scored by their run's start (YYYYMMDDHHMMSS); pruned to
    the registry on every stuck query, TTL RUN_STARTS_TTL_SECONDS from the last one."""
    return f"{PREFIX}:run-starts:{queue}"


RETRY_CLAIM_TTL_SECONDS = 30


def retry_claim(job_id: str) -> str:
    """Held while one retry of the job is under way, so two concurrent retries cannot both copy it; TTL
    RETRY_CLAIM_TTL_SECONDS, deleted when the retry ends."""
    return f"{PREFIX}:retry-claim:{job_id}"


def stats_bucket(granularity: str, bucket: int) -> str:
    """Hash of finished-attempt counters for one time bucket; TTL by granularity (see history.py)."""
    return f"{PREFIX}:stats:{granularity}:{bucket}"


def live_channel(queue: str | None = None) -> str:
    """Pub/sub channel of the live streams: all queues, or one queue."""
    return f"{PREFIX}:live" if queue is None else f"{PREFIX}:live:queue:{queue}"


def live_tick_lock(tick: int) -> str:
    """Held by the one process that publishes tick number `tick`; TTL of a few ticks."""
    return f"{PREFIX}:live:lock:{tick}"


def live_snapshot(queue: str | None = None) -> str:
    """Latest published live document (all queues, or one queue), for a new stream's first event; short TTL."""
    return f"{PREFIX}:live:snapshot" if queue is None else f"{PREFIX}:live:snapshot:queue:{queue}"


POOLS = f"{PREFIX}:pools"  # sorted set of pool names scored by their last heartbeat; pruned past the pools' TTL
POOL_EVENTS = f"{PREFIX}:pool-events"  # stream of pool and stalled-job events, XADD MAXLEN ~ POOL_EVENTS_CAP
POOL_EVENTS_CAP = 10000
# An entry's fields, in order: written by pools.add_event and by stalled.py's move script (`details` is JSON).
# Here rather than in pools.py, which stalled.py cannot import (pools -> workers -> stalled).
# A MonitoredWorker's fixed facts in its RQ hash: one field, parts joined by the ASCII group separator (JSON escapes
# it, so capabilities never hold it): memory limit, pool, slot, capabilities (app.domain.workers.monitored_value).
WORKER_MONITORED_FIELD = "rqmon_monitored"
WORKER_MONITORED_SEPARATOR = "\x1d"
POOL_EVENT_FIELDS = ("event", "pool", "slot", "worker", "jobId", "at", "details")


def pool(name: str) -> str:
    """Hash of one rq-monitor-pool (name, host, pid, size, slots, ...); TTL refreshed by the pool's heartbeat."""
    return f"{PREFIX}:pool:{name}"


def memory_kill(job_id: str) -> str:
    """Marker set by a pool before it kills a work horse over its memory limit; TTL 5 minutes."""
    return f"{PREFIX}:memory-kill:{job_id}"


CONTROL_REPLY_TTL_SECONDS = 60


def worker_control_channel(worker_name: str) -> str:
    """Pub/sub channel on which one MonitoredWorker takes control commands (nothing stored)."""
    return f"{PREFIX}:control:{worker_name}"


def pool_control_channel(pool: str) -> str:
    """Pub/sub channel on which one pool takes control commands for its slots (nothing stored)."""
    return f"{PREFIX}:pool-control:{pool}"


def control_reply(request_id: str) -> str:
    """List holding the one reply to a control command; TTL CONTROL_REPLY_TTL_SECONDS, popped by the caller."""
    return f"{PREFIX}:control:reply:{request_id}"


API_TOKENS = f"{PREFIX}:api-tokens"  # hash: token name -> sha256 of its secret; bounded by what super_admins create
API_TOKEN_GRACE_SECONDS = 7 * 86400


def api_token(digest: str) -> str:
    """Hash of one API token (name, role, creator, times), keyed by the sha256 of its secret; TTL its expiry +
    API_TOKEN_GRACE_SECONDS (none for a token without expiry), deleted when revoked."""
    return f"{PREFIX}:api-token:{digest}"


def token_failures(address: str) -> str:
    """Failed API-token attempts from one address; TTL = the throttling window."""
    return f"{PREFIX}:ratelimit:token@{address}"


AUDIT = f"{PREFIX}:audit"  # stream of audit entries: XADD MAXLEN ~ AUDIT_CAP, XTRIM MINID past AUDIT_RETENTION_DAYS
AUDIT_CAP = 100_000
AUDIT_RETENTION_DAYS = 90


# Periodic jobs (SCHEDULES.md). rq-scheduler's own keys (rq:scheduler:scheduled_jobs, rq:scheduler_lock) hold the
# timing; these hold the definitions and what happened.
SCHEDULES = f"{PREFIX}:schedules"  # hash: schedule name -> definition JSON; bounded by what admins create
SCHEDULE_LAST_JOB = f"{PREFIX}:schedule-last-job"  # hash: schedule name -> id of its latest run's job
SCHEDULE_NAMES = f"{PREFIX}:schedule-names"  # sorted set of schedule names (score 0: by name), for pages of the list
SCHEDULE_TEMPLATES = f"{PREFIX}:schedule-templates"  # hash: rq-scheduler template job id -> schedule name
SCHEDULE_MISSED_AT = f"{PREFIX}:schedule-missed-at"  # hash: schedule name -> epoch seconds of its latest missed firing
SCHEDULE_LATEST_RUN = f"{PREFIX}:schedule-latest-run"  # string "<name>\x1f<job id>": the latest run of any schedule
SCHEDULE_MISSED = f"{PREFIX}:schedule-missed"  # hash: schedule name -> missed firings since creation
SCHEDULE_OPEN_RUNS = f"{PREFIX}:schedule-open-runs"  # sorted set "<name>\x1f<job id>" by enqueue time; runs not yet
# ended, removed when the scheduler records their end (or after SCHEDULE_OPEN_RUN_MAX_SECONDS)
SCHEDULE_OPEN_RUN_MAX_SECONDS = 7 * 86400
SCHEDULE_RUNS_CAP = 1000
SCHEDULER_HEARTBEAT = f"{PREFIX}:scheduler"  # hash of the active scheduler (name, hostname, pid, time); TTL below
SCHEDULER_HEARTBEAT_TTL_SECONDS = 3600


def schedule_runs(name: str) -> str:
    """Sorted set of one schedule's run ids scored by enqueue (or due) time; capped at SCHEDULE_RUNS_CAP, deleted
    with the schedule."""
    return f"{PREFIX}:schedule-runs:{name}"


def schedule_run_data(name: str) -> str:
    """Hash run id -> run JSON of one schedule; trimmed with schedule_runs(name), deleted with the schedule."""
    return f"{PREFIX}:schedule-run-data:{name}"


SCHEDULE_DAY_TTL_SECONDS = 2 * 86400


def schedule_day_counts(day: str) -> str:
    """Hash schedule name -> runs enqueued on one UTC day (YYYYMMDD); TTL SCHEDULE_DAY_TTL_SECONDS."""
    return f"{PREFIX}:schedule-day:{day}"


# Monotonic counters of ended attempts (app/domain/counters.py): one hash, fields per queue; never expires, bounded
# by the number of queues.
COUNTERS = f"{PREFIX}:counters"

# Alert rules (app/domain/alerts.py). Ids are "<rule>:<subject kind>:<subject name>": the hashes are bounded by the
# rules times their subjects (queues, workers, schedules), and entries leave when their condition ends.
ALERTS_FIRING = f"{PREFIX}:alerts:firing"  # hash: alert id -> alert JSON
ALERTS_PENDING = f"{PREFIX}:alerts:pending"  # hash: alert id -> epoch seconds its condition was first seen true
ALERTS_RECENT = f"{PREFIX}:alerts:recent"  # list of resolved alerts, newest first, LTRIM to ALERTS_RECENT_CAP
ALERTS_RECENT_CAP = 100
ALERTS_FACTS = f"{PREFIX}:alerts:facts"  # JSON of the last evaluation's facts (stuck runs, missed-run tracking)
ALERTS_FACTS_TTL_SECONDS = 86400
ALERTS_CHANNEL = f"{PREFIX}:live:alerts"  # pub/sub channel of the alerts feed (nothing stored)
ALERTS_SNAPSHOT = f"{PREFIX}:live:snapshot:alerts"  # latest alerts feed document; short TTL (ticker)
NOTIFICATIONS_QUEUE = f"{PREFIX}.notifications"  # the RQ queue of webhook deliveries (an RQ name, not a key)

# Worker history (app/domain/worker_history.py): what outlives the workers, kept WORKER_HISTORY_DAYS.
WORKER_HISTORY_DAYS = 30
WORKER_RECENT_CAP = 50
WORKER_ACTIVITY = f"{PREFIX}:worker-activity"  # list of the last WORKER_RECENT_CAP ended attempts, LTRIM each push
WORKER_LAST_END = f"{PREFIX}:worker-last-end"  # sorted set worker -> last end (epoch s), pruned past the retention
WORKER_MEMORY_CAP = 60  # one sample a minute: the last hour


def worker_stats(granularity: str, bucket: int) -> str:
    """Hash of ended-attempt counters per worker, per queue and in total for one time bucket (h, q or d), and the
    duration histogram; TTL the retention + the bucket's span."""
    return f"{PREFIX}:worker-stats:{granularity}:{bucket}"


def worker_samples(granularity: str, bucket: int) -> str:
    """Hash of the once-a-minute samples (sums and their count) of one time bucket; TTL as worker_stats."""
    return f"{PREFIX}:worker-samples:{granularity}:{bucket}"


def worker_sample_mark(minute: int) -> str:
    """Set by the one tick that samples minute `minute`; TTL 2 minutes."""
    return f"{PREFIX}:worker-samples:mark:{minute}"


def worker_recent(name: str) -> str:
    """List of one worker's last WORKER_RECENT_CAP ended attempts; TTL the retention from its last end."""
    return f"{PREFIX}:worker-recent:{name}"


def worker_memory(name: str) -> str:
    """List of one worker's memory and CPU samples, one a minute, capped at WORKER_MEMORY_CAP; TTL 1 hour."""
    return f"{PREFIX}:worker-memory:{name}"


WORKERS_CHANNEL = f"{PREFIX}:live:workers"  # pub/sub channel of the workers feed (nothing stored)
WORKERS_SNAPSHOT = f"{PREFIX}:live:snapshot:workers"  # latest workers feed document; short TTL (ticker)
