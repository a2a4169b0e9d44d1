"""`flask demo seed` and every `rq-monitor` start: seeding again shows the same demo, not twice as much."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rq import Queue
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from app.demo import DEMO_QUEUES, STUCK_EXAMPLE_WORKER
from app.domain import history, stuck


def stuck_ids(connection) -> list[str]:
    return sorted(alert["jobId"] for alert in stuck.get_stuck_jobs(connection))


def trend_totals(connection) -> dict[str, int]:
    return {trend["queueName"]: trend["total"] for trend in history.get_trends(connection, "30d", list(DEMO_QUEUES))}


def seed(runner) -> str:
    result = runner.invoke(args=["demo", "seed", "--password-stdin"], input="demo-password-1\n")
    assert result.exit_code == 0, result.output
    return result.output


def test_a_second_seed_leaves_the_same_stuck_jobs_and_history(runner, connection):
    seed(runner)
    first_stuck, first_trends = stuck_ids(connection), trend_totals(connection)
    assert len(first_stuck) == 4 and all(first_trends.values())

    output = seed(runner)
    assert stuck_ids(connection) == first_stuck
    assert len(StartedJobRegistry("reports", connection=connection)) == 4  # one run each, not two
    assert trend_totals(connection) == first_trends
    assert "0 history records" in output


def test_seeding_replaces_the_stuck_examples_of_earlier_versions(runner, connection):
    """Earlier versions gave the examples random ids: they are replaced too, while other runs stay."""
    queue = Queue("reports", connection=connection)
    old = Job.create("workers.tasks.sleep_for", args=(3600,), connection=connection, origin="reports")
    old.meta = {"demo": True}
    old.started_at = datetime.now(UTC) - timedelta(minutes=20)
    old.worker_name = STUCK_EXAMPLE_WORKER
    real = Job.create("workers.tasks.sleep_for", args=(3600,), connection=connection, origin="reports")
    real.started_at = datetime.now(UTC) - timedelta(minutes=20)
    real.worker_name = "someone-elses-worker"
    with connection.pipeline() as pipe:
        for job in (old, real):
            job.set_status(JobStatus.STARTED, pipeline=pipe)
            job.save(pipeline=pipe)
            Execution.create(job, ttl=3600, pipeline=pipe, worker_name=job.worker_name)
        pipe.execute()

    seed(runner)
    running = StartedJobRegistry(queue=queue).get_job_ids()
    assert old.id not in running and not Job.exists(old.id, connection=connection)
    assert real.id in running and len(running) == 5
