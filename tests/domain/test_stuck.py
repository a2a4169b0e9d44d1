"""Stuck alerts through the start-time index: same answer as reading every run, kept equal to RQ's started
registries as runs start and end, bounded by a TTL, and the scan fallback for servers without ZDIFF."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from redis import Redis
from rq import Queue
from rq.registry import StartedJobRegistry

from app.domain import keys, run_starts, stuck
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
    monkeypatch.setattr(run_starts, "_STARTED_BEFORE_LUA", "return redis.call('NOSUCHCOMMAND')")
    scanned = get_stuck_jobs(connection)
    assert [(q, s) for q, _, s in summary(scanned)] == [(q, s) for q, _, s in with_index]
    assert not connection.keys(keys.run_starts("*")), "the fallback writes nothing"


def test_other_script_errors_are_not_hidden(connection, monkeypatch):
    make_active_job(connection, "st-err", 45)
    monkeypatch.setattr(run_starts, "_STARTED_BEFORE_LUA", "return redis.call('ZADD', 'x')")
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


# --- bounded pages: the longest N, the counts of all -----------------------------------------------------


def hmget_calls(connection: Redis) -> int:
    return int(connection.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0))


def start_at(connection: Redis, queue_name: str, started_at: str) -> str:
    """A run whose started_at is exactly this text (RQ's format)."""
    job = make_active_job(connection, queue_name, 0)
    connection.hset(f"rq:job:{job.id}", "started_at", started_at)
    return job.id


@pytest.fixture(params=["index", "scan"])
def variant(request, monkeypatch):
    if request.param == "scan":  # a server without ZDIFF
        monkeypatch.setattr(run_starts, "_STARTED_BEFORE_LUA", "return redis.call('NOSUCHCOMMAND')")
    return request.param


def test_the_page_is_the_longest_n_and_the_summary_counts_every_stuck_run(connection, variant):
    ids = seed_bands(connection)
    alerts, summary = stuck.get_stuck_page(connection, limit=3)
    assert [alert["jobId"] for alert in alerts] == [ids[m] for m in (500, 120.05, 119.9)]
    assert summary == {
        "total": 8,
        "bySeverity": {"low": 2, "medium": 2, "high": 2, "critical": 2},
        "byQueue": {
            "st-0": {"total": 4, "low": 1, "medium": 1, "high": 1, "critical": 1},
            "st-1": {"total": 4, "low": 1, "medium": 1, "high": 1, "critical": 1},
        },
    }
    assert stuck.get_stuck_summary(connection) == summary
    assert [a["jobId"] for a in stuck.get_stuck_page(connection, limit=100)[0]] == [
        ids[m] for m in sorted(BAND_MINUTES, reverse=True)[:8]
    ]


def test_runs_started_in_one_second_are_ordered_by_their_exact_start(connection, variant):
    second = "2026-01-22T10:00:00"
    by_micro = {
        micro: start_at(connection, f"st-tie-{micro % 2}", f"{second}.{micro:06d}Z")
        for micro in (900000, 100000, 500000, 300000, 700000, 0)
    }
    later = start_at(connection, "st-tie-0", "2026-01-22T10:00:01.000000Z")
    now = datetime(2026, 1, 22, 10, 30, 5, tzinfo=UTC).timestamp()
    alerts, summary = stuck.get_stuck_page(connection, limit=4, now=now)
    assert [alert["jobId"] for alert in alerts] == [by_micro[m] for m in (0, 100000, 300000, 500000)]
    assert summary["total"] == 7 and summary["bySeverity"]["medium"] == 7
    assert later not in {alert["jobId"] for alert in alerts}


def test_band_edges_are_exact_within_the_second(connection, variant):
    early = start_at(connection, "st-edge", "2026-01-22T10:00:00.100000Z")  # 600.2 s at `now`: stuck
    start_at(connection, "st-edge", "2026-01-22T10:00:00.500000Z")  # 599.8 s: not yet
    now = datetime(2026, 1, 22, 10, 10, 0, 300000, tzinfo=UTC).timestamp()
    alerts, summary = stuck.get_stuck_page(connection, limit=10, now=now)
    assert [alert["jobId"] for alert in alerts] == [early]
    assert summary["bySeverity"] == {"low": 1, "medium": 0, "high": 0, "critical": 0}


def test_redis_reads_the_fields_of_the_page_only(connection):
    """Regression: every stuck run's fields were read and returned (4,000 stuck: 1.8 MB per call)."""
    for index in range(60):
        make_active_job(connection, f"st-many-{index % 3}", 15 + index)
    stuck.get_stuck_page(connection, limit=5)  # the index learns the runs
    before = hmget_calls(connection)
    alerts, summary = stuck.get_stuck_page(connection, limit=5)
    assert hmget_calls(connection) - before == 5
    assert len(alerts) == 5 and summary["total"] == 60
    assert [alert["stuckDuration"] // 60_000 for alert in alerts] == [74, 73, 72, 71, 70]


def test_any_limit_gives_the_longest_runs_in_order(connection, variant):
    """The bisection on index seconds plus exact ties against a plain sort, many runs sharing seconds."""
    rng = random.Random(7)
    starts = {}
    for index in range(60):
        second = 10 + rng.randrange(8)  # 60 runs over 8 seconds: many ties
        text = f"2026-01-22T10:00:{second:02d}.{rng.randrange(1_000_000):06d}Z"
        starts[start_at(connection, f"st-bis-{index % 5}", text)] = text
    now = datetime(2026, 1, 22, 10, 45, 0, tzinfo=UTC).timestamp()
    expected = sorted(starts, key=lambda job_id: starts[job_id])
    for limit in (1, 2, 7, 13, 30, 59, 60, 100):
        alerts, summary = stuck.get_stuck_page(connection, limit=limit, now=now)
        assert [alert["jobId"] for alert in alerts] == expected[:limit], limit
        assert summary["total"] == 60


def test_keys_of_another_type_read_as_no_run_and_every_other_run_is_alerted(connection, variant):
    """Another program's keys: a registry entry whose job key is a string, a registry that is a string, and (our
    own) an index that is a string; the other runs are still counted and alerted."""
    stuck_id = make_active_job(connection, "st-odd", 45).id
    connection.zadd("rq:wip:st-odd", {"as-string": 9999999999, b"bytes-\xff": 9999999999})
    connection.set("rq:job:as-string", "not a hash")
    make_active_job(connection, "st-bad-registry", 45)
    connection.delete("rq:wip:st-bad-registry")
    connection.set("rq:wip:st-bad-registry", "not a sorted set")
    make_active_job(connection, "st-bad-index", 45)
    connection.set(keys.run_starts("st-bad-index"), "garbage")
    alerts, summary = stuck.get_stuck_page(connection, limit=100)
    assert {alert["queueName"]: alert["jobId"] for alert in alerts if alert["queueName"] == "st-odd"} == {
        "st-odd": stuck_id
    }
    assert {alert["queueName"] for alert in alerts} == {"st-odd", "st-bad-index"}
    assert summary["byQueue"]["st-odd"]["total"] == summary["byQueue"]["st-bad-index"]["total"] == 1
    assert connection.get("rq:job:as-string") == b"not a hash"  # read, never touched
    assert connection.get("rq:wip:st-bad-registry") == b"not a sorted set"
