"""The Prometheus exposition of GET /metrics: a prometheus_client Collector that turns one scrape's plain data
(app.domain.scrape) into the metric families of API.md § Prometheus. A private registry per scrape: nothing
global, nothing written by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from app.domain.severity import SEVERITIES
from app.domain.timeutil import rq_epoch

# rq_jobs' status label (rq-exporter's names, plus prioritized) -> the field of a queue's counts
JOB_STATUSES: dict[str, str] = {
    "queued": "waiting",
    "started": "active",
    "finished": "completed",
    "failed": "failed",
    "deferred": "waitingChildren",
    "scheduled": "delayed",
    "canceled": "canceled",
    "prioritized": "prioritized",
}
FAMILIES = (
    "rq_jobs",
    "rq_workers",
    "rqmon_queue_paused",
    "rqmon_queue_latency_seconds",
    "rqmon_queue_workers",
    "rqmon_jobs_finished_total",
    "rqmon_job_duration_seconds",
    "rqmon_stuck_jobs",
    "rqmon_worker_last_heartbeat_timestamp_seconds",
    "rqmon_worker_memory_bytes",
    "rqmon_alerts_firing",
    "rqmon_schedule_next_run_timestamp_seconds",
    "rqmon_schedule_last_run_timestamp_seconds",
)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _family(kind: Callable[[str, str], Metric], name: str, documentation: str, samples: list[Sample]) -> Metric:
    """A family whose samples are built by the caller: one Sample and one label dict per sample, without the
    per-sample zip, dict and name concatenation of add_metric (a scrape holds about 1,000 samples)."""
    family = kind(name, documentation)
    family.samples = samples
    return family


class ScrapeCollector(Collector):
    def __init__(self, scrape: dict[str, Any]):
        self.scrape = scrape

    def collect(self) -> Iterator[Metric]:
        yield from self._queues()
        yield from self._counters()
        yield from self._workers()
        yield from self._alerts()
        yield from self._schedules()

    def _queues(self) -> Iterator[Metric]:
        queues = self.scrape["queues"]
        yield _family(
            GaugeMetricFamily,
            "rq_jobs",
            "Jobs per queue and status",
            [
                Sample("rq_jobs", {"queue": queue["queueName"], "status": status}, queue.get(count_field, 0))
                for queue in queues
                for status, count_field in JOB_STATUSES.items()
            ],
        )
        yield _gauge_per_queue(queues, "rqmon_queue_paused", "1 when the queue is paused", _paused)
        yield _gauge_per_queue(
            queues, "rqmon_queue_latency_seconds", "Age of the job that has waited longest", _latency
        )
        yield _gauge_per_queue(queues, "rqmon_queue_workers", "Active workers listening to the queue", _listening)
        stuck = self.scrape["stuck"]
        yield _family(
            GaugeMetricFamily,
            "rqmon_stuck_jobs",
            "Current stuck runs",
            [  # queues with a stuck run only: 4 zero samples per queue would be a fifth of a large scrape
                Sample("rqmon_stuck_jobs", {"queue": name, "severity": severity}, bands.get(severity, 0))
                for name, bands in ((queue["queueName"], stuck.get(queue["queueName"])) for queue in queues)
                if bands
                for severity in SEVERITIES
            ],
        )

    def _counters(self) -> Iterator[Metric]:
        finished: list[Sample] = []
        duration: list[Sample] = []
        for name, counts in sorted(self.scrape["counters"].items()):
            finished += [
                Sample("rqmon_jobs_finished_total", {"queue": name, "outcome": outcome}, value)
                for outcome, value in counts.finished.items()
            ]
            buckets = counts.cumulative_buckets()
            duration += [
                Sample("rqmon_job_duration_seconds_bucket", {"queue": name, "le": bound}, total)
                for bound, total in buckets
            ]
            duration.append(Sample("rqmon_job_duration_seconds_count", {"queue": name}, buckets[-1][1]))
            duration.append(Sample("rqmon_job_duration_seconds_sum", {"queue": name}, counts.sum_ms / 1000.0))
        yield _family(CounterMetricFamily, "rqmon_jobs_finished_total", "Ended attempts ever recorded", finished)
        yield _family(
            HistogramMetricFamily, "rqmon_job_duration_seconds", "Processing time of ended attempts", duration
        )

    def _workers(self) -> Iterator[Metric]:
        workers = self.scrape["workers"]
        yield _family(
            GaugeMetricFamily,
            "rq_workers",
            "1 per registered worker",
            [
                Sample(
                    "rq_workers",
                    {
                        "name": worker["worker_name"],
                        "queues": ",".join(worker["queues"]),
                        "state": worker["state"] or worker["status"],
                    },
                    1,
                )
                for worker in workers
            ],
        )
        heartbeats = ((worker["worker_name"], rq_epoch(worker["last_heartbeat"])) for worker in workers)
        yield _family(
            GaugeMetricFamily,
            "rqmon_worker_last_heartbeat_timestamp_seconds",
            "Last heartbeat of the worker",
            [
                Sample("rqmon_worker_last_heartbeat_timestamp_seconds", {"name": name}, beat)
                for name, beat in heartbeats
                if beat is not None
            ],
        )
        yield _family(
            GaugeMetricFamily,
            "rqmon_worker_memory_bytes",
            "Worker + work horse RSS",
            [
                Sample(
                    "rqmon_worker_memory_bytes",
                    {"name": worker["worker_name"]},
                    worker["memory_usage_mb"] * 1024 * 1024,
                )
                for worker in workers
                if worker["memory_usage_mb"] is not None
            ],
        )

    def _alerts(self) -> Iterator[Metric]:
        firing = GaugeMetricFamily("rqmon_alerts_firing", "Firing alerts", labels=["rule", "severity"])
        counts: dict[tuple[str, str], int] = {}
        for alert in self.scrape["alerts"]:
            pair = (alert["rule"], alert["severity"])
            counts[pair] = counts.get(pair, 0) + 1
        for (rule, severity), count in sorted(counts.items()):
            firing.add_metric([rule, severity], count)
        yield firing

    def _schedules(self) -> Iterator[Metric]:
        """Samples only when schedules exist (the families are still declared)."""
        next_run = GaugeMetricFamily(
            "rqmon_schedule_next_run_timestamp_seconds", "Next run of the schedule", labels=["schedule"]
        )
        last_run = GaugeMetricFamily(
            "rqmon_schedule_last_run_timestamp_seconds", "Last run of the schedule", labels=["schedule", "status"]
        )
        for schedule in self.scrape["schedules"]:
            at = rq_epoch(schedule.get("nextRunAt"))
            if at is not None:
                next_run.add_metric([schedule["name"]], at)
            last = schedule.get("lastRun") or {}
            at = rq_epoch(last.get("enqueuedAt"))
            if at is not None:
                last_run.add_metric([schedule["name"], str(last.get("state") or "unknown")], at)
        yield from (next_run, last_run)


def _gauge_per_queue(
    queues: list[dict[str, Any]], name: str, documentation: str, value: Callable[[dict[str, Any]], float]
) -> Metric:
    return _family(
        GaugeMetricFamily,
        name,
        documentation,
        [Sample(name, {"queue": queue["queueName"]}, value(queue)) for queue in queues],
    )


def _paused(queue: dict[str, Any]) -> int:
    return 1 if queue["paused"] else 0


def _latency(queue: dict[str, Any]) -> float:
    return queue.get("latencySeconds", 0.0)


def _listening(queue: dict[str, Any]) -> int:
    return queue.get("activeWorkers", 0)


def exposition(scrape: dict[str, Any]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeCollector(scrape))
    return generate_latest(registry)
