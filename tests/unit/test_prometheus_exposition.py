"""app.prometheus builds its samples directly (no add_metric per sample): the exposition must be byte for byte what
prometheus_client's own add_metric families give for the same scrape, and parse with its parser. The scrape's
helpers (RQ timestamps, active workers per queue) give what the slower forms they replaced gave."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from app.domain.counters import DURATION_BUCKETS, QueueCounters
from app.domain.scrape import _active_per_queue
from app.domain.severity import SEVERITIES
from app.domain.states import Liveness, WorkerStatus
from app.domain.timeutil import rq_epoch
from app.prometheus import FAMILIES, JOB_STATUSES, exposition


def _scrape() -> dict:
    rng = random.Random(7)
    queues = [
        {
            "queueName": f"q-{index}",
            **{field: rng.randrange(10_000) for field in JOB_STATUSES.values()},
            "paused": index % 3 == 0,
            "latencySeconds": rng.random() * 100 if index % 2 else 0.0,
            "activeWorkers": index % 4,
        }
        for index in range(6)
    ]
    counters = {}
    for name in ("q-1", "q-4", 'odd "name"\\'):
        counts = QueueCounters()
        counts.finished = {"completed": rng.randrange(99), "failed": rng.randrange(99), "retried": 0}
        counts.buckets = [rng.randrange(5) for _ in range(len(DURATION_BUCKETS) + 1)]
        counts.count, counts.sum_ms = sum(counts.buckets) + 1, rng.randrange(10**7)  # the +Inf bucket is the count
        counters[name] = counts
    workers = [
        {
            "worker_name": f"w{index}",
            "queues": [f"q-{index % 6}", "q-5"][: 1 + index % 2],
            "state": "busy" if index % 3 == 0 else None,
            "status": WorkerStatus.IDLE,
            "last_heartbeat": None if index == 4 else f"2026-12-01T05:0{index}:00.12345{index}Z",
            "memory_usage_mb": 80.5 if index % 2 else None,
        }
        for index in range(8)
    ]
    return {
        "queues": queues,
        "counters": counters,
        "workers": workers,
        "alerts": [{"rule": "queue_backlog", "severity": "warning"}] * 2 + [{"rule": "x", "severity": "critical"}],
        "stuck": {"q-2": {"high": 3}, "q-5": {"low": 1, "critical": 2}},
        "schedules": [
            {"name": "nightly", "nextRunAt": "2026-12-02T00:00:00Z", "lastRun": {"enqueuedAt": "2026-12-01T00:00:01Z"}},
            {"name": "never", "nextRunAt": None, "lastRun": None},
        ],
    }


class _WithAddMetric:
    """The same families through prometheus_client's add_metric, one call per sample: the reference."""

    def __init__(self, scrape: dict) -> None:
        self.scrape = scrape

    def collect(self):
        scrape = self.scrape
        jobs = GaugeMetricFamily("rq_jobs", "Jobs per queue and status", labels=["queue", "status"])
        paused = GaugeMetricFamily("rqmon_queue_paused", "1 when the queue is paused", labels=["queue"])
        latency = GaugeMetricFamily(
            "rqmon_queue_latency_seconds", "Age of the job that has waited longest", labels=["queue"]
        )
        listening = GaugeMetricFamily("rqmon_queue_workers", "Active workers listening to the queue", labels=["queue"])
        stuck = GaugeMetricFamily("rqmon_stuck_jobs", "Current stuck runs", labels=["queue", "severity"])
        for queue in scrape["queues"]:
            name = queue["queueName"]
            for status, field in JOB_STATUSES.items():
                jobs.add_metric([name, status], queue.get(field, 0))
            paused.add_metric([name], 1 if queue["paused"] else 0)
            latency.add_metric([name], queue.get("latencySeconds", 0.0))
            listening.add_metric([name], queue.get("activeWorkers", 0))
            bands = scrape["stuck"].get(name)
            if bands:
                for severity in SEVERITIES:
                    stuck.add_metric([name, severity], bands.get(severity, 0))
        yield from (jobs, paused, latency, listening, stuck)
        finished = CounterMetricFamily(
            "rqmon_jobs_finished_total", "Ended attempts ever recorded", labels=["queue", "outcome"]
        )
        duration = HistogramMetricFamily(
            "rqmon_job_duration_seconds", "Processing time of ended attempts", labels=["queue"]
        )
        for name, counts in sorted(scrape["counters"].items()):
            for outcome, value in counts.finished.items():
                finished.add_metric([name, outcome], value)
            duration.add_metric([name], counts.cumulative_buckets(), counts.sum_ms / 1000.0)
        yield from (finished, duration)
        workers = GaugeMetricFamily("rq_workers", "1 per registered worker", labels=["name", "queues", "state"])
        heartbeat = GaugeMetricFamily(
            "rqmon_worker_last_heartbeat_timestamp_seconds", "Last heartbeat of the worker", labels=["name"]
        )
        memory = GaugeMetricFamily("rqmon_worker_memory_bytes", "Worker + work horse RSS", labels=["name"])
        for worker in scrape["workers"]:
            name = worker["worker_name"]
            workers.add_metric([name, ",".join(worker["queues"]), worker["state"] or worker["status"]], 1)
            beat = rq_epoch(worker["last_heartbeat"])
            if beat is not None:
                heartbeat.add_metric([name], beat)
            if worker["memory_usage_mb"] is not None:
                memory.add_metric([name], worker["memory_usage_mb"] * 1024 * 1024)
        yield from (workers, heartbeat, memory)


def _reference(scrape: dict) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_WithAddMetric(scrape))
    return generate_latest(registry)


def test_the_exposition_is_what_add_metric_families_give():
    scrape = _scrape()
    text = exposition(scrape).decode()
    reference = _reference(scrape).decode()
    # Alerts and schedules are built as before (add_metric); the rest must be the reference, line for line.
    assert text.startswith(reference)
    assert "# TYPE rqmon_alerts_firing gauge" in text[len(reference) :]
    families = {family.name: family for family in text_string_to_metric_families(text)}
    exposed = {name + "_total" if family.type == "counter" else name for name, family in families.items()}
    assert exposed == set(FAMILIES)
    histogram = families["rqmon_job_duration_seconds"]
    assert len([s for s in histogram.samples if s.labels["queue"] == "q-1"]) == len(DURATION_BUCKETS) + 1 + 2


def test_an_empty_scrape_still_declares_the_families():
    empty = {"queues": [], "counters": {}, "workers": [], "alerts": [], "stuck": {}, "schedules": []}
    assert exposition(empty).startswith(_reference(empty))
    names = {family.name for family in text_string_to_metric_families(exposition(empty).decode())}
    assert {name.removesuffix("_total") for name in FAMILIES} == names


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T05:00:00.123456Z", datetime(2026, 12, 1, 5, 0, 0, 123456, tzinfo=UTC)),  # RQ's utcformat
        ("2026-12-01T05:00:00Z", datetime(2026, 12, 1, 5, tzinfo=UTC)),
        ("2026-12-01T05:00:00.123Z", datetime(2026, 12, 1, 5, 0, 0, 123000, tzinfo=UTC)),
        ("2024-02-29T23:59:59.999999", datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)),  # naive: UTC
        ("2026-12-01T07:00:00.123456+02:00", datetime(2026, 12, 1, 5, 0, 0, 123456, tzinfo=UTC)),  # its offset kept
        ("2026-13-01T05:00:00.123456Z", None),
        ("2026-02-30T05:00:00.000000Z", None),
        ("2026-12-01T24:00:00.000000Z", None),
        ("2026-12-01T05:00:60.000000Z", None),
        ("0000-12-01T05:00:00.000000Z", None),
        ("٢٠٢٦-12-01T05:00:00.123456Z", None),
        ("not a time", None),
        ("", None),
    ],
)
def test_rq_times_are_read_once_for_every_reader(text, expected):
    """timeutil.rq_epoch: the scrape's latency, the registry's heartbeats, the runs' starts, the schedules' runs."""
    want = None if expected is None else expected.timestamp()
    assert rq_epoch(text.encode()) == want and rq_epoch(text) == want


def test_rq_epoch_equals_strptime_on_random_rq_shaped_times():
    rng = random.Random(3)
    for _ in range(5_000):
        fields = (rng.randrange(10_000), rng.randrange(14), rng.randrange(33), rng.randrange(26), rng.randrange(62))
        text = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:06d}Z".format(
            *fields, rng.randrange(62), rng.randrange(10**6)
        )
        try:
            expected = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            expected = None
        assert rq_epoch(text) == expected, text


def test_active_workers_per_queue():
    def worker(liveness: Liveness, *queues: str) -> dict:
        return {"liveness": liveness, "queues": list(queues)}

    workers = [
        worker(Liveness.ACTIVE, "a", "b"),
        worker(Liveness.ACTIVE, "a", "a"),  # listed twice: one worker listening
        worker(Liveness.INACTIVE, "a", "c"),
        worker(Liveness.STALE, "c"),
        worker(Liveness.ACTIVE),
    ]
    assert _active_per_queue(workers) == {"a": 2, "b": 1}
