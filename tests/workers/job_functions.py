"""Job functions only the worker tests need, importable by real `rq worker` processes (they run from the root)."""

from __future__ import annotations

from rq import Retry, get_current_job


def retry_once(key: str, interval: int) -> int | Retry:
    """Asks RQ to run it again (it returns a Retry) on its first run; then returns the run number."""
    job = get_current_job()
    assert job is not None
    run = int(job.connection.incr(key))
    job.connection.expire(key, 3600)
    return Retry(max=1, interval=interval) if run == 1 else run
