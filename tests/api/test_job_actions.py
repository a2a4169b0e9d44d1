"""Admin actions of /api/v1/admin/jobs: pause/resume, clear and retry — happy and unhappy paths."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from rq import Queue, Retry
from rq.job import Job, JobStatus
from rq.utils import utcformat

from app.domain import attempts, keys
from app.domain import retry as retry_module
from tests.api.test_auth import assert_error
from tests.helpers import every_value, make_active_job, run_worker, start_worker, stop_worker, wait_for


def everything(connection) -> dict:
    """Every key with its serialized value, but the audit log (a refused action is audited): proves a refused
    action changed nothing."""
    return every_value(connection, (b"rqmon:revoked", b"rqmon:run-starts:", keys.AUDIT.encode()))


API = "/api/v1/admin/jobs"


def failed_job(connection, redis_url, queue_name: str, *args, **kwargs) -> Job:
    job = Queue(queue_name, connection=connection).enqueue("workers.tasks.send_email", *args, **kwargs)
    job.set_status(JobStatus.FAILED)
    with connection.pipeline() as pipe:
        job.failed_job_registry.add(job, ttl=3600, pipeline=pipe, exc_string="RuntimeError: SMTP down")
        pipe.lrem(Queue(queue_name, connection=connection).key, 1, job.id)
        pipe.execute()
    return job


# --- pause / resume ---------------------------------------------------------------------------------


def test_pause_and_resume_are_idempotent(client, auth, connection):
    Queue("a-pause", connection=connection).enqueue("workers.tasks.noop")
    headers = auth("admin")
    for _ in range(2):
        response = client.patch(f"{API}/queue/a-pause/pause", headers=headers)
        assert response.get_json() == {"success": True, "queueName": "a-pause", "paused": True}
    assert connection.smembers(keys.PAUSED_QUEUES) == {b"a-pause"}
    for _ in range(2):
        assert client.patch(f"{API}/queue/a-pause/resume", headers=headers).get_json()["paused"] is False
    assert connection.scard(keys.PAUSED_QUEUES) == 0


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_pause_errors(client, auth, connection, action):
    assert_error(client.patch(f"{API}/queue/ghost/{action}", headers=auth("admin")), 404, "queue_not_found")
    assert_error(client.patch(f"{API}/queue/ghost/{action}", headers=auth("moderator")), 403, "forbidden")
    assert_error(client.patch(f"{API}/queue/ghost/{action}"), 401, "missing_token")
    assert_error(client.get(f"{API}/queue/ghost/{action}", headers=auth("admin")), 405, "method_not_allowed")
    assert connection.scard(keys.PAUSED_QUEUES) == 0


# --- clear ------------------------------------------------------------------------------------------


def populated_queue(connection, redis_url, name: str) -> dict:
    queue = Queue(name, connection=connection)
    done = [queue.enqueue("workers.tasks.noop") for _ in range(3)]
    failed = [queue.enqueue("workers.tasks.fail") for _ in range(2)]
    run_worker(redis_url, name)
    waiting = queue.enqueue("workers.tasks.noop")
    delayed = queue.enqueue_in(timedelta(hours=1), "workers.tasks.noop")
    active = make_active_job(connection, name, 1)
    return {"done": done, "failed": failed, "kept": [waiting, delayed, active]}


@pytest.mark.parametrize(("clear_type", "completed", "failed"), [("completed", 3, 0), ("failed", 0, 2), ("all", 3, 2)])
def test_clear_removes_entries_and_data_and_nothing_else(
    client, auth, connection, redis_url, clear_type, completed, failed
):
    jobs = populated_queue(connection, redis_url, "c-q")
    response = client.delete(f"{API}/queue/c-q/clear?type={clear_type}", headers=auth("admin"))
    assert response.get_json() == {
        "success": True,
        "queueName": "c-q",
        "type": clear_type,
        "removed": {"completed": completed, "failed": failed},
    }
    removed = (jobs["done"] if completed else []) + (jobs["failed"] if failed else [])
    for job in removed:
        assert not connection.exists(f"rq:job:{job.id}", f"rq:results:{job.id}")
    for job in jobs["kept"]:
        assert Job.exists(job.id, connection)
    queue = Queue("c-q", connection=connection)
    assert queue.count == 1
    assert queue.scheduled_job_registry.get_job_count(cleanup=False) == 1
    assert queue.started_job_registry.get_job_count(cleanup=False) == 1


def test_clear_defaults_to_all_and_leaves_a_re_enqueued_job_whole(client, auth, connection, redis_url):
    queue = Queue("c-requeue", connection=connection)
    job = queue.enqueue("workers.tasks.fail")
    run_worker(redis_url, "c-requeue")
    job.set_status(JobStatus.QUEUED)  # retried elsewhere meanwhile: its stale failed entry must not cost its data
    response = client.delete(f"{API}/queue/c-requeue/clear", headers=auth("admin")).get_json()
    assert response["type"] == "all" and response["removed"]["failed"] == 1
    assert Job.exists(job.id, connection)


@pytest.mark.parametrize(
    ("url", "role", "status", "code"),
    [
        ("/queue/c-err/clear?type=waiting", "admin", 400, "validation_error"),
        ("/queue/c-err/clear?type=", "admin", 400, "validation_error"),
        ("/queue/ghost/clear", "admin", 404, "queue_not_found"),
        ("/queue/c-err/clear", "moderator", 403, "forbidden"),
    ],
)
def test_clear_errors_change_nothing(client, auth, connection, redis_url, url, role, status, code):
    populated_queue(connection, redis_url, "c-err")
    before = everything(connection)
    assert_error(client.delete(API + url, headers=auth(role)), status, code)
    assert everything(connection) == before


# --- retry ------------------------------------------------------------------------------------------


def test_retry_with_overrides_runs_a_new_job(client, auth, connection, redis_url):
    original = failed_job(connection, redis_url, "r-ok", "a@b.c", subject="Hi", customParam="old")
    body = {
        "priority": 0,
        "attempts": 3,
        "backoff": {"type": "exponential", "delay": 2000},
        "dataOverrides": {"customParam": "new"},
    }
    response = client.post(f"{API}/retry/r-ok/{original.id}", json=body, headers=auth("admin"))
    assert response.status_code == 201
    new_id = response.get_json()["newJobId"]
    assert response.get_json() == {
        "success": True,
        "newJobId": new_id,
        "originalRemoved": False,
        "message": f"Job retried with ID {new_id}",
    }
    new = Job.fetch(new_id, connection=connection)
    assert new.args == ("a@b.c",) and new.kwargs == {"subject": "Hi", "customParam": "new"}
    assert "customParam='new'" in new.description  # RQ's call-string description follows the new arguments
    assert new.retries_left == 2 and new.retry_intervals == [2, 4]
    assert new.meta[attempts.RETRIED_FROM] == original.id
    assert Job.fetch(original.id, connection=connection).meta[attempts.RETRIED_AS] == new_id
    run_worker(redis_url, "r-ok")
    assert new.get_status() == JobStatus.FINISHED
    assert new.return_value()["customParam"] == "new"
    detail = client.get(f"{API}/job/r-ok/{new_id}", headers=auth("moderator")).get_json()
    assert detail["retriedFrom"] == original.id and detail["opts"]["attempts"] == 3
    assert detail["opts"]["backoff"] == {"type": "exponential", "delay": 2000}


def test_retry_keeps_a_custom_description(client, auth, connection, redis_url):
    original = failed_job(connection, redis_url, "r-described", "a@b.c", description="Welcome mail for a@b.c")
    response = client.post(f"{API}/retry/r-described/{original.id}", json={}, headers=auth("admin"))
    assert Job.fetch(response.get_json()["newJobId"], connection=connection).description == "Welcome mail for a@b.c"


def test_retry_of_a_real_failure_completes_with_the_override(client, auth, connection, redis_url):
    queue = Queue("r-real", connection=connection)
    original = queue.enqueue("workers.tasks.flaky", key="r-real-runs", failures=5)
    run_worker(redis_url, "r-real")
    assert original.get_status() == JobStatus.FAILED
    body = {"dataOverrides": {"failures": 1}, "removeOriginal": True}
    response = client.post(f"{API}/retry/r-real/{original.id}", json=body, headers=auth("admin"))
    assert response.status_code == 201, response.get_json()
    new = Job.fetch(response.get_json()["newJobId"], connection=connection)
    run_worker(redis_url, "r-real")
    assert new.get_status() == JobStatus.FINISHED
    assert new.return_value() == 2  # run 2 fails under failures=5: only the override lets it complete
    assert not Job.exists(original.id, connection)
    assert queue.failed_job_registry.get_job_count(cleanup=False) == 0


def test_retry_with_priority_goes_to_the_prioritized_set(client, auth, connection, redis_url):
    original = failed_job(connection, redis_url, "r-prio", "x@y.z")
    new_id = client.post(f"{API}/retry/r-prio/{original.id}", json={"priority": 7}, headers=auth("admin")).get_json()[
        "newJobId"
    ]
    assert connection.zscore(keys.prioritized("r-prio"), new_id) is not None
    assert Queue("r-prio", connection=connection).count == 0
    state = client.get(f"{API}/job/r-prio/{new_id}", headers=auth("moderator")).get_json()["state"]
    assert state == "prioritized"


def test_retry_without_body_keeps_the_original_options_and_removes_on_request(client, auth, connection, redis_url):
    original = failed_job(connection, redis_url, "r-remove", "q@w.e", retry=attempts.retry_for(4, None))
    response = client.post(f"{API}/retry/r-remove/{original.id}", json={"removeOriginal": True}, headers=auth("admin"))
    new = Job.fetch(response.get_json()["newJobId"], connection=connection)
    assert new.retries_left == 3
    assert not Job.exists(original.id, connection)
    assert Queue("r-remove", connection=connection).failed_job_registry.get_job_count(cleanup=False) == 0
    assert client.post(f"{API}/retry/r-remove/{new.id}", headers=auth("admin")).status_code == 409


def test_a_second_retry_names_the_copy_unless_forced(client, auth, connection, redis_url):
    original = failed_job(connection, redis_url, "r-twice", "t@w.o")
    headers = auth("admin")
    first = client.post(f"{API}/retry/r-twice/{original.id}", json={}, headers=headers).get_json()["newJobId"]
    before = everything(connection)
    body = assert_error(
        client.post(f"{API}/retry/r-twice/{original.id}", json={}, headers=headers), 409, "already_retried"
    )
    assert first in body["error"]["message"] and body["error"]["details"] == {"retriedAs": first}
    assert everything(connection) == before  # no second copy
    response = client.post(f"{API}/retry/r-twice/{original.id}", json={"force": True}, headers=headers)
    assert response.status_code == 201
    second = response.get_json()["newJobId"]
    assert second != first and Queue("r-twice", connection=connection).job_ids == [first, second]
    detail = client.get(f"{API}/job/r-twice/{original.id}", headers=auth("moderator")).get_json()
    assert detail["retriedAs"] == second  # the original names its latest copy
    assert not connection.exists(keys.retry_claim(original.id))
    assert_error(
        client.post(f"{API}/retry/r-twice/{original.id}", json={"force": "yes"}, headers=headers),
        400,
        "validation_error",
    )


def test_a_retry_under_way_refuses_a_concurrent_one(client, auth, connection, redis_url):
    original = failed_job(connection, redis_url, "r-race", "r@a.ce")
    connection.set(keys.retry_claim(original.id), "1", ex=30)  # another request is copying it right now
    before = everything(connection)
    body = assert_error(client.post(f"{API}/retry/r-race/{original.id}", headers=auth("admin")), 409, "already_retried")
    assert "being retried" in body["error"]["message"]
    assert everything(connection) == before
    assert connection.ttl(keys.retry_claim(original.id)) > 0  # the other request's claim is not ours to delete


def test_args_overrides_replace_the_positional_arguments(client, auth, connection, redis_url):
    queue = Queue("r-args", connection=connection)
    original = queue.enqueue("workers.tasks.add", 2)  # a producer's mistake: add() takes two arguments
    run_worker(redis_url, "r-args")
    assert original.get_status() == JobStatus.FAILED
    body = {"argsOverrides": [2, 3]}
    response = client.post(f"{API}/retry/r-args/{original.id}", json=body, headers=auth("admin"))
    assert response.status_code == 201, response.get_json()
    new = Job.fetch(response.get_json()["newJobId"], connection=connection)
    assert new.args == (2, 3) and new.kwargs == {} and new.description == "workers.tasks.add(2, 3)"
    run_worker(redis_url, "r-args")
    assert new.get_status() == JobStatus.FINISHED and new.return_value() == 5


def test_args_overrides_and_data_overrides_together(client, auth, connection, redis_url):
    original = failed_job(connection, redis_url, "r-both", "old@b.c", subject="Hi")
    body = {"argsOverrides": ["new@b.c"], "dataOverrides": {"customParam": 1}}
    new_id = client.post(f"{API}/retry/r-both/{original.id}", json=body, headers=auth("admin")).get_json()["newJobId"]
    new = Job.fetch(new_id, connection=connection)
    assert new.args == ("new@b.c",) and new.kwargs == {"subject": "Hi", "customParam": 1}
    empty = failed_job(connection, redis_url, "r-both", "x@y.z")
    new_id = client.post(
        f"{API}/retry/r-both/{empty.id}", json={"argsOverrides": []}, headers=auth("admin")
    ).get_json()["newJobId"]
    assert Job.fetch(new_id, connection=connection).args == ()  # an empty array is an override, not "keep"


def test_a_stuck_active_job_can_be_retried_and_removed(client, auth, connection):
    stuck = make_active_job(connection, "r-stuck", 45)
    fresh = make_active_job(connection, "r-stuck", 2)
    headers = auth("admin")
    assert_error(client.post(f"{API}/retry/r-stuck/{fresh.id}", headers=headers), 409, "job_not_retryable")
    response = client.post(f"{API}/retry/r-stuck/{stuck.id}", json={"removeOriginal": True}, headers=headers)
    assert response.status_code == 201
    assert response.get_json()["originalRemoved"] is True  # its worker is gone: no one will write its end
    assert not Job.exists(stuck.id, connection)
    assert Queue("r-stuck", connection=connection).count == 1


def started_an_hour_ago(connection, job: Job) -> None:
    """A real run made stuck: its start is moved back, as if it had been running for an hour."""
    connection.hset(job.key, "started_at", utcformat(datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)))


def test_a_stuck_run_whose_worker_stops_it_is_removed(client, auth, connection, redis_url):
    queue = Queue("r-live", connection=connection)
    running = queue.enqueue("workers.tasks.sleep_for", 60, retry=Retry(max=2))
    worker = start_worker(redis_url, "r-live")
    try:
        wait_for(lambda: running.get_status() == JobStatus.STARTED, timeout=30)
        started_an_hour_ago(connection, running)
        body = {"removeOriginal": True, "argsOverrides": [0]}
        response = client.post(f"{API}/retry/r-live/{running.id}", json=body, headers=auth("admin"))
        assert response.status_code == 201, response.get_json()
        result = response.get_json()
        assert result["originalRemoved"] is True and result["message"] == f"Job retried with ID {result['newJobId']}"
        copy = Job.fetch(result["newJobId"], connection=connection)
        wait_for(lambda: copy.get_status() == JobStatus.FINISHED, timeout=30)
    finally:
        stop_worker(worker)
    assert connection.keys(f"*{running.id}*") == []
    assert queue.count == 0 and queue.failed_job_registry.get_job_count(cleanup=False) == 0


def test_a_stuck_run_whose_worker_does_not_stop_it_is_kept(client, auth, connection, redis_url, monkeypatch):
    """Regression: the original was deleted while its run went on; the run's end then wrote it back (completed),
    or, failing with retries left, enqueued the original beside its copy."""
    monkeypatch.setattr(retry_module, "STOP_WAIT_SECONDS", 1.5)
    queue = Queue("r-frozen", connection=connection)
    running = queue.enqueue("workers.tasks.sleep_for", 60, retry=Retry(max=2))
    worker = start_worker(redis_url, "r-frozen")
    try:
        wait_for(lambda: running.get_status() == JobStatus.STARTED, timeout=30)
        started_an_hour_ago(connection, running)
        os.kill(worker.pid, signal.SIGSTOP)  # the worker cannot take the stop command; its horse runs on
        try:
            body = {"removeOriginal": True, "argsOverrides": [0]}
            response = client.post(f"{API}/retry/r-frozen/{running.id}", json=body, headers=auth("admin"))
            assert response.status_code == 201, response.get_json()
            result = response.get_json()
            assert result["originalRemoved"] is False
            assert "original was kept" in result["message"]
            assert running.get_status() == JobStatus.STARTED  # still there, still running
            assert running.get_meta()[attempts.RETRIED_AS] == result["newJobId"]
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        copy = Job.fetch(result["newJobId"], connection=connection)
        wait_for(lambda: running.get_status() == JobStatus.STOPPED, timeout=30)  # the stop, taken late
        wait_for(lambda: copy.get_status() == JobStatus.FINISHED, timeout=30)
        time.sleep(0.5)  # anything the run's end would enqueue again has had time to appear
    finally:
        stop_worker(worker)
    assert queue.failed_job_registry.get_job_ids(cleanup=False) == [running.id]  # kept, ended stopped, not retried
    assert queue.finished_job_registry.get_job_ids(cleanup=False) == [copy.id]  # the copy ran once
    assert queue.count == 0 and queue.scheduled_job_registry.get_job_count(cleanup=False) == 0
    assert queue.started_job_registry.get_job_count(cleanup=False) == 0


def test_retry_that_fails_half_way_leaves_the_original_intact(client, auth, connection, redis_url, monkeypatch):
    original = failed_job(connection, redis_url, "r-half", "h@a.lf")

    def broken_removal(*args, **kwargs):
        raise RuntimeError("connection lost while removing")

    monkeypatch.setattr(retry_module, "remove_original", broken_removal)
    response = client.post(f"{API}/retry/r-half/{original.id}", json={"removeOriginal": True}, headers=auth("admin"))
    assert_error(response, 500, "internal_error")
    assert Job.exists(original.id, connection)
    queue = Queue("r-half", connection=connection)
    assert queue.failed_job_registry.get_job_count(cleanup=False) == 1
    assert queue.count == 1  # the new job was stored first and is not lost either


def test_retry_that_cannot_enqueue_touches_nothing(client, auth, connection, redis_url, monkeypatch):
    original = failed_job(connection, redis_url, "r-noenq", "n@o.pe")
    before = everything(connection)

    def broken_enqueue(*args, **kwargs):
        raise RuntimeError("enqueue failed")

    monkeypatch.setattr(retry_module, "_enqueue_copy", broken_enqueue)
    assert (
        client.post(
            f"{API}/retry/r-noenq/{original.id}", json={"removeOriginal": True}, headers=auth("admin")
        ).status_code
        == 500
    )
    assert everything(connection) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"priority": -1}, "priority"),
        ({"priority": 2097152}, "priority"),
        ({"priority": 1.5}, "priority"),
        ({"priority": "1"}, "priority"),
        ({"priority": True}, "priority"),
        ({"attempts": 0}, "attempts"),
        ({"attempts": 101}, "attempts"),
        ({"attempts": None}, None),
        ({"backoff": {"type": "linear", "delay": 10}}, "backoff.type"),
        ({"backoff": {"type": "fixed", "delay": -1}}, "backoff.delay"),
        ({"backoff": {"type": "fixed", "delay": 86400001}}, "backoff.delay"),
        ({"backoff": {"type": "fixed"}}, "backoff.delay"),
        ({"backoff": {"type": "fixed", "delay": 1, "jitter": 1}}, "backoff.jitter"),
        ({"backoff": 5000}, "backoff"),
        ({"dataOverrides": ["a"]}, "dataOverrides"),
        ({"dataOverrides": "x"}, "dataOverrides"),
        ({"argsOverrides": {"a": 1}}, "argsOverrides"),
        ({"argsOverrides": "x"}, "argsOverrides"),
        ({"force": 1}, "force"),
        ({"removeOriginal": "yes"}, "removeOriginal"),
        ({"removeOriginal": 1}, "removeOriginal"),
        ({"unknown": 1}, "unknown"),
        ([], None),
    ],
)
def test_bad_retry_bodies_are_refused_and_nothing_is_enqueued(client, auth, connection, redis_url, body, field):
    original = failed_job(connection, redis_url, "r-bad", "b@a.d")
    before = everything(connection)
    response = client.post(f"{API}/retry/r-bad/{original.id}", json=body, headers=auth("admin"))
    if body == {"attempts": None}:
        assert response.status_code == 201  # an explicit null means "the original's", like an absent field
        return
    error = assert_error(response, 400, "validation_error")["error"]
    if field:
        assert field in error["details"], error
    assert everything(connection) == before


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "code"),
    [
        ("/retry/ghost/x", {}, 404, "queue_not_found"),
        ("/retry/r-err/no-such-job", {}, 404, "job_not_found"),
        ("/retry/r-err/OTHER", {}, 404, "job_not_found"),
        ("/retry/r-err/WAITING", {}, 409, "job_not_retryable"),
        ("/retry/r-err/FAILED", {"data": "priority=1", "content_type": "text/plain"}, 415, "unsupported_media_type"),
        ("/retry/r-err/FAILED", {"data": "{", "content_type": "application/json"}, 400, "invalid_json"),
        ("/retry/r-err/FAILED", {"data": "[" * 70000, "content_type": "application/json"}, 413, "payload_too_large"),
    ],
)
def test_retry_errors(client, auth, connection, redis_url, path, kwargs, status, code):
    failed = failed_job(connection, redis_url, "r-err", "e@r.r")
    waiting = Queue("r-err", connection=connection).enqueue("workers.tasks.noop")
    other = Queue("r-other", connection=connection).enqueue("workers.tasks.noop")
    path = path.replace("FAILED", failed.id).replace("WAITING", waiting.id).replace("OTHER", other.id)
    before = everything(connection)
    assert_error(client.post(API + path, headers=auth("admin"), **kwargs), status, code)
    assert everything(connection) == before


def test_moderators_cannot_retry(client, auth, connection, redis_url):
    original = failed_job(connection, redis_url, "r-mod", "m@o.d")
    assert_error(client.post(f"{API}/retry/r-mod/{original.id}", headers=auth("moderator")), 403, "forbidden")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("patch", "/queue/n-tok/pause"),
        ("patch", "/queue/n-tok/resume"),
        ("delete", "/queue/n-tok/clear"),
        ("post", "/retry/n-tok/JOB"),
    ],
)
def test_actions_need_a_token_and_change_nothing_without_one(client, connection, redis_url, method, path):
    job = failed_job(connection, redis_url, "n-tok", "t@o.k")
    before = everything(connection)
    response = getattr(client, method)(API + path.replace("JOB", job.id), headers={"Authorization": "Bearer nope"})
    assert_error(response, 401, "invalid_token")
    assert_error(getattr(client, method)(API + path.replace("JOB", job.id)), 401, "missing_token")
    assert everything(connection) == before
