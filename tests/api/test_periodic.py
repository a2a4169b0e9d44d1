"""/api/v1/periodic against a real Redis (API.md § Periodic jobs): roles, validation with field errors, every
action, runs newest first with a status filter, status, and RQ's own `rq cron` jobs listed read-only."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from rq import Queue
from rq.cron import CronScheduler
from rq.job import Job
from rq_scheduler import Scheduler

from app.domain import keys, schedules
from tests.helpers import runs_on_the_days
from workers import tasks


def body(**fields) -> dict:
    return {
        "name": f"s-{uuid.uuid4().hex[:8]}",
        "func": "workers.tasks.noop",
        "queue": "periodic-q",
        "intervalSeconds": 300,
        **fields,
    }


@pytest.fixture
def created(client, auth) -> dict:
    response = client.post(
        "/api/v1/periodic", json=body(cron="*/5 * * * *", intervalSeconds=None), headers=auth("admin")
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_create_lists_and_reads_a_schedule(client, auth, created):
    assert created["schedule"] == "every 5 minutes" and created["source"] == "rq-scheduler"
    assert created["editable"] and created["enabled"] and created["overlap"] == "skip"
    assert "intervalSeconds" not in created and created["nextRunAt"].endswith("Z")
    assert int(created["nextRunAt"][14:16]) % 5 == 0
    listed = client.get("/api/v1/periodic", headers=auth("moderator")).get_json()
    assert listed["total"] == 1 and listed["page"] == 1 and listed["perPage"] == 50
    assert listed["schedules"][0]["name"] == created["name"]
    one = client.get(f"/api/v1/periodic/{created['name']}", headers=auth("moderator"))
    assert one.status_code == 200 and one.get_json()["func"] == "workers.tasks.noop"


def test_the_list_is_sorted_by_name_and_paginated(client, auth):
    for name in ("c", "a", "b"):
        assert client.post("/api/v1/periodic", json=body(name=name), headers=auth("admin")).status_code == 201
    page = client.get("/api/v1/periodic?page=2&perPage=2", headers=auth("moderator")).get_json()
    assert page["total"] == 3 and [s["name"] for s in page["schedules"]] == ["c"]
    every = client.get("/api/v1/periodic", headers=auth("moderator")).get_json()
    assert [s["name"] for s in every["schedules"]] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"func": "os.system", "args": ["rm -rf /"]}, "func"),
        ({"func": "subprocess.run"}, "func"),
        ({"func": "builtins.eval"}, "func"),
        ({"func": "workers.tasksmodule.noop"}, "func"),  # a prefix, not a module under it
        ({"func": "workers.pool.main"}, "func"),
        ({"func": "noop"}, "func"),
        ({"name": "bad name/with*chars"}, "name"),
        ({"name": ""}, "name"),
        ({"cron": "*/5 * * * *"}, "intervalSeconds"),  # both
        ({"intervalSeconds": None}, "intervalSeconds"),  # neither
        ({"cron": "0 */5 * * * *", "intervalSeconds": None}, "cron"),  # 6 fields
        ({"cron": "61 * * * *", "intervalSeconds": None}, "cron"),
        ({"intervalSeconds": 5}, "intervalSeconds"),
        ({"intervalSeconds": 31_536_001}, "intervalSeconds"),
        ({"queue": "bad queue"}, "queue"),
        ({"args": {"a": 1}}, "args"),
        ({"overlap": "sometimes"}, "overlap"),
        ({"attempts": 0}, "attempts"),
    ],
)
def test_bad_schedules_are_refused_with_field_errors(client, auth, connection, fields, field):
    response = client.post("/api/v1/periodic", json=body(**fields), headers=auth("admin"))
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["error"]["details"]
    assert connection.hlen(keys.SCHEDULES) == 0


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *"])
def test_a_cron_that_never_fires_is_refused_before_anything_is_written(client, auth, connection, cron):
    preview = client.get("/api/v1/periodic/preview", query_string={"cron": cron}, headers=auth("moderator"))
    assert preview.status_code == 400 and "cron" in preview.get_json()["error"]["details"]
    created = client.post("/api/v1/periodic", json=body(cron=cron, intervalSeconds=None), headers=auth("admin"))
    assert created.status_code == 400 and "never fires" in created.get_json()["error"]["details"]["cron"]
    assert connection.hlen(keys.SCHEDULES) == 0 and connection.zcard(keys.SCHEDULE_NAMES) == 0
    assert connection.zcard(Scheduler.scheduled_jobs_key) == 0 and connection.hlen(keys.SCHEDULE_TEMPLATES) == 0


def test_resuming_a_stored_cron_that_never_fires_writes_nothing(connection, created):
    from croniter import CroniterBadDateError  # noqa: PLC0415

    name = created["name"]
    schedules.set_enabled(connection, name, False)
    stored = {**schedules.get_definition(connection, name), "cron": "0 0 31 2 *"}  # saved before the check existed
    connection.hset(keys.SCHEDULES, name, json.dumps(stored))
    with pytest.raises(CroniterBadDateError):
        schedules.set_enabled(connection, name, True)
    assert schedules.get_definition(connection, name)["enabled"] is False
    assert connection.zscore(Scheduler.scheduled_jobs_key, schedules.template_id(name)) is None


def test_allowed_modules_are_configurable(redis_url, tmp_path, make_user):
    from tests.conftest import login, make_app

    app = make_app(redis_url, tmp_path, PERIODIC_ALLOWED_MODULES=("tests.workers",))
    client = app.test_client()
    token = login(client, make_user("admin-x", "admin"))["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/periodic", json=body(), headers=headers).status_code == 400
    ok = body(func="tests.workers.job_functions.noop")
    assert client.post("/api/v1/periodic", json=ok, headers=headers).status_code == 201


def test_a_taken_name_is_409(client, auth, created):
    response = client.post("/api/v1/periodic", json=body(name=created["name"]), headers=auth("admin"))
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "schedule_exists"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("put", ""),
        ("delete", ""),
        ("post", "/pause"),
        ("post", "/resume"),
        ("post", "/run"),
        ("get", "/runs"),
    ],
)
def test_unknown_schedules_are_404(client, auth, method, path):
    response = getattr(client, method)(f"/api/v1/periodic/nope{path}", headers=auth("admin"), json=body())
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "schedule_not_found"


@pytest.mark.parametrize(
    ("method", "path", "json"),
    [
        ("post", "", body()),
        ("put", "/x", body()),
        ("delete", "/x", None),
        ("post", "/x/pause", None),
        ("post", "/x/resume", None),
        ("post", "/x/run", None),
    ],
)
def test_moderators_read_but_do_not_change(client, auth, method, path, json):
    response = getattr(client, method)(f"/api/v1/periodic{path}", headers=auth("moderator"), json=json)
    assert response.status_code == 403
    assert client.get("/api/v1/periodic/status", headers=auth("moderator")).status_code == 200
    assert client.get("/api/v1/periodic").status_code == 401


def test_replace_keeps_the_history_and_may_rename(client, auth, connection, created):
    name = created["name"]
    job_id = client.post(f"/api/v1/periodic/{name}/run", headers=auth("admin")).get_json()["jobId"]
    replaced = client.put(
        f"/api/v1/periodic/{name}",
        json={**body(name=None), "intervalSeconds": 60, "func": "workers.tasks.add", "args": [1, 2]},
        headers=auth("admin"),
    )
    assert replaced.status_code == 200, replaced.get_json()
    doc = replaced.get_json()
    assert doc["name"] == name and doc["intervalSeconds"] == 60 and "cron" not in doc and doc["args"] == [1, 2]
    assert doc["schedule"] == "every minute" and doc["lastRun"]["trigger"] == "manual"
    renamed = client.put(f"/api/v1/periodic/{name}", json=body(name="renamed", queue="other-q"), headers=auth("admin"))
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "renamed"
    assert renamed.get_json()["lastRun"]["trigger"] == "manual"  # the history goes with the name
    runs = client.get("/api/v1/periodic/renamed/runs", headers=auth("admin")).get_json()["runs"]
    assert len(runs) == 1 and runs[0]["queue"] == "periodic-q"  # where that run's job is, for its link
    assert connection.zscore(keys.SCHEDULE_OPEN_RUNS, f"renamed\x1f{job_id}") is not None  # its end lands there
    assert client.get(f"/api/v1/periodic/{name}", headers=auth("admin")).status_code == 404
    assert connection.zscore(Scheduler.scheduled_jobs_key, schedules.template_id(name)) is None


def test_pause_resume_and_delete(client, auth, connection, created):
    name = created["name"]
    template = schedules.template_id(name)
    paused = client.post(f"/api/v1/periodic/{name}/pause", headers=auth("admin")).get_json()
    assert paused["enabled"] is False and paused["nextRunAt"] is None
    assert connection.zscore(Scheduler.scheduled_jobs_key, template) is None
    resumed = client.post(f"/api/v1/periodic/{name}/resume", headers=auth("admin")).get_json()
    assert resumed["enabled"] is True and resumed["nextRunAt"] is not None
    assert connection.zscore(Scheduler.scheduled_jobs_key, template) > time.time()
    assert client.delete(f"/api/v1/periodic/{name}", headers=auth("admin")).get_json() == {"success": True}
    assert not connection.exists(Job.key_for(template), keys.schedule_runs(name))
    assert client.get("/api/v1/periodic", headers=auth("admin")).get_json()["total"] == 0


def test_run_now_enqueues_a_new_job_and_keeps_the_next_run(client, auth, connection, created):
    name = created["name"]
    response = client.post(f"/api/v1/periodic/{name}/run", headers=auth("admin"))
    assert response.status_code == 201
    job = Job.fetch(response.get_json()["jobId"], connection=connection)
    assert job.meta["rqmon_schedule"] == name and job.meta["rqmon_schedule_trigger"] == "manual"
    assert job.func_name == "workers.tasks.noop" and job.origin == "periodic-q"
    assert job.id in Queue("periodic-q", connection=connection).job_ids
    detail = client.get(f"/api/v1/admin/jobs/job/periodic-q/{job.id}", headers=auth("moderator")).get_json()
    assert detail["schedule"] == {"name": name, "trigger": "manual"}  # the job page links back
    before = time.time()
    after = client.get(f"/api/v1/periodic/{name}", headers=auth("admin")).get_json()
    assert after["nextRunAt"] == created["nextRunAt"]
    assert after["runsToday"] in runs_on_the_days(connection, name, before, time.time())  # 1, but past midnight


def test_runs_newest_first_with_a_status_filter(client, auth, connection, created):
    name = created["name"]
    ids = [client.post(f"/api/v1/periodic/{name}/run", headers=auth("admin")).get_json()["jobId"] for _ in range(3)]
    Job.fetch(ids[0], connection=connection).set_status("failed")
    runs = client.get(f"/api/v1/periodic/{name}/runs", headers=auth("moderator")).get_json()["runs"]
    assert [run["jobId"] for run in runs] == ids[::-1]
    failed = client.get(f"/api/v1/periodic/{name}/runs?status=failed", headers=auth("moderator")).get_json()["runs"]
    assert [run["jobId"] for run in failed] == [ids[0]]
    limited = client.get(f"/api/v1/periodic/{name}/runs?limit=1", headers=auth("moderator")).get_json()["runs"]
    assert [run["jobId"] for run in limited] == [ids[2]]
    assert client.get(f"/api/v1/periodic/{name}/runs?status=odd", headers=auth("moderator")).status_code == 400


def tick(app, later: float = 0.0) -> None:
    """One evaluation of the alert engine by the app's own ticker (the rules live there, not in /status)."""
    from app.ticker import make_ticker  # noqa: PLC0415

    ticker = make_ticker(app)
    assert ticker.tick(time.time() + later * ticker.tick_seconds)


def test_status_without_a_scheduler_lists_the_engines_scheduler_down(app, client, auth, created):
    status = client.get("/api/v1/periodic/status", headers=auth("moderator")).get_json()
    assert status["isMonitoringActive"] is False and status["scheduler"] is None
    assert status["nextScheduledRun"] == created["nextRunAt"] and status["missedRuns"] == 0
    assert status["alerts"] == []  # not evaluated yet: /status reports the engine's alerts, it does not raise them
    tick(app)
    status = client.get("/api/v1/periodic/status", headers=auth("moderator")).get_json()
    firing = client.get("/api/v1/alerts", headers=auth("moderator")).get_json()["firing"]
    assert [(a["rule"], a["severity"], a["message"]) for a in firing] == [
        (a["rule"], a["severity"], a["message"]) for a in status["alerts"]
    ]
    assert status["alerts"] == [
        {"rule": "scheduler_down", "severity": "critical", "message": firing[0]["message"], "schedule": None}
    ]


@pytest.mark.parametrize(("age", "alive"), [(45, True), (59, True), (61, False)])
def test_one_scheduler_down_threshold_for_the_alert_status_and_health(
    app, client, auth, connection, created, age, alive
):
    from app.domain import scheduler_status  # noqa: PLC0415

    scheduler_status.heartbeat(connection, "s1", "host", 1, time.time() - age)  # ALERT_SCHEDULER_DOWN: 60 s
    tick(app)
    status = client.get("/api/v1/periodic/status", headers=auth("moderator")).get_json()
    health = client.get("/api/v1/health", headers=auth("moderator")).get_json()
    rules = [a["rule"] for a in client.get("/api/v1/alerts", headers=auth("moderator")).get_json()["firing"]]
    assert status["isMonitoringActive"] is alive and health["scheduler"]["alive"] is alive
    assert ("scheduler_down" not in rules) is alive
    assert ([a["rule"] for a in status["alerts"]] == []) is alive


def test_the_threshold_follows_alert_scheduler_down(redis_url, tmp_path, auth, connection):
    from app.domain import scheduler_status  # noqa: PLC0415
    from tests.conftest import make_app  # noqa: PLC0415

    app = make_app(redis_url, tmp_path, ALERT_SCHEDULER_DOWN=10)
    client = app.test_client()
    assert client.post("/api/v1/periodic", json=body(), headers=auth("admin")).status_code == 201
    scheduler_status.heartbeat(connection, "s1", "host", 1, time.time() - 20)
    tick(app)
    status = client.get("/api/v1/periodic/status", headers=auth("moderator")).get_json()
    assert (
        status["isMonitoringActive"] is False
        and client.get("/api/v1/health", headers=auth("moderator")).get_json()["scheduler"]["alive"] is False
    )
    assert [a["rule"] for a in status["alerts"]] == ["scheduler_down"]


def test_preview_shows_the_next_five_runs(client, auth):
    response = client.get("/api/v1/periodic/preview?cron=0%209%20*%20*%201", headers=auth("moderator"))
    doc = response.get_json()
    assert response.status_code == 200 and len(doc["nextRuns"]) == 5
    assert all(run.endswith("T09:00:00.000Z") for run in doc["nextRuns"])
    interval = client.get("/api/v1/periodic/preview?intervalSeconds=300", headers=auth("moderator")).get_json()
    assert interval["schedule"] == "every 5 minutes" and len(interval["nextRuns"]) == 5
    bad = client.get("/api/v1/periodic/preview?cron=nope", headers=auth("moderator"))
    assert bad.status_code == 400 and "cron" in bad.get_json()["error"]["details"]


def test_rq_cron_jobs_are_listed_read_only(client, auth, connection):
    cron = CronScheduler(connection, name="cron-test")
    cron.register(tasks.noop, "cron-q", cron="0 * * * *", name="hourly-noop")
    cron.register_birth()
    listed = client.get("/api/v1/periodic", headers=auth("moderator")).get_json()["schedules"]
    assert [(s["name"], s["source"], s["editable"]) for s in listed] == [("hourly-noop", "rq-cron", False)]
    assert listed[0]["func"] == "workers.tasks.noop" and listed[0]["cron"] == "0 * * * *"
    for method, path in [("put", ""), ("delete", ""), ("post", "/pause"), ("post", "/run")]:
        response = getattr(client, method)(f"/api/v1/periodic/hourly-noop{path}", headers=auth("admin"), json=body())
        assert response.status_code == 409, (method, path)
    taken = client.post("/api/v1/periodic", json=body(name="hourly-noop"), headers=auth("admin"))
    assert taken.status_code == 409


def test_schedule_changes_are_audited(client, auth, connection, created):
    from app.domain import audit  # noqa: PLC0415

    name = created["name"]
    client.post(f"/api/v1/periodic/{name}/pause", headers=auth("admin"))
    client.post("/api/v1/periodic", json=body(func="os.system"), headers=auth("admin"))
    entries = audit.list_entries(connection, audit.Query(limit=10))["entries"]
    actions = [(entry["action"], entry["target"], entry["status"]) for entry in entries]
    assert ("schedule.pause", name, 200) in actions
    assert ("schedule.create", None, 201) in actions
    assert ("schedule.create", None, 400) in actions  # refusals are recorded too


def test_schedule_missed_in_status_is_the_engines_alert(app, client, auth, connection, created):
    from app.domain import scheduler_status  # noqa: PLC0415

    name = created["name"]
    scheduler_status.heartbeat(connection, "s1", "host", 1, time.time())
    tick(app)  # the engine's first evaluation takes the missed counts as they are
    connection.hset(keys.SCHEDULE_MISSED, name, 2)  # what a catch-up firing records
    tick(app, later=1)
    status = client.get("/api/v1/periodic/status", headers=auth("moderator")).get_json()
    firing = client.get("/api/v1/alerts", headers=auth("moderator")).get_json()["firing"]
    assert status["missedRuns"] == 2 and status["isMonitoringActive"] is True
    assert [(a["rule"], a["subject"]["name"]) for a in firing] == [("schedule_missed", name)]
    assert status["alerts"] == [
        {"rule": "schedule_missed", "severity": "warning", "message": firing[0]["message"], "schedule": name}
    ]


def test_concurrent_creations_of_one_name_give_one_schedule(redis_url):
    import threading  # noqa: PLC0415

    from redis import Redis  # noqa: PLC0415

    outcomes: list[str] = []
    start = threading.Barrier(8)

    def create() -> None:
        connection = Redis.from_url(redis_url)
        definition = {
            **body(name="contested"),
            "cron": None,
            "description": None,
            "args": [],
            "kwargs": {},
            "enabled": True,
            "overlap": "skip",
            "timeout": None,
            "attempts": 1,
            "backoff": None,
        }
        start.wait()
        try:
            schedules.save_schedule(connection, definition)
            outcomes.append("created")
        except schedules.ScheduleExists:
            outcomes.append("409")

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["409"] * 7 + ["created"]


@pytest.mark.parametrize("value", [b"\xff", b"nan", b"1e400", b"", b"[1,2]"])
def test_status_reads_what_another_program_left_in_the_schedulers_keys(client, auth, connection, value):
    """The heartbeat, the day's and missed counts, the latest run and the firing alerts holding values the
    scheduler and the alert engine never write: the status answers, the unreadable parts as if absent."""
    connection.hset(keys.SCHEDULER_HEARTBEAT, mapping={"name": value, "hostname": "h", "pid": value, "at": value})
    connection.hset(keys.SCHEDULE_MISSED, mapping={"a": value, "b": "2"})
    connection.hset(keys.schedule_day_counts(schedules.utc_day(time.time())), mapping={"a": value, "b": "3"})
    connection.set(keys.SCHEDULE_LATEST_RUN, value)
    connection.hset(keys.ALERTS_FIRING, "scheduler_down:system:scheduler", value)
    response = client.get("/api/v1/periodic/status", headers=auth("moderator"))
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    status = response.get_json()
    assert status["isMonitoringActive"] is False and status["scheduler"]["lastHeartbeat"] is None
    assert status["missedRuns"] == 2 and status["totalRunsToday"] == 3 and status["lastRunTime"] is None
    assert status["alerts"] == []


@pytest.mark.parametrize("value", [b"\xff", b"5", b"[1, 2]", b"[" * 5000, b'{"name": "x"}'])
def test_a_stored_definition_that_is_not_one_is_left_out_of_the_list(client, auth, connection, created, value):
    """Another program's values in the schedules' keys (a definition, a name of non-UTF-8 bytes, counts): the list
    and the scrape show every readable schedule."""
    connection.hset(keys.SCHEDULES, "broken", value)
    connection.zadd(keys.SCHEDULE_NAMES, {"broken": 0, b"bytes-\xff": 0})
    connection.hset(keys.SCHEDULE_MISSED, created["name"], b"not a number")
    response = client.get("/api/v1/periodic", headers=auth("moderator"))
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert [schedule["name"] for schedule in response.get_json()["schedules"]] == [created["name"]]
    assert response.get_json()["schedules"][0]["missedRuns"] == 0
