"""Counts and lists of completed and failed jobs leave out the registry entries whose job RQ has already expired
(RQ keeps them until its cleanup runs) and keep RQ's "forever" entries; reading them never cleans anything up."""

from __future__ import annotations

from rq import Queue

from app.domain.jobs import job_key, list_jobs
from app.domain.metrics import get_metrics, get_queue_metrics
from app.domain.queues import QueueKeys
from tests.helpers import run_worker, wait_for

QUEUE = "exp-registries"


def registries(connection) -> dict[str, list]:
    keys = QueueKeys(QUEUE)
    return {key: connection.zrange(key, 0, -1, withscores=True) for key in (keys.completed, keys.failed)}


def listed(connection, state: str, page: int = 1, per_page: int = 25) -> tuple[int, list[str]]:
    result = list_jobs(connection, QUEUE, state, page, per_page)
    return result["total"], [job["jobId"] for job in result["jobs"]]


def test_jobs_rq_has_expired_are_neither_counted_nor_listed(connection, redis_url):
    """Regression: completed showed 3 for 1 live job (ZCARD counted the entries RQ had not cleaned up yet)."""
    queue = Queue(QUEUE, connection=connection)
    expiring = [queue.enqueue("workers.tasks.noop", result_ttl=1) for _ in range(2)]
    expiring.append(queue.enqueue("workers.tasks.fail", failure_ttl=1))
    kept = queue.enqueue("workers.tasks.noop", result_ttl=600)
    forever = queue.enqueue("workers.tasks.noop", result_ttl=-1)  # RQ scores it +inf
    failed_kept = queue.enqueue("workers.tasks.fail", failure_ttl=600)
    failed_forever = queue.enqueue("workers.tasks.fail", failure_ttl=-1)  # RQ scores it -1
    run_worker(redis_url, QUEUE, plain=True)
    wait_for(lambda: not any(connection.exists(job_key(job.id)) for job in expiring), timeout=30)
    before = registries(connection)
    assert [len(entries) for entries in before.values()] == [4, 3]  # RQ's cleanup has not run: still there

    entry = next(entry for entry in get_metrics(connection)["queues"] if entry["queueName"] == QUEUE)
    assert (entry["completed"], entry["failed"]) == (2, 2)
    one_queue = get_queue_metrics(connection, QUEUE)
    assert (one_queue["completed"], one_queue["failed"]) == (2, 2)
    assert listed(connection, "completed") == (2, [forever.id, kept.id])  # most recent expiry first
    assert listed(connection, "failed") == (2, [failed_kept.id, failed_forever.id])
    # Pages walk the dated entries, then the negative ("forever") ones, without gaps or repeats.
    pages = (1, 2, 3)
    assert [listed(connection, "failed", page, 1)[1] for page in pages] == [[failed_kept.id], [failed_forever.id], []]
    assert [listed(connection, "completed", page, 1)[1] for page in pages] == [[forever.id], [kept.id], []]
    assert registries(connection) == before  # read-only: nothing was cleaned up
