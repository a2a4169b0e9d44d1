"""Webhook delivery of alerts by a real MonitoredWorker on the queue rqmon.notifications, to local HTTP receivers
(http.server in threads): a firing from a real tick arrives as the generic document; a 500 is retried with backoff
until it is taken; a redirect to another host is never followed (the job fails, visibly); a dead endpoint leaves the
tick as fast as ever."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from rq import Queue
from rq.job import Job, JobStatus

from app.domain import attempts, keys
from app.domain.notifications import QUEUED_DELIVERY_TTL, backoff, body_for, enqueue_notifications, format_for
from app.ticker import make_ticker
from tests.conftest import make_app
from tests.helpers import start_worker, stop_worker, wait_for


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records each POST and answers with the next planned status."""

    def __init__(self, answers: list[int] | None = None, location: str | None = None):
        self.posts: list[dict[str, Any]] = []
        self.answers = list(answers or [])
        self.location = location
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                receiver.posts.append(
                    {"body": json.loads(self.rfile.read(length)), "type": self.headers.get("Content-Type")}
                )
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                if receiver.location and 300 <= status < 400:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(*args: Any, **kwargs: Any) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def notifier(redis_url):
    worker = start_worker(redis_url, keys.NOTIFICATIONS_QUEUE, with_scheduler=True)
    yield worker
    stop_worker(worker)


ALERT = {
    "id": "queue_backlog:queue:q",
    "rule": "queue_backlog",
    "severity": "warning",
    "subject": {"kind": "queue", "name": "q"},
    "value": 150,
    "threshold": 100,
    "since": "2026-01-01T00:00:00.000Z",
    "message": "150 jobs wait in q (over 100)",
}


def test_a_firing_from_a_real_tick_is_posted_by_a_worker(redis_url, tmp_path, connection, receivers, notifier):
    receiver = receivers()
    app = make_app(
        redis_url,
        tmp_path,
        ALERT_WEBHOOK_URLS=(receiver.url,),
        ALERT_QUEUE_BACKLOG=2,
        ALERT_QUEUE_BACKLOG_FOR=0,
        ALERT_NO_WORKERS=None,
    )
    queue = Queue("n-backlog", connection=connection)
    for n in range(3):
        queue.enqueue("workers.tasks.add", n, 1)
    assert make_ticker(app).tick(time.time())
    wait_for(lambda: receiver.posts, timeout=30)
    post = receiver.posts[0]
    assert post["type"] == "application/json"
    assert post["body"]["status"] == "firing"
    assert post["body"]["health"] == "degraded"
    assert post["body"]["alert"]["rule"] == "queue_backlog"
    assert post["body"]["alert"]["subject"] == {"kind": "queue", "name": "n-backlog"}


def test_a_500_is_retried_with_backoff_until_taken(connection, receivers, notifier):
    receiver = receivers(answers=[500, 500])
    [job_id] = enqueue_notifications(connection, [("resolved", ALERT)], [receiver.url], "healthy", backoff_seconds=1)
    job = Job.fetch(job_id, connection=connection)
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, timeout=60, interval=0.2)
    assert len(receiver.posts) == 3  # two refusals, then taken
    assert all(post["body"]["status"] == "resolved" for post in receiver.posts)


def test_a_redirect_to_another_host_is_not_followed(connection, receivers, notifier):
    elsewhere = receivers()
    redirecting = receivers(answers=[302] * 10, location=elsewhere.url.replace("127.0.0.1", "localhost"))
    [job_id] = enqueue_notifications(connection, [("firing", ALERT)], [redirecting.url], "degraded", backoff_seconds=1)
    job = Job.fetch(job_id, connection=connection)
    wait_for(lambda: len(redirecting.posts) >= 2, timeout=60, interval=0.2)  # failed, then retried
    assert elsewhere.posts == []

    def recorded_errors() -> list[str]:
        job.refresh()
        return [error["message"] for error in job.meta.get(attempts.ERRORS, [])]

    wait_for(recorded_errors, timeout=30, interval=0.2)
    assert "answered 302" in recorded_errors()[0] and "not followed" in recorded_errors()[0]
    assert job.get_status() != JobStatus.FINISHED


def test_a_dead_endpoint_never_touches_the_tick(redis_url, tmp_path, connection):
    app = make_app(
        redis_url,
        tmp_path,
        ALERT_WEBHOOK_URLS=("http://10.255.255.1:9/never",),  # nothing answers there
        ALERT_QUEUE_BACKLOG=0,
        ALERT_QUEUE_BACKLOG_FOR=0,
    )
    Queue("n-dead", connection=connection).enqueue("workers.tasks.noop")
    started = time.monotonic()
    assert make_ticker(app).tick(time.time())
    assert time.monotonic() - started < 5  # queued, not sent: no connection is attempted by the tick
    queued = Queue(keys.NOTIFICATIONS_QUEUE, connection=connection).get_jobs()
    assert {job.func_name for job in queued} == {"workers.notify.deliver"}
    assert all(job.retries_left == 5 for job in queued)
    # Undelivered (no worker on the queue) they expire after a day instead of piling up.
    assert all(job.ttl == QUEUED_DELIVERY_TTL == 86400 for job in queued)
    assert all(0 < connection.ttl(job.key) <= QUEUED_DELIVERY_TTL for job in queued)


def test_shapes_and_backoff():
    assert format_for("https://hooks.slack.com/services/T/B/x") == "slack"
    assert format_for("https://example.com/hook") == "generic"
    assert format_for("https://example.com/hook", "slack") == "slack"
    slack = body_for("firing", ALERT, "degraded", "slack")
    assert set(slack) == {"text"} and "queue_backlog" in slack["text"] and "FIRING" in slack["text"]
    assert body_for("resolved", ALERT, "healthy", "generic") == {
        "status": "resolved",
        "alert": ALERT,
        "health": "healthy",
    }
    assert backoff(10) == [10, 20, 40, 80, 160]
