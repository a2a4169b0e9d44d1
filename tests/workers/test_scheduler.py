"""rq-monitor-scheduler with real processes (SCHEDULES.md): every firing is a new job, a failing function keeps its
schedule, a SIGKILLed scheduler is taken over without a doubled firing, missed due times give one catch-up run,
an unfinished run makes the next firing `skipped`. Due times are set in rq-scheduler's sorted set, so no test
waits for a real interval; deadlines are generous."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from redis import Redis
from rq import Queue
from rq_scheduler import Scheduler

from app.domain import keys, schedule_runs, scheduler_status, schedules
from tests.helpers import ROOT, run_worker, runs_on_the_days, start_worker, stop_worker, wait_for

Starter = Callable[..., subprocess.Popen]


@pytest.fixture
def start_scheduler(redis_url: str) -> Iterator[Starter]:
    started: list[subprocess.Popen] = []

    def start(grace: float = 60.0) -> subprocess.Popen:
        env = {**os.environ, "SCHEDULE_GRACE_SECONDS": str(grace)}
        command = [sys.executable, "-m", "workers.scheduler", "--url", redis_url, "--logging-level", "WARNING"]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def create(connection: Redis, func: str = "workers.tasks.noop", args: list | None = None, **fields) -> dict:
    name = f"s-{uuid.uuid4().hex[:8]}"
    definition = {
        "name": name,
        "description": "",
        "func": func,
        "args": args or [],
        "kwargs": {},
        "queue": f"q-{name}",
        "intervalSeconds": 3600,
        "enabled": True,
        "overlap": "skip",
        "timeout": None,
        "attempts": 1,
        "backoff": None,
        **fields,
    }
    return schedules.save_schedule(connection, definition)


def make_due(connection: Redis, name: str, at: float | None = None) -> float:
    due = time.time() - 0.5 if at is None else at
    connection.zadd(Scheduler.scheduled_jobs_key, {schedules.template_id(name): due})
    return due


def runs(connection: Redis, name: str) -> list[dict]:
    return schedule_runs.list_runs(connection, name, limit=1000)["runs"]


def heartbeat_pid(connection: Redis) -> int | None:
    pid = connection.hget(keys.SCHEDULER_HEARTBEAT, "pid")
    return int(pid) if pid else None


def test_each_firing_is_a_new_job_and_a_failing_function_keeps_its_schedule(connection, redis_url, start_scheduler):
    schedule = create(connection, "workers.tasks.fail", ["boom"])
    name, queue = schedule["name"], schedule["queue"]
    start_scheduler()
    for expected in (1, 2):
        make_due(connection, name)
        wait_for(lambda n=expected: len(runs(connection, name)) == n, timeout=30)
        run_worker(redis_url, queue)
        wait_for(lambda: runs(connection, name)[0]["failedReason"] is not None, timeout=30)  # recorded
    history = runs(connection, name)
    assert len({run["jobId"] for run in history}) == 2
    assert schedules.template_id(name) not in {run["jobId"] for run in history}  # the template never runs
    assert all(run["trigger"] == "schedule" and run["failedReason"] for run in history)
    assert "boom" in history[0]["failedReason"]
    job = Queue(queue, connection=connection).failed_job_registry.get_job_ids()
    assert set(job) == {run["jobId"] for run in history}
    before = time.time()
    listed = schedules.get_schedule(connection, name)
    assert listed["nextRunAt"] is not None and listed["lastRun"]["state"] == "failed"
    assert listed["runsToday"] in runs_on_the_days(connection, name, before, time.time())  # 2, but past midnight


def test_a_sigkilled_scheduler_is_taken_over_and_no_firing_is_doubled(connection, start_scheduler):
    name = create(connection, overlap="allow")["name"]
    first = start_scheduler()
    wait_for(lambda: heartbeat_pid(connection) == first.pid, timeout=30)
    second = start_scheduler()
    make_due(connection, name)
    wait_for(lambda: len(runs(connection, name)) == 1, timeout=30)
    time.sleep(3)  # the waiting instance has looped a few times meanwhile
    assert heartbeat_pid(connection) == first.pid
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    killed_at = time.monotonic()

    def alive() -> bool:  # down after 3 s without a heartbeat (ALERT_SCHEDULER_DOWN's default is 60 s)
        return scheduler_status.scheduler_status(connection, 3)["isMonitoringActive"]

    wait_for(lambda: not alive(), timeout=60)
    wait_for(lambda: heartbeat_pid(connection) == second.pid, timeout=60)
    assert time.monotonic() - killed_at <= 11 + 5  # one lock period (interval 1 s + 10 s), plus slack
    assert alive()
    make_due(connection, name)
    wait_for(lambda: len(runs(connection, name)) == 2, timeout=30)
    time.sleep(3)
    history = runs(connection, name)
    assert len(history) == 2 and len({run["dueAt"] for run in history}) == 2
    assert Queue(f"q-{name}", connection=connection).count == 2


def test_down_across_two_due_times_gives_one_catch_up_run_and_two_missed(connection, start_scheduler):
    name = create(connection, intervalSeconds=10)["name"]
    now = time.time()
    make_due(connection, name, at=now - 22)  # due at -22 and -12 (missed: more than 5 s ago), and -2 (in grace)
    start_scheduler(grace=5)
    wait_for(lambda: any(run["jobId"] for run in runs(connection, name)), timeout=30)
    time.sleep(2)
    history = runs(connection, name)
    assert [run["state"] for run in history].count("missed") == 2
    assert len([run for run in history if run["jobId"]]) == 1
    assert Queue(f"q-{name}", connection=connection).count == 1
    assert schedules.get_schedule(connection, name)["missedRuns"] == 2
    assert scheduler_status.scheduler_status(connection, down_after=60)["missedRuns"] == 2
    next_run = connection.zscore(Scheduler.scheduled_jobs_key, schedules.template_id(name))
    assert next_run is not None and next_run > time.time() - 1  # the cadence continues, no burst


@pytest.mark.parametrize(("timing", "missed"), [({"cron": "* * * * *"}, 1000), ({"intervalSeconds": 60}, 70 * 1440)])
def test_a_schedule_down_for_70_days_catches_up_once_in_bounded_time(connection, timing, missed):
    from workers.scheduler import MonitoredScheduler  # noqa: PLC0415

    name = create(connection, **{"intervalSeconds": None, **timing})["name"]
    now = time.time()
    make_due(connection, name, at=(now // 60) * 60 - 70 * 86_400)
    (template,) = Scheduler(connection=connection).get_jobs()
    started = time.perf_counter()
    MonitoredScheduler(connection, grace_seconds=60).enqueue_job(template)
    assert time.perf_counter() - started < 1.0  # an every-minute cron used to walk ~100,000 due times (6.7 s)
    history = runs(connection, name)
    assert len([run for run in history if run["jobId"]]) == 1  # the one catch-up
    assert [run["state"] for run in history].count("missed") == schedule_runs.MISSED_RECORDS_PER_FIRING
    assert schedules.get_schedule(connection, name)["missedRuns"] == missed  # cron: "1000+"; interval: exact
    assert connection.zscore(Scheduler.scheduled_jobs_key, schedules.template_id(name)) > time.time()


def test_a_schedule_that_raises_when_fired_does_not_stop_the_others(connection, start_scheduler):
    bad = create(connection, intervalSeconds=None, cron="0 3 * * *")["name"]
    stored = {**schedules.get_definition(connection, bad), "cron": "0 0 31 2 *"}  # saved before it was refused
    connection.hset(keys.SCHEDULES, bad, json.dumps(stored))
    good = create(connection, overlap="allow")["name"]
    make_due(connection, bad, at=time.time() - 2)  # the bad one comes first in the loop
    make_due(connection, good)
    process = start_scheduler()
    wait_for(lambda: any(run["jobId"] for run in runs(connection, good)), timeout=30)
    wait_for(lambda: runs(connection, bad), timeout=30)
    failed = runs(connection, bad)[0]
    assert failed["state"] == "failed" and "could not fire: CroniterBadDateError" in failed["failedReason"]
    make_due(connection, good)  # the loop goes on
    wait_for(lambda: len([run for run in runs(connection, good) if run["jobId"]]) == 2, timeout=30)
    assert process.poll() is None


def test_a_run_still_active_at_the_next_firing_is_skipped(connection, redis_url, start_scheduler):
    schedule = create(connection, "workers.tasks.sleep_for", [60])
    name, queue = schedule["name"], schedule["queue"]
    start_scheduler()
    make_due(connection, name)
    wait_for(lambda: len(runs(connection, name)) == 1, timeout=30)
    worker = start_worker(redis_url, queue)
    try:
        wait_for(lambda: runs(connection, name)[0]["state"] == "active", timeout=30)
        make_due(connection, name)
        wait_for(lambda: len(runs(connection, name)) == 2, timeout=30)
        newest = runs(connection, name)[0]
        assert newest["state"] == "skipped" and newest["jobId"] is None
        assert Queue(queue, connection=connection).count == 0
    finally:
        stop_worker(worker)


def test_overlap_allow_enqueues_beside_an_unfinished_run(connection, start_scheduler):
    name = create(connection, overlap="allow")["name"]
    start_scheduler()
    for expected in (1, 2):
        make_due(connection, name)
        wait_for(lambda n=expected: len(runs(connection, name)) == n, timeout=30)
    assert [run["state"] for run in runs(connection, name)] == ["waiting", "waiting"]


def test_run_history_is_capped_per_schedule(connection):
    name = create(connection)["name"]
    for _ in range(keys.SCHEDULE_RUNS_CAP + 5):
        schedule_runs.run_now(connection, name)
    assert connection.zcard(keys.schedule_runs(name)) == keys.SCHEDULE_RUNS_CAP
    assert connection.hlen(keys.schedule_run_data(name)) == keys.SCHEDULE_RUNS_CAP


def test_the_demo_schedules_are_created_once_and_the_procfile_runs_the_scheduler(connection):
    from app.demo import DEMO_SCHEDULES, ensure_demo_schedules

    names = [demo["name"] for demo in DEMO_SCHEDULES]
    assert ensure_demo_schedules(connection) == names
    job_id = schedule_runs.run_now(connection, names[0])
    assert ensure_demo_schedules(connection) == []  # a restart keeps them and their history
    assert runs(connection, names[0])[0]["jobId"] == job_id
    listed = schedules.list_schedules(connection)["schedules"]
    assert [s["schedule"] for s in listed] == ["every minute", "every 2 minutes"]
    procfile = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert procfile["scheduler"].split() == ["rq-monitor-scheduler", "--url", "$REDIS_URL"]


def test_a_function_the_worker_cannot_import_fails_each_run_with_the_reason(connection, redis_url, start_scheduler):
    schedule = create(connection, "workers.tasks.no_such_function", overlap="allow")
    name, queue = schedule["name"], schedule["queue"]
    start_scheduler()
    for expected in (1, 2):
        make_due(connection, name)
        wait_for(lambda n=expected: len(runs(connection, name)) == n, timeout=30)
    run_worker(redis_url, queue)
    wait_for(lambda: all(run["failedReason"] for run in runs(connection, name)), timeout=30)
    assert all("no_such_function" in run["failedReason"] for run in runs(connection, name))
    assert schedules.get_schedule(connection, name)["nextRunAt"] is not None  # the schedule goes on


def test_the_scheduler_survives_a_redis_restart_and_keeps_the_cadence(tmp_path):
    from app.embedded_redis import start_redis_server  # noqa: PLC0415

    data_dir = tmp_path / "redis"
    server = start_redis_server(data_dir, persist=True)
    port = int((data_dir / "redis.port").read_text().strip())
    url = f"redis://127.0.0.1:{port}/0"
    connection = Redis.from_url(url)
    name = create(connection, overlap="allow")["name"]
    command = [sys.executable, "-m", "workers.scheduler", "--url", url, "--logging-level", "WARNING"]
    scheduler = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        make_due(connection, name)
        wait_for(lambda: len(runs(connection, name)) == 1, timeout=30)
        connection.save()  # the data set survives the restart, as a production Redis's does
        server.terminate()
        server.wait(timeout=10)
        time.sleep(2)
        server = start_redis_server(data_dir, port=port, persist=True)
        make_due(connection, name)
        wait_for(lambda: len(runs(connection, name)) == 2, timeout=60)
        assert scheduler.poll() is None
        wait_for(lambda: heartbeat_pid(connection) == scheduler.pid, timeout=30)
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=15)
        server.terminate()
        server.wait(timeout=10)
