"""app/domain/queues.py on a real Redis: the one Lua prelude that lists every known queue, shared by the scripts that
go through all queues (metrics, the Prometheus scrape, the workers' queue status) and agreeing with Python's list."""

from __future__ import annotations

import time

import pytest
from rq import Queue

from app.domain import keys, metrics, scrape, worker_views
from app.domain.queues import (
    ALL_QUEUES_KEY,
    KNOWN_QUEUES_LUA,
    LIVE_COUNT_LUA,
    QUEUE_KEY_PREFIX,
    list_queue_names,
    live_count_reads,
    remember_queue,
)

SCRIPTS = {
    "metrics": metrics._COUNT_LUA,  # the Prometheus scrape's too, with its extra columns
    "worker_views": worker_views._OLDEST_LUA,
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_all_queues_script_takes_the_one_prelude(name):
    script = SCRIPTS[name]
    assert KNOWN_QUEUES_LUA in script and "known_queues(KEYS[1], KEYS[2], ARGV[1])" in script
    assert script.replace(KNOWN_QUEUES_LUA, "").count("SMEMBERS") == 0  # no copy of its own


def test_known_queues_are_rqs_and_the_monitors(connection):
    Queue("kq-rq", connection=connection).enqueue("workers.tasks.noop")
    remember_queue(connection, "kq-ours")
    connection.sadd(ALL_QUEUES_KEY, "not-a-queue-key")  # a member without RQ's prefix is not a queue
    listed = KNOWN_QUEUES_LUA + "local out = {} for n in pairs(known_queues(KEYS[1], KEYS[2], ARGV[1])) do " \
        "table.insert(out, n) end return out"  # fmt: skip
    found = connection.eval(listed, 2, ALL_QUEUES_KEY, keys.KNOWN_QUEUES, QUEUE_KEY_PREFIX)
    assert sorted(name.decode() for name in found) == list_queue_names(connection) == ["kq-ours", "kq-rq"]
    now = time.time()
    assert [queue["queueName"] for queue in metrics.get_metrics(connection, now)["queues"]] == ["kq-ours", "kq-rq"]
    assert {entry["queueName"] for entry in scrape.read_scrape(connection, now, 60, 300)["queues"]} == {
        "kq-ours",
        "kq-rq",
    }
    status = worker_views.get_queue_status(connection, worker_views.Thresholds(60, 300), now)
    assert sorted(status["queues"]) == ["kq-ours", "kq-rq"]
    assert status["queues"]["kq-rq"]["oldest_task_age_seconds"] is not None


@pytest.mark.parametrize(
    "scores",
    [
        [],
        [-1.0, -5.0, float("-inf")],  # RQ's "forever" entries
        [0.0, 10.0],  # expired long ago
        [-1.0, 0.0, -0.5, 1.0],
        ["now-100", "now-0.5", "now", "now+0.5", "now+100", float("inf"), -1.0],
        ["now+1"] * 3 + [float("inf")],  # nothing expired
        ["now-1"] * 4,  # everything expired
    ],
    ids=["empty", "forever", "expired", "around-zero", "mixed", "all-live", "all-expired"],
)
def test_live_count_is_the_entries_scored_now_or_later_or_negative(connection, scores):
    """live_count (ZCARD less the expired 0 <= score < now) counts what ZCOUNT now..+inf + ZCOUNT -inf..(0 did."""
    now = 1_800_000_000.25
    values = [now + float(score[3:]) if isinstance(score, str) and score != "now" else now if score == "now" else score
              for score in scores]  # fmt: skip
    key = "live-count-test"
    if values:
        connection.zadd(key, {f"entry-{index}": value for index, value in enumerate(values)})
    expected = sum(1 for value in values if value >= now or value < 0)
    counted = connection.eval(LIVE_COUNT_LUA + "return live_count(KEYS[1], ARGV[1])", 1, key, repr(now))
    assert counted == expected
    with connection.pipeline(transaction=False) as pipe:
        live_count_reads(pipe, key, now)
        assert pipe.execute() == [expected]
