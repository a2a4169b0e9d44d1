"""What MonitoredWorker records at the end of an attempt (issue 10, items 2, 4, 5 and 6), with real `rq worker`
processes: deleted jobs stay deleted, abandoned runs count, priority survives a backoff, BullMQ's failedReason."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from app.domain import attempts, history
from app.domain.jobs import get_job_detail
from app.domain.priority import enqueue_prioritized
from tests.helpers import ROOT, run_worker, wait_for, worker_command
from workers import MonitoredWorker


def run_worker_with_scheduler(redis_url: str, *queues: str) -> None:
    """A real `rq worker --burst --with-scheduler`: RQ's scheduler moves the due delayed jobs once, then it works."""
    command = worker_command(redis_url, *queues)
    command.insert(2, "--with-scheduler")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]


def trend_of(connection: Redis, queue_name: str) -> tuple[int, int]:
    [trend] = [t for t in history.get_trends(connection, "24h", []) if t["queueName"] == queue_name]
    return trend["successful"], trend["failed"]


def seconds(moment) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


# --- item 2: a job RQ deletes on purpose stays deleted ----------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "options", "counted"),
    [
        ("workers.tasks.noop", {"result_ttl": 0}, (1, 0)),
        ("workers.tasks.fail", {"failure_ttl": 0}, (0, 1)),
    ],
    ids=["result_ttl=0", "failure_ttl=0"],
)
def test_a_job_rq_deletes_on_purpose_is_not_recreated_and_its_attempt_still_counts(
    connection, redis_url, task, options, counted
):
    queue = Queue("w-removed", connection=connection)
    job = queue.enqueue(task, **options)
    run_worker(redis_url, "w-removed")
    assert not connection.exists(f"rq:job:{job.id}")
    assert trend_of(connection, "w-removed") == counted


# --- item 4: a job whose worker died ---------------------------------------------------------------------------


def test_a_job_whose_worker_died_is_failed_by_maintenance_with_its_attempt_recorded(connection, redis_url):
    queue = Queue("w-abandoned", connection=connection)
    job = queue.enqueue("workers.tasks.sleep_for", 600)
    command = worker_command(redis_url, "w-abandoned", burst=False)
    dying = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, timeout=30)
    finally:
        os.killpg(dying.pid, signal.SIGKILL)  # the worker and its work horse, mid-job
        dying.wait(timeout=10)
    # RQ deems the run abandoned once its execution's TTL passes (minutes away): make that moment now.
    started = StartedJobRegistry(queue=queue)
    connection.zadd(started.key, {entry: 1 for entry in connection.zrange(started.key, 0, -1)})

    run_worker(redis_url, "w-abandoned")  # its maintenance, at start, fails the abandoned job

    assert job.get_status(refresh=True) == JobStatus.FAILED
    detail = get_job_detail(connection, "w-abandoned", job.id)
    assert (detail["state"], detail["attemptsMade"], detail["attemptsStarted"]) == ("failed", 1, 1)
    assert detail["failedException"] == "AbandonedJobError" and detail["failedReason"]
    assert trend_of(connection, "w-abandoned") == (0, 1)
    rates = history.parse_rates(_rate_reads(connection), time.time())
    assert rates.per_queue["w-abandoned"][0] == 0.0  # its success rate counts the failure


def _rate_reads(connection: Redis) -> list:
    with connection.pipeline(transaction=False) as pipe:
        history.queue_rate_reads(pipe, time.time())
        return pipe.execute()


def test_an_abandoned_job_with_retries_left_is_recorded_as_a_retried_attempt(connection):
    from tests.helpers import make_active_job

    job = make_active_job(connection, "w-abandoned-retry", 30)
    job.retries_left, job.retry_intervals = 1, [0]
    job.save()
    started = StartedJobRegistry("w-abandoned-retry", connection=connection)
    connection.zadd(started.key, {entry: 1 for entry in connection.zrange(started.key, 0, -1)})

    MonitoredWorker([Queue("w-abandoned-retry", connection=connection)], connection=connection).clean_registries()

    job = Job.fetch(job.id, connection=connection)
    assert job.get_status() == JobStatus.QUEUED  # retried by RQ: back in the list
    recorded = attempts.read_attempts(job)
    assert (recorded["attemptsMade"], recorded["failedException"]) == (1, "AbandonedJobError")
    fields = connection.hgetall(history._bucket_key(history.HOUR, time.time()))
    assert fields[b"w-abandoned-retry|retry"] == b"1" and b"w-abandoned-retry|fail" not in fields


# --- item 5: priority survives a retry backoff -----------------------------------------------------------------


def test_a_prioritized_job_back_from_its_backoff_waits_behind_a_better_priority(connection, redis_url):
    queue = Queue("w-prio-backoff", connection=connection)
    retry = attempts.retry_for(2, {"type": "fixed", "delay": 1000})
    flaky = enqueue_prioritized(queue, "workers.tasks.flaky", ("w-prio-backoff:runs", 1), {}, 5, retry=retry)
    run_worker(redis_url, "w-prio-backoff")  # first attempt fails: delayed for its backoff
    assert flaky.get_status(refresh=True) == JobStatus.SCHEDULED
    better = enqueue_prioritized(queue, "workers.tasks.noop", (), {}, 1)  # enqueued meanwhile
    due = connection.zscore(ScheduledJobRegistry(queue=queue).key, flaky.id)
    wait_for(lambda: time.time() >= due + 0.1, timeout=10)

    run_worker_with_scheduler(redis_url, "w-prio-backoff")  # RQ's scheduler re-enqueues it, then the worker runs

    flaky.refresh(), better.refresh()
    assert flaky.get_status() == better.get_status() == JobStatus.FINISHED
    assert better.started_at < flaky.started_at  # priority 1 before priority 5, as before the failure
    assert attempts.PRIORITY_PENDING not in flaky.meta


# --- item 6: failedReason, failedException, backoff never shorter than its delay -------------------------------


@pytest.mark.parametrize("plain", [False, True], ids=["monitored", "plain-rq-worker"])
def test_failed_reason_is_the_exception_message_every_line_and_the_class_apart(connection, redis_url, plain):
    queue = Queue("w-reason", connection=connection)
    job = queue.enqueue("workers.tasks.fail", "disk full\n  on /var: 0 bytes left")
    run_worker(redis_url, "w-reason", plain=plain)
    detail = get_job_detail(connection, "w-reason", job.id)
    assert detail["failedReason"] == "disk full\n  on /var: 0 bytes left"
    assert detail["failedException"] == "RuntimeError"
    assert len(detail["stacktrace"]) == 1 and detail["stacktrace"][0].startswith("Traceback")


def test_a_backoff_never_waits_less_than_its_delay(connection, redis_url):
    queue = Queue("w-ceil", connection=connection)
    retry = attempts.retry_for(2, {"type": "fixed", "delay": 1000})
    jobs = [queue.enqueue("workers.tasks.flaky", f"w-ceil:runs:{i}", 1, retry=retry) for i in range(3)]
    run_worker(redis_url, "w-ceil")
    registry_key = ScheduledJobRegistry(queue=queue).key
    first_ends = {}
    for job in jobs:
        job.refresh()
        first_ends[job.id] = seconds(job.ended_at)
        assert connection.zscore(registry_key, job.id) - first_ends[job.id] >= 1.0  # RQ's whole second, rounded up
    wait_for(lambda: time.time() >= max(connection.zscore(registry_key, job.id) for job in jobs) + 0.1, timeout=10)

    run_worker_with_scheduler(redis_url, "w-ceil")

    for job in jobs:
        job.refresh()
        assert job.get_status() == JobStatus.FINISHED
        assert seconds(job.started_at) - first_ends[job.id] >= 1.0  # measured gap: attempt end -> next start


def test_a_backoff_asked_by_a_returned_retry_never_waits_less_than_its_delay(connection, redis_url):
    queue = Queue("w-ceil-returned", connection=connection)
    job = queue.enqueue("tests.workers.job_functions.retry_once", "w-ceil-returned:runs", 1)
    run_worker(redis_url, "w-ceil-returned")
    job.refresh()
    assert job.get_status() == JobStatus.SCHEDULED
    assert connection.zscore(ScheduledJobRegistry(queue=queue).key, job.id) - seconds(job.ended_at) >= 1.0
