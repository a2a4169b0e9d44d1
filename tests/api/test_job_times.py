"""When a job was first enqueued, last enqueued, and when a delayed one becomes waiting (detail and lists)."""

from __future__ import annotations

import time
from datetime import datetime

from rq import Queue
from rq.scheduler import RQScheduler

from app.domain import attempts
from tests.helpers import run_worker

API = "/api/v1/admin/jobs"


def seconds(iso: str) -> float:
    assert iso.endswith("Z"), iso
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_retried_job_shows_first_and_latest_enqueue_and_when_its_backoff_ends(client, auth, connection, redis_url):
    queue = Queue("t-times", connection=connection)
    backoff = {"type": "fixed", "delay": 60_000}
    job = queue.enqueue("workers.tasks.flaky", key="t-times-runs", failures=1, retry=attempts.retry_for(2, backoff))
    run_worker(redis_url, "t-times")  # the first attempt fails: the job waits 60 s for its second
    headers = auth("moderator")

    delayed = client.get(f"{API}/job/t-times/{job.id}", headers=headers).get_json()
    assert delayed["state"] == "delayed"
    assert time.time() + 50 < seconds(delayed["delayUntil"]) <= time.time() + 61
    assert seconds(delayed["timestamp"]) <= seconds(delayed["enqueuedAt"]) < seconds(delayed["processedOn"])
    page = client.get(f"{API}/queue/t-times/jobs?state=delayed", headers=headers).get_json()
    assert [(j["jobId"], j["delayUntil"]) for j in page["jobs"]] == [(job.id, delayed["delayUntil"])]
    assert page["jobs"][0]["timestamp"] == delayed["timestamp"]

    connection.zadd(queue.scheduled_job_registry.key, {job.id: time.time() - 1})  # fast-forward to the delay's end
    scheduler = RQScheduler(["t-times"], connection=connection)
    scheduler.prepare_registries(["t-times"])
    scheduler.enqueue_scheduled_jobs()  # RQ's scheduler requeues it: enqueued_at is re-set, started_at kept
    requeued = client.get(f"{API}/job/t-times/{job.id}", headers=headers).get_json()
    assert requeued["state"] == "waiting" and requeued["delayUntil"] is None
    assert requeued["timestamp"] == delayed["timestamp"]  # the first enqueue stays
    assert seconds(requeued["enqueuedAt"]) > seconds(requeued["processedOn"])  # latest enqueue, after the 1st run
    summaries = client.get(f"{API}/queue/t-times/jobs?state=waiting", headers=headers).get_json()["jobs"]
    assert [(j["jobId"], j["delayUntil"], j["enqueuedAt"]) for j in summaries] == [
        (job.id, None, requeued["enqueuedAt"])
    ]

    run_worker(redis_url, "t-times")
    done = client.get(f"{API}/job/t-times/{job.id}", headers=headers).get_json()
    assert done["state"] == "completed" and done["timestamp"] == delayed["timestamp"]
    assert seconds(done["timestamp"]) < seconds(done["enqueuedAt"]) <= seconds(done["processedOn"])
