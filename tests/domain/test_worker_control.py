"""Stopping a running job (app.domain.worker_control.stop_run), the one helper behind the stop action and the
removal of a stuck run by retry: whether the run ended, including runs that end while the stop is sent."""

from __future__ import annotations

import pytest
from rq.command import PUBSUB_CHANNEL_TEMPLATE
from rq.job import Job, JobStatus

from app.domain.errors import JobNotActive
from app.domain.worker_control import stop_run
from tests.helpers import make_active_job, wait_for


@pytest.fixture
def listener(connection):
    """Something subscribed on the RQ channel of make_active_job's "test-worker" that never answers."""
    pubsub = connection.pubsub()
    pubsub.subscribe(PUBSUB_CHANNEL_TEMPLATE % "test-worker")
    wait_for(lambda: connection.pubsub_numsub(PUBSUB_CHANNEL_TEMPLATE % "test-worker")[0][1] == 1, timeout=3)
    yield pubsub
    pubsub.close()


def test_a_run_whose_worker_is_gone_cannot_be_stopped(connection):
    job = make_active_job(connection, "wc-gone", 20)
    with pytest.raises(JobNotActive, match="worker is gone"):
        stop_run(connection, job, timeout=0.2)


def test_a_run_that_is_not_stopped_in_time_is_reported(connection, listener):
    job = make_active_job(connection, "wc-deaf", 20)
    assert stop_run(connection, job, timeout=0.3) is False
    assert Job.fetch(job.id, connection=connection).get_status() == JobStatus.STARTED


@pytest.mark.parametrize("ending", ["deleted", "no_worker", "stopped"])
def test_a_run_that_ends_meanwhile_has_ended(connection, listener, ending):
    """Regression: RQ's send_stop_job_command fetches the job again and raised NoSuchJobError (deleted) or
    InvalidJobOperation (no worker any more) out of the retry, a 500 after the copy was made."""
    job = make_active_job(connection, "wc-ended", 20)
    if ending == "deleted":
        connection.delete(job.key)
    elif ending == "no_worker":
        connection.hset(job.key, mapping={"worker_name": "", "status": JobStatus.FINISHED.value})
    else:
        connection.hset(job.key, "status", JobStatus.STOPPED.value)
    assert stop_run(connection, job, timeout=0.3) is True
