"""GET endpoints of /api/v1/admin/jobs: metrics, trends, stuck alerts, job pages and job details."""

from __future__ import annotations

import time
import zlib
from datetime import timedelta

import pytest
from rq import Queue
from rq.command import send_stop_job_command
from rq.job import JobStatus

from app.domain import history, keys
from app.domain.pause import pause_queue
from app.domain.priority import enqueue_prioritized
from tests.api.test_auth import assert_error
from tests.helpers import every_value, make_active_job, run_worker, start_worker, stop_worker, wait_for

API = "/api/v1/admin/jobs"


def everything(connection) -> dict:
    """Every key with its serialized value: proves a read wrote nothing (but the stuck query's own index of
    run starts, under the product's prefix, checked on its own)."""
    return every_value(connection, (b"rqmon:revoked", b"rqmon:run-starts:"))


def test_metrics_count_every_state(client, auth, connection, redis_url):
    queue = Queue("m-emails", connection=connection)
    queue.enqueue("workers.tasks.noop")
    queue.enqueue("workers.tasks.fail")
    run_worker(redis_url, "m-emails")
    parent = queue.enqueue("workers.tasks.noop")
    queue.enqueue("workers.tasks.noop", depends_on=parent)  # waits for its parent: waitingChildren
    queue.enqueue_in(timedelta(hours=1), "workers.tasks.noop")
    enqueue_prioritized(queue, "workers.tasks.noop", (), {}, 2)
    make_active_job(connection, "m-emails", 1)
    Queue("m-archive", connection=connection).enqueue("workers.tasks.noop")
    pause_queue(connection, "m-archive")

    body = client.get(f"{API}/metrics", headers=auth("moderator")).get_json()
    assert [q["queueName"] for q in body["queues"]] == ["m-archive", "m-emails"]
    emails = body["queues"][1]
    counted = ("waiting", "active", "completed", "failed", "delayed", "prioritized", "waitingChildren", "paused")
    assert {k: emails[k] for k in counted} == {
        "waiting": 1,
        "active": 1,
        "completed": 1,
        "failed": 1,
        "delayed": 1,
        "prioritized": 1,
        "waitingChildren": 1,
        "paused": False,
    }
    assert body["queues"][0]["paused"] is True
    assert body["totals"]["waiting"] == 2 and body["totals"]["completed"] == 1
    assert body["successRate"] == 50.0
    assert body["processingRate"] == 0.4
    assert (emails["successRate"], emails["processingRate"]) == (50.0, 0.4)
    assert (body["queues"][0]["successRate"], body["queues"][0]["processingRate"]) == (None, 0.0)
    assert body["timestamp"].endswith("Z")


def test_metrics_success_rate_is_null_before_any_job_finished(client, auth):
    body = client.get(f"{API}/metrics", headers=auth("moderator")).get_json()
    assert body["successRate"] is None and body["queues"] == [] and body["processingRate"] == 0.0


def test_reads_never_write(client, auth, connection, redis_url):
    queue = Queue("m-readonly", connection=connection)
    for _ in range(3):
        queue.enqueue("workers.tasks.fail")
    run_worker(redis_url, "m-readonly")
    make_active_job(connection, "m-readonly", 45)
    # An expired entry that RQ's cleanup would move: a read must leave it where it is.
    connection.zadd("rq:wip:m-readonly", {"ghost:" + "0" * 32: 1})
    job_id = [connection.zrange("rq:failed:m-readonly", 0, 0)[0].decode()]
    headers = auth("moderator")
    before = everything(connection)
    for url in (
        f"{API}/metrics",
        f"{API}/trends?period=7d&series=1",
        f"{API}/alerts/stuck",
        f"{API}/queue/m-readonly/jobs?state=failed",
        f"{API}/queue/m-readonly/jobs?state=active",
        f"{API}/job/m-readonly/{job_id[0]}",
    ):
        assert client.get(url, headers=headers).status_code == 200, url
    assert everything(connection) == before
    assert connection.keys("rqmon:run-starts:*") == [b"rqmon:run-starts:m-readonly"]
    assert connection.zcard("rqmon:run-starts:m-readonly") == 1  # the one run, never the ghost


def test_trends_per_period_with_series(client, auth, connection):
    now = time.time()
    history.record_attempt(connection, "t-q", "ok", 100, "a", "f", ended_at=now - 3600)
    history.record_attempt(connection, "t-q", "fail", 300, "b", "f", ended_at=now - 5 * 86400)
    headers = auth("moderator")
    [day] = client.get(f"{API}/trends", headers=headers).get_json()
    assert (day["period"], day["successful"], day["failed"], day["avgProcessingTime"]) == ("24h", 1, 0, 100)
    [week] = client.get(f"{API}/trends?period=7d&series=1", headers=headers).get_json()
    assert (week["successful"], week["failed"], week["successRate"], len(week["series"])) == (1, 1, 50.0, 28)
    [month] = client.get(f"{API}/trends?period=30d&series=true", headers=headers).get_json()
    assert len(month["series"]) == 30 and "series" not in day


@pytest.mark.parametrize("query", ["period=1y", "period=", "period=24H", "series=maybe"])
def test_bad_trend_queries(client, auth, query):
    body = assert_error(client.get(f"{API}/trends?{query}", headers=auth("moderator")), 400, "validation_error")
    assert body["error"]["details"]


def test_stuck_alerts_bands_and_order(client, auth, connection):
    for minutes in (5, 10.05, 29.9, 30.05, 75, 150):
        make_active_job(connection, "s-q", minutes, kwargs={"to": f"{minutes}@x"})
    alerts = client.get(f"{API}/alerts/stuck", headers=auth("moderator")).get_json()
    assert [a["severity"] for a in alerts] == ["critical", "high", "medium", "low", "low"]
    assert [a["stuckDuration"] for a in alerts] == sorted((a["stuckDuration"] for a in alerts), reverse=True)
    first = alerts[0]
    assert first["queueName"] == "s-q" and first["jobName"] == "workers.tasks.sleep_for"
    assert first["data"] == {"args": [3600], "kwargs": {"to": "150@x"}}
    assert first["attemptsMade"] == 0 and first["startedAt"].endswith("Z")
    assert 150 * 60_000 <= first["stuckDuration"] < 151 * 60_000
    assert first["workerName"] == "test-worker"


def test_a_stuck_job_with_an_unreadable_payload_is_still_alerted(client, auth, connection):
    job = make_active_job(connection, "s-broken", 45)
    connection.hset(f"rq:job:{job.id}", "data", zlib.compress(b"\x80\x05not a pickle"))
    [alert] = client.get(f"{API}/alerts/stuck", headers=auth("moderator")).get_json()
    assert (alert["jobId"], alert["severity"]) == (job.id, "medium")
    assert alert["dataError"].startswith("cannot deserialize") and alert["jobName"] is None


def test_stuck_thresholds_come_from_configuration(redis_url, tmp_path, connection, make_user):
    from tests.conftest import login, make_app

    app = make_app(redis_url, tmp_path, STUCK_THRESHOLDS_MINUTES=(1, 2, 3, 4))
    client = app.test_client()
    make_user("cfg", "moderator")
    headers = {"Authorization": f"Bearer {login(client, 'cfg')['access_token']}"}
    make_active_job(connection, "s-cfg", 2.5)
    [alert] = client.get(f"{API}/alerts/stuck", headers=headers).get_json()
    assert alert["severity"] == "medium"


def test_job_pages_are_paginated_in_order(client, auth, connection):
    queue = Queue("p-list", connection=connection)
    ids = [queue.enqueue("workers.tasks.add", i, i).id for i in range(30)]
    headers = auth("moderator")
    page2 = client.get(f"{API}/queue/p-list/jobs?state=waiting&page=2&perPage=25", headers=headers).get_json()
    assert (page2["total"], page2["page"], page2["perPage"]) == (30, 2, 25)
    assert [job["jobId"] for job in page2["jobs"]] == ids[25:]
    assert page2["jobs"][0]["data"] == {"args": [25, 25], "kwargs": {}}
    beyond = client.get(f"{API}/queue/p-list/jobs?state=waiting&page=9", headers=headers).get_json()
    assert beyond["jobs"] == [] and beyond["total"] == 30


def test_failed_pages_are_newest_first(client, auth, connection, redis_url):
    queue = Queue("p-failed", connection=connection)
    for i in range(3):
        queue.enqueue("workers.tasks.fail", f"error {i}", failure_ttl=1000 + i)  # later failures expire later
    run_worker(redis_url, "p-failed")
    page = client.get(f"{API}/queue/p-failed/jobs?state=failed&perPage=2", headers=auth("moderator")).get_json()
    assert page["total"] == 3
    assert [job["failedReason"] for job in page["jobs"]] == ["error 2", "error 1"]  # the message, as BullMQ


def test_a_stopped_job_is_listed_as_stopped_among_the_failed(client, auth, connection, redis_url):
    queue = Queue("p-stopped", connection=connection)
    job = queue.enqueue("workers.tasks.sleep_for", 60)
    worker = start_worker(redis_url, "p-stopped")
    try:
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED)
        send_stop_job_command(connection, job.id)
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.STOPPED)
    finally:
        stop_worker(worker)
    headers = auth("moderator")
    page = client.get(f"{API}/queue/p-stopped/jobs?state=failed", headers=headers).get_json()
    assert [(listed["jobId"], listed["state"]) for listed in page["jobs"]] == [(job.id, "stopped")]
    assert client.get(f"{API}/job/p-stopped/{job.id}", headers=headers).get_json()["state"] == "stopped"


def test_an_unreadable_job_is_shown_marked_not_failing_the_page(client, auth, connection):
    queue = Queue("p-broken", connection=connection)
    good = queue.enqueue("workers.tasks.noop")
    bad = queue.enqueue("workers.tasks.noop")
    connection.hset(f"rq:job:{bad.id}", "data", zlib.compress(b"\x80\x05not a pickle"))
    gone = queue.enqueue("workers.tasks.noop")
    connection.delete(f"rq:job:{gone.id}")
    headers = auth("moderator")
    page = client.get(f"{API}/queue/p-broken/jobs?state=waiting", headers=headers).get_json()
    by_id = {job["jobId"]: job for job in page["jobs"]}
    assert "dataError" not in by_id[good.id]
    assert by_id[bad.id]["dataError"].startswith("cannot deserialize")
    assert by_id[gone.id]["dataError"] == "job data has expired"
    detail = client.get(f"{API}/job/p-broken/{bad.id}", headers=headers)
    assert detail.status_code == 200 and detail.get_json()["dataError"]


def test_job_detail_has_every_field(client, auth, connection, redis_url):
    queue = Queue("d-q", connection=connection)
    job = queue.enqueue("workers.tasks.send_email", "a@b.c", subject="Hi")
    run_worker(redis_url, "d-q")
    detail = client.get(f"{API}/job/d-q/{job.id}", headers=auth("moderator")).get_json()
    for field in (
        "jobId",
        "queueName",
        "jobName",
        "state",
        "data",
        "opts",
        "attemptsMade",
        "attemptsStarted",
        "timestamp",
        "processedOn",
        "finishedOn",
        "returnValue",
        "failedReason",
        "failedException",
        "stacktrace",
        "workerName",
        "retriedFrom",
        "retriedAs",
    ):
        assert field in detail, field
    assert detail["state"] == "completed" and detail["attemptsMade"] == 1
    assert detail["returnValue"] == {"to": "a@b.c", "subject": "Hi", "customParam": None}
    assert detail["opts"] == {"priority": 0, "attempts": 1, "backoff": None, "timeout": 180}
    assert detail["data"] == {"args": ["a@b.c"], "kwargs": {"subject": "Hi"}}


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/queue/nope/jobs", 404, "queue_not_found"),
        ("/queue/r-q/jobs?state=stuck", 400, "validation_error"),
        ("/queue/r-q/jobs?page=0", 400, "validation_error"),
        ("/queue/r-q/jobs?perPage=201", 400, "validation_error"),
        ("/queue/r-q/jobs?page=x", 400, "validation_error"),
        ("/queue/bad%20name/jobs", 400, "validation_error"),
        ("/job/nope/abc", 404, "queue_not_found"),
        ("/job/r-q/no-such-job", 404, "job_not_found"),
        ("/job/r-q/other-queue-job", 404, "job_not_found"),
        ("/job/r-q/bad%7Bid%7D", 400, "validation_error"),
    ],
)
def test_read_errors(client, auth, connection, url, status, code):
    Queue("r-q", connection=connection).enqueue("workers.tasks.noop")
    Queue("r-other", connection=connection).enqueue("workers.tasks.noop", job_id="other-queue-job")
    assert_error(client.get(API + url, headers=auth("moderator")), status, code)


def test_read_endpoints_refuse_other_methods(client, auth):
    assert_error(client.post(f"{API}/metrics", headers=auth("admin")), 405, "method_not_allowed")


def test_known_queue_counts_even_when_rq_forgot_it(client, auth, connection):
    connection.sadd(keys.KNOWN_QUEUES, "k-only")
    body = client.get(f"{API}/queue/k-only/jobs?state=completed", headers=auth("moderator")).get_json()
    assert body["total"] == 0
