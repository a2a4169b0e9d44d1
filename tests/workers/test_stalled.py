"""Stalled-job recovery (app.domain.stalled): BullMQ's semantics over RQ, exactly once, one round trip when idle;
and a real MonitoredWorker SIGKILLed mid-job."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime

import psutil
import pytest
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.utils import utcformat

from app.domain import attempts, keys, pools, workers
from app.domain.stalled import MAX_STALLED_COUNT, STALLED_COUNTER, STALLED_REASON, recover_stalled
from app.domain.stuck import get_stuck_jobs
from tests.helpers import make_active_job, start_worker, stop_worker, wait_for


def _register_worker(connection: Redis, name: str, heartbeat_age: float) -> None:
    """A worker registration as RQ writes it, with its last heartbeat `heartbeat_age` seconds ago."""
    beat = datetime.fromtimestamp(time.time() - heartbeat_age, UTC)
    connection.hset(f"rq:worker:{name}", mapping={"birth": utcformat(beat), "last_heartbeat": utcformat(beat)})
    connection.sadd("rq:workers", f"rq:worker:{name}")


def _wip(connection: Redis, queue: str) -> list[bytes]:
    return connection.zrange(f"rq:wip:{queue}", 0, -1)


def _last_execution_heartbeat(connection: Redis, queue: str, age: float) -> None:
    """Score the queue's running entries as RQ's heartbeat does (last execution heartbeat + 30 s + 60 s)."""
    for entry in _wip(connection, queue):
        connection.zadd(f"rq:wip:{queue}", {entry: time.time() - age + 90})


def _stalled_job(connection: Redis, queue: str, minutes_running: float = 1) -> Job:
    """A running job whose worker ("test-worker", unregistered) beat last when the job started."""
    job = make_active_job(connection, queue, minutes_running=minutes_running)
    _last_execution_heartbeat(connection, queue, minutes_running * 60)
    return job


def test_a_job_whose_worker_is_gone_goes_back_to_the_head_then_fails_on_its_second_stall(connection):
    queue = Queue("st-basic", connection=connection)
    waiting = queue.enqueue("workers.tasks.noop")
    job = _stalled_job(connection, "st-basic", minutes_running=15)  # its worker "test-worker" is not registered
    assert [alert["jobId"] for alert in get_stuck_jobs(connection)] == [job.id]  # indexed in run-starts

    recovered = recover_stalled(connection, stale_seconds=300)
    assert [(r.job_id, r.action, r.stalled_counter) for r in recovered] == [(job.id, "requeue", 1)]
    assert queue.get_job_ids() == [job.id, waiting.id]  # at the head
    job.refresh()
    assert job.get_status() == JobStatus.QUEUED
    assert job.meta[STALLED_COUNTER] == 1 and job.meta[attempts.ATTEMPTS_MADE] == 0  # not an attempt
    assert _wip(connection, "st-basic") == [] and connection.zcard(keys.run_starts("st-basic")) == 0
    assert get_stuck_jobs(connection) == []
    assert connection.smembers("rq:worker:test-worker:executions") == set()
    assert recover_stalled(connection) == []  # nothing left to do

    # It runs again and its worker dies again: past MAX_STALLED_COUNT it fails for good, with BullMQ's reason.
    assert MAX_STALLED_COUNT == 1
    queue.remove(job.id)
    rerun = _stalled_job(connection, "st-basic", minutes_running=6)
    rerun.meta = {**job.meta}
    rerun.save_meta()
    recovered = recover_stalled(connection)
    assert [(r.job_id, r.action, r.stalled_counter) for r in recovered] == [(rerun.id, "fail", 2)]
    rerun.refresh()
    assert rerun.get_status() == JobStatus.FAILED
    assert rerun.id in queue.failed_job_registry.get_job_ids() and rerun.id not in queue.get_job_ids()
    described = attempts.read_attempts(rerun)
    # Recorded as every abandoned run is (outcomes.record_abandoned_attempt): the run that failed is an attempt made.
    assert described["failedReason"] == STALLED_REASON and described["attemptsMade"] == 1
    assert described["failedException"] == "StalledJobError"
    assert rerun.latest_result().exc_string == STALLED_REASON
    outcomes = connection.lrange(keys.OUTCOMES, 0, -1)
    assert len(outcomes) == 1 and outcomes[0].startswith(b"0|") and rerun.id.encode() in outcomes[0]
    events = connection.xrange(keys.POOL_EVENTS)
    assert [(e[b"event"], e[b"jobId"]) for _, e in events] == [
        (b"workerStalled", job.id.encode()),
        (b"workerStalled", rerun.id.encode()),
    ]
    # The script's entries are laid out as pools.add_event's: the same fields, in the same order.
    pools.add_event(connection, "workerReady", "st-pool", 1, "st-pool.1")
    *moved, written = [[field.decode() for field in entry] for _, entry in connection.xrange(keys.POOL_EVENTS)]
    assert moved == [list(keys.POOL_EVENT_FIELDS)] * 2 and written == list(keys.POOL_EVENT_FIELDS)


def test_a_pool_childs_stall_event_names_its_pool_and_slot(connection):
    job = _stalled_job(connection, "st-child", minutes_running=3)
    _register_worker(connection, "test-worker", heartbeat_age=600)
    own = workers.monitored_value(512.0, "odd pool%.[x]", 3, '{"gpu": [1, 2]}')
    connection.hset("rq:worker:test-worker", workers.MONITORED, own)
    assert [r.job_id for r in recover_stalled(connection, stale_seconds=60)] == [job.id]
    [(_, event)] = connection.xrange(keys.POOL_EVENTS)
    assert event[b"event"] == b"workerStalled"
    assert (event[b"pool"], event[b"slot"], event[b"worker"]) == (b"odd pool%.[x]", b"3", b"test-worker")


def test_a_live_worker_keeps_its_job_and_a_stale_one_loses_it(connection):
    job = _stalled_job(connection, "st-live", minutes_running=3)
    _register_worker(connection, "test-worker", heartbeat_age=5)
    assert recover_stalled(connection, stale_seconds=60) == []
    assert Job.fetch(job.id, connection=connection).get_status() == JobStatus.STARTED
    # The product's own heartbeat counts too: a fresh rqmon_heartbeat_at keeps an old RQ heartbeat alive.
    _register_worker(connection, "test-worker", heartbeat_age=120)
    connection.hset("rq:worker:test-worker", "rqmon_heartbeat_at", repr(time.time()))
    assert recover_stalled(connection, stale_seconds=60) == []
    connection.hdel("rq:worker:test-worker", "rqmon_heartbeat_at")
    assert [r.job_id for r in recover_stalled(connection, stale_seconds=60)] == [job.id]


def test_keys_of_another_type_never_stop_the_recovery_of_the_other_runs(connection):
    """A worker key that is not a hash (the run's worker is gone), a registry entry whose job key is a string, a
    dead worker's executions that are not a set: each reads as absent, and the other runs are recovered."""
    odd_worker = _stalled_job(connection, "st-odd-a", minutes_running=15)
    connection.set("rq:worker:test-worker", "not a hash")
    connection.zadd("rq:wip:st-odd-b", {"not-a-job": time.time() - 3600})
    connection.set("rq:job:not-a-job", "not a hash")
    connection.sadd("rq:queues", "rq:queue:st-odd-b")
    connection.set("rq:worker:ghost:executions", "not a set")
    recovered = recover_stalled(connection, stale_seconds=300, dead_workers=["ghost"])
    assert [(r.job_id, r.action) for r in recovered] == [(odd_worker.id, "requeue")]
    assert Queue("st-odd-a", connection=connection).get_job_ids() == [odd_worker.id]
    assert _wip(connection, "st-odd-b") == [b"not-a-job"]  # not a job: left where it is


def test_a_worker_named_dead_loses_its_job_at_once_whatever_its_heartbeat(connection):
    job = make_active_job(connection, "st-dead", minutes_running=0)
    connection.zadd("rq:wip:st-dead", {_wip(connection, "st-dead")[0]: time.time() + 3600})  # fresh execution
    _register_worker(connection, "test-worker", heartbeat_age=0)
    assert recover_stalled(connection) == []
    assert [r.job_id for r in recover_stalled(connection, dead_workers=["test-worker"])] == [job.id]


@pytest.mark.parametrize("dead_workers", [[], ["test-worker"]], ids=["stale", "named-dead"])
def test_concurrent_checks_recover_a_job_once(connection, redis_url, dead_workers):
    jobs = [_stalled_job(connection, "st-race", minutes_running=6) for _ in range(20)]
    barrier = threading.Barrier(4)
    results: list[list] = []

    def check() -> None:
        client = Redis.from_url(redis_url)
        barrier.wait()
        results.append(recover_stalled(client, stale_seconds=300, dead_workers=dead_workers))

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    moved = [run.job_id for result in results for run in result]
    assert sorted(moved) == sorted(job.id for job in jobs)  # each once, whoever won it
    assert Queue("st-race", connection=connection).count == 20
    assert all(Job.fetch(job.id, connection=connection).meta[STALLED_COUNTER] == 1 for job in jobs)
    assert connection.xlen(keys.POOL_EVENTS) == 20


def test_the_check_is_one_round_trip_and_reads_no_job_while_workers_are_alive(connection):
    for _ in range(50):
        make_active_job(connection, "st-cheap", minutes_running=30)
    _last_execution_heartbeat(connection, "st-cheap", age=10)  # their workers beat 10 s ago
    recover_stalled(connection)  # loads the script
    connection.config_resetstat()
    calls: list[tuple] = []
    original = connection.execute_command

    def counting(*args, **kwargs):
        calls.append(args[:1])
        return original(*args, **kwargs)

    connection.execute_command = counting  # type: ignore[method-assign]
    assert recover_stalled(connection) == []
    del connection.execute_command
    assert calls == [("EVALSHA",)]
    stats = connection.info("commandstats")
    assert "cmdstat_hmget" not in stats  # no job hash (nor worker) read


def test_a_sigkilled_monitored_worker_loses_its_job_once_its_registration_is_stale(connection, redis_url):
    queue = Queue("st-kill", connection=connection)
    job = queue.enqueue("workers.tasks.sleep_for", 30)
    worker = start_worker(redis_url, "st-kill")
    try:
        wait_for(lambda: job.get_status() == JobStatus.STARTED, timeout=30)
        for process in [*psutil.Process(worker.pid).children(recursive=True), psutil.Process(worker.pid)]:
            os.kill(process.pid, signal.SIGKILL)  # the worker and its work horse, as an OOM kill would
        worker.wait(timeout=10)
        assert recover_stalled(connection, stale_seconds=300) == []  # its heartbeat is recent: not yet
        started = time.monotonic()
        recovered: list = []
        wait_for(lambda: recovered.extend(recover_stalled(connection, stale_seconds=3)) or recovered, timeout=30)
        assert time.monotonic() - started < 20
        assert [(r.job_id, r.action) for r in recovered] == [(job.id, "requeue")]
        assert queue.get_job_ids() == [job.id] and job.get_status() == JobStatus.QUEUED
        assert recover_stalled(connection, stale_seconds=3) == []
    finally:
        stop_worker(worker)


def test_the_tickers_task_recovers_stalled_jobs_with_the_configured_threshold(connection, redis_url, tmp_path):
    from app.ticker import make_ticker
    from tests.conftest import make_app

    job = _stalled_job(connection, "st-tick", minutes_running=3)
    _register_worker(connection, "test-worker", heartbeat_age=120)
    assert make_ticker(make_app(redis_url, tmp_path, WORKER_STALE_SECONDS=300.0)).tick()
    assert Job.fetch(job.id, connection=connection).get_status() == JobStatus.STARTED  # 2 minutes: not stale yet
    assert make_ticker(make_app(redis_url, tmp_path, WORKER_STALE_SECONDS=60.0)).tick(time.time() + 2)
    assert Job.fetch(job.id, connection=connection).get_status() == JobStatus.QUEUED
