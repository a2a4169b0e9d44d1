"""MonitoredWorker heartbeats and control in real `rq worker` processes (issue 11, items 1 and 4).

Workers run with WORKER_HEARTBEAT_SECONDS=1 so that refreshes are seen within seconds; every wait polls with a
deadline instead of sleeping a fixed time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from redis import Redis
from rq import Queue
from rq.job import JobStatus

from app.domain import keys
from app.domain import workers as registry
from app.domain.errors import ActionNotSupported, InvalidInput, WorkerNotFound
from app.domain.worker_control import send_control
from tests.helpers import ROOT, RestartableRedis, stop_worker, wait_for, worker_command

FAST = {"WORKER_HEARTBEAT_SECONDS": "1"}


def launch(redis_url: str, *queues: str, plain: bool = False, **env: str) -> subprocess.Popen:
    command = worker_command(redis_url, *queues, burst=False, plain=plain)
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **FAST, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def workers_of(connection: Redis, queue: str) -> list[dict]:
    return [w for w in registry.read_workers(connection, time.time(), 60, 300) if queue in w["queues"]]


def the_worker(connection: Redis, queue: str) -> dict:
    wait_for(lambda: len(workers_of(connection, queue)) == 1, timeout=30)
    return workers_of(connection, queue)[0]


def heartbeat_at(connection: Redis, name: str) -> float:
    return float(connection.hget(registry.WORKER_PREFIX + name, registry.HEARTBEAT_AT) or 0)


def test_an_idle_worker_heartbeats_with_its_resources_capabilities_and_limit(connection, redis_url, running):
    capabilities = {"gpu": True, "cpu": 8}
    running.append(
        launch(redis_url, "l-idle", RQMON_WORKER_CAPABILITIES=json.dumps(capabilities), RQMON_MEMORY_LIMIT_MB="512")
    )
    worker = the_worker(connection, "l-idle")
    assert worker["monitored"] is True and worker["liveness"] == "active" and worker["status"] == "idle"
    assert worker["capabilities"] == capabilities and worker["memory_limit_mb"] == 512.0
    assert worker["memory_usage_mb"] > 5 and worker["cpu_percent"] is not None and worker["pid"] == running[0].pid
    assert worker["pool"] is None and worker["control"] == ["pause", "stop"]
    first = heartbeat_at(connection, worker["worker_name"])
    wait_for(lambda: heartbeat_at(connection, worker["worker_name"]) > first, timeout=10)  # idle, yet refreshed


def test_an_idle_worker_writes_at_its_heartbeat_cadence_not_every_second(connection, redis_url, running):
    """RQ's idle loop (one pass a second here) would write the state and last_heartbeat at every pass: an idle
    MonitoredWorker writes its hash once per WORKER_HEARTBEAT_SECONDS, and its heartbeat still moves."""
    running.append(launch(redis_url, "l-quiet", WORKER_HEARTBEAT_SECONDS="4"))
    name = the_worker(connection, "l-quiet")["worker_name"]
    key = registry.WORKER_PREFIX + name
    beat = connection.hget(key, "last_heartbeat")
    wait_for(lambda: connection.hget(key, "last_heartbeat") != beat, timeout=10)  # just written: a window opens
    connection.config_resetstat()
    time.sleep(3.0)
    hset = connection.info("commandstats").get("cmdstat_hset", {}).get("calls", 0)
    assert hset <= 2, hset  # was 2 a second (state and last_heartbeat): 6 or more in this window
    assert registry.read_worker(connection, name, time.time(), 60, 300)["liveness"] == "active"
    later = connection.hget(key, "last_heartbeat")
    wait_for(lambda: connection.hget(key, "last_heartbeat") != later, timeout=8)  # and it keeps beating


def test_a_busy_worker_heartbeats_during_its_job_and_shows_it(connection, redis_url, running):
    job = Queue("l-busy", connection=connection).enqueue("workers.tasks.sleep_for", 6)
    running.append(launch(redis_url, "l-busy"))
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, timeout=30)
    name = the_worker(connection, "l-busy")["worker_name"]
    during = heartbeat_at(connection, name)
    wait_for(lambda: heartbeat_at(connection, name) > during + 1, timeout=10)  # RQ's monitor loop, every second
    assert job.get_status(refresh=True) == JobStatus.STARTED
    worker = workers_of(connection, "l-busy")[0]
    assert worker["status"] == "busy" and worker["liveness"] == "active"
    current = worker["current_job"]
    assert current["job_id"] == job.id and current["queue"] == "l-busy"
    assert current["job_name"] == "workers.tasks.sleep_for" and current["running_for"] >= 0


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]", json.dumps({"x": "y" * 5000})])
def test_bad_capabilities_stop_the_worker_at_start_up_with_the_reason(redis_url, bad):
    process = launch(redis_url, "l-bad", RQMON_WORKER_CAPABILITIES=bad)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0 and "RQMON_WORKER_CAPABILITIES" in stderr


def test_a_broken_web_setting_does_not_stop_a_worker(connection, redis_url, running):
    """A worker reads only its own settings: the web's (thresholds, alert rules) are not its business."""
    running.append(launch(redis_url, "l-web-setting", STUCK_THRESHOLDS_MINUTES="nonsense"))
    assert the_worker(connection, "l-web-setting")["liveness"] == "active"


def test_pause_stops_new_jobs_until_resume_while_the_current_one_finishes(connection, redis_url, running):
    queue = Queue("l-pause", connection=connection)
    current = queue.enqueue("workers.tasks.sleep_for", 2)
    running.append(launch(redis_url, "l-pause"))
    wait_for(lambda: current.get_status(refresh=True) == JobStatus.STARTED, timeout=30)
    name = the_worker(connection, "l-pause")["worker_name"]

    ack = send_control(connection, name, "pause")
    assert ack.acknowledged and (ack.status_before, ack.status_after) == ("busy", "paused")
    later = queue.enqueue("workers.tasks.noop")
    wait_for(lambda: current.get_status(refresh=True) == JobStatus.FINISHED, timeout=15)  # the running job ends
    time.sleep(2.5)  # several dequeue steps of the paused worker
    assert later.get_status(refresh=True) == JobStatus.QUEUED and queue.job_ids == [later.id]
    worker = workers_of(connection, "l-pause")[0]
    assert worker["status"] == "paused" and worker["control"] == ["resume", "stop"]

    ack = send_control(connection, name, "resume")
    assert ack.acknowledged and ack.status_after == "idle"
    wait_for(lambda: later.get_status(refresh=True) == JobStatus.FINISHED, timeout=10)


def test_a_paused_worker_leaves_other_workers_alone(connection, redis_url, running):
    running += [launch(redis_url, "l-one"), launch(redis_url, "l-two")]
    paused = the_worker(connection, "l-one")["worker_name"]
    the_worker(connection, "l-two")
    assert send_control(connection, paused, "pause").acknowledged
    waits = Queue("l-one", connection=connection).enqueue("workers.tasks.noop")
    runs = Queue("l-two", connection=connection).enqueue("workers.tasks.noop")
    wait_for(lambda: runs.get_status(refresh=True) == JobStatus.FINISHED, timeout=15)
    time.sleep(1.5)
    assert waits.get_status(refresh=True) == JobStatus.QUEUED


def test_a_pause_survives_a_redis_restart_and_resume_still_works(tmp_path, running):
    server = RestartableRedis(tmp_path / "redis")
    connection = Redis.from_url(server.url)
    try:
        running.append(launch(server.url, "l-restart"))
        name = the_worker(connection, "l-restart")["worker_name"]
        assert send_control(connection, name, "pause").acknowledged
        server.restart()  # no persistence: every key is gone, the worker's hash and registration included
        worker = the_worker(connection, "l-restart")  # registered again by its heartbeat
        assert worker["worker_name"] == name and worker["status"] == "paused" and worker["monitored"]
        job = Queue("l-restart", connection=connection).enqueue("workers.tasks.noop")
        time.sleep(2.5)
        assert job.get_status(refresh=True) == JobStatus.QUEUED
        wait_for(lambda: connection.pubsub_numsub(keys.worker_control_channel(name))[0][1] == 1, timeout=30)
        assert send_control(connection, name, "resume").acknowledged  # its control channel is back too
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, timeout=15)
        assert running[0].poll() is None
    finally:
        for process in running:
            stop_worker(process)
        connection.close()
        server.process.terminate()
        server.process.wait(timeout=10)


def test_stop_lets_the_current_job_finish_then_the_process_exits(connection, redis_url, running):
    queue = Queue("l-stop", connection=connection)
    current = queue.enqueue("workers.tasks.sleep_for", 2)
    running.append(launch(redis_url, "l-stop"))
    wait_for(lambda: current.get_status(refresh=True) == JobStatus.STARTED, timeout=30)
    name = the_worker(connection, "l-stop")["worker_name"]
    ack = send_control(connection, name, "stop")
    assert ack.acknowledged and ack.status_after == "stopping"
    later = queue.enqueue("workers.tasks.noop")
    assert workers_of(connection, "l-stop")[0]["status"] == "stopping"
    running[0].wait(timeout=30)
    assert running[0].returncode == 0
    assert current.get_status(refresh=True) == JobStatus.FINISHED and later.get_status(refresh=True) == "queued"
    assert workers_of(connection, "l-stop") == []


def test_an_idle_worker_stops_at_once(connection, redis_url, running):
    running.append(launch(redis_url, "l-stop-idle"))
    name = the_worker(connection, "l-stop-idle")["worker_name"]
    assert send_control(connection, name, "stop").acknowledged
    running[0].wait(timeout=15)
    assert running[0].returncode == 0


# A MonitoredWorker that gets SIGTERM just after registering, as a pool's children do when the pool is killed while
# they start: RQ's own order (register, then install its handlers) let the default SIGTERM end the process there.
_TERMINATED_WHILE_STARTING = """
import os, signal, sys
from redis import Redis
from workers import MonitoredWorker

class Probe(MonitoredWorker):
    def subscribe(self):
        os.kill(os.getpid(), signal.SIGTERM)
        super().subscribe()

Probe(["l-starting"], connection=Redis.from_url(sys.argv[1]), name="l-starting-1").work()
"""


def test_a_worker_stopped_while_it_starts_leaves_no_registration(connection, redis_url):
    run = subprocess.run(
        [sys.executable, "-c", _TERMINATED_WHILE_STARTING, redis_url], cwd=ROOT, capture_output=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]  # a warm stop, not a death by signal (-15)
    assert not connection.sismember("rq:workers", "rq:worker:l-starting-1")
    assert workers_of(connection, "l-starting") == []


def test_control_of_an_unknown_worker_or_with_an_unknown_action_is_refused(connection, redis_url, running):
    with pytest.raises(WorkerNotFound):
        send_control(connection, "no-such-worker", "pause")
    running.append(launch(redis_url, "l-unknown"))
    name = the_worker(connection, "l-unknown")["worker_name"]
    with pytest.raises(InvalidInput):
        send_control(connection, name, "explode")
    with pytest.raises(ActionNotSupported):  # not in a pool
        send_control(connection, name, "restart")


def test_control_of_a_dead_worker_answers_at_once(connection, redis_url, running):
    running.append(launch(redis_url, "l-dead"))
    name = the_worker(connection, "l-dead")["worker_name"]
    running[0].send_signal(signal.SIGKILL)
    running[0].wait(timeout=10)
    started = time.monotonic()
    ack = send_control(connection, name, "pause")
    assert not ack.acknowledged and ack.error == "no_listener"
    assert time.monotonic() - started < 4.0  # at once: no wait for the 5 s timeout


def test_garbage_on_the_channel_is_ignored_and_the_worker_still_answers(connection, redis_url, running):
    running.append(launch(redis_url, "l-garbage"))
    name = the_worker(connection, "l-garbage")["worker_name"]
    channel = keys.worker_control_channel(name)
    for garbage in [b"\x00\xff", b"not json", b"[]", b'{"id": 5}', b'{"action": "pause"}', b"x" * 5000]:
        assert connection.publish(channel, garbage) == 1
    ack = send_control(connection, name, "resume", timeout=5)
    assert ack.acknowledged and ack.status_after == "idle"
    assert running[0].poll() is None


def test_a_reply_that_never_comes_ends_at_the_timeout(connection):
    """A listener that never answers (a hung process): the caller gets its answer at the deadline, no later."""
    name = "l-silent.1"
    connection.hset(
        registry.WORKER_PREFIX + name,
        mapping={registry.MONITORED: registry.monitored_value(), "last_heartbeat": _now()},
    )
    connection.sadd(registry.WORKERS_SET, registry.WORKER_PREFIX + name)
    silent = connection.pubsub()
    silent.subscribe(keys.worker_control_channel(name))
    try:
        started = time.monotonic()
        ack = send_control(connection, name, "pause", timeout=1.5)
        elapsed = time.monotonic() - started
        assert not ack.acknowledged and ack.error == "timeout" and 1.4 < elapsed < 4.0
    finally:
        silent.close()


def test_a_garbage_reply_is_reported_as_such(connection):
    name = "l-liar.1"
    connection.hset(
        registry.WORKER_PREFIX + name,
        mapping={registry.MONITORED: registry.monitored_value(), "last_heartbeat": _now()},
    )
    connection.sadd(registry.WORKERS_SET, registry.WORKER_PREFIX + name)
    liar = connection.pubsub()
    liar.subscribe(**{keys.worker_control_channel(name): lambda m: _reply_garbage(connection, m)})
    thread = liar.run_in_thread(sleep_time=0.05, daemon=True)
    try:
        ack = send_control(connection, name, "pause", timeout=3)
        assert not ack.acknowledged and ack.error == "bad_reply"
    finally:
        thread.stop()
        thread.join(timeout=2)
        liar.close()


def _reply_garbage(connection: Redis, message: dict) -> None:
    request_id = json.loads(message["data"])["id"]
    connection.rpush(keys.control_reply(request_id), b"{garbage")


def _now() -> str:
    from rq.utils import now, utcformat

    return utcformat(now())


def test_a_plain_rq_worker_is_read_and_only_stopped_unacknowledged(connection, redis_url, running):
    running.append(launch(redis_url, "l-plain", plain=True))
    worker = the_worker(connection, "l-plain")
    assert worker["monitored"] is False and worker["liveness"] == "active" and worker["status"] == "idle"
    assert worker["capabilities"] is None and worker["memory_usage_mb"] is None and worker["control"] == ["stop"]
    with pytest.raises(ActionNotSupported, match="plain rq worker"):
        send_control(connection, worker["worker_name"], "pause")
    ack = send_control(connection, worker["worker_name"], "stop")
    assert not ack.acknowledged and ack.error == "not_acknowledged"
    running[0].wait(timeout=15)  # RQ's own shutdown command did stop it
