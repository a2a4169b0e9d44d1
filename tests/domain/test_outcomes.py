"""Recording an ended attempt outside the worker: the abandoned run of a dead worker (issue 10, item 4)."""

from __future__ import annotations

import time

from rq.job import Job

from app.domain import attempts, history, outcomes
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
