"""Poison jobs: what any plain RQ producer can enqueue (a non-UTF-8 file name kept with surrogateescape, deeply
nested kwargs, bytes that are no pickle) is shown with what can be read, marked `unreadable` where a field could
not be — never a 500 for the page, the detail, stuck alerts or the live documents (API.md, job detail)."""

from __future__ import annotations

import json
import zlib

import pytest
from rq import Queue
from rq.job import Job

from app.domain import attempts
from app.domain.users import Role
from app.sse import wire
from tests.api.test_live import read_events
from tests.conftest import login
from tests.helpers import make_active_job

API = "/api/v1/admin/jobs"
SURROGATE_NAME = b"report-\xff.csv".decode("utf-8", "surrogateescape")  # "report-\udcff.csv"


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


@pytest.fixture
def moderator(client, make_user) -> dict[str, str]:
    return {"Authorization": f"Bearer {login(client, make_user('poison-reader', Role.MODERATOR))['access_token']}"}


def poison(connection, queue_name: str) -> dict[str, str]:
    """One job of each kind, enqueued as a plain RQ producer would (plus one fine job), by kind."""
    queue = Queue(queue_name, connection=connection)
    jobs = {
        "fine": queue.enqueue("workers.tasks.add", 1, 2),
        "surrogate": queue.enqueue("workers.tasks.noop", SURROGATE_NAME, path={"name": SURROGATE_NAME}),
        "deep": queue.enqueue("workers.tasks.noop", tree=nested(400)),
        "garbage": queue.enqueue("workers.tasks.noop"),
        "bad-date": queue.enqueue("workers.tasks.noop", 7),
    }
    connection.hset(f"rq:job:{jobs['garbage'].id}", "data", b"\x00\x01 not zlib, not a pickle")
    connection.hset(f"rq:job:{jobs['bad-date'].id}", "created_at", b"yesterday-ish")
    return {kind: job.id for kind, job in jobs.items()}


def assert_json_text(response) -> dict | list:
    """The body is JSON a strict parser reads (no lone surrogates, no NaN)."""
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    text = response.get_data()
    text.decode("utf-8")  # strict
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in a response"))


def test_a_page_holding_poison_jobs_shows_every_job(client, moderator, connection):
    ids = poison(connection, "poison-page")
    page = assert_json_text(client.get(f"{API}/queue/poison-page/jobs?state=waiting", headers=moderator))
    by_id = {job["jobId"]: job for job in page["jobs"]}
    assert set(by_id) == set(ids.values())
    fine, surrogate = by_id[ids["fine"]], by_id[ids["surrogate"]]
    assert fine["data"] == {"args": [1, 2], "kwargs": {}} and not fine.get("unreadable")
    assert surrogate["jobName"] == "workers.tasks.noop"
    assert surrogate["data"]["args"] == ["report-\\udcff.csv"]  # shown escaped, not dropped
    assert surrogate["data"]["kwargs"] == {"path": {"name": "report-\\udcff.csv"}}
    deep = by_id[ids["deep"]]
    assert deep["unreadable"] is True and deep["data"] is None and deep["jobName"] == "workers.tasks.noop"
    garbage = by_id[ids["garbage"]]
    assert garbage["unreadable"] is True and garbage["data"] is None and garbage["jobName"] is None
    assert garbage["state"] == "waiting" and garbage["timestamp"]  # what can be read is shown
    bad_date = by_id[ids["bad-date"]]
    assert bad_date["unreadable"] is True and bad_date["jobId"] == ids["bad-date"]


@pytest.mark.parametrize("kind", ["fine", "surrogate", "deep", "garbage", "bad-date"])
def test_the_detail_of_a_poison_job_answers(client, moderator, connection, kind):
    ids = poison(connection, "poison-detail")
    detail = assert_json_text(client.get(f"{API}/job/poison-detail/{ids[kind]}", headers=moderator))
    assert detail["jobId"] == ids[kind] and detail["queueName"] == "poison-detail" and detail["state"] == "waiting"
    assert detail.get("unreadable", False) is (kind in ("deep", "garbage", "bad-date"))
    if kind == "deep":
        assert detail["data"] is None and detail["jobName"] == "workers.tasks.noop"
    if kind == "garbage":
        assert detail["data"] is None and detail["jobName"] is None and detail["timestamp"]
    if kind == "bad-date":
        assert detail["timestamp"] is None and detail["data"] == {"args": [7], "kwargs": {}}


def test_a_job_of_another_queue_stays_404_even_unreadable(client, moderator, connection):
    ids = poison(connection, "poison-origin")
    Queue("poison-other", connection=connection).enqueue("workers.tasks.noop")
    response = client.get(f"{API}/job/poison-other/{ids['bad-date']}", headers=moderator)
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "job_not_found"


def test_stuck_alerts_and_the_live_document_survive_poison_runs(client, moderator, connection):
    make_active_job(connection, "poison-stuck", 45, args=(SURROGATE_NAME,))
    deep = make_active_job(connection, "poison-stuck", 40, kwargs={"tree": nested(400)})
    alerts = assert_json_text(client.get(f"{API}/alerts/stuck", headers=moderator))
    assert [alert["severity"] for alert in alerts] == ["medium", "medium"]
    assert alerts[0]["data"]["args"] == ["report-\\udcff.csv"]
    assert alerts[1]["jobId"] == deep.id and alerts[1]["unreadable"] is True and alerts[1]["data"] is None
    response = client.get(f"{API}/queue/poison-stuck/live", headers=moderator, buffered=False)
    [event] = read_events(response, 1)
    response.close()
    assert {run["jobId"] for run in event["activeJobs"]} >= {deep.id}
    assert len(event["stuck"]) == 2


def test_the_live_wire_format_never_fails_on_job_data(connection):
    ids = poison(connection, "poison-wire")
    from app.domain.jobs import list_jobs

    document = list_jobs(connection, "poison-wire", "waiting")
    decoded = json.loads(json.loads(wire(document))["data"])
    assert len(decoded["jobs"]) == len(ids)


def test_garbage_compressed_data_is_still_marked(client, moderator, connection):
    job = Queue("poison-zlib", connection=connection).enqueue("workers.tasks.noop")
    connection.hset(f"rq:job:{job.id}", "data", zlib.compress(b"\x80\x05not a pickle"))
    detail = assert_json_text(client.get(f"{API}/job/poison-zlib/{job.id}", headers=moderator))
    assert detail["unreadable"] is True and detail["data"] is None


@pytest.mark.parametrize("kind", ["surrogate", "deep", "garbage", "bad-date"])
def test_the_job_page_of_a_poison_job_opens(client, make_user, connection, kind):
    from tests.api.test_pages import sign_in  # noqa: PLC0415

    ids = poison(connection, "poison-page-html")
    make_user("poison-page-reader", Role.MODERATOR)
    sign_in(client, "poison-page-reader")
    response = client.get(f"/admin/queues/poison-page-html/jobs/{ids[kind]}")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "text/html"


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("surrogate", 201, None),
        ("deep", 201, None),
        ("garbage", 409, "job_not_retryable"),
        ("garbage-meta", 409, "job_not_retryable"),
        ("bad-date", 409, "job_unreadable"),
    ],
)
def test_retrying_a_poison_job_is_done_or_refused_never_a_500(client, make_user, connection, kind, status, code):
    from tests.api.test_job_actions import failed_job  # noqa: PLC0415

    admin = {"Authorization": f"Bearer {login(client, make_user('poison-admin', Role.ADMIN))['access_token']}"}
    arguments = {"surrogate": ((SURROGATE_NAME,), {}), "deep": ((), {"tree": nested(100)})}.get(kind, (("x",), {}))
    job = failed_job(connection, None, "poison-retry", *arguments[0], **arguments[1])
    broken = {"garbage": {"data": b"\x00garbage"}, "garbage-meta": {"meta": b"?"}, "bad-date": {"created_at": b"?"}}
    if kind in broken:
        connection.hset(f"rq:job:{job.id}", mapping=broken[kind])
    before = connection.hgetall(f"rq:job:{job.id}")
    response = client.post(f"{API}/retry/poison-retry/{job.id}", json={}, headers=admin)
    assert response.status_code == status, response.get_json()
    if code:
        assert response.get_json()["error"]["code"] == code
        assert connection.hgetall(f"rq:job:{job.id}") == before  # refused: the original is untouched


def test_an_unreadable_jobs_summary_has_the_keys_of_a_readable_ones(client, moderator, connection):
    """One list of summary fields, whichever way a job is decoded: an unreadable job's summary lacks none (it
    once had no retriedAs), and shows those its readable parts give."""
    ids = poison(connection, "poison-keys")
    serializer = Job.fetch(ids["fine"], connection=connection).serializer
    connection.hset(f"rq:job:{ids['garbage']}", "meta", serializer.dumps({attempts.RETRIED_AS: "the-retry"}))
    page = assert_json_text(client.get(f"{API}/queue/poison-keys/jobs?state=waiting", headers=moderator))
    by_id = {job["jobId"]: job for job in page["jobs"]}
    readable = set(by_id[ids["fine"]])
    assert "retriedAs" in readable
    for kind in ("deep", "garbage", "bad-date"):
        summary = by_id[ids[kind]]
        assert summary["unreadable"] is True
        assert set(summary) - {"unreadable", "dataError"} == readable, kind
    assert by_id[ids["garbage"]]["retriedAs"] == "the-retry"


def keys_of_another_type(connection) -> None:
    """What another program may leave: a queue named in rq:queues whose key is not a list, and a queue whose
    registries are not sorted sets, beside a fine queue."""
    Queue("poison-fine", connection=connection).enqueue("workers.tasks.add", 1, 2)
    connection.sadd("rq:queues", "rq:queue:poison-string", "rq:queue:poison-hash")
    connection.set("rq:queue:poison-string", "not a list")
    connection.hset("rq:queue:poison-hash", "a", "b")
    Queue("poison-registries", connection=connection).enqueue("workers.tasks.add", 3, 4)
    for registry in ("wip", "finished", "failed", "scheduled", "deferred"):
        connection.set(f"rq:{registry}:poison-registries", "not a sorted set")


def test_a_key_of_another_type_counts_as_empty_and_every_other_queue_is_counted(client, moderator, connection):
    keys_of_another_type(connection)
    metrics = assert_json_text(client.get(f"{API}/metrics", headers=moderator))
    by_name = {queue["queueName"]: queue for queue in metrics["queues"]}
    assert by_name["poison-fine"]["waiting"] == 1
    assert by_name["poison-string"]["waiting"] == by_name["poison-hash"]["waiting"] == 0
    odd = by_name["poison-registries"]
    assert odd["waiting"] == 1 and odd["active"] == odd["completed"] == odd["failed"] == odd["delayed"] == 0
    status = assert_json_text(client.get("/api/v1/workers/queue/status", headers=moderator))
    assert status["queues"]["poison-fine"]["size"] == 1 and status["queues"]["poison-string"]["size"] == 0
    assert_json_text(client.get("/api/v1/workers/overview", headers=moderator))
    from app.domain.metrics import get_queue_metrics  # noqa: PLC0415

    assert get_queue_metrics(connection, "poison-string")["waiting"] == 0
    assert get_queue_metrics(connection, "poison-registries")["failed"] == 0


def test_the_scrape_counts_every_queue_beside_a_key_of_another_type(redis_url, tmp_path, connection):
    from tests.conftest import make_app  # noqa: PLC0415

    keys_of_another_type(connection)
    response = make_app(redis_url, tmp_path, METRICS_PUBLIC=True).test_client().get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert 'rq_jobs{queue="poison-fine",status="queued"} 1.0' in response.get_data(as_text=True)


def test_a_list_holding_ids_of_no_job_hash_shows_each_and_the_rest(client, moderator, connection):
    """Ids another program pushed: one whose key is a string (or a list), one of non-UTF-8 bytes, one of no key."""
    fine = Queue("poison-ids", connection=connection).enqueue("workers.tasks.add", 1, 2)
    connection.rpush("rq:queue:poison-ids", "as-string", b"bytes-\xff", "ghost")
    connection.set("rq:job:as-string", "not a hash")
    connection.zadd("rq:failed:poison-ids", {"as-list": 9999999999, b"failed-\xfe": 9999999999})
    connection.rpush("rq:job:as-list", "not a hash")
    waiting = assert_json_text(client.get(f"{API}/queue/poison-ids/jobs?state=waiting", headers=moderator))
    by_id = {job["jobId"]: job for job in waiting["jobs"]}
    assert waiting["total"] == 4 and by_id[fine.id]["data"] == {"args": [1, 2], "kwargs": {}}
    assert by_id["as-string"]["dataError"] == "the job's key is not a hash"
    assert by_id["bytes-\\udcff"]["dataError"] == by_id["ghost"]["dataError"] == "job data has expired"
    failed = assert_json_text(client.get(f"{API}/queue/poison-ids/jobs?state=failed", headers=moderator))
    assert {job["jobId"]: job.get("dataError") for job in failed["jobs"]} == {
        "as-list": "the job's key is not a hash",
        "failed-\\udcfe": "job data has expired",
    }


@pytest.mark.parametrize("path", [f"{API}/job/poison-ids/as-string", "/admin/queues/poison-ids/jobs/as-string"])
def test_asking_for_a_key_of_another_type_as_a_job_is_a_404(client, make_user, connection, path):
    from tests.api.test_pages import sign_in  # noqa: PLC0415

    Queue("poison-ids", connection=connection).enqueue("workers.tasks.add", 1, 2)
    connection.set("rq:job:as-string", "not a hash")
    make_user("poison-key-reader", Role.MODERATOR)
    headers = {"Authorization": f"Bearer {login(client, 'poison-key-reader')['access_token']}"}
    sign_in(client, "poison-key-reader")
    response = client.get(path, headers=headers)
    assert response.status_code == 404, response.get_data(as_text=True)[:300]
    assert connection.get("rq:job:as-string") == b"not a hash"  # read, never touched


def test_a_waiting_list_or_registry_of_another_type_pages_as_empty(client, moderator, connection):
    keys_of_another_type(connection)
    for queue, state in [
        ("poison-string", "waiting"),
        ("poison-hash", "waiting"),
        ("poison-registries", "active"),
        ("poison-registries", "completed"),
        ("poison-registries", "failed"),
        ("poison-registries", "delayed"),
    ]:
        page = assert_json_text(client.get(f"{API}/queue/{queue}/jobs?state={state}", headers=moderator))
        assert page["total"] == 0 and page["jobs"] == [], (queue, state)


def test_a_queue_name_of_non_utf8_bytes_is_shown_escaped_beside_every_other_queue(client, moderator, connection):
    Queue("poison-named", connection=connection).enqueue("workers.tasks.add", 1, 2)
    connection.sadd("rq:queues", b"rq:queue:bytes-\xff")
    connection.rpush(b"rq:queue:bytes-\xff", "some-job")
    connection.sadd("rqmon:queues", b"seen-\xfe")
    metrics = assert_json_text(client.get(f"{API}/metrics", headers=moderator))
    waiting = {queue["queueName"]: queue["waiting"] for queue in metrics["queues"]}
    assert waiting["poison-named"] == 1 and "bytes-\\udcff" in waiting and "seen-\\udcfe" in waiting
    assert_json_text(client.get(f"{API}/trends", headers=moderator))
    assert_json_text(client.get(f"{API}/alerts/stuck", headers=moderator))
    assert_json_text(client.get("/api/v1/workers/queue/status", headers=moderator))


@pytest.mark.parametrize("kind", ["finished", "failed"])
def test_a_results_key_of_another_type_leaves_the_job_readable(client, moderator, connection, kind):
    from tests.api.test_job_actions import failed_job  # noqa: PLC0415

    if kind == "failed":
        job = failed_job(connection, None, "poison-results", "x")
    else:
        job = Queue("poison-results", connection=connection).enqueue("workers.tasks.add", 1, 2)
    connection.set(f"rq:results:{job.id}", "not a stream")
    detail = assert_json_text(client.get(f"{API}/job/poison-results/{job.id}", headers=moderator))
    assert detail["jobId"] == job.id and detail["data"]["args"] and detail["returnValue"] is None
    assert connection.get(f"rq:results:{job.id}") == b"not a stream"


def test_counters_another_program_overwrote_count_as_zero_and_the_rest_is_shown(client, moderator, connection):
    """The product's own counter hashes (outcome window, history buckets, Prometheus counters, worker stats) with a
    value that is no integer and a field of non-UTF-8 bytes: each read shows the rest, never a 500."""
    from app.domain import outcomes  # noqa: PLC0415

    queue = Queue("poison-counted", connection=connection)
    for outcome in ("ok", "ok", "fail"):
        job = Job.fetch(queue.enqueue("workers.tasks.add", 1, 2).id, connection=connection)
        job.worker_name = "poison-worker"
        error = outcomes.failure("boom", "RuntimeError", "tb") if outcome == "fail" else None
        outcomes.record_end(connection, job, outcome, dict(job.meta), error, 1000)
    for key in connection.keys("rqmon:*stats*") + [b"rqmon:outcomes:counts", b"rqmon:counters"]:
        for field in connection.hkeys(key):
            if field.endswith(b"|fail") or key.startswith(b"rqmon:worker-stats"):
                connection.hset(key, field, b"\xffnot a number")
        connection.hset(key, b"poison-counted|\xfe", b"7")
    metrics = assert_json_text(client.get(f"{API}/metrics", headers=moderator))
    assert [q for q in metrics["queues"] if q["queueName"] == "poison-counted"][0]["processingRate"] > 0
    trends = assert_json_text(client.get(f"{API}/trends?series=1", headers=moderator))
    assert [t for t in trends if t["queueName"] == "poison-counted"][0]["successful"] == 2
    for path in ("/api/v1/workers/overview", "/api/v1/workers/performance/metrics", "/api/v1/workers/queue/status"):
        assert_json_text(client.get(path, headers=moderator))
    from app.domain.counters import read_counters  # noqa: PLC0415

    assert read_counters(connection)["poison-counted"].finished["completed"] == 2


def test_stored_alerts_that_are_not_alerts_are_left_out_and_the_real_ones_shown(
    redis_url, tmp_path, connection, make_user
):
    """The product's alert keys with another program's values: each read shows the real alerts, never a 500."""
    from app.domain import alerts, keys  # noqa: PLC0415
    from tests.conftest import make_app  # noqa: PLC0415

    real = {
        "id": "queue_backlog:queue:q",
        "rule": "queue_backlog",
        "severity": "critical",
        "since": "2026-01-01T00:00:00Z",
        "message": "q has a backlog",
        "subject": {"kind": "queue", "name": "q"},
        "value": 5,
        "threshold": 1,
    }
    garbage = [b"\xff", b"", b"5", b"[1, 2]", b"[" * 5000, b'{"severity": "critical"}']
    connection.hset(
        keys.ALERTS_FIRING, mapping={"real": json.dumps(real), **{f"odd-{i}": g for i, g in enumerate(garbage)}}
    )
    connection.lpush(keys.ALERTS_RECENT, *garbage[1:], json.dumps(real | {"resolved_at": "2026-01-01T01:00:00Z"}))
    connection.set(keys.ALERTS_FACTS, b"[" * 5000)
    client = make_app(redis_url, tmp_path, METRICS_PUBLIC=True).test_client()
    make_user("poison-alerts", Role.MODERATOR)
    headers = {"Authorization": f"Bearer {login(client, 'poison-alerts')['access_token']}"}
    listed = assert_json_text(client.get("/api/v1/alerts", headers=headers))
    assert [alert["id"] for alert in listed["firing"]] == [real["id"]] and len(listed["recent"]) == 1
    health = assert_json_text(client.get("/api/v1/health", headers=headers))
    assert health["alerts"]["critical"] == 1 and health["status"] == "critical"
    overview = assert_json_text(client.get("/api/v1/workers/overview", headers=headers))
    assert overview["system_overview"]["health_reasons"] == ["q has a backlog"]
    assert_json_text(client.get("/api/v1/workers/queue/status", headers=headers))
    assert alerts.alerts_summary(connection)["firing"] == 1
    scrape = client.get("/metrics")
    assert (
        scrape.status_code == 200
        and 'rqmon_alerts_firing{rule="queue_backlog",severity="critical"} 1.0' in scrape.get_data(as_text=True)
    )
