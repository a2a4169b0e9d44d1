"""Clearing completed/failed jobs: entries and every piece of their data go, in chunks; nothing else is touched,
and a job written meanwhile is either deleted whole or left whole."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from rq import Queue
from rq.executions import Execution, ExecutionRegistry
from rq.group import Group
from rq.job import Job, JobStatus
from rq.results import Result

from app.domain import clear as clear_module
from app.domain.clear import clear_queue
from app.domain.errors import InvalidInput, QueueNotFound
from app.domain.priority import enqueue_prioritized
from tests.api.test_jobs_read import everything
from tests.helpers import make_active_job, run_worker


def finished_job(connection: Redis, queue: Queue, status: JobStatus = JobStatus.FINISHED) -> Job:
    """A job as a worker leaves it (hash, result, registry entry), written in one transaction."""
    job = queue.create_job("workers.tasks.add", args=(1, 2))
    job.started_at = job.ended_at = datetime.now(UTC)
    with connection.pipeline() as pipe:
        job.set_status(status, pipeline=pipe)
        job.save(pipeline=pipe)
        if status == JobStatus.FINISHED:
            Result.create(job, Result.Type.SUCCESSFUL, ttl=3600, return_value=3, pipeline=pipe)
            queue.finished_job_registry.add(job, ttl=3600, pipeline=pipe)
        else:
            Result.create_failure(job, ttl=3600, exc_string="RuntimeError: stopped", pipeline=pipe)
            queue.failed_job_registry.add(job, ttl=3600, exc_string="RuntimeError: stopped", pipeline=pipe)
        pipe.sadd(Queue.redis_queues_keys, queue.key)
        pipe.execute()
    return job


def job_keys(connection: Redis, job_id: str) -> dict[str, bool]:
    return {
        "hash": bool(connection.exists(Job.key_for(job_id))),
        "results": bool(connection.exists(Result.get_key(job_id))),
    }


def keys_of(connection: Redis, job_ids: list[str]) -> list[bytes]:
    """Every key that mentions these jobs."""
    return [key for job_id in job_ids for key in connection.keys(f"*{job_id}*")]


def test_clear_completed_removes_entries_hashes_and_results_in_chunks(connection, monkeypatch):
    monkeypatch.setattr(clear_module, "CHUNK", 40)
    queue = Queue("cl-chunks", connection=connection)
    jobs = [finished_job(connection, queue) for _ in range(101)]
    calls = []
    original = connection.register_script

    def counting_script(script):
        registered = original(script)
        return lambda **kwargs: calls.append(1) or registered(**kwargs)

    monkeypatch.setattr(connection, "register_script", counting_script)
    result = clear_queue(connection, "cl-chunks", "completed")
    assert result == {
        "success": True,
        "queueName": "cl-chunks",
        "type": "completed",
        "removed": {"completed": 101, "failed": 0},
    }
    assert len(calls) == 3  # 40 + 40 + 21 ids: the short last chunk ends the loop
    assert all(job_keys(connection, job.id) == {"hash": False, "results": False} for job in jobs)
    assert queue.finished_job_registry.get_job_count(cleanup=False) == 0


def test_clear_failed_also_deletes_stopped_jobs_and_real_worker_failures(connection, redis_url):
    queue = Queue("cl-failed", connection=connection)
    failed = [queue.enqueue("workers.tasks.fail") for _ in range(2)]
    run_worker(redis_url, "cl-failed")
    stopped = finished_job(connection, queue, JobStatus.STOPPED)
    done = finished_job(connection, queue)
    result = clear_queue(connection, "cl-failed", "failed")
    assert result["removed"] == {"completed": 0, "failed": 3}
    for job in [*failed, stopped]:
        assert job_keys(connection, job.id) == {"hash": False, "results": False}
    assert job_keys(connection, done.id) == {"hash": True, "results": True}
    assert queue.finished_job_registry.get_job_count(cleanup=False) == 1


def test_clear_deletes_leftover_executions_and_group_membership(connection, redis_url):
    queue = Queue("cl-extras", connection=connection)
    group = Group.create(connection, "cl-group")
    grouped = group.enqueue_many(queue, [Queue.prepare_data("workers.tasks.noop") for _ in range(2)])
    run_worker(redis_url, "cl-extras")
    abandoned = finished_job(connection, queue, JobStatus.FAILED)
    with connection.pipeline() as pipe:  # what a worker that died mid-run leaves behind
        execution = Execution(id="e" * 32, job_id=abandoned.id, connection=connection)
        execution.save(ttl=3600, pipeline=pipe)
        ExecutionRegistry(abandoned.id, connection).add(execution, ttl=3600, pipeline=pipe)
        pipe.execute()
    assert connection.exists(execution.key, ExecutionRegistry(abandoned.id, connection).key) == 2
    assert connection.scard(group.key) == 2
    assert clear_queue(connection, "cl-extras")["removed"] == {"completed": 2, "failed": 1}
    assert connection.exists(execution.key, ExecutionRegistry(abandoned.id, connection).key) == 0
    assert connection.scard(group.key) == 0
    assert keys_of(connection, [job.id for job in [*grouped, abandoned]]) == []


def test_clear_never_touches_other_states(connection, redis_url):
    queue = Queue("cl-others", connection=connection)
    cleared = [queue.enqueue("workers.tasks.noop"), queue.enqueue("workers.tasks.fail")]
    run_worker(redis_url, "cl-others")
    parent = queue.enqueue("workers.tasks.noop")
    queue.enqueue("workers.tasks.noop", depends_on=parent)  # deferred
    queue.enqueue_in(timedelta(hours=1), "workers.tasks.noop")
    enqueue_prioritized(queue, "workers.tasks.noop", (), {}, 3)
    make_active_job(connection, "cl-others", 1)
    queue.enqueue("workers.tasks.noop").cancel()
    before = everything(connection)
    assert clear_queue(connection, "cl-others", "all")["removed"] == {"completed": 1, "failed": 1}
    after = everything(connection)
    emptied = {queue.finished_job_registry.key.encode(), queue.failed_job_registry.key.encode()}
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    assert changed - emptied == {key for key in before if any(job.id.encode() in key for job in cleared)}
    assert not after.keys() - before.keys()


def test_a_job_whose_status_changed_keeps_its_data(connection):
    queue = Queue("cl-moved", connection=connection)
    job = finished_job(connection, queue, JobStatus.FAILED)
    job.set_status(JobStatus.QUEUED)  # requeued by someone else: only the stale entry goes
    assert clear_queue(connection, "cl-moved", "failed")["removed"]["failed"] == 1
    assert job_keys(connection, job.id) == {"hash": True, "results": True}
    assert Job.fetch(job.id, connection=connection).get_status() == JobStatus.QUEUED


def test_jobs_written_while_clearing_are_deleted_whole_or_left_whole(connection, redis_url, monkeypatch):
    monkeypatch.setattr(clear_module, "CHUNK", 25)
    queue = Queue("cl-race", connection=connection)
    seeded = [finished_job(connection, queue) for _ in range(400)]
    added: list[Job] = []
    stop = threading.Event()

    def writer() -> None:
        other = Redis.from_url(redis_url)
        other_queue = Queue("cl-race", connection=other)
        while not stop.is_set() and len(added) < 400:
            added.append(finished_job(other, other_queue))
        other.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        removed = clear_queue(connection, "cl-race", "completed")["removed"]["completed"]
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert added, "the writer never ran"
    registered = {entry.decode() for entry in connection.zrange(queue.finished_job_registry.key, 0, -1)}
    gone = 0
    for job in [*seeded, *added]:  # entries tie on whole-second scores, so new ids interleave with old ones
        keys_of_job = job_keys(connection, job.id)
        whole = keys_of_job == {"hash": True, "results": True} and job.id in registered
        deleted = keys_of_job == {"hash": False, "results": False} and job.id not in registered
        assert whole or deleted, (job.id, keys_of_job, job.id in registered)
        gone += deleted
    assert removed == gone >= len(seeded)


@pytest.mark.parametrize("clear_type", ["waiting", "", "ALL", "completed,failed"])
def test_unknown_type_is_refused_before_anything(connection, clear_type):
    queue = Queue("cl-type", connection=connection)
    finished_job(connection, queue)
    before = connection.dbsize()
    with pytest.raises(InvalidInput) as error:
        clear_queue(connection, "cl-type", clear_type)
    assert error.value.details == {"type": "one of completed, failed, all"}
    assert connection.dbsize() == before


@pytest.mark.parametrize(
    ("name", "error"), [("cl-ghost", QueueNotFound), ("bad name", InvalidInput), ("*", InvalidInput)]
)
def test_unknown_or_bad_queue_is_refused(connection, name, error):
    with pytest.raises(error):
        clear_queue(connection, name)
    assert connection.dbsize() == 0
