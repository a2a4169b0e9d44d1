"""Sample job functions, importable by any worker: the demo and the tests enqueue these."""

from __future__ import annotations

import random
import time
from typing import Any

from rq import get_current_job


def noop() -> None:
    return None


def add(a: float, b: float) -> float:
    return a + b


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def fail(message: str = "this job always fails") -> None:
    raise RuntimeError(message)


def flaky(key: str, failures: int) -> int:
    """Fails the first `failures` runs (counted in Redis under `key`), then succeeds with the run number."""
    job = get_current_job()
    assert job is not None
    run = int(job.connection.incr(key))
    job.connection.expire(key, 3600)
    if run <= failures:
        raise RuntimeError(f"flaky failure {run} of {failures}")
    return run


def sometimes_fail(probability: float) -> str:
    """Fails with the given probability: the demo's schedule that fails now and then."""
    if random.random() < probability:
        raise RuntimeError("the report source did not answer (a demo failure)")
    return "report built"


def record(key: str, tag: str) -> str:
    """Appends `tag` to the Redis list `key`: tests read the order in which jobs ran."""
    job = get_current_job()
    assert job is not None
    job.connection.rpush(key, tag)
    job.connection.expire(key, 3600)
    return tag


def send_email(to: str, subject: str = "Hello", customParam: Any = None) -> dict[str, Any]:
    time.sleep(0.05)
    return {"to": to, "subject": subject, "customParam": customParam}


def report_progress(steps: int) -> int:
    """Saves its progress in job.meta as it runs, as many real tasks do: the worker's records must keep it."""
    job = get_current_job()
    assert job is not None
    for step in range(1, steps + 1):
        job.meta["progress"] = step
        job.save_meta()
    return steps


def record_then_sleep(key: str, tag: str, seconds: float) -> str:
    """Appends `tag` to the Redis list `key` as it starts, then sleeps: tests count how often a job ran."""
    record(key, tag)
    time.sleep(seconds)
    return tag


def hold_memory(megabytes: int, seconds: float) -> int:
    """Holds `megabytes` of touched memory for `seconds`: the pool's memory limit tests."""
    block = bytearray(megabytes * 1048576)
    for at in range(0, len(block), 4096):
        block[at] = 1
    time.sleep(seconds)
    return len(block) // 1048576
