"""Demo data for a first look: queues with jobs in every state, and 30 days of recorded history.

Everything goes through RQ's own APIs (and the product's history recorder), as real producers would.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from rq import Queue
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from app.domain import attempts, history, keys, schedules, users
from app.domain.priority import enqueue_prioritized
from app.domain.queues import remember_queue
from app.domain.states import Period
from app.domain.users import Role

DEMO_QUEUES = ("emails", "reports", "images")
DEMO_USERS = (("admin", Role.SUPER_ADMIN), ("viewer", Role.MODERATOR))


def ensure_demo_users(connection: Redis, password: str) -> list[tuple[str, str]]:
    """Create (or reset the password of) the demo users; returns (name, role) pairs."""
    for name, role in DEMO_USERS:
        if users.get_user(connection, name) is None:
            users.create_user(connection, name, password, role)
        else:
            users.set_password(connection, name, password)
    return [(name, role.value) for name, role in DEMO_USERS]


def seed_history(connection: Redis, days: int = 30, now: float | None = None) -> int:
    """Backfill recorded outcomes so the trend charts have something to show on the first visit."""
    now = time.time() if now is None else now
    rng = random.Random(42)
    recorded = 0
    with connection.pipeline(transaction=False) as pipe:
        for hours_ago in range(days * 24, 0, -1):
            for queue in DEMO_QUEUES:
                for _ in range(rng.randint(1, 4)):
                    failure_rate = {"emails": 0.03, "reports": 0.08, "images": 0.15}[queue]
                    outcome: history.Outcome = "fail" if rng.random() < failure_rate else "ok"
                    ended = now - hours_ago * 3600 + rng.uniform(0, 3600)
                    history.record_attempt(
                        pipe,
                        queue,
                        outcome,
                        rng.randint(40, 4000),
                        f"demo-{recorded}",
                        "workers.tasks.send_email",
                        ended_at=ended,
                    )
                    recorded += 1
        pipe.execute()
    return recorded


def enqueue_demo_jobs(connection: Redis, rng: random.Random | None = None) -> int:
    """A handful of jobs of every kind: quick, slow, failing, flaky, delayed and prioritized."""
    rng = rng or random.Random()
    emails, reports, images = (Queue(name, connection=connection) for name in DEMO_QUEUES)
    count = 0
    for index in range(rng.randint(2, 5)):
        emails.enqueue("workers.tasks.send_email", f"user{index}@example.com", "Welcome")
        count += 1
    reports.enqueue("workers.tasks.sleep_for", rng.uniform(0.5, 3.0))
    images.enqueue("workers.tasks.fail", "Image too large: 8192x8192", retry=attempts.retry_for(2, None))
    if rng.random() < 0.5:
        key = f"demo:flaky:{rng.random()}"
        reports.enqueue("workers.tasks.flaky", key, 1, retry=attempts.retry_for(3, {"type": "fixed", "delay": 1000}))
    images.enqueue_in(timedelta(minutes=rng.randint(1, 30)), "workers.tasks.add", 2, 3)
    enqueue_prioritized(reports, "workers.tasks.add", (1, 2), {}, priority=rng.randint(1, 5))
    return count + 5


STUCK_EXAMPLE_MINUTES = (15, 45, 90, 150)  # one per severity band
STUCK_EXAMPLE_WORKER = "demo-worker"


def add_stuck_examples(connection: Redis) -> list[str]:
    """Jobs that look like runs started long ago (one per severity band), for the stuck-alert views.

    Idempotent: the examples have fixed ids and replace those of an earlier start (and any left by earlier
    versions, which used random ids), so every start shows the same four."""
    queue = Queue("reports", connection=connection)
    earlier = [job for job in Job.fetch_many(StartedJobRegistry(queue=queue).get_job_ids(), connection) if job]
    for job in earlier:
        if job.worker_name == STUCK_EXAMPLE_WORKER and (job.meta or {}).get("demo"):
            job.delete()
    ids = []
    for minutes in STUCK_EXAMPLE_MINUTES:
        job = Job.create(
            "workers.tasks.sleep_for",
            args=(3600,),
            connection=connection,
            id=f"demo-stuck-{minutes}m",
            origin=queue.name,
            description=f"demo: running for {minutes} min",
        )
        job.meta = {"demo": True, attempts.ATTEMPTS_STARTED: 1, attempts.ATTEMPTS_MADE: 0}
        job.started_at = datetime.now(UTC) - timedelta(minutes=minutes)
        job.worker_name = STUCK_EXAMPLE_WORKER
        with connection.pipeline() as pipe:
            job.set_status(JobStatus.STARTED, pipeline=pipe)
            job.save(pipeline=pipe)
            # A day-long heartbeat, so RQ's registry cleanup leaves these entries alone while the demo runs.
            Execution.create(job, ttl=86400, pipeline=pipe, worker_name=STUCK_EXAMPLE_WORKER)
            pipe.execute()
        ids.append(job.id)
    return ids


# Two schedules (SCHEDULES.md): one every minute, one that fails now and then.
DEMO_SCHEDULES: tuple[dict[str, Any], ...] = (
    {
        "name": "demo.digest-every-minute",
        "description": "Sends the digest e-mail",
        "func": "workers.tasks.send_email",
        "args": ["team@example.com"],
        "kwargs": {"subject": "Digest"},
        "queue": "emails",
        "intervalSeconds": 60,
    },
    {
        "name": "demo.report-sometimes-fails",
        "description": "Builds a report; fails about one run in three",
        "func": "workers.tasks.sometimes_fail",
        "args": [0.35],
        "kwargs": {},
        "queue": "reports",
        "cron": "*/2 * * * *",
    },
)


def ensure_demo_schedules(connection: Redis) -> list[str]:
    """Create the demo schedules that do not exist yet (a restart keeps them, and their history, as they are)."""
    created = []
    for demo in DEMO_SCHEDULES:
        if connection.hexists(keys.SCHEDULES, demo["name"]):
            continue
        definition = {
            "cron": None,
            "intervalSeconds": None,
            "enabled": True,
            "overlap": "skip",
            "timeout": None,
            "attempts": 1,
            "backoff": None,
            **demo,
        }
        schedules.save_schedule(connection, definition)
        created.append(demo["name"])
    return created


def _has_history(connection: Redis) -> bool:
    return any(trend["total"] for trend in history.get_trends(connection, Period.MONTH, list(DEMO_QUEUES)))


def seed_demo(connection: Redis, password: str) -> dict:
    for name in DEMO_QUEUES:
        remember_queue(connection, name)
    logins = ensure_demo_users(connection, password)
    # History already recorded (an earlier start, or real work) is not recorded twice.
    recorded = 0 if _has_history(connection) else seed_history(connection)
    enqueued = enqueue_demo_jobs(connection, random.Random(7))
    stuck = add_stuck_examples(connection)
    ensure_demo_schedules(connection)
    return {"users": logins, "history": recorded, "jobs": enqueued, "stuck": len(stuck)}
