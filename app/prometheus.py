"""The Prometheus exposition of GET /metrics: a prometheus_client Collector that turns one scrape's plain data
(app.domain.scrape) into the metric families of API.md § Prometheus. A private registry per scrape: nothing
global, nothing written by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from app.domain.severity import SEVERITIES

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


def _timestamp(iso_time: str | None) -> float | None:
    if not iso_time:
        return None
    try:
        return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


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
        jobs = GaugeMetricFamily("rq_jobs", "Jobs per queue and status", labels=["queue", "status"])
        paused = GaugeMetricFamily("rqmon_queue_paused", "1 when the queue is paused", labels=["queue"])
        latency = GaugeMetricFamily(
            "rqmon_queue_latency_seconds", "Age of the job that has waited longest", labels=["queue"]
        )
        listening = GaugeMetricFamily("rqmon_queue_workers", "Active workers listening to the queue", labels=["queue"])
        stuck = GaugeMetricFamily("rqmon_stuck_jobs", "Current stuck runs", labels=["queue", "severity"])
        for queue in self.scrape["queues"]:
            name = queue["queueName"]
            for status, count_field in JOB_STATUSES.items():
                jobs.add_metric([name, status], queue.get(count_field, 0))
            paused.add_metric([name], 1 if queue["paused"] else 0)
            latency.add_metric([name], queue.get("latencySeconds", 0.0))
            listening.add_metric([name], queue.get("activeWorkers", 0))
            bands = self.scrape["stuck"].get(name)
            if bands:  # queues with a stuck run only: 4 zero samples per queue would be a fifth of a large scrape
                for severity in SEVERITIES:
                    stuck.add_metric([name, severity], bands.get(severity, 0))
        yield from (jobs, paused, latency, listening, stuck)

    def _counters(self) -> Iterator[Metric]:
        finished = CounterMetricFamily(
            "rqmon_jobs_finished_total", "Ended attempts ever recorded", labels=["queue", "outcome"]
        )
        duration = HistogramMetricFamily(
            "rqmon_job_duration_seconds", "Processing time of ended attempts", labels=["queue"]
        )
        for name, counts in sorted(self.scrape["counters"].items()):
            for outcome, value in counts.finished.items():
                finished.add_metric([name, outcome], value)
            duration.add_metric([name], counts.cumulative_buckets(), counts.sum_ms / 1000.0)
        yield from (finished, duration)

    def _workers(self) -> Iterator[Metric]:
        workers = GaugeMetricFamily("rq_workers", "1 per registered worker", labels=["name", "queues", "state"])
        heartbeat = GaugeMetricFamily(
            "rqmon_worker_last_heartbeat_timestamp_seconds", "Last heartbeat of the worker", labels=["name"]
        )
        memory = GaugeMetricFamily("rqmon_worker_memory_bytes", "Worker + work horse RSS", labels=["name"])
        for worker in self.scrape["workers"]:
            name = worker["worker_name"]
            workers.add_metric([name, ",".join(worker["queues"]), worker["state"] or worker["status"]], 1)
            beat = _timestamp(worker["last_heartbeat"])
            if beat is not None:
                heartbeat.add_metric([name], beat)
            if worker["memory_usage_mb"] is not None:
                memory.add_metric([name], worker["memory_usage_mb"] * 1024 * 1024)
        yield from (workers, heartbeat, memory)

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
            at = _timestamp(schedule.get("nextRunAt"))
            if at is not None:
                next_run.add_metric([schedule["name"]], at)
            last = schedule.get("lastRun") or {}
            at = _timestamp(last.get("enqueuedAt"))
            if at is not None:
                last_run.add_metric([schedule["name"], str(last.get("state") or "unknown")], at)
        yield from (next_run, last_run)


def exposition(scrape: dict[str, Any]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeCollector(scrape))
    return generate_latest(registry)
