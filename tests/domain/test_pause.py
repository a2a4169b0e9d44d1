"""Per-queue pause flag: idempotent, per queue, only for queues that exist, names checked before any key."""

from __future__ import annotations

import pytest
from rq import Queue

from app.domain import keys
from app.domain.errors import InvalidInput, QueueNotFound
from app.domain.pause import is_paused, pause_queue, resume_queue


def test_pause_and_resume_are_idempotent_and_per_queue(connection):
    Queue("p-one", connection=connection).enqueue("workers.tasks.noop")
    Queue("p-two", connection=connection).enqueue("workers.tasks.noop")
    for _ in range(2):
        assert pause_queue(connection, "p-one") == {"success": True, "queueName": "p-one", "paused": True}
    assert is_paused(connection, "p-one") and not is_paused(connection, "p-two")
    assert connection.smembers(keys.PAUSED_QUEUES) == {b"p-one"}
    for _ in range(2):
        assert resume_queue(connection, "p-one") == {"success": True, "queueName": "p-one", "paused": False}
    assert not is_paused(connection, "p-one")
    assert not connection.exists(keys.PAUSED_QUEUES)


def test_pausing_leaves_waiting_jobs_where_they_are(connection):
    queue = Queue("p-waiting", connection=connection)
    jobs = [queue.enqueue("workers.tasks.noop") for _ in range(3)]
    pause_queue(connection, "p-waiting")
    assert queue.get_job_ids() == [job.id for job in jobs]
    queue.enqueue("workers.tasks.noop")  # accepted while paused
    assert queue.count == 4


def test_a_paused_queue_stays_known_when_rq_forgets_it(connection):
    queue = Queue("p-forgotten", connection=connection)
    queue.enqueue("workers.tasks.noop")
    pause_queue(connection, "p-forgotten")
    queue.delete(delete_jobs=True)  # RQ drops the queue from rq:queues
    assert resume_queue(connection, "p-forgotten")["paused"] is False


@pytest.mark.parametrize("action", [pause_queue, resume_queue])
def test_unknown_queue_is_refused_and_nothing_is_written(connection, action):
    with pytest.raises(QueueNotFound):
        action(connection, "p-ghost")
    assert connection.dbsize() == 0


@pytest.mark.parametrize("name", ["", "a b", "*", "x" * 129, "-lead", "q\nnewline", "rq:queue:{x}"])
@pytest.mark.parametrize("action", [pause_queue, resume_queue])
def test_bad_names_are_refused_before_any_key(connection, action, name):
    with pytest.raises(InvalidInput):
        action(connection, name)
    assert connection.dbsize() == 0
