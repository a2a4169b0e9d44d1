"""The RQ worker side: `rq worker -w workers.MonitoredWorker` and sample tasks."""

from workers.monitored_worker import MonitoredWorker

__all__ = ["MonitoredWorker"]
