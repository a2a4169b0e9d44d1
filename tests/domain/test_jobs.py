"""Job summaries: the fast decoder agrees with RQ's own Job.restore on every field."""

from __future__ import annotations

from rq import Queue

from app.domain.jobs import restore_job, summarize, summarize_fast
from tests.helpers import make_active_job, run_worker


def test_fast_summaries_match_rq_restore(connection, redis_url):
    queue = Queue("j-fast", connection=connection)
    queue.enqueue("workers.tasks.fail", "boom")
    queue.enqueue("workers.tasks.send_email", "a@b.c", subject="Hi", customParam={"x": [1, 2]})
    run_worker(redis_url, "j-fast")
    queue.enqueue("workers.tasks.add", 1, 2, description="adds")
    make_active_job(connection, "j-fast", 3)
    job_ids = [key.decode().split(":", 2)[2] for key in connection.keys("rq:job:*") if key.count(b":") == 2]
    assert len(job_ids) == 4
    for job_id in job_ids:
        raw = connection.hgetall(f"rq:job:{job_id}")
        expected = summarize(restore_job(connection, job_id, raw), "j-fast", "any")
        assert summarize_fast(job_id, "j-fast", "any", raw) == expected
