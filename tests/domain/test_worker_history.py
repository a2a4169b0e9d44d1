"""Worker history on a real Redis, recorded by app/domain/worker_history.py and read by worker_performance.py:
counters per worker, queue and system per bucket, p95 from the duration buckets, change against the previous
period, bounded keys, closed buckets kept parsed."""

from __future__ import annotations

import pytest

from app.domain import counters, keys, worker_history, worker_performance

HOUR = 3600
NOW = 1_780_000_000.0 - 1_780_000_000.0 % 86400 + 12 * HOUR + 600  # 12:10 UTC on some day


def record(connection, worker, queue, outcome, ms, at, job="j"):
    worker_history.record_attempt(connection, worker, queue, outcome, ms, job, "tasks.work", at)


def test_counts_per_worker_and_bucket_and_the_summary(connection):
    record(connection, "w1", "emails", "ok", 1000, NOW - 60)
    record(connection, "w1", "emails", "fail", 3000, NOW - 120)
    record(connection, "w2", "reports", "retry", 500, NOW - 2 * HOUR)
    record(connection, "w2", "reports", "ok", 20000, NOW - 25 * HOUR)  # before the 24 h window
    found = worker_performance.get_performance(connection, 24, NOW)
    assert [(p["processed"], p["failed"]) for p in found["worker_metrics"]["w1"]] == [(2, 1)]
    assert found["worker_metrics"]["w1"][0]["avg_processing_time"] == 2.0
    assert found["worker_metrics"]["w2"] == [
        {"start": found["system_metrics"][-3]["start"], "processed": 1, "failed": 1, "avg_processing_time": 0.5}
    ]
    summary = found["performance_summary"]
    assert (summary["processed"], summary["failed"], summary["error_rate"]) == (3, 2, 66.67)
    assert summary["slowest_queue"] == "emails" and summary["busiest_hour"] == found["system_metrics"][-1]["start"]
    assert summary["change_vs_previous_period"] == {"processed": 200.0, "error_rate": 66.67}
    assert len(found["system_metrics"]) == 24


def test_p95_is_interpolated_in_its_duration_bucket():
    histogram = {str(counters.bucket_index(100)): 95, str(counters.bucket_index(4000)): 5}
    assert worker_performance.percentile(histogram, 0.95) == 0.1  # the 95th of 100 is the last of the fast ones
    assert 2.5 < worker_performance.percentile(histogram, 0.99) <= 5.0
    assert worker_performance.percentile({}, 0.95) is None
    assert worker_performance.percentile({str(len(counters.DURATION_BUCKETS)): 1}, 0.95) == 3600.0  # +Inf: last bound


def histogram_quantile(fraction: float, cumulative: list[tuple[str, int]]) -> float:
    """Prometheus's histogram_quantile over `le` buckets (linear within a bucket, the last finite bound for +Inf)."""
    total, low, below = cumulative[-1][1], 0.0, 0
    for le, count in cumulative:
        if count >= fraction * total:
            if le == "+Inf":
                return float(cumulative[-2][0])
            return low + (float(le) - low) * (fraction * total - below) / (count - below)
        low, below = float(le), count
    raise AssertionError("unreachable")


def test_the_history_and_the_prometheus_histogram_are_one_histogram(connection):
    """Every attempt lands in the same bucket of both, so p95 of /performance/metrics is Prometheus's p95."""
    durations = [5, 10, 11, 40, 90, 200, 700, 1500, 4000, 9000, 45_000, 100_000, 400_000, 700_000, 5_000_000]
    for n, ms in enumerate(durations * 3):
        record(connection, "w1", "same-bounds", "ok", ms, NOW - 60, job=f"j{n}")
        counters.record_counters(connection, "same-bounds", "ok", ms)
    history_buckets = {}
    for field, value in connection.hgetall(keys.worker_stats("h", int((NOW - 60) // HOUR))).items():
        if field.startswith(worker_history.DURATION.encode()):
            history_buckets[int(field[len(worker_history.DURATION) :])] = int(value)
    prometheus = counters.read_counters(connection)["same-bounds"]
    assert history_buckets == {index: count for index, count in enumerate(prometheus.buckets) if count}
    p95 = worker_performance.get_performance(connection, 1, NOW)["performance_summary"]["p95_processing_time"]
    assert p95 == pytest.approx(histogram_quantile(0.95, prometheus.cumulative_buckets()), abs=0.001)
    for fraction in (0.1, 0.5, 0.9):
        histogram = {str(index): count for index, count in history_buckets.items()}
        expected = histogram_quantile(fraction, prometheus.cumulative_buckets())
        assert worker_performance.percentile(histogram, fraction) == pytest.approx(expected, abs=0.001)


def test_every_key_is_bounded(connection):
    for n in range(60):
        record(connection, "w1", "q", "ok", 10, NOW - n, job=f"j{n}")
    assert connection.llen(keys.worker_recent("w1")) == keys.WORKER_RECENT_CAP
    assert connection.llen(keys.WORKER_ACTIVITY) == keys.WORKER_RECENT_CAP
    for key in connection.keys("rqmon:worker-*"):
        if key != keys.WORKER_LAST_END.encode() and key != keys.WORKER_ACTIVITY.encode():
            assert 0 < connection.ttl(key) <= worker_history.RETENTION_SECONDS + 86400, key
    record(connection, "w-old", "q", "ok", 10, NOW - 31 * 86400)
    record(connection, "w1", "q", "ok", 10, NOW)
    assert connection.zscore(keys.WORKER_LAST_END, "w-old") is None  # pruned past the retention


@pytest.mark.parametrize("hours", [72, 720])
def test_closed_buckets_are_kept_parsed_and_read_again_after_a_change(connection, hours):
    record(connection, "w1", "q", "ok", 10, NOW - 2 * 86400)
    first = worker_performance.get_performance(connection, hours, NOW)
    assert first["performance_summary"]["processed"] == 1
    connection.flushdb()
    record(connection, "w2", "q", "ok", 10, NOW - 2 * 86400)
    again = worker_performance.get_performance(connection, hours, NOW)
    assert list(again["worker_metrics"]) == ["w2"]  # the bucket's size changed: not the cached one


def test_activity_entries_that_are_not_the_workers_are_left_out(connection):
    """The activity lists holding another program's values (a number, a list, JSON too deep, not JSON): the
    deployment's and the worker's recent attempts are read without them."""
    record(connection, "w1", "emails", "ok", 1000, NOW - 60)
    garbage = [b"5", b"[1, 2]", b"[" * 5000, b"\xff", b"null"]
    connection.lpush(keys.WORKER_ACTIVITY, *garbage)
    connection.lpush(keys.worker_recent("w1"), *garbage)
    [entry] = worker_performance.activity(connection.lrange(keys.WORKER_ACTIVITY, 0, -1))
    assert (entry["worker"], entry["queue"], entry["action"]) == ("w1", "emails", "completed")
    with connection.pipeline() as pipe:
        worker_performance.worker_details_reads(pipe, "w1", NOW)
        details = worker_performance.parse_worker_details(pipe.execute(), NOW)
    assert [job["queue"] for job in details["recent_jobs"]] == ["emails"]
