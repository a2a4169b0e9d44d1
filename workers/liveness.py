"""What a MonitoredWorker says about itself at each heartbeat: RSS and CPU of the worker plus its work horse."""

from __future__ import annotations

import time

import psutil

MB = 1024 * 1024


class ResourceSampler:
    """RSS of the worker + its running work horse, and CPU percent (of one core) since the previous sample.

    CPU counts the worker, the horses it has reaped and the one running now, so a horse's time is counted once,
    whether it is sampled while running or after it ended."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._last: tuple[float, float] = (time.monotonic(), self._cpu_seconds(0))

    def sample(self, horse_pid: int) -> tuple[float, float]:
        rss = self._process.memory_info().rss + _horse(horse_pid, lambda p: p.memory_info().rss)
        now, cpu = time.monotonic(), self._cpu_seconds(horse_pid)
        last_at, last_cpu = self._last
        self._last = (now, cpu)
        percent = 100.0 * max(0.0, cpu - last_cpu) / (now - last_at) if now > last_at else 0.0
        return round(rss / MB, 1), round(percent, 1)

    def _cpu_seconds(self, horse_pid: int) -> float:
        times = self._process.cpu_times()
        own = times.user + times.system + times.children_user + times.children_system
        return own + _horse(horse_pid, lambda p: sum(p.cpu_times()[:2]))


def _horse(pid: int, read) -> float:  # type: ignore[no-untyped-def]
    if not pid:
        return 0
    try:
        return read(psutil.Process(pid))
    except (psutil.Error, OSError):  # ended between the check and the read
        return 0
