"""workers.MonitoredWorker in real `rq worker` processes: pause, priority, attempts and what it records."""

from __future__ import annotations

import subprocess
import sys
import time

from rq import Queue
from rq.job import Job, JobStatus

from app.domain import attempts, history, keys
from app.domain import workers as registry
from app.domain.pause import pause_queue, resume_queue
from app.domain.priority import enqueue_prioritized
from tests.helpers import ROOT, run_worker, start_worker, stop_worker, wait_for
from workers import MonitoredWorker


def test_paused_queue_waits_then_runs_in_order_after_resume(connection, redis_url):
    queue = Queue("w-paused", connection=connection)
    queue.enqueue("workers.tasks.noop")
    pause_queue(connection, "w-paused")
    jobs = [queue.enqueue("workers.tasks.record", "w-paused:order", str(i)) for i in range(3)]  # accepted while paused
    run_worker(redis_url, "w-paused")
    assert queue.count == 4 and connection.llen("w-paused:order") == 0
    assert all(job.get_status() == JobStatus.QUEUED for job in jobs)
    resume_queue(connection, "w-paused")
    run_worker(redis_url, "w-paused")
    assert connection.lrange("w-paused:order", 0, -1) == [b"0", b"1", b"2"]


def test_pause_lets_the_running_job_finish_and_resume_restarts_within_a_second(connection, redis_url):
    queue = Queue("w-running", connection=connection)
    running = queue.enqueue("workers.tasks.sleep_for", 1.5)
    waiting = queue.enqueue("workers.tasks.noop")
    worker = start_worker(redis_url, "w-running")
    try:
        wait_for(lambda: running.get_status() == JobStatus.STARTED)
        pause_queue(connection, "w-running")
        wait_for(lambda: running.get_status() == JobStatus.FINISHED, timeout=10)
        time.sleep(2.0)  # a paused queue: nothing new starts, however long we wait
        assert waiting.get_status() == JobStatus.QUEUED and queue.count == 1
        resumed_at = time.monotonic()
        resume_queue(connection, "w-running")
        wait_for(lambda: waiting.get_status() == JobStatus.FINISHED, timeout=5)
        assert time.monotonic() - resumed_at < 2.0
    finally:
        stop_worker(worker)


def test_a_job_popped_from_a_queue_paused_a_moment_ago_goes_back_to_the_head(connection):
    queue = Queue("w-race", connection=connection)
    first, second = queue.enqueue("workers.tasks.noop"), queue.enqueue("workers.tasks.noop")
    worker = MonitoredWorker([queue], connection=connection)
    real_runnable = worker.runnable_queues
    calls = []

    def runnable_then_paused():
        calls.append(1)
        if len(calls) == 1:  # the check passes, then the pause lands before the pop
            runnable = real_runnable()
            pause_queue(connection, "w-race")
            return runnable
        return real_runnable()

    worker.runnable_queues = runnable_then_paused  # type: ignore[method-assign]
    assert worker.dequeue_job_and_maintain_ttl(None) is None
    assert queue.get_job_ids() == [first.id, second.id]
    assert connection.llen(queue.key + ":intermediate") == 0
    assert first.get_status() == JobStatus.QUEUED and Job.exists(first.id, connection)


def test_waiting_jobs_run_before_prioritized_ones_lower_number_first_fifo_within_a_level(connection, redis_url):
    queue = Queue("w-priority", connection=connection)
    order_key = "w-priority:order"
    enqueue_prioritized(queue, "workers.tasks.record", (order_key, "p5"), {}, 5)
    enqueue_prioritized(queue, "workers.tasks.record", (order_key, "p1-a"), {}, 1)
    queue.enqueue("workers.tasks.record", order_key, "w-a")
    enqueue_prioritized(queue, "workers.tasks.record", (order_key, "p1-b"), {}, 1)
    enqueue_prioritized(queue, "workers.tasks.record", (order_key, "p2097151"), {}, 2097151)
    queue.enqueue("workers.tasks.record", order_key, "w-b")
    run_worker(redis_url, "w-priority")
    assert connection.lrange(order_key, 0, -1) == [b"w-a", b"w-b", b"p1-a", b"p1-b", b"p5", b"p2097151"]
    assert connection.zcard(keys.prioritized("w-priority")) == 0


def test_attempts_are_counted_and_each_failure_kept(connection, redis_url):
    queue = Queue("w-attempts", connection=connection)
    job = queue.enqueue("workers.tasks.fail", "disk full", retry=attempts.retry_for(3, {"type": "fixed", "delay": 0}))
    run_worker(redis_url, "w-attempts")
    job.refresh()
    recorded = attempts.read_attempts(job)
    assert job.get_status() == JobStatus.FAILED
    assert recorded["attemptsMade"] == 3 and recorded["attemptsStarted"] == 3
    assert (recorded["failedReason"], recorded["failedException"]) == ("disk full", "RuntimeError")
    assert len(recorded["stacktrace"]) == 3 and all("Traceback" in trace for trace in recorded["stacktrace"])
    assert job.meta[attempts.ATTEMPTS] == 3  # the configured total survives RQ counting its retries down
    fields = connection.hgetall(history._bucket_key(history.HOUR, time.time()))
    assert fields[b"w-attempts|fail"] == b"1" and fields[b"w-attempts|retry"] == b"2"


def test_flaky_job_completes_on_its_second_attempt(connection, redis_url):
    queue = Queue("w-flaky", connection=connection)
    job = queue.enqueue("workers.tasks.flaky", "w-flaky:runs", 1, retry=attempts.retry_for(3, None))
    run_worker(redis_url, "w-flaky")
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED and job.return_value() == 2
    assert attempts.read_attempts(job)["attemptsMade"] == 2
    [trend] = history.get_trends(connection, "24h", [])
    assert (trend["successful"], trend["failed"], trend["successRate"]) == (1, 0, 100.0)


def test_a_job_completed_first_time_has_one_attempt(connection, redis_url):
    queue = Queue("w-once", connection=connection)
    job = queue.enqueue("workers.tasks.add", 2, 3)
    run_worker(redis_url, "w-once")
    job.refresh()
    assert job.return_value() == 5
    assert attempts.read_attempts(job)["attemptsMade"] == 1
    assert connection.sismember(keys.KNOWN_QUEUES, "w-once")


def test_trends_still_count_after_rq_expired_the_jobs(connection, redis_url):
    queue = Queue("w-expiry", connection=connection)
    done = queue.enqueue("workers.tasks.noop", result_ttl=1)
    failed = queue.enqueue("workers.tasks.fail", failure_ttl=1)
    run_worker(redis_url, "w-expiry")
    wait_for(lambda: not Job.exists(done.id, connection) and not Job.exists(failed.id, connection), timeout=5)
    [trend] = history.get_trends(connection, "30d", [])
    assert (trend["queueName"], trend["successful"], trend["failed"]) == ("w-expiry", 1, 1)


def test_attempts_started_is_written_when_the_run_starts(connection, redis_url):
    queue = Queue("w-start", connection=connection)
    job = queue.enqueue("workers.tasks.sleep_for", 30)
    worker = start_worker(redis_url, "w-start")
    try:
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED)
        running = attempts.read_attempts(Job.fetch(job.id, connection=connection))
        assert (running["attemptsStarted"], running["attemptsMade"]) == (1, 0)
    finally:
        stop_worker(worker)


def test_meta_the_job_saved_while_running_survives_the_record_of_its_end(connection):
    queue = Queue("w-progress", connection=connection)
    job = queue.enqueue("workers.tasks.report_progress", 3)
    MonitoredWorker([queue], connection=connection).work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED
    assert job.meta["progress"] == 3
    assert (job.meta[attempts.ATTEMPTS_STARTED], job.meta[attempts.ATTEMPTS_MADE]) == (1, 1)


def test_task_modules_do_not_import_the_web_stack():
    # A plain `rq worker` imports a job's module in every forked work horse: workers.tasks must stay light, and
    # MonitoredWorker itself must not drag Flask into each horse it forks.
    probe = "import sys, workers.tasks, workers.monitored_worker; print('flask' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "False"


def test_a_failure_to_record_never_fails_or_loses_the_job(connection, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("history is down")

    monkeypatch.setattr(history, "record_arguments", broken)
    queue = Queue("w-broken", connection=connection)
    job = queue.enqueue("workers.tasks.add", 1, 1)
    MonitoredWorker([queue], connection=connection).work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED and job.return_value() == 2
    assert connection.llen(keys.OUTCOMES) == 0


def test_a_failing_job_whose_record_fails_still_ends_failed_with_its_error(connection, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("history is down")

    monkeypatch.setattr(history, "record_arguments", broken)
    queue = Queue("w-broken-fail", connection=connection)
    job = queue.enqueue("workers.tasks.fail", "disk full")
    MonitoredWorker([queue], connection=connection).work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FAILED
    assert job.id in queue.failed_job_registry.get_job_ids()
    assert "disk full" in (job.latest_result().exc_string or "")


def test_between_attempts_a_job_is_delayed_until_its_backoff_has_passed(client, auth, connection, redis_url):
    queue = Queue("w-backoff", connection=connection)
    retry = attempts.retry_for(2, {"type": "fixed", "delay": 60_000})
    job = queue.enqueue("workers.tasks.flaky", "w-backoff:runs", 1, retry=retry)
    run_worker(redis_url, "w-backoff")  # first attempt fails; the second is scheduled a minute later
    headers = auth("moderator")
    detail = client.get(f"/api/v1/admin/jobs/job/w-backoff/{job.id}", headers=headers).get_json()
    assert (detail["state"], detail["attemptsMade"]) == ("delayed", 1)
    [entry] = client.get("/api/v1/admin/jobs/metrics", headers=headers).get_json()["queues"]
    assert (entry["delayed"], entry["waiting"], entry["failed"]) == (1, 0, 0)
    page = client.get("/api/v1/admin/jobs/queue/w-backoff/jobs?state=delayed", headers=headers).get_json()
    assert [listed["jobId"] for listed in page["jobs"]] == [job.id]


def test_plain_rq_workers_ignore_the_flag_monitored_ones_say_they_honour_it(connection, redis_url):
    queue = Queue("w-plain", connection=connection)
    job = queue.enqueue("workers.tasks.noop")
    pause_queue(connection, "w-plain")
    run_worker(redis_url, "w-plain", plain=True)  # documented: plain workers do not know the flag
    assert job.get_status() == JobStatus.FINISHED
    worker = MonitoredWorker([queue], connection=connection)
    worker.register_birth()
    assert connection.hget(worker.key, registry.MONITORED)  # a MonitoredWorker from its birth
    worker.register_death()


def test_a_work_horse_connection_does_not_read_the_package_metadata_again(redis_url, monkeypatch):
    """Per-job cost (issue 11): each work horse opens a connection; from a `from_url` pool (the rq CLI's) redis-py
    read the package metadata for each one. The worker resolves it once; the horse's connection still has the same
    library name and version for CLIENT SETINFO."""
    import redis
    import redis.utils

    connection = redis.Redis.from_url(redis_url)
    MonitoredWorker([Queue("w-driver", connection=connection)], connection=connection)
    looked_up: list[int] = []
    monkeypatch.setattr(redis.utils, "get_lib_version", lambda: looked_up.append(1) or "0")
    fresh = connection.connection_pool.make_connection()
    assert looked_up == []
    monkeypatch.undo()
    expected = redis.utils.get_lib_version()
    assert (fresh.driver_info.formatted_name, fresh.driver_info.lib_version) == ("redis-py", expected)
    fresh.connect()  # and it introduces itself to the server as before
    fresh.disconnect()
