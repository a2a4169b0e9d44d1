"""POST /api/v1/admin/jobs/job/<queue>/<id>/stop against a real MonitoredWorker process (issue 11, item 5)."""

from __future__ import annotations

import os
import subprocess

import pytest
from rq import Queue
from rq.job import JobStatus

from tests.api.test_auth import assert_error
from tests.helpers import ROOT, make_active_job, stop_worker, wait_for, worker_command

API = "/api/v1/admin/jobs"


@pytest.fixture
def worker(redis_url):
    process = subprocess.Popen(
        worker_command(redis_url, "s-stop", burst=False),
        cwd=ROOT,
        env={**os.environ, "WORKER_HEARTBEAT_SECONDS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield process
    stop_worker(process)


def test_a_running_job_is_stopped_ends_stopped_among_the_failed_and_can_be_retried(client, auth, connection, worker):
    queue = Queue("s-stop", connection=connection)
    job = queue.enqueue("workers.tasks.sleep_for", 60, retry=None)
    after = queue.enqueue("workers.tasks.noop")
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, timeout=30)

    response = client.post(f"{API}/job/s-stop/{job.id}/stop", headers=auth("admin"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"success": True, "jobId": job.id, "stopped": True}
    assert job.get_status(refresh=True) == JobStatus.STOPPED
    assert job.id in queue.failed_job_registry.get_job_ids()
    detail = client.get(f"{API}/job/s-stop/{job.id}", headers=auth("moderator")).get_json()
    assert detail["state"] == "stopped"
    wait_for(lambda: after.get_status(refresh=True) == JobStatus.FINISHED, timeout=15)  # the worker goes on

    retried = client.post(f"{API}/retry/s-stop/{job.id}", headers=auth("admin"), json={})
    assert retried.status_code == 201, retried.get_json()


def test_a_job_that_is_not_running_cannot_be_stopped(client, auth, connection):
    waiting = Queue("s-idle", connection=connection).enqueue("workers.tasks.noop")
    response = client.post(f"{API}/job/s-idle/{waiting.id}/stop", headers=auth("admin"))
    assert_error(response, 409, "job_not_active")
    assert waiting.get_status(refresh=True) == JobStatus.QUEUED


def test_an_active_job_whose_worker_is_gone_is_refused(client, auth, connection):
    job = make_active_job(connection, "s-orphan", minutes_running=5)  # "test-worker" does not listen
    response = client.post(f"{API}/job/s-orphan/{job.id}/stop", headers=auth("admin"))
    assert_error(response, 409, "job_not_active")


@pytest.mark.parametrize(
    ("path", "status"),
    [("/job/nope/abc/stop", 404), ("/job/s-stop/no-such-job/stop", 404)],
)
def test_unknown_queue_or_job(client, auth, connection, path, status):
    Queue("s-stop", connection=connection).enqueue("workers.tasks.noop")
    assert client.post(API + path, headers=auth("admin")).status_code == status


def test_a_moderator_cannot_stop_a_job(client, auth, connection):
    job = make_active_job(connection, "s-role", minutes_running=5)
    assert client.post(f"{API}/job/s-role/{job.id}/stop", headers=auth("moderator")).status_code == 403
