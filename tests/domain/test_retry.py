"""Retry with overrides: a new job from the original's function, arguments and options; what may be retried;
nothing lost when a step fails; removal of the original, including a run that a live worker must stop first."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from redis import Redis
from rq import Queue, Retry
from rq.job import Job, JobStatus
from rq.results import Result

from app.domain import attempts, keys
from app.domain import retry as retry_module
from app.domain.errors import InvalidInput, JobNotFound, JobNotRetryable, QueueNotFound
from app.domain.priority import enqueue_prioritized
from app.domain.retry import retry_job
from app.domain.severity import StuckThresholds
from app.domain.timeutil import to_ms
from tests.api.test_jobs_read import everything
from tests.helpers import make_active_job, run_worker, start_worker, stop_worker, wait_for


def failed_job(connection: Redis, queue_name: str, *args, status=JobStatus.FAILED, **options) -> Job:
    """A job as a worker leaves it after its last failed attempt, with RQ's own failure result."""
    queue = Queue(queue_name, connection=connection)
    job = queue.enqueue("workers.tasks.send_email", *args, **options)
    with connection.pipeline() as pipe:
        job.set_status(status, pipeline=pipe)
        queue.remove(job, pipeline=pipe)
        job.failed_job_registry.add(job, ttl=3600, pipeline=pipe, exc_string="RuntimeError: SMTP down")
        Result.create_failure(job, ttl=3600, exc_string="RuntimeError: SMTP down", pipeline=pipe)
        pipe.execute()
    return job


def test_a_real_failure_retried_with_overrides_completes(connection, redis_url):
    queue = Queue("rt-real", connection=connection)
    original = queue.enqueue("workers.tasks.flaky", key="rt-real-runs", failures=5)
    run_worker(redis_url, "rt-real")
    assert original.get_status() == JobStatus.FAILED
    retried = retry_job(connection, "rt-real", original.id, {"dataOverrides": {"failures": 1}})
    assert retried.original_removed is False  # not asked for
    new_id = retried.new_job_id
    new = Job.fetch(new_id, connection=connection)
    assert new.kwargs == {"key": "rt-real-runs", "failures": 1}
    run_worker(redis_url, "rt-real")
    assert new.get_status() == JobStatus.FINISHED
    assert new.return_value() == 2  # second run overall: it failed with failures=5, it succeeds with 1
    assert new.meta[attempts.RETRIED_FROM] == original.id
    assert original.get_meta()[attempts.RETRIED_AS] == new_id
    assert original.get_status() == JobStatus.FAILED  # kept unless removeOriginal


def test_options_are_copied_and_overrides_win(connection):
    original = failed_job(
        connection, "rt-copy", "a@b.c", subject="Hi", job_timeout=77, result_ttl=99, failure_ttl=555, description="d"
    )
    options = {"attempts": 3, "backoff": {"type": "exponential", "delay": 1500}, "dataOverrides": {"subject": "Re"}}
    new = Job.fetch(retry_job(connection, "rt-copy", original.id, options).new_job_id, connection=connection)
    assert (new.func_name, new.args, new.kwargs) == ("workers.tasks.send_email", ("a@b.c",), {"subject": "Re"})
    assert (new.timeout, new.result_ttl, new.failure_ttl, new.description) == (77, 99, 555, "d")
    assert new.retries_left == 2 and new.retry_intervals == [2, 4]
    assert new.meta == {
        attempts.RETRIED_FROM: original.id,
        attempts.PRIORITY: 0,
        attempts.ATTEMPTS: 3,
        attempts.BACKOFF: {"type": "exponential", "delay": 1500},
    }
    assert Queue("rt-copy", connection=connection).get_job_ids() == [new.id]


def test_defaults_come_from_recorded_meta(connection):
    meta = {attempts.PRIORITY: 5, attempts.ATTEMPTS: 4, attempts.BACKOFF: {"type": "fixed", "delay": 2000}}
    original = failed_job(connection, "rt-meta", "m@e.ta", meta=meta)
    new_id = retry_job(connection, "rt-meta", original.id, {}).new_job_id
    new = Job.fetch(new_id, connection=connection)
    assert new.retries_left == 3 and new.retry_intervals == [2, 2, 2]
    assert connection.zscore(keys.prioritized("rt-meta"), new_id) is not None  # priority 5 kept
    assert Queue("rt-meta", connection=connection).count == 0


def test_defaults_come_from_rq_retry_fields_when_nothing_was_recorded(connection):
    original = failed_job(connection, "rt-rq", "r@q.io", retry=Retry(max=2, interval=[3, 7]))
    new = Job.fetch(retry_job(connection, "rt-rq", original.id, {}).new_job_id, connection=connection)
    assert new.retries_left == 2 and new.retry_intervals == [3, 7]
    assert attempts.BACKOFF not in new.meta
    again = {"attempts": 5, "force": True}  # a second retry of the same job is asked for as such
    more = Job.fetch(retry_job(connection, "rt-rq", original.id, again).new_job_id, connection=connection)
    assert more.retries_left == 4 and more.retry_intervals == [3, 7]  # RQ repeats the last interval


def test_attempts_one_means_no_retry_and_priority_zero_means_the_list(connection):
    meta = {attempts.PRIORITY: 9, attempts.ATTEMPTS: 4}
    original = failed_job(connection, "rt-one", "o@n.e", meta=meta)
    new = Job.fetch(
        retry_job(connection, "rt-one", original.id, {"attempts": 1, "priority": 0}).new_job_id, connection=connection
    )
    assert not new.retries_left
    assert Queue("rt-one", connection=connection).get_job_ids() == [new.id]
    assert not connection.exists(keys.prioritized("rt-one"))


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.STOPPED])
def test_failed_and_stopped_jobs_are_retryable(connection, status):
    original = failed_job(connection, "rt-states", "s@t.op", status=status)
    assert Job.exists(retry_job(connection, "rt-states", original.id, {}).new_job_id, connection)


def test_a_canceled_job_is_retryable(connection):
    job = Queue("rt-cancel", connection=connection).enqueue("workers.tasks.noop")
    job.cancel()
    assert Job.exists(retry_job(connection, "rt-cancel", job.id, {}).new_job_id, connection)


def test_only_stuck_active_jobs_are_retryable(connection):
    job = make_active_job(connection, "rt-stuck", 0)
    started_ms = to_ms(Job.fetch(job.id, connection=connection).started_at)
    thresholds = StuckThresholds((10, 30, 60, 120))
    with pytest.raises(JobNotRetryable, match="not stuck"):
        retry_job(connection, "rt-stuck", job.id, {}, thresholds, now=(started_ms + 599_999.5) / 1000)
    assert Queue("rt-stuck", connection=connection).count == 0
    new_id = retry_job(connection, "rt-stuck", job.id, {}, thresholds, now=(started_ms + 600_000.5) / 1000).new_job_id
    assert Job.exists(new_id, connection) and Job.fetch(job.id, connection=connection).get_status() == "started"


@pytest.mark.parametrize("state", ["waiting", "completed", "delayed", "prioritized", "deferred"])
def test_other_states_are_refused_and_nothing_is_written(connection, redis_url, state):
    queue = Queue("rt-refused", connection=connection)
    if state == "completed":
        job = queue.enqueue("workers.tasks.noop")
        run_worker(redis_url, "rt-refused")
    elif state == "delayed":
        job = queue.enqueue_in(timedelta(hours=1), "workers.tasks.noop")
    elif state == "prioritized":
        job = enqueue_prioritized(queue, "workers.tasks.noop", (), {}, 4)
    elif state == "deferred":
        job = queue.enqueue("workers.tasks.noop", depends_on=queue.enqueue("workers.tasks.noop"))
    else:
        job = queue.enqueue("workers.tasks.noop")
    before = everything(connection)
    with pytest.raises(JobNotRetryable):
        retry_job(connection, "rt-refused", job.id, {"removeOriginal": True}, now=time.time() + 86400)
    assert everything(connection) == before


@pytest.mark.parametrize(
    ("queue_name", "job_id", "error"),
    [
        ("rt-ghost", "x", QueueNotFound),
        ("rt-lookup", "no-such-job", JobNotFound),
        ("rt-lookup", "OTHER", JobNotFound),
        ("bad name", "x", InvalidInput),
        ("rt-lookup", "bad id", InvalidInput),
        ("rt-lookup", "", InvalidInput),
    ],
)
def test_unknown_or_bad_queue_or_job(connection, queue_name, job_id, error):
    failed_job(connection, "rt-lookup", "l@o.ok")
    other = failed_job(connection, "rt-elsewhere", "e@l.se")
    before = everything(connection)
    with pytest.raises(error):
        retry_job(connection, queue_name, job_id.replace("OTHER", other.id), {})
    assert everything(connection) == before


def test_unreadable_arguments_are_refused_before_anything_is_written(connection):
    original = failed_job(connection, "rt-garbled", "g@a.rb")
    connection.hset(original.key, "data", b"not a pickle")
    before = everything(connection)
    with pytest.raises(JobNotRetryable, match="cannot be read"):
        retry_job(connection, "rt-garbled", original.id, {})
    assert everything(connection) == before


def test_remove_original_deletes_entry_hash_and_results(connection):
    original = failed_job(connection, "rt-remove", "r@e.m")
    assert connection.exists(Result.get_key(original.id))
    retried = retry_job(connection, "rt-remove", original.id, {"removeOriginal": True})
    new_id = retried.new_job_id
    assert retried.original_removed is True
    assert connection.keys(f"*{original.id}*") == []
    registry = Queue("rt-remove", connection=connection).failed_job_registry
    assert registry.get_job_ids(cleanup=False) == []
    assert Job.exists(new_id, connection)


def test_a_failure_while_removing_leaves_the_original_whole(connection, monkeypatch):
    original = failed_job(connection, "rt-half", "h@a.lf")
    keys_before = {key: connection.dump(key) for key in connection.keys(f"*{original.id}*")}

    class BrokenResult:
        @staticmethod
        def get_key(job_id: str) -> str:
            raise ConnectionError("lost half-way through queuing the removal")

    monkeypatch.setattr(retry_module, "Result", BrokenResult)
    with pytest.raises(ConnectionError):
        retry_job(connection, "rt-half", original.id, {"removeOriginal": True})
    queue = Queue("rt-half", connection=connection)
    assert queue.failed_job_registry.get_job_ids(cleanup=False) == [original.id]
    assert set(connection.keys(f"*{original.id}*")) == set(keys_before)
    kept = Job.fetch(original.id, connection=connection)
    assert kept.get_status() == JobStatus.FAILED and kept.kwargs == {}
    new_id = kept.meta[attempts.RETRIED_AS]  # the original says where it went; the new job is stored
    assert queue.get_job_ids() == [new_id]


def test_a_failure_while_enqueuing_writes_nothing(connection, monkeypatch):
    original = failed_job(connection, "rt-noenq", "n@o.pe")
    before = everything(connection)

    def broken_enqueue(*args, **kwargs):
        raise ConnectionError("enqueue failed")

    monkeypatch.setattr(Queue, "enqueue_call", broken_enqueue)
    with pytest.raises(ConnectionError):
        retry_job(connection, "rt-noenq", original.id, {"removeOriginal": True})
    assert everything(connection) == before


def test_a_job_deleted_meanwhile_is_not_recreated_by_the_mark(connection):
    original = failed_job(connection, "rt-gone", "g@o.ne")
    connection.delete(original.key)
    retry_module.mark_retried_as(connection, original, "new-id")
    assert not connection.exists(original.key)


def test_removing_a_run_of_a_live_worker_stops_it_first(connection, redis_url):
    queue = Queue("rt-live", connection=connection)
    running = queue.enqueue("workers.tasks.sleep_for", seconds=60)
    worker = start_worker(redis_url, "rt-live")
    try:
        wait_for(lambda: running.get_status() == JobStatus.STARTED, timeout=30)
        options = {"removeOriginal": True, "dataOverrides": {"seconds": 0}}
        retried = retry_job(connection, "rt-live", running.id, options, now=time.time() + 3600)
        assert retried.original_removed is True
        new = Job.fetch(retried.new_job_id, connection=connection)
        wait_for(lambda: new.get_status() == JobStatus.FINISHED, timeout=30)  # the worker is free again at once
    finally:
        stop_worker(worker)
    assert not Job.exists(running.id, connection)
    assert queue.failed_job_registry.get_job_ids(cleanup=False) == []
    assert queue.started_job_registry.get_job_count(cleanup=False) == 0
    assert connection.keys(f"*{running.id}*") == []


def test_a_forced_retry_keeps_what_the_running_worker_recorded_meanwhile(connection, monkeypatch):
    """Regression: the original's meta was written back whole from the copy read at the start of the retry,
    wiping the attempt record a running worker wrote meanwhile; only `retriedAs` is added now."""
    job = make_active_job(connection, "rt-force-meta", 45)
    first = retry_job(connection, "rt-force-meta", job.id, {}).new_job_id
    enqueue_copy = retry_module._enqueue_copy

    def worker_records_an_attempt_meanwhile(original: Job, *args, **kwargs) -> Job:
        meta = Job.fetch(original.id, connection=connection).meta
        meta[attempts.ATTEMPTS_MADE] = 1
        meta[attempts.ERRORS] = [{"message": "SMTP down", "exception": "RuntimeError", "stacktrace": "", "at": 1}]
        connection.hset(original.key, "meta", original.serializer.dumps(meta))
        return enqueue_copy(original, *args, **kwargs)

    monkeypatch.setattr(retry_module, "_enqueue_copy", worker_records_an_attempt_meanwhile)
    second = retry_job(connection, "rt-force-meta", job.id, {"force": True}).new_job_id
    meta = Job.fetch(job.id, connection=connection).meta
    assert second != first and meta[attempts.RETRIED_AS] == second
    assert meta[attempts.ATTEMPTS_MADE] == 1 and meta[attempts.ERRORS][0]["message"] == "SMTP down"
    assert meta[attempts.ATTEMPTS_STARTED] == 1  # from before the retry began, too
