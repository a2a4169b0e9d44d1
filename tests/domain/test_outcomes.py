"""Recording an ended attempt outside the worker: the abandoned run of a dead worker (issue 10, item 4)."""

from __future__ import annotations

import time

from rq.job import Job

from app.domain import attempts, counters, history, outcomes, worker_history
from tests.helpers import make_active_job


def _hour_fields(connection) -> dict[bytes, bytes]:
    return connection.hgetall(history._bucket_key(history.HOUR, time.time()))


def test_an_abandoned_attempt_is_made_failed_with_its_reason_and_counted(connection):
    job = make_active_job(connection, "o-abandoned", 12)
    fetched = Job.fetch(job.id, connection=connection)
    with connection.pipeline() as pipe:
        outcomes.record_abandoned_attempt(pipe, fetched)
        pipe.execute()
    recorded = attempts.read_attempts(Job.fetch(job.id, connection=connection), status="failed")
    assert (recorded["attemptsMade"], recorded["attemptsStarted"]) == (1, 1)
    assert recorded["failedReason"] == outcomes.ABANDONED_REASON
    assert recorded["failedException"] == "AbandonedJobError"
    assert _hour_fields(connection)[b"o-abandoned|fail"] == b"1"
    [entry] = connection.lrange("rqmon:outcomes", 0, -1)
    assert entry.startswith(b"0|") and job.id.encode() in entry


def test_recording_a_job_deleted_meanwhile_does_not_bring_it_back(connection):
    job = make_active_job(connection, "o-deleted", 12)
    fetched = Job.fetch(job.id, connection=connection)
    connection.delete(job.key)  # e.g. cleared, or deleted by RQ (failure_ttl=0) in the same pipeline
    with connection.pipeline() as pipe:
        outcomes.record_abandoned_attempt(pipe, fetched, "stalled too often", "Stalled", outcome="fail")
        pipe.execute()
    assert not connection.exists(job.key)
    assert _hour_fields(connection)[b"o-deleted|fail"] == b"1"


def _recorded(connection, job: Job) -> dict[bytes, object]:
    """The job's meta and every key of the product, without the worker history buckets' random generation."""
    found: dict[bytes, object] = {b"meta": connection.hget(job.key, "meta")}
    for key in connection.keys(f"{counters.keys.PREFIX}*"):
        kind = connection.type(key)
        if kind == b"hash":
            found[key] = {f: v for f, v in connection.hgetall(key).items() if f != b"g"}
        elif kind == b"list":
            found[key] = connection.lrange(key, 0, -1)
        elif kind == b"zset":
            found[key] = connection.zrange(key, 0, -1, withscores=True)
        else:
            found[key] = kind
        found[key + b" ttl"] = connection.ttl(key)
    return found


def test_an_ended_attempt_is_one_script_writing_what_each_module_writes(connection, monkeypatch):
    """Per-job cost (issue 11): record_end queues ONE command, and it leaves what the four modules' own calls
    leave (meta, history buckets and outcomes, worker history, Prometheus counters), for each outcome."""
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    job = make_active_job(connection, "o-one", 1)
    job.worker_name = "w-one"
    name, base = job.func_name, {**job.meta, "own": 1}
    for outcome in ("ok", "fail", "retry"):
        connection.flushall()
        job.save()
        with connection.pipeline() as pipe:
            outcomes.record_end(pipe, job, outcome, dict(base), outcomes.failure("m", "E", "tb"), 42)
            assert len(pipe.command_stack) == 1
            pipe.execute()
        combined = _recorded(connection, job)
        assert combined[b"meta"] == job.serializer.dumps(job.meta)

        connection.flushall()
        job.save()  # the meta record_end made, written as it was before: one call per module
        attempts.save_meta_if_exists(connection, job)
        history.record_attempt(connection, "o-one", outcome, 42, job.id, name, now)
        worker_history.record_attempt(connection, "w-one", "o-one", outcome, 42, job.id, name, now)
        counters.record_counters(connection, "o-one", outcome, 42)
        assert _recorded(connection, job) == combined, outcome
        assert any(b"stats" in key for key in combined) and counters.keys.COUNTERS.encode() in combined


def test_a_deleted_job_stays_deleted_and_the_rest_is_still_recorded_in_the_one_script(connection):
    job = make_active_job(connection, "o-gone", 1)
    connection.delete(job.key)
    with connection.pipeline() as pipe:
        outcomes.record_end(pipe, job, "ok", {}, None, 5)
        pipe.execute()
    assert not connection.exists(job.key)
    assert connection.hget(counters.keys.COUNTERS, "o-gone|completed") == b"1"
    assert _hour_fields(connection)[b"o-gone|ok"] == b"1"
