"""Stuck alerts through the start-time index: same answer as reading every run, kept equal to RQ's started
registries as runs start and end, bounded by a TTL, and the scan fallback for servers without ZDIFF."""

from __future__ import annotations

import pytest
from redis import Redis
from rq import Queue
from rq.registry import StartedJobRegistry

from app.domain import keys, stuck
from app.domain.stuck import get_stuck_jobs
from tests.helpers import make_active_job

BAND_MINUTES = (2, 9.9, 10.05, 29.9, 30.05, 59.9, 60.05, 119.9, 120.05, 500)


def seed_bands(connection: Redis) -> dict[float, str]:
    return {
        minutes: make_active_job(connection, f"st-{index % 2}", minutes, kwargs={"m": minutes}).id
        for index, minutes in enumerate(BAND_MINUTES)
    }


def summary(alerts: list[dict]) -> list[tuple[str, str, str]]:
    return [(alert["queueName"], alert["jobId"], alert["severity"]) for alert in alerts]


def test_bands_through_the_index(connection):
    ids = seed_bands(connection)
    alerts = get_stuck_jobs(connection)
    expected_severities = ["critical", "critical", "high", "high", "medium", "medium", "low", "low"]
    assert [alert["severity"] for alert in alerts] == expected_severities
    assert [alert["jobId"] for alert in alerts] == [ids[m] for m in sorted(BAND_MINUTES, reverse=True)[:8]]
    # the index holds every run of each queue (stuck or not yet), scored by its start, with a TTL
    for queue_name in ("st-0", "st-1"):
        index = keys.run_starts(queue_name)
        registry = StartedJobRegistry(queue_name, connection=connection)
        assert connection.zcard(index) == registry.count == len(BAND_MINUTES) // 2
        assert 0 < connection.ttl(index) <= keys.RUN_STARTS_TTL_SECONDS


def test_the_scan_fallback_gives_the_same_answer(connection, monkeypatch):
    seed_bands(connection)
    with_index = summary(get_stuck_jobs(connection))
    connection.flushall()
    seed_bands(connection)  # new ids, same shape
    # a server without ZDIFF: the script fails with "Unknown Redis command", the scan answers
    monkeypatch.setattr(stuck, "_STARTED_BEFORE_LUA", "return redis.call('NOSUCHCOMMAND')")
    scanned = get_stuck_jobs(connection)
    assert [(q, s) for q, _, s in summary(scanned)] == [(q, s) for q, _, s in with_index]
    assert not connection.keys(keys.run_starts("*")), "the fallback writes nothing"


def test_other_script_errors_are_not_hidden(connection, monkeypatch):
    make_active_job(connection, "st-err", 45)
    monkeypatch.setattr(stuck, "_STARTED_BEFORE_LUA", "return redis.call('ZADD', 'x')")
    with pytest.raises(Exception, match="(?i)wrong number"):
        get_stuck_jobs(connection)


def test_runs_that_end_leave_the_index_and_new_runs_join_it(connection):
    first = make_active_job(connection, "st-live", 45)
    second = make_active_job(connection, "st-live", 15)
    assert [alert["jobId"] for alert in get_stuck_jobs(connection)] == [first.id, second.id]

    registry = StartedJobRegistry("st-live", connection=connection)
    registry.remove_executions(first)  # its run ended
    third = make_active_job(connection, "st-live", 130)  # a run the index has not seen yet
    alerts = get_stuck_jobs(connection)
    assert [(alert["jobId"], alert["severity"]) for alert in alerts] == [(third.id, "critical"), (second.id, "low")]
    assert connection.zcard(keys.run_starts("st-live")) == registry.count == 2

    for job in (second, third):
        registry.remove_executions(job)
    assert get_stuck_jobs(connection) == []
    assert not connection.exists(keys.run_starts("st-live")), "an empty index is not kept"


def test_a_run_without_a_readable_start_is_not_alerted_and_not_lost(connection):
    job = make_active_job(connection, "st-odd", 45)
    connection.hdel(f"rq:job:{job.id}", "started_at")
    assert get_stuck_jobs(connection) == []
    assert connection.zcard(keys.run_starts("st-odd")) == 0  # looked up again on the next call
    connection.hset(f"rq:job:{job.id}", "started_at", "2001-01-01T00:00:00.000000Z")
    [alert] = get_stuck_jobs(connection)
    assert (alert["jobId"], alert["severity"]) == (job.id, "critical")


def test_one_queue_only(connection):
    make_active_job(connection, "st-a", 45)
    make_active_job(connection, "st-b", 45)
    Queue("st-c", connection=connection)
    assert {alert["queueName"] for alert in get_stuck_jobs(connection, queue_name="st-b")} == {"st-b"}
