"""The RQ worker side: `rq worker -w workers.MonitoredWorker` and sample tasks.

MonitoredWorker is imported on first use (PEP 562), so importing `workers.tasks` stays cheap: a plain `rq worker`
imports a job's module in every forked work horse, and must not pay for the monitor's imports on each job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workers.monitored_worker import MonitoredWorker

__all__ = ["MonitoredWorker"]


def __getattr__(name: str) -> Any:
    if name == "MonitoredWorker":
        from workers.monitored_worker import MonitoredWorker

        return MonitoredWorker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
