"""Outcome history on a real Redis: buckets, trends, success and processing rates."""

from __future__ import annotations

import time

import pytest

from app.domain import history, keys


def test_trends_count_recorded_attempts_per_queue(connection):
    now = time.time()
    with connection.pipeline() as pipe:
        history.record_attempt(pipe, "emails", "ok", 1000, "a", "t.send", ended_at=now)
        history.record_attempt(pipe, "emails", "ok", 3000, "b", "t.send", ended_at=now)
        history.record_attempt(pipe, "emails", "retry", 500, "c", "t.send", ended_at=now)
        history.record_attempt(pipe, "emails", "fail", 2000, "c", "t.send", ended_at=now)
        history.record_attempt(pipe, "reports", "ok", 10, "d", "t.report", ended_at=now - 3 * 86400)
        pipe.execute()

    day = {t["queueName"]: t for t in history.get_trends(connection, "24h", ["reports"], now=now)}
    assert day["emails"] == {
        "queueName": "emails",
        "period": "24h",
        "successful": 2,
        "failed": 1,
        "total": 3,
        "successRate": 66.67,
        "avgProcessingTime": 2000,
    }
    assert day["reports"]["total"] == 0 and day["reports"]["successRate"] is None  # 3 days ago: outside 24h
    month = {t["queueName"]: t for t in history.get_trends(connection, "30d", ["idle"], now=now)}
    assert month["reports"]["successful"] == 1
    assert month["idle"]["total"] == 0


def test_series_has_one_point_per_bucket(connection):
    now = time.time()
    history.record_attempt(connection, "q1", "ok", 100, "a", "f", ended_at=now - 2 * 3600)
    [trend] = history.get_trends(connection, "24h", [], with_series=True, now=now)
    assert len(trend["series"]) == 24
    assert [p["successful"] for p in trend["series"]][-3] == 1
    assert trend["series"][-1]["start"].endswith(":00:00.000Z")
    assert len(history.get_trends(connection, "7d", ["q1"], with_series=True, now=now)[0]["series"]) == 28


def test_rates_over_last_outcomes_and_five_minutes(connection):
    now = (time.time() // 60) * 60 + 30  # the middle of a minute
    with connection.pipeline() as pipe:
        for index in range(1100):  # more than the cap: only the last 1000 count
            outcome = "fail" if index < 100 else ("ok" if index % 4 else "fail")
            history.record_attempt(pipe, "q", outcome, 1, str(index), "f", ended_at=now - 10)
        pipe.execute()
    assert connection.llen(keys.OUTCOMES) == 1000
    with connection.pipeline() as pipe:
        history.queue_rate_reads(pipe, now)
        results = pipe.execute()
    rates = history.parse_rates(results, now)
    assert rates.success_rate == 75.0
    assert rates.processing_rate == 220.0  # 1100 finished within the last 5 minutes
    assert rates.of("q") == (75.0, 220.0) and rates.of("other") == (None, 0.0)


def test_rates_when_nothing_finished(connection):
    with connection.pipeline() as pipe:
        history.queue_rate_reads(pipe, time.time())
        results = pipe.execute()
    rates = history.parse_rates(results, time.time())
    assert (rates.success_rate, rates.processing_rate, rates.per_queue) == (None, 0.0, {})


def test_every_history_key_expires(connection):
    history.record_attempt(connection, "q", "ok", 5, "j", "f")
    for key in connection.keys(f"{keys.PREFIX}:stats:*"):
        assert 0 < connection.ttl(key) <= 400 * 86400


def test_outcome_counts_follow_the_capped_list_exactly(connection):
    with connection.pipeline() as pipe:
        for index in range(1300):
            queue = ("alpha", "beta", "with|bar")[index % 3]
            history.record_attempt(pipe, queue, "ok" if index % 5 else "fail", 1, str(index), "f")
        pipe.execute()
    entries = connection.lrange(keys.OUTCOMES, 0, -1)
    assert len(entries) == 1000
    expected: dict[bytes, int] = {}
    for entry in entries:
        ok, _, _, rest = entry.split(b"|", 3)
        queue = rest.rsplit(b"|", 2)[0]
        for field in (b"|all", queue + b"|all"):
            expected[field] = expected.get(field, 0) + 1
        for field in (b"|ok", queue + b"|ok"):
            expected[field] = expected.get(field, 0) + int(ok)
    assert {k: int(v) for k, v in connection.hgetall(keys.OUTCOME_COUNTS).items()} == expected


def test_summed_totals_are_the_same_with_or_without_the_series(connection):
    now = time.time()
    with connection.pipeline() as pipe:
        for day in range(40):
            for queue in ("a", "b"):
                outcome = "fail" if day % 3 == 0 else "ok"
                history.record_attempt(pipe, queue, outcome, 10 * day, "j", "f", ended_at=now - day * 86400)
        pipe.execute()
    for period in ("24h", "7d", "30d"):
        plain = history.get_trends(connection, period, ["c"], now=now)
        with_series = history.get_trends(connection, period, ["c"], with_series=True, now=now)
        assert plain == [{k: v for k, v in trend.items() if k != "series"} for trend in with_series]
    # days 0..30: the one recorded exactly 30 days ago is inside (the window starts at the hour at or before it)
    assert [t["total"] for t in history.get_trends(connection, "30d", [], now=now)] == [31, 31]


@pytest.mark.parametrize(
    ("period", "seconds", "edge"), [("24h", 86400, 60), ("7d", 7 * 86400, 3600), ("30d", 30 * 86400, 3600)]
)
def test_totals_cover_the_whole_period_back_from_now(connection, period, seconds, edge):
    now = (time.time() // 86400) * 86400 + 13 * 3600 + 17 * 60 + 41  # mid-bucket at every granularity
    start = now - seconds
    window_start = (start // edge) * edge
    cases = {
        "newest": (now - 1, True),
        "just inside the period": (start + 61, True),
        "first second of the window": (window_start, True),
        "just before the window": (window_start - 1, False),
        "well before": (start - 2 * 86400, False),
    }
    for index, (label, (ended_at, _)) in enumerate(cases.items()):
        history.record_attempt(connection, label, "ok", 100 + index, "j", "f", ended_at=ended_at)
    totals = {t["queueName"]: t for t in history.get_trends(connection, period, list(cases), now=now)}
    for index, (label, (_, inside)) in enumerate(cases.items()):
        assert totals[label]["successful"] == (1 if inside else 0), label
        assert totals[label]["avgProcessingTime"] == (100 + index if inside else None), label
    assert "" not in totals  # the minute buckets' all-queue fields are not a queue
