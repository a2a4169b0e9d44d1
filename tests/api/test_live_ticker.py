"""The ticker: registered feeds and tick tasks, run once per tick by the elected process; a failing feed or task
never stops the others; per-subject documents only for watched channels; what a tick costs Redis unwatched."""

from __future__ import annotations

import json
import time

import pytest
import redis
from redis.connection import AbstractConnection

from app.blueprints.live import JOBS_FEED, QUEUE_FEED
from app.domain import keys
from app.domain.severity import StuckThresholds
from app.ticker import Feed, Task, Tick, Ticker, make_ticker, register_feed, register_task
from tests.helpers import make_active_job

THRESHOLDS = StuckThresholds((10, 30, 60, 120))


def ticker_for(connection: redis.Redis, *extra_feeds: Feed, tasks=()) -> Ticker:
    """The jobs area's feeds (as the app registers them), on a given connection."""
    config = {"STUCK_THRESHOLDS": THRESHOLDS}
    return Ticker(connection, 2.0, [JOBS_FEED, QUEUE_FEED, *extra_feeds], list(tasks), config)


def a_future_tick() -> float:
    return (time.time() // 2) * 2 + 1000 + (time.time_ns() % 1000) * 2  # a tick nobody else claims


def published(connection: redis.Redis, key: str) -> object:
    return json.loads(json.loads(connection.get(key))["data"])


def test_registered_feeds_and_tasks_are_the_apps(app, connection):
    seen: list[float] = []
    register_feed(
        app,
        Feed("clock", lambda _: "rqmon:test:clock", lambda _: "rqmon:test:clock:snap", lambda tick, _: tick.now),
    )
    register_task(app, "note", lambda tick: seen.append(tick.now))
    with pytest.raises(ValueError, match="already registered"):
        register_feed(app, JOBS_FEED)
    with pytest.raises(ValueError, match="already registered"):
        register_task(app, "note", lambda tick: None)
    ticker = make_ticker(app)
    names = [feed.name for feed in ticker.feeds]  # the jobs area's feeds first, other areas' between
    assert names[:2] == ["jobs", "queue"] and names[-1] == "clock" and len(set(names)) == len(names)
    now = a_future_tick()
    assert ticker.tick(now) is True
    assert published(connection, "rqmon:test:clock:snap") == now and seen == [now]
    assert published(connection, keys.live_snapshot())["queues"] == []


def test_tasks_run_once_per_tick_in_the_elected_process_and_a_failing_one_stops_nothing(connection):
    runs: list[tuple[str, float]] = []

    def broken(tick: Tick) -> None:
        raise RuntimeError("task bug")

    tasks = [("first", lambda tick: runs.append(("first", tick.now))), ("broken", broken)]
    tasks.append(("last", lambda tick: runs.append(("last", tick.now))))

    first = ticker_for(connection, tasks=[Task(*t) for t in tasks])
    second = ticker_for(connection, tasks=[Task(*t) for t in tasks])
    now = a_future_tick()
    assert first.tick(now) is True
    assert second.tick(now + 0.5) is False  # same tick: the other process does not run the tasks again
    assert runs == [("first", now), ("last", now)]
    assert connection.exists(keys.live_snapshot())  # published despite the broken task
    assert second.tick(now + 2) is True
    assert runs[2:] == [("first", now + 2), ("last", now + 2)]


def test_a_failing_feed_does_not_stop_the_others(connection):
    def broken(tick: Tick, subject: str | None) -> object:
        raise RuntimeError("feed bug")

    bad = Feed("bad", lambda _: "rqmon:test:bad", lambda _: "rqmon:test:bad:snap", broken)
    bad_first = Ticker(connection, 2.0, [bad, JOBS_FEED], [], {"STUCK_THRESHOLDS": THRESHOLDS})
    assert bad_first.tick(a_future_tick()) is True
    assert connection.exists(keys.live_snapshot()) and not connection.exists("rqmon:test:bad:snap")


def test_a_watched_feed_computes_only_the_watched_subjects(connection):
    computed: list[str | None] = []

    def compute(tick: Tick, subject: str | None) -> dict:
        computed.append(subject)
        return {"subject": subject}

    feed = Feed(
        "per-thing",
        lambda subject: f"rqmon:test:thing:{subject}",
        lambda subject: f"rqmon:test:thing:snap:{subject}",
        compute,
        subjects=lambda tick: ["a", "b", "c"],
        needs_watchers=True,
    )
    ticker = Ticker(connection, 2.0, [feed], [], {})
    ticker.publish(time.time())
    assert computed == []
    subscriber = connection.pubsub()
    subscriber.subscribe("rqmon:test:thing:b")
    ticker.publish(time.time())
    subscriber.close()
    assert computed == ["b"] and published(connection, "rqmon:test:thing:snap:b") == {"subject": "b"}


class Counted:
    """Round trips (one per command or pipeline sent) and commands sent by redis-py while active."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.round_trips = 0
        send = AbstractConnection.send_packed_command

        def counting(connection, command, check_health=True):  # type: ignore[no-untyped-def]
            self.round_trips += 1
            return send(connection, command, check_health)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)


def command_calls(connection: redis.Redis) -> dict[str, int]:
    return {name: int(value["calls"]) for name, value in connection.info("commandstats").items()}


def test_an_unwatched_tick_does_not_read_active_jobs(connection, monkeypatch):
    """Regression: every queue with active jobs had its document computed (every running job read) each tick,
    watched or not."""
    for queue_index in range(3):
        for minutes in (1, 15, 45):
            make_active_job(connection, f"tk-busy-{queue_index}", minutes)
    ticker = ticker_for(connection)
    ticker.tick(a_future_tick())  # warm: connection open
    before = command_calls(connection)
    counted = Counted(monkeypatch)
    assert ticker.tick(a_future_tick()) is True
    round_trips = counted.round_trips
    after = command_calls(connection)
    assert round_trips <= 3  # the lock, the metrics, the publish with the watcher counts
    job_reads = sum(
        after.get(f"cmdstat_{command}", 0) - before.get(f"cmdstat_{command}", 0)
        for command in ("hget", "hmget", "zrange", "zrangebyscore", "zdiff")
    )
    assert job_reads == 0
    for queue_index in range(3):
        assert not connection.exists(keys.live_snapshot(f"tk-busy-{queue_index}"))


def test_a_queue_document_carries_the_fifty_longest_runs_and_the_counts_of_all(connection):
    """Regression: the per-queue document listed every active run (200 stuck runs: 150 KB per queue per tick)."""
    for minutes in range(60):
        make_active_job(connection, "tk-crowded", minutes * 3 + 0.5)  # 0.5 .. 177.5 minutes
    subscriber = connection.pubsub()
    subscriber.subscribe(keys.live_channel("tk-crowded"))
    ticker_for(connection).publish(time.time())
    subscriber.close()
    document = published(connection, keys.live_snapshot("tk-crowded"))
    durations = [run["runningFor"] for run in document["activeJobs"]]
    assert len(durations) == 50 and durations == sorted(durations, reverse=True)
    assert durations[0] >= 177 * 60_000 and durations[-1] < 31 * 60_000  # the 50 longest: 177.5 .. 30.5 minutes
    assert document["activeCount"] == 60 == document["queue"]["active"]
    # stuck (>= 10 min): the runs of 12.5 minutes and more, 56 of them; the 50 shown are all stuck
    assert document["stuckCount"] == 56 and len(document["stuck"]) == 50
    assert document["stuckBySeverity"] == {"low": 6, "medium": 10, "high": 20, "critical": 20}
