"""rq-monitor-pool with real processes: a SIGKILLed child, a job stalled twice, graceful shutdown with a grace
period, the memory limit, slot control and health. Slow by nature: few tests, generous deadlines."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime

import psutil
import pytest
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

from app.domain import attempts, keys, pools
from app.domain.errors import WorkerNotFound
from app.domain.stalled import INTERRUPTED_COUNTER, STALLED_COUNTER, STALLED_REASON
from app.domain.worker_control import send_control
from app.domain.workers import read_worker
from app.embedded_redis import free_port, start_redis_server
from tests.helpers import ROOT, wait_for

PoolStarter = Callable[..., tuple[subprocess.Popen, str]]


@pytest.fixture
def start_pool(redis_url: str, tmp_path) -> Iterator[PoolStarter]:
    """Start `rq-monitor-pool` (as `python -m workers.pool`) with a 1 s heartbeat; killed at the end if still up."""
    started: list[subprocess.Popen] = []

    def start(*queues: str, workers: int = 1, options: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
        name = f"tp{uuid.uuid4().hex[:6]}"
        command = [sys.executable, "-m", "workers.pool", "--url", redis_url, "--name", name]
        command += ["--workers", str(workers), "--logging-level", "WARNING", *options, *queues]
        # A broken web setting is none of the pool's business (it must not stop it).
        env = {**os.environ, "WORKER_HEARTBEAT_SECONDS": "1", "LIVE_TICK_SECONDS": "not-a-number"}
        with (tmp_path / f"{name}.log").open("w") as log:  # never a pipe nobody reads: it would fill and block
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        started.append(process)
        return process, name

    yield start
    for process in started:
        children = _children_of(process.pid)  # before the pool goes: then they belong to init
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def _children_of(pid: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _events(connection: Redis, pool: str, event: str | None = None) -> list[dict]:
    found = []
    for _, raw in connection.xrange(keys.POOL_EVENTS, count=10000):
        fields = {key.decode(): value.decode() for key, value in raw.items()}
        if fields["pool"] == pool and (event is None or fields["event"] == event):
            found.append({**fields, "details": json.loads(fields["details"] or "{}")})
    return found


def _at(event: dict) -> float:
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()


def _child_pid(connection: Redis, worker: str) -> int:
    wait_for(lambda: connection.hget(f"rq:worker:{worker}", "pid"), timeout=30)
    return int(connection.hget(f"rq:worker:{worker}", "pid"))


def _running_on(connection: Redis, job: Job, timeout: float = 30) -> str:
    wait_for(lambda: job.get_status() == JobStatus.STARTED, timeout=timeout)
    worker = connection.hget(job.key, "worker_name")
    assert worker
    return worker.decode()


def test_a_sigkilled_child_is_replaced_within_a_second_and_its_job_runs_once_more(connection, start_pool):
    queue = Queue("tp-kill", connection=connection)
    pool, name = start_pool("tp-kill", workers=2)
    job = queue.enqueue("workers.tasks.record_then_sleep", "tp-kill:runs", "run", 2)
    worker = _running_on(connection, job)
    assert worker in {f"{name}.1", f"{name}.2"}
    pid = _child_pid(connection, worker)

    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    # (not by polling the status: the replacement takes the job again within a tenth of a second)
    wait_for(lambda: _events(connection, name, "workerStalled"), timeout=10)
    wait_for(lambda: _events(connection, name, "workerRestarted"), timeout=10)
    restarted = _events(connection, name, "workerRestarted")[0]
    (recovered,) = _events(connection, name, "workerStalled")

    # The pool's own times (the test's polling lags on a loaded machine): the spec's 2 s and 1 s.
    assert _at(recovered) - killed_at < 2.0 and recovered["details"]["action"] == "requeue"
    assert _at(restarted) - killed_at < 1.0
    assert restarted["worker"] == worker  # the slot keeps its name
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=30)
    assert connection.lrange("tp-kill:runs", 0, -1) == [b"run", b"run"]  # ran once more
    job.refresh()
    assert job.meta[STALLED_COUNTER] == 1 and job.meta[attempts.ATTEMPTS_MADE] == 1  # ended once
    assert [e["jobId"] for e in _events(connection, name, "workerCompleted")] == [job.id]
    assert [e["jobId"] for e in _events(connection, name, "workerStalled")] == [job.id]
    assert connection.zcard("rq:wip:tp-kill") == 0

    wait_for(lambda: (pools.get_pool(connection, name) or {}).get("restarts") == 1, timeout=10)
    registration = pools.get_pool(connection, name)
    assert registration["size"] == 2 and registration["pid"] == pool.pid
    assert {slot["worker"] for slot in registration["slots"].values()} == {f"{name}.1", f"{name}.2"}
    assert _child_pid(connection, worker) != pid
    pool.terminate()
    assert pool.wait(timeout=30) == 0


def test_a_job_stalled_twice_fails_with_bullmqs_reason_and_is_not_retried(connection, start_pool):
    queue = Queue("tp-twice", connection=connection)
    _, name = start_pool("tp-twice")
    job = queue.enqueue(
        "workers.tasks.record_then_sleep", "tp-twice:runs", "run", 60, retry=attempts.retry_for(3, None)
    )
    worker, killed = f"{name}.1", set()
    for stalls in (1, 2):
        assert _running_on(connection, job) == worker
        wait_for(lambda: _child_pid(connection, worker) not in killed, timeout=15)  # on the replacement
        killed.add(_child_pid(connection, worker))
        os.kill(_child_pid(connection, worker), signal.SIGKILL)
        wait_for(lambda: len(_events(connection, name, "workerStalled")) == stalls, timeout=10)  # noqa: B023
    wait_for(lambda: job.get_status() == JobStatus.FAILED, timeout=10)
    job.refresh()
    assert attempts.read_attempts(job)["failedReason"] == STALLED_REASON
    assert job.meta[STALLED_COUNTER] == 2
    assert job.id in queue.failed_job_registry.get_job_ids() and queue.count == 0
    time.sleep(1.5)  # no further retry, though its Retry policy had attempts left
    assert connection.lrange("tp-twice:runs", 0, -1) == [b"run", b"run"] and job.get_status() == JobStatus.FAILED


def test_sigterm_puts_a_long_job_back_at_the_head_after_the_grace_period_and_exits_0(connection, redis_url, start_pool):
    queue = Queue("tp-term", connection=connection)
    port = free_port()
    pool, name = start_pool("tp-term", options=("--grace-period", "2", "--health-port", str(port)))
    job = queue.enqueue("workers.tasks.sleep_for", 30)
    _running_on(connection, job)
    waiting = queue.enqueue("workers.tasks.noop")

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        health = json.loads(response.read())
    assert health["healthy"] is True and health["totalWorkers"] == 1 and health["activeWorkers"] == 1
    assert health["redisConnected"] is True and health["uptime"] >= 0
    assert set(health["memoryUsage"]) == {"used", "total", "percentUsed"}
    command = [sys.executable, "-m", "workers.pool", "health", "--url", redis_url, "--pool", name]
    wait_for(lambda: subprocess.run(command, cwd=ROOT, capture_output=True).returncode == 0, timeout=10)

    pool.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert pool.wait(timeout=30) == 0
    assert time.monotonic() - signalled < 12  # 2 s of grace, then at once
    assert job.get_status() == JobStatus.QUEUED
    assert queue.get_job_ids() == [job.id, waiting.id]  # back at the head
    assert connection.zcard("rq:wip:tp-term") == 0  # nothing left active
    job.refresh()
    assert job.meta[INTERRUPTED_COUNTER] == 1 and STALLED_COUNTER not in job.meta  # interrupted, not stalled
    assert attempts.read_attempts(job)["failedReason"] is None
    assert [e["event"] for e in _events(connection, name)][-1] == "shutdown"
    assert "forceShutdown" in [e["event"] for e in _events(connection, name)]
    assert pools.get_pool(connection, name) is None
    assert subprocess.run(command, cwd=ROOT, capture_output=True).returncode == 1


def test_memory_limit_recycles_a_child_after_its_job_and_kills_the_horse_at_one_and_a_half_times(
    connection, start_pool
):
    queue = Queue("tp-mem", connection=connection)
    _, name = start_pool("tp-mem", options=("--memory-limit-mb", "200"))
    # Worker + horse are ~60 MB: 180 MB more is over the limit, under 1.5 x.
    over = queue.enqueue("workers.tasks.hold_memory", 180, 4)
    worker = _running_on(connection, over)
    first_pid = _child_pid(connection, worker)
    wait_for(lambda: over.get_status() == JobStatus.FINISHED, timeout=30)  # the job is not disturbed
    wait_for(lambda: _events(connection, name, "workerRestarted"), timeout=15)
    wait_for(lambda: _child_pid(connection, worker) != first_pid, timeout=15)  # recycled after its job
    high = _events(connection, name, "highMemoryUsage")
    assert high and high[0]["details"]["action"] == "recycle"

    way_over = queue.enqueue("workers.tasks.hold_memory", 400, 30)
    _running_on(connection, way_over)
    wait_for(lambda: way_over.get_status() == JobStatus.FAILED, timeout=30)
    way_over.refresh()
    assert attempts.read_attempts(way_over)["failedReason"] == "memory limit exceeded"
    assert any(e["details"]["action"] == "killed" for e in _events(connection, name, "highMemoryUsage"))
    assert [e["jobId"] for e in _events(connection, name, "workerCompleted")] == [over.id]
    assert [e["jobId"] for e in _events(connection, name, "workerFailed")] == [way_over.id]


def _status(connection: Redis, worker: str, field: str = "status") -> str | None:
    try:
        return read_worker(connection, worker, time.time(), 60, 300)[field]
    except WorkerNotFound:
        return None


def test_slot_control_stop_start_and_restart_are_acknowledged(connection, start_pool):
    _, name = start_pool("tp-ctl", workers=2)
    first = _child_pid(connection, f"{name}.1")
    wait_for(lambda: connection.pubsub_numsub(keys.pool_control_channel(name))[0][1] == 1, timeout=15)
    connection.publish(keys.pool_control_channel(name), b"\x00 not a command")  # ignored
    wait_for(lambda: _status(connection, f"{name}.1") == "idle", timeout=15)
    wait_for(lambda: _status(connection, f"{name}.1", "pool") == name, timeout=15)

    stopped = send_control(connection, f"{name}.1", "stop")
    assert stopped.acknowledged and stopped.status_before == "idle", stopped
    wait_for(lambda: _status(connection, f"{name}.1") == "stopped", timeout=15)  # shown, and not respawned
    time.sleep(1.5)
    assert _status(connection, f"{name}.1") == "stopped"
    assert pools.get_pool(connection, name)["slots"]["1"]["state"] == pools.SLOT_STOPPED
    assert _gone(first)

    assert send_control(connection, f"{name}.1", "restart").error == "not_running"
    started = send_control(connection, f"{name}.1", "start")
    assert started.acknowledged and started.status_before == "stopped", started
    wait_for(lambda: connection.hget(f"rq:worker:{name}.1", "pid") not in (None, str(first).encode()), timeout=15)
    second = _child_pid(connection, f"{name}.1")
    wait_for(lambda: _status(connection, f"{name}.1") == "idle", timeout=15)

    assert send_control(connection, f"{name}.1", "restart").acknowledged
    wait_for(lambda: connection.hget(f"rq:worker:{name}.1", "pid") not in (None, str(second).encode()), timeout=15)
    assert send_control(connection, f"{name}.2", "start").error == "already_running"


def test_a_second_signal_ends_the_grace_period_and_jobs_without_a_timeout_get_the_max_job_duration(
    connection, start_pool
):
    queue = Queue("tp-again", connection=connection)
    pool, name = start_pool("tp-again", options=("--grace-period", "60", "--max-job-duration", "1"))
    timed = queue.enqueue("workers.tasks.sleep_for", 20)
    connection.hdel(timed.key, "timeout")  # a job enqueued without any timeout (RQ's Queue always sets one)
    wait_for(lambda: timed.get_status() == JobStatus.FAILED, timeout=30)
    timed.refresh()
    assert "JobTimeoutException" in (attempts.read_attempts(timed)["failedReason"] or "") + (
        timed.latest_result().exc_string or ""
    )

    job = queue.enqueue("workers.tasks.sleep_for", 30, job_timeout=120)
    _running_on(connection, job)
    pool.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    assert pool.poll() is None and job.get_status() == JobStatus.STARTED  # waiting for its grace period
    pool.send_signal(signal.SIGTERM)
    assert pool.wait(timeout=15) == 0
    assert job.get_status() == JobStatus.QUEUED and queue.get_job_ids() == [job.id]


def test_a_redis_restart_under_a_busy_pool_loses_no_job(tmp_path):
    data_dir = tmp_path / "redis"
    server = start_redis_server(data_dir, persist=True)
    port = int((data_dir / "redis.port").read_text().strip())
    url = f"redis://127.0.0.1:{port}/0"
    connection = Redis.from_url(url)
    queue = Queue("tp-restart", connection=connection)
    command = [sys.executable, "-m", "workers.pool", "--url", url, "--workers", "2", "--logging-level", "WARNING"]
    with (tmp_path / "pool.log").open("w") as log:
        pool = subprocess.Popen(
            [*command, "tp-restart"],
            cwd=ROOT,
            env={**os.environ, "WORKER_HEARTBEAT_SECONDS": "1"},
            stdout=log,
            stderr=log,
        )
    try:
        running = queue.enqueue("workers.tasks.record_then_sleep", "tp-restart:runs", "a", 3)
        _running_on(connection, running)
        connection.shutdown(save=True)  # a restart that keeps the data (as with persistence configured)
        server.wait(timeout=10)
        time.sleep(1)
        server = start_redis_server(data_dir, port=port, persist=True)
        later = queue.enqueue("workers.tasks.add", 2, 3)
        wait_for(lambda: later.get_status() == JobStatus.FINISHED, timeout=60, interval=0.2)
        wait_for(lambda: running.get_status() == JobStatus.FINISHED, timeout=60, interval=0.2)
        assert pool.poll() is None and later.return_value() == 5
        assert connection.zcard("rq:wip:tp-restart") == 0
        pool.terminate()
        assert pool.wait(timeout=30) == 0
    finally:
        children = _children_of(pool.pid)
        if pool.poll() is None:
            pool.kill()
            pool.wait(timeout=10)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        connection.close()
        server.terminate()
        server.wait(timeout=10)


def test_events_go_to_the_capped_stream_and_to_python_callbacks(connection):
    from workers.pool import MonitoredPool  # noqa: PLC0415

    pool = MonitoredPool(["tp-events"], connection, 2, name="tp-events")
    seen: list[dict] = []
    pool.on("workerFailed", seen.append)
    pool.on("workerFailed", lambda event: 1 / 0)  # a failing callback stops nothing
    with pytest.raises(ValueError, match="unknown pool event"):
        pool.on("workerExploded", seen.append)
    pool.emit("workerFailed", 2, "job-1", reason="boom")
    assert seen == [
        {
            "event": "workerFailed",
            "pool": "tp-events",
            "slot": 2,
            "worker": "tp-events.2",
            "jobId": "job-1",
            "reason": "boom",
        }
    ]
    (event,) = _events(connection, "tp-events")
    assert (event["event"], event["worker"], event["jobId"], event["details"]) == (
        "workerFailed",
        "tp-events.2",
        "job-1",
        {"reason": "boom"},
    )
    assert pools.pool_ttl(10) == 30 and pool.num_workers == 2


def test_bad_capabilities_stop_the_pool_at_start_with_the_reason(redis_url):
    command = [sys.executable, "-m", "workers.pool", "--url", redis_url, "--capabilities", "[1, 2]", "tp-caps"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--capabilities" in result.stderr and "JSON object" in result.stderr


def test_children_stop_when_their_pool_is_sigkilled(connection, start_pool):
    pool, name = start_pool("tp-orphans", workers=2)
    wait_for(lambda: connection.hget(f"rq:worker:{name}.2", "pid"), timeout=30)
    children = [_child_pid(connection, f"{name}.{slot}") for slot in (1, 2)]
    os.kill(pool.pid, signal.SIGKILL)
    pool.wait(timeout=10)

    wait_for(lambda: all(_gone(pid) for pid in children), timeout=20)  # warm shutdown on the pool's death
    wait_for(lambda: not connection.sismember("rq:workers", f"rq:worker:{name}.1"), timeout=10)


def test_a_second_stop_never_kills_the_running_job(connection, start_pool):
    """RQ takes a second stop signal for a forced stop (it kills the work horse): a child already asked to exit is
    never signalled again, by control or by the pool's own shutdown."""
    queue = Queue("tp-twice-stop", connection=connection)
    pool, name = start_pool("tp-twice-stop")
    wait_for(lambda: connection.pubsub_numsub(keys.pool_control_channel(name))[0][1] == 1, timeout=15)
    job = queue.enqueue("workers.tasks.record_then_sleep", "tp-twice-stop:runs", "run", 7)
    worker = _running_on(connection, job)
    first = send_control(connection, worker, "stop")
    assert first.acknowledged and first.status_before == "busy", first
    time.sleep(1.3)  # RQ ignores a second signal within a second of the first: these come later
    again = send_control(connection, worker, "stop")
    assert again.acknowledged and again.status_after == "stopping", again
    time.sleep(1.3)
    restart = send_control(connection, worker, "restart")  # comes back after its job: still no second signal
    assert restart.acknowledged and restart.status_after == "stopping", restart
    time.sleep(1.3)
    assert job.get_status() == JobStatus.STARTED
    pool.send_signal(signal.SIGTERM)  # and the pool's shutdown: no signal to a child already exiting

    assert pool.wait(timeout=30) == 0
    assert job.get_status() == JobStatus.FINISHED
    assert connection.lrange("tp-twice-stop:runs", 0, -1) == [b"run"]  # ran once: not stalled, not failed
    job.refresh()
    assert STALLED_COUNTER not in job.meta and INTERRUPTED_COUNTER not in job.meta
    assert connection.zcard("rq:wip:tp-twice-stop") == 0  # nothing left active
    assert not _events(connection, name, "workerStalled")


def test_a_stop_of_a_stopped_slot_leaves_nothing_behind_for_its_next_child(connection, start_pool):
    """A stop with no child to stop notes nothing: the next child started in the slot is not taken for exiting (its
    status, its memory limit, its crash)."""
    _, name = start_pool("tp-stale", workers=1)
    worker = f"{name}.1"
    first = _child_pid(connection, worker)
    wait_for(lambda: connection.pubsub_numsub(keys.pool_control_channel(name))[0][1] == 1, timeout=15)
    assert send_control(connection, worker, "stop").acknowledged
    wait_for(lambda: _status(connection, worker) == "stopped", timeout=15)
    again = send_control(connection, worker, "stop")  # nothing running: nothing to note
    assert again.acknowledged and again.status_after == "stopped", again
    assert send_control(connection, worker, "start").acknowledged
    wait_for(lambda: connection.hget(f"rq:worker:{worker}", "pid") not in (None, str(first).encode()), timeout=15)
    second = _child_pid(connection, worker)

    running = send_control(connection, worker, "start")
    assert running.error == "already_running" and running.status_before == "idle", running  # not "stopping"
    assert send_control(connection, worker, "restart").status_before == "idle"  # and it does restart
    wait_for(lambda: connection.hget(f"rq:worker:{worker}", "pid") not in (None, str(second).encode()), timeout=15)


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A port that accepts connections and never answers: a frozen Redis."""
    server = socket.create_server(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join(timeout=5)
    for conn in accepted:
        conn.close()
    server.close()


def test_the_pools_redis_client_has_timeouts_and_its_loop_outlives_a_frozen_redis(silent_redis, caplog):
    from workers.pool import REDIS_SOCKET_TIMEOUT, MonitoredPool, connect  # noqa: PLC0415

    kwargs = connect("redis://127.0.0.1:1/0").connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == REDIS_SOCKET_TIMEOUT and kwargs["socket_connect_timeout"] > 0
    frozen = Redis.from_url(silent_redis, socket_timeout=0.2, socket_connect_timeout=0.2)
    pool = MonitoredPool(["tp-frozen"], frozen, 1, name="tp-frozen", heartbeat_seconds=0)
    pool.slots[1] = pools.SLOT_STOPPED  # no child: the loop's own Redis work only
    pool.status = pool.Status.STARTED
    for _ in range(2):
        started = time.monotonic()
        assert pool._safe_loop_once(burst=False) is False  # logged, looked at again: never raised
        assert time.monotonic() - started < 10

    started = time.monotonic()
    pool.request_stop()  # a signal handler: no Redis I/O there
    assert time.monotonic() - started < 0.1 and pool.status == pool.Status.STOPPED


def test_the_shutdown_is_announced_by_the_loop_not_the_signal_handler(connection):
    from workers.pool import MonitoredPool  # noqa: PLC0415

    pool = MonitoredPool(["tp-announce"], connection, 1, name="tp-announce", grace_period=3)
    seen: list[dict] = []
    pool.on("shuttingDown", seen.append)
    pool.request_stop()
    assert seen == [] and not _events(connection, "tp-announce", "shuttingDown")
    assert pool._loop_once(burst=False) is True  # no child left: done, after announcing
    assert [event["gracePeriod"] for event in seen] == [3]
    assert [e["details"] for e in _events(connection, "tp-announce", "shuttingDown")] == [{"gracePeriod": 3}]


def _listens_on(pid: int, port: int) -> bool:
    try:
        return any(c.laddr and c.laddr.port == port for c in psutil.Process(pid).net_connections("tcp"))
    except psutil.Error:
        return False


def test_children_hold_no_health_port_and_a_restarted_pool_binds_it_while_an_orphan_runs(connection, start_pool):
    """The health-port and pub/sub sockets are closed in each child: a child still running its job after its pool
    was SIGKILLed does not keep the port from the pool that replaces it."""
    queue = Queue("tp-port", connection=connection)
    port = free_port()
    pool, name = start_pool("tp-port", options=("--health-port", str(port)))
    wait_for(lambda: connection.pubsub_numsub(keys.pool_control_channel(name))[0][1] == 1, timeout=15)
    job = queue.enqueue("workers.tasks.sleep_for", 15)
    worker = _running_on(connection, job)
    child = _child_pid(connection, worker)
    assert _listens_on(pool.pid, port) and not _listens_on(child, port)

    os.kill(pool.pid, signal.SIGKILL)
    pool.wait(timeout=10)
    try:
        assert not _gone(child)  # warm shutdown: still running its job
        again, _ = start_pool("tp-port", options=("--health-port", str(port)))
        wait_for(lambda: _listens_on(again.pid, port), timeout=15)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert json.loads(response.read())["totalWorkers"] == 1
        assert again.poll() is None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)  # the orphan: no pool of the fixture's knows it any more
