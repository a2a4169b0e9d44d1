"""GET /metrics: the exposition parses with prometheus_client's own parser, every family is one of the contract's,
the counters come from what real workers recorded and never decrease; auth and Redis down answer in plain text."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue, Retry
from rq.registry import CanceledJobRegistry

from app.domain import counters, keys, tokens
from app.domain.queues import remember_queue
from app.domain.severity import SEVERITIES
from app.domain.users import Role
from app.prometheus import FAMILIES
from app.ticker import make_ticker
from tests.conftest import make_app
from tests.helpers import make_active_job, run_worker

ALWAYS_SAMPLED = set(FAMILIES) - {
    "rqmon_schedule_next_run_timestamp_seconds",
    "rqmon_schedule_last_run_timestamp_seconds",
    "rqmon_alerts_firing",
}


@pytest.fixture
def api_token(connection, make_user) -> str:
    creator = make_user("prom-admin", Role.SUPER_ADMIN)
    secret, _ = tokens.create_token(connection, "scraper", Role.MODERATOR, creator, Role.SUPER_ADMIN)
    return secret


def scrape(client, secret: str) -> dict[str, dict]:
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200, answer.data
    assert answer.content_type.startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(answer.get_data(as_text=True))}
    return families


def samples(family, name: str | None = None) -> dict[tuple, float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for sample in family.samples
        if name is None or sample.name == name
    }


def test_families_and_counters_from_real_workers(client, connection, api_token):
    queue = Queue("prom-q", connection=connection)
    for n in range(3):
        queue.enqueue("workers.tasks.add", n, 1)
    queue.enqueue("workers.tasks.fail")
    queue.enqueue("workers.tasks.fail", retry=Retry(max=1))
    run_worker(client.application.config["REDIS_URL"], "prom-q")
    queue.enqueue("workers.tasks.add", 5, 5)  # one waiting job: rq_jobs queued, latency

    families = scrape(client, api_token)
    # prometheus_client's parser names counters without _total: map back to the exposed names.
    exposed = {name + "_total" if family.type == "counter" else name for name, family in families.items()}
    assert exposed <= set(FAMILIES)
    assert exposed >= ALWAYS_SAMPLED
    jobs = samples(families["rq_jobs"])
    assert jobs[(("queue", "prom-q"), ("status", "queued"))] == 1
    assert jobs[(("queue", "prom-q"), ("status", "finished"))] == 3
    assert jobs[(("queue", "prom-q"), ("status", "failed"))] == 2
    assert {dict(key)["status"] for key in jobs} == {
        "queued", "started", "finished", "failed", "deferred", "scheduled", "canceled", "prioritized"
    }  # fmt: skip
    finished = samples(families["rqmon_jobs_finished"], "rqmon_jobs_finished_total")
    assert finished[(("outcome", "completed"), ("queue", "prom-q"))] == 3
    assert finished[(("outcome", "failed"), ("queue", "prom-q"))] == 2
    assert finished[(("outcome", "retried"), ("queue", "prom-q"))] == 1
    duration = families["rqmon_job_duration_seconds"]
    count = samples(duration, "rqmon_job_duration_seconds_count")[(("queue", "prom-q"),)]
    assert count == 6
    buckets = samples(duration, "rqmon_job_duration_seconds_bucket")
    assert buckets[(("le", "+Inf"), ("queue", "prom-q"))] == 6
    assert samples(families["rqmon_queue_latency_seconds"])[(("queue", "prom-q"),)] >= 0
    assert samples(families["rqmon_queue_paused"])[(("queue", "prom-q"),)] == 0
    assert samples(families["rqmon_stuck_jobs"]) == {}  # no stuck run: no sample

    # The windowed history can expire or be trimmed; the counters do not depend on it, and a new worker adds.
    connection.delete(*connection.keys(keys.stats_bucket("*", 0).replace(":0", ":*")), keys.OUTCOMES)
    run_worker(client.application.config["REDIS_URL"], "prom-q")
    finished = samples(scrape(client, api_token)["rqmon_jobs_finished"], "rqmon_jobs_finished_total")
    assert finished[(("outcome", "completed"), ("queue", "prom-q"))] == 4


def test_workers_are_listed_with_rq_exporter_labels(client, connection, api_token):
    Queue("prom-w", connection=connection).enqueue("workers.tasks.noop")
    connection.hset("rq:worker:prom-worker", mapping={"queues": "prom-w,other", "state": "idle",
                                                      "last_heartbeat": "2026-01-01T00:00:00.000000Z"})  # fmt: skip
    connection.sadd("rq:workers", "rq:worker:prom-worker")
    families = scrape(client, api_token)
    assert samples(families["rq_workers"]) == {
        (("name", "prom-worker"), ("queues", "prom-w,other"), ("state", "idle")): 1
    }
    assert samples(families["rqmon_worker_last_heartbeat_timestamp_seconds"])[(("name", "prom-worker"),)] > 0


def test_bucket_index_edges():
    assert counters.bucket_index(0) == 0
    assert counters.bucket_index(10) == 0  # 0.01 s is inside the first bucket (le is inclusive)
    assert counters.bucket_index(11) == 1
    assert counters.bucket_index(10**9) == len(counters.DURATION_BUCKETS)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Bearer rqm_" + "x" * 43}],
    ids=["none", "jwt-like", "unknown-api-token"],
)
def test_refused_in_plain_text(client, headers):
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 401
    assert answer.content_type.startswith("text/plain")
    assert answer.get_data(as_text=True).startswith("401 ")


def test_an_access_jwt_is_not_a_scrape_token(client, auth):
    assert client.get("/metrics", headers=auth("admin")).status_code == 401


def test_public_metrics_need_no_token(redis_url, tmp_path):
    client = make_app(redis_url, tmp_path, METRICS_PUBLIC=True).test_client()
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert "# TYPE rq_jobs gauge" in answer.get_data(as_text=True)


def test_redis_down_is_503_in_plain_text(tmp_path):
    client = make_app("redis://127.0.0.1:1/0", tmp_path, METRICS_PUBLIC=True).test_client()
    answer = client.get("/metrics")
    assert answer.status_code == 503
    assert answer.content_type.startswith("text/plain")


def test_two_round_trips_with_the_api_token_whatever_the_size(client, connection, api_token, round_trips):
    for index in range(20):
        Queue(f"prom-rt-{index}", connection=connection).enqueue("workers.tasks.noop")
    for index in range(10):
        connection.hset(f"rq:worker:prom-rt-{index}", mapping={"queues": "prom-rt-0", "state": "idle"})
        connection.sadd("rq:workers", f"rq:worker:prom-rt-{index}")
    scrape(client, api_token)  # warm: the pooled connection is open
    round_trips[0] = 0
    families = scrape(client, api_token)
    assert round_trips[0] == 2  # the token check, then one pipeline (the worker registry included)
    assert len(samples(families["rqmon_queue_paused"])) == 20


def test_stuck_runs_come_from_the_last_tick(client, connection, api_token):
    make_active_job(connection, "prom-stuck", 45)
    families = scrape(client, api_token)
    assert samples(families["rqmon_stuck_jobs"]) == {}  # not counted yet: no tick has run
    assert make_ticker(client.application).tick(time.time())  # the alert rules count the stuck runs
    families = scrape(client, api_token)
    stuck = samples(families["rqmon_stuck_jobs"])
    assert stuck == {
        (("queue", "prom-stuck"), ("severity", severity)): int(severity == "medium") for severity in SEVERITIES
    }
    firing = samples(families["rqmon_alerts_firing"])
    assert firing[(("rule", "stuck_jobs"), ("severity", "warning"))] == 1


def test_schedule_families_have_samples_once_schedules_exist(client, connection, api_token):
    from tests.workers.test_scheduler import create  # noqa: PLC0415 - its schedule helper, real rq-scheduler jobs

    families = scrape(client, api_token)
    assert (
        "rqmon_schedule_next_run_timestamp_seconds" not in families
        or not families["rqmon_schedule_next_run_timestamp_seconds"].samples
    )
    schedule = create(connection)
    families = scrape(client, api_token)
    next_runs = samples(families["rqmon_schedule_next_run_timestamp_seconds"])
    assert next_runs[(("schedule", schedule["name"]),)] > time.time()


def test_canceled_count_and_latency_per_queue(client, connection, api_token):
    """Read by the counts' own script (its ZCARD and HEAD columns): every canceled entry, as RQ counts them (RQ
    scores one at the time of the cancel and never expires it), and the age of the job at the head of the queue's
    list from its enqueued_at; an empty queue waits 0 s."""
    queue = Queue("prom-latency", connection=connection)
    oldest = queue.enqueue("workers.tasks.noop")
    queue.enqueue("workers.tasks.noop")
    queue.enqueue("workers.tasks.noop").cancel()  # RQ's own cancel
    connection.hset(oldest.key, "enqueued_at", "2026-01-01T00:00:00.250000Z")
    remember_queue(connection, "prom-empty")  # known, and its list empty
    registry = CanceledJobRegistry("prom-empty", connection=connection)
    connection.zadd(registry.key, {"prom-empty-canceled": time.time() - 3600})  # canceled an hour ago
    time.sleep(0.01)  # RQ's entry is now in the past as well
    assert CanceledJobRegistry("prom-latency", connection=connection).count == 1 == registry.count  # RQ's counts

    before = time.time()
    families = scrape(client, api_token)
    after = time.time()
    head_age = datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=UTC).timestamp()
    latency = samples(families["rqmon_queue_latency_seconds"])
    assert before - head_age <= latency[(("queue", "prom-latency"),)] <= after - head_age
    assert latency[(("queue", "prom-empty"),)] == 0
    jobs = samples(families["rq_jobs"])
    assert jobs[(("queue", "prom-latency"), ("status", "canceled"))] == 1
    assert jobs[(("queue", "prom-latency"), ("status", "queued"))] == 2
    assert jobs[(("queue", "prom-empty"), ("status", "canceled"))] == 1
    assert jobs[(("queue", "prom-empty"), ("status", "queued"))] == 0
