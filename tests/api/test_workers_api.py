"""/api/v1/workers against real `rq worker` processes (MonitoredWorker and plain): overview, details, history,
performance, queue status, control round trips, a SIGKILLed worker seen stale then removed, bad input, roles."""

from __future__ import annotations

import json
import signal
import time
import uuid

import pytest
from redis import Redis
from rq import Queue

from app.domain import workers as registry
from app.domain.users import Role
from app.ticker import make_ticker
from tests.api.test_live import read_events
from tests.conftest import PASSWORD, make_app
from tests.helpers import stop_worker, wait_for
from tests.workers.test_pool import start_pool  # noqa: F401, F811 (a fixture)
from tests.workers.test_worker_liveness_and_control import launch

API = "/api/v1/workers"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def worker_on(connection: Redis, queue: str) -> dict:
    found: list[dict] = []

    def listed() -> bool:
        found[:] = [w for w in registry.read_workers(connection, time.time(), 60, 300) if queue in w["queues"]]
        return len(found) == 1

    wait_for(listed, timeout=30)
    return found[0]


def get(client, auth, path: str, role: str = "moderator", status: int = 200) -> dict:
    response = client.get(API + path, headers=auth(role))
    assert response.status_code == status, response.get_json()
    return response.get_json()


def test_a_monitored_worker_its_attempts_history_and_activity(client, auth, connection, redis_url, running):
    queue_name = unique("wq")
    running.append(launch(redis_url, queue_name))
    name = worker_on(connection, queue_name)["worker_name"]
    queue = Queue(queue_name, connection=connection)
    jobs = [
        queue.enqueue("workers.tasks.add", 1, 2),
        queue.enqueue("workers.tasks.fail"),
        queue.enqueue("workers.tasks.add", 2, 3),
    ]
    wait_for(lambda: all(job.get_status(refresh=True) in ("finished", "failed") for job in jobs), timeout=30)
    wait_for(lambda: connection.llen(f"rqmon:worker-recent:{name}") == 3)

    overview = get(client, auth, "/overview")
    mine = next(w for w in overview["workers"] if w["worker_name"] == name)
    assert mine["monitored"] is True and mine["liveness"] == "active" and mine["status"] == "idle"
    assert (mine["tasks_processed"], mine["tasks_failed"]) == (3, 1)
    assert mine["control"] == ["pause", "stop"] and mine["last_activity"] is not None
    assert mine["current_queue_size"] == 0
    ours = [entry for entry in overview["recent_activity"] if entry["worker"] == name]
    assert [entry["action"] for entry in ours] == ["completed", "failed", "completed"]
    assert ours[1]["job_id"] == jobs[1].id and ours[1]["status"] == "failed" and ours[1]["queue"] == queue_name
    system = overview["system_overview"]
    assert system["total_workers"] >= 1 and system["active_workers"] >= 1
    assert overview["performance_metrics"]["redis_memory_mb"] > 0

    details = get(client, auth, f"/worker/{name}/details")
    stats = details["detailed_stats"]
    assert details["worker"]["worker_name"] == name and stats["rq_version"] and stats["python_version"]
    assert [job["job_id"] for job in stats["recent_jobs"]] == [job.id for job in reversed(jobs)]
    assert len(stats["hourly"]) == 24
    # Summed over the day: the attempts (and this read) may fall either side of an hour's end.
    assert (sum(row["processed"] for row in stats["hourly"]), sum(row["failed"] for row in stats["hourly"])) == (3, 1)

    performance = get(client, auth, "/performance/metrics?hours=24")
    rows = performance["worker_metrics"][name]
    assert sum(row["processed"] for row in rows) == 3 and sum(row["failed"] for row in rows) == 1
    summary = performance["performance_summary"]
    assert summary["processed"] >= 3 and summary["p95_processing_time"] is not None
    assert performance["period_hours"] == 24 and len(performance["system_metrics"]) == 24

    # History outlives the worker: stopped and gone from RQ's registry, its rows stay.
    stop_worker(running.pop())
    wait_for(lambda: not any(w["worker_name"] == name for w in get(client, auth, "/overview")["workers"]))
    assert name in get(client, auth, "/performance/metrics?hours=720")["worker_metrics"]


def test_control_round_trips_and_what_a_plain_worker_cannot_do(client, auth, connection, redis_url, running):
    queue_name = unique("cq")
    running.append(launch(redis_url, queue_name))
    name = worker_on(connection, queue_name)["worker_name"]
    path = f"{API}/worker/{name}/control"

    assert client.post(path + "?action=pause", headers=auth("moderator")).status_code == 403
    paused = client.post(path + "?action=pause", headers=auth("admin"))
    assert paused.status_code == 200, paused.get_json()
    body = paused.get_json()
    assert body["result"]["acknowledged"] is True and body["result"]["status_after"] == "paused"
    assert body["action"] == "pause" and body["worker_name"] == name
    assert (
        next(w for w in get(client, auth, "/overview")["workers"] if w["worker_name"] == name)["control"][0] == "resume"
    )
    resumed = client.post(path + "?action=resume", headers=auth("admin")).get_json()
    assert resumed["result"]["status_after"] == "idle"

    restart = client.post(path + "?action=restart", headers=auth("admin"))
    assert restart.status_code == 409 and restart.get_json()["error"]["code"] == "action_not_supported"
    assert "pool" in restart.get_json()["error"]["message"]
    assert client.post(path + "?action=explode", headers=auth("admin")).status_code == 400
    assert client.post(path, headers=auth("admin")).status_code == 400
    unknown = client.post(f"{API}/worker/nobody.1/control?action=pause", headers=auth("admin"))
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "worker_not_found"

    plain_queue = unique("pq")
    running.append(launch(redis_url, plain_queue, plain=True))
    plain = worker_on(connection, plain_queue)["worker_name"]
    refused = client.post(f"{API}/worker/{plain}/control?action=pause", headers=auth("admin"))
    assert refused.status_code == 409 and "plain rq worker" in refused.get_json()["error"]["message"]
    stopped = client.post(f"{API}/worker/{plain}/control?action=stop", headers=auth("admin"))
    assert stopped.status_code == 202 and stopped.get_json()["result"]["acknowledged"] is False
    running[-1].wait(timeout=30)


def test_a_killed_worker_goes_stale_is_reported_then_removed(redis_url, tmp_path, connection, make_user, running):
    app = make_app(redis_url, tmp_path, WORKER_ACTIVE_SECONDS=1.0, WORKER_STALE_SECONDS=3.0, ALERT_NO_WORKERS_FOR=0)
    client = app.test_client()
    make_user("killer", Role.ADMIN)
    token = client.post("/api/v1/auth/login", json={"username": "killer", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {token.get_json()['access_token']}"}
    queue_name = unique("kq")
    running.append(launch(redis_url, queue_name))
    name = worker_on(connection, queue_name)["worker_name"]

    early = client.delete(f"{API}/worker/{name}", headers=headers)
    assert early.status_code == 409 and early.get_json()["error"]["code"] == "worker_not_stale"
    running[0].send_signal(signal.SIGKILL)
    running[0].wait(timeout=10)
    Queue(queue_name, connection=connection).enqueue("workers.tasks.noop")

    def stale() -> dict | None:
        overview = client.get(f"{API}/overview", headers=headers).get_json()
        return next((w for w in overview["workers"] if w["worker_name"] == name and w["liveness"] == "stale"), None)

    wait_for(stale, timeout=30)
    assert client.get(f"{API}/overview", headers=headers).get_json()["system_overview"]["health_reasons"] == []
    assert make_ticker(app).tick() is True  # the rules are evaluated by the tick: workers_stale fires at once
    overview = client.get(f"{API}/overview", headers=headers).get_json()
    health = client.get("/api/v1/health", headers=headers).get_json()
    assert overview["system_overview"]["overall_health"] == health["status"] == "critical"  # no_workers: for 0 s
    assert f"worker {name} is stale" in " ".join(overview["system_overview"]["health_reasons"])
    removed = client.delete(f"{API}/worker/{name}", headers=headers)
    assert removed.status_code == 200, removed.get_json()
    assert removed.get_json() == {"success": True, "worker_name": name, "removed": True, "abandoned_job": None}
    assert client.get(f"{API}/worker/{name}/details", headers=headers).status_code == 404
    assert client.delete(f"{API}/worker/{name}", headers=headers).status_code == 404
    assert client.post(f"{API}/cleanup", headers=headers).get_json() == {"success": True, "removed": []}


def test_queue_status_says_when_no_worker_listens(client, auth, connection):
    queue_name = unique("lonely")
    queue = Queue(queue_name, connection=connection)
    for _ in range(3):
        queue.enqueue("workers.tasks.noop")
    time.sleep(0.05)
    status = get(client, auth, "/queue/status")
    mine = status["queues"][queue_name]
    assert mine["size"] == 3 and mine["workers"] == 0 and mine["processing"] is False
    assert mine["oldest_task_age_seconds"] > 0 and mine["estimated_completion_time"] is None
    assert mine["max_size"] == 1000 and status["total_queued_tasks"] >= 3


def health_everywhere(client, auth) -> tuple[str, str, str, list[str]]:
    """/api/v1/health's status, /queue/status's and /overview's, and the overview's reasons."""
    overview = get(client, auth, "/overview")["system_overview"]
    return (
        client.get("/api/v1/health", headers=auth("moderator")).get_json()["status"],
        get(client, auth, "/queue/status")["system_health"]["status"],
        overview["overall_health"],
        overview["health_reasons"],
    )


def test_health_follows_the_rules_and_their_for_through_real_ticks(app, client, auth, connection):
    """no_workers holds for its 60 s before the overview says critical, exactly when /api/v1/health does."""
    queue_name = unique("lonely")
    for _ in range(3):
        Queue(queue_name, connection=connection).enqueue("workers.tasks.noop")
    assert health_everywhere(client, auth) == ("healthy", "healthy", "healthy", [])  # no tick has run yet
    ticker, now = make_ticker(app), time.time()
    assert ticker.tick(now) is True
    assert health_everywhere(client, auth) == ("healthy", "healthy", "healthy", [])  # pending: `for` 60 s
    assert ticker.tick(now + 61) is True
    message = f"3 jobs wait in {queue_name} and no worker listens"
    assert health_everywhere(client, auth) == ("critical", "critical", "critical", [message])


@pytest.mark.parametrize("hours", ["0", "721", "-1", "abc", "1.5", ""])
def test_hours_out_of_range_or_not_an_integer(client, auth, hours):
    response = client.get(f"{API}/performance/metrics?hours={hours}", headers=auth("moderator"))
    assert response.status_code == 400 and response.get_json()["success"] is False


@pytest.mark.parametrize("hours", [1, 48, 49, 168, 169, 720])
def test_bucket_sizes_follow_the_period(client, auth, hours):
    rows = get(client, auth, f"/performance/metrics?hours={hours}")["system_metrics"]
    expected = {1: 3600, 48: 3600, 49: 21600, 168: 21600, 169: 86400, 720: 86400}[hours]
    assert len(rows) == -(-hours * 3600 // expected)


@pytest.mark.parametrize("name", ["a b", "x" * 201, ".hidden", "a*", "ä", "a{b}", "..%2F..", "-x"])
def test_odd_worker_names_are_refused_before_any_key(client, auth, connection, name):
    before = set(connection.keys("*"))
    for method, path in (("get", f"/worker/{name}/details"), ("delete", f"/worker/{name}"),
                         ("post", f"/worker/{name}/control?action=pause")):  # fmt: skip
        response = getattr(client, method)(API + path, headers=auth("admin"))
        assert response.status_code in (400, 404), (path, response.status_code)
        assert response.get_json()["success"] is False
    assert set(connection.keys("*")) - before <= {k for k in connection.keys("rqmon:audit*")}


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/worker/w.1/control?action=pause"), ("delete", "/worker/w.1"), ("post", "/cleanup")],
)
def test_a_moderator_cannot_act(client, auth, method, path):
    response = getattr(client, method)(API + path, headers=auth("moderator"))
    assert response.status_code == 403


@pytest.mark.parametrize("path", ["/overview", "/queue/status", "/performance/metrics", "/live-stream"])
def test_reads_need_a_token(client, path):
    assert client.get(API + path).status_code == 401


def test_the_live_stream_sends_the_overview_at_once(client, auth):
    response = client.get(f"{API}/live-stream", headers=auth("moderator"), buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    (event,) = read_events(response, 1)
    assert set(event) == {"timestamp", "data"} and set(event["data"]) == {"system_overview", "workers"}
    response.close()


def test_the_workers_feed_publishes_once_per_tick_and_samples_once_a_minute(app, connection, redis_url, running):
    from app.ticker import make_ticker
    from tests.api.test_live_ticker import published

    queue_name = unique("tq")
    running.append(launch(redis_url, queue_name))
    name = worker_on(connection, queue_name)["worker_name"]
    wait_for(lambda: connection.hget(f"rq:worker:{name}", registry.USAGE))
    Queue(queue_name + "-idle", connection=connection).enqueue("workers.tasks.noop")
    ticker = make_ticker(app)
    now = time.time() // 60 * 60 + 1  # early in this minute: the next tick is in the same one
    assert ticker.tick(now) is True
    document = published(connection, "rqmon:live:snapshot:workers")
    assert set(document["data"]) == {"system_overview", "workers"}
    assert name in [w["worker_name"] for w in document["data"]["workers"]]
    minute = int(now // 3600)
    samples = connection.hgetall(f"rqmon:worker-samples:h:{minute}")
    assert samples[b"n"] == b"1" and int(samples[b"queue_size"]) >= 1 and int(samples[b"active_workers"]) >= 1
    assert ticker.tick(now + 2) is True  # same minute: published again, not sampled again
    assert connection.hget(f"rqmon:worker-samples:h:{minute}", "n") == b"1"
    assert connection.llen(f"rqmon:worker-memory:{name}") == 1
    assert 0 < connection.ttl(f"rqmon:worker-memory:{name}") <= 3700
    assert 0 < connection.ttl(f"rqmon:worker-samples:h:{minute}") <= 31 * 86400


def test_a_pool_through_the_api_restart_stop_start_and_its_events(client, auth, connection, start_pool):  # noqa: F811
    queue_name = unique("pool")
    _, pool = start_pool(queue_name, workers=2)
    child = f"{pool}.1"

    def listed() -> dict | None:
        found = get(client, auth, "/overview")["workers"]
        return next((w for w in found if w["worker_name"] == child and w["status"] == "idle"), None)

    wait_for(listed, timeout=60)
    worker = listed()
    assert worker is not None and worker["pool"] == pool and worker["control"] == ["pause", "stop", "restart"]
    path = f"{API}/worker/{child}/control"
    restarted = client.post(path + "?action=restart", headers=auth("admin"))
    assert restarted.status_code == 200, restarted.get_json()
    assert restarted.get_json()["result"]["acknowledged"] is True
    wait_for(listed, timeout=60)
    stopped = client.post(path + "?action=stop", headers=auth("admin"))
    assert stopped.status_code == 200, stopped.get_json()
    wait_for(
        lambda: any(
            w["worker_name"] == child and w["status"] == "stopped" for w in get(client, auth, "/overview")["workers"]
        ),
        timeout=60,
    )
    stopped_row = next(w for w in get(client, auth, "/overview")["workers"] if w["worker_name"] == child)
    assert stopped_row["control"] == ["start"]
    started = client.post(path + "?action=start", headers=auth("admin"))
    assert started.status_code == 200, started.get_json()
    wait_for(listed, timeout=60)
    actions = {(e["worker"], e["action"]) for e in get(client, auth, "/overview")["recent_activity"]}
    assert (child, "restarted") in actions or (child, "started") in actions


def test_health_is_the_roll_up_of_the_firing_alerts(client, auth, connection):
    alert = {"id": "scheduler_down:system:scheduler", "rule": "scheduler_down", "severity": "critical",
             "subject": {"kind": "system", "name": "scheduler"}, "value": 120, "threshold": 60,
             "since": "2026-12-01T00:00:00.000Z", "message": "The scheduler has not beaten for 2 min"}  # fmt: skip
    assert get(client, auth, "/overview")["system_overview"]["overall_health"] == "healthy"
    connection.hset("rqmon:alerts:firing", alert["id"], json.dumps(alert))
    system = get(client, auth, "/overview")["system_overview"]
    assert system["overall_health"] == "critical" and system["health_reasons"] == [alert["message"]]
    assert health_everywhere(client, auth) == ("critical", "critical", "critical", [alert["message"]])
    warning = alert | {"id": "workers_stale:worker:w.1", "severity": "warning", "message": "worker w.1 is stale"}
    connection.hset("rqmon:alerts:firing", warning["id"], json.dumps(warning))
    assert get(client, auth, "/overview")["system_overview"]["health_reasons"] == [
        alert["message"],
        "worker w.1 is stale",
    ]
    connection.hdel("rqmon:alerts:firing", alert["id"])
    assert health_everywhere(client, auth) == ("degraded", "degraded", "degraded", ["worker w.1 is stale"])


def test_the_overview_is_one_round_trip_with_the_token_check_and_nothing_for_a_revoked_token(
    client, auth, connection, monkeypatch
):
    from redis.connection import AbstractConnection

    from app.domain import users

    headers = auth("moderator")
    assert client.get(f"{API}/overview", headers=headers).status_code == 200  # warm: the connection is open
    sent = []
    send = AbstractConnection.send_packed_command

    def counting(conn, command, check_health=True):  # type: ignore[no-untyped-def]
        sent.append(command)
        return send(conn, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    response = client.get(f"{API}/overview", headers=headers)
    assert response.status_code == 200 and "system_overview" in response.get_json()
    assert len(sent) == 1
    monkeypatch.undo()
    users.delete_user(connection, "user-moderator")
    refused = client.get(f"{API}/overview", headers=headers)
    assert refused.status_code == 401 and "workers" not in refused.get_json()
