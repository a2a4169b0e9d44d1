"""The prioritized store: scores, and jobs stored through RQ but kept out of the list."""

from __future__ import annotations

import pytest
from rq import Queue
from rq.job import Job, JobStatus

from app.domain import attempts, keys
from app.domain.priority import count_prioritized, enqueue_prioritized, requeue_prioritized, score


def test_scores_order_by_priority_then_sequence():
    assert score(1, 10) < score(1, 11) < score(2, 0) < score(2097151, 0)


def test_prioritized_job_is_stored_but_not_in_the_list(connection):
    queue = Queue("p-store", connection=connection)
    job = enqueue_prioritized(queue, "workers.tasks.add", (1, 2), {}, 3, description="adds")
    assert job.get_status() == JobStatus.QUEUED
    assert job.meta[attempts.PRIORITY] == 3
    assert queue.count == 0 and count_prioritized(connection, "p-store") == 1
    assert connection.sismember(Queue.redis_queues_keys, queue.key)
    assert connection.zscore(keys.prioritized("p-store"), job.id) == score(3, 1)


@pytest.mark.parametrize("priority", [-1, 2097152, 1.5, 1.0, True, "1", None])
def test_priorities_other_than_integers_0_to_2097151_are_refused(connection, priority):
    with pytest.raises(ValueError):
        enqueue_prioritized(Queue("p-bad", connection=connection), "workers.tasks.noop", (), {}, priority)
    assert connection.zcard(keys.prioritized("p-bad")) == 0


def test_priority_0_means_none_the_job_waits_in_the_list(connection):
    queue = Queue("p-zero", connection=connection)
    job = enqueue_prioritized(queue, "workers.tasks.add", (1, 2), {}, 0)
    assert job.get_status() == JobStatus.QUEUED and job.meta[attempts.PRIORITY] == 0
    assert queue.get_job_ids() == [job.id] and count_prioritized(connection, "p-zero") == 0


def test_a_job_put_back_to_its_priority_leaves_the_list_it_was_popped_to(connection):
    queue = Queue("p-back", connection=connection)
    job = enqueue_prioritized(queue, "workers.tasks.noop", (), {}, 7)
    popped_to = "p-back:popped"
    connection.rpush(popped_to, job.id)
    job.meta[attempts.PRIORITY_PENDING] = True
    job.save_meta()  # as a retry leaves it
    del job.meta[attempts.PRIORITY_PENDING]  # as the worker does before putting it back
    requeue_prioritized(connection, "p-back", job, popped_to)
    assert connection.llen(popped_to) == 0
    assert connection.zscore(keys.prioritized("p-back"), job.id) == score(7, 2)
    assert attempts.PRIORITY_PENDING not in Job.fetch(job.id, connection=connection).meta
