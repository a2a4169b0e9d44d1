"""The prioritized store: scores, and jobs stored through RQ but kept out of the list."""

from __future__ import annotations

import pytest
from rq import Queue
from rq.job import JobStatus

from app.domain import attempts, keys
from app.domain.priority import count_prioritized, enqueue_prioritized, score


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


@pytest.mark.parametrize("priority", [0, -1, 2097152])
def test_out_of_range_priorities_are_refused(connection, priority):
    with pytest.raises(ValueError):
        enqueue_prioritized(Queue("p-bad", connection=connection), "workers.tasks.noop", (), {}, priority)
    assert connection.zcard(keys.prioritized("p-bad")) == 0
