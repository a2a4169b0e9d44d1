"""The pool's view of its processes (Linux first, harmless elsewhere): a child's memory with its work horse, the
horse itself, the orphans a dead child leaves, and the prctl calls (subreaper, parent-death signal)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

import psutil

_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_PDEATHSIG = 1


def rss_mb(pid: int) -> float:
    """RSS of a child and its work horse (WORKERS.md: worker + horse; its scheduler process is not counted)."""
    total = 0
    with contextlib.suppress(psutil.Error):
        total += psutil.Process(pid).memory_info().rss
        horse = horse_of(pid)
        if horse is not None:
            total += horse.memory_info().rss
    return total / 1048576


def horse_of(pid: int) -> psutil.Process | None:
    """RQ's work horse calls setpgrp(): the child of the worker that leads its own process group."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children():
            with contextlib.suppress(psutil.Error):
                if os.getpgid(child.pid) == child.pid:
                    return child
    return None


def kill_orphans(known: set[int]) -> None:
    """The pool is its children's subreaper: a dead child's work horse and scheduler become the pool's own
    children. Kill and reap every child of this process whose pid is not `known`."""
    with contextlib.suppress(psutil.Error):
        for orphan in psutil.Process().children():
            if orphan.pid in known:
                continue
            with contextlib.suppress(OSError):
                os.kill(orphan.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(orphan.pid, 0)


def become_subreaper() -> None:
    """Linux: orphaned descendants (a dead child's work horse) come back to this process. Raises elsewhere."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def signal_at_parent_death(signum: int) -> None:
    """Linux: this process gets `signum` when its parent dies, even by SIGKILL. Raises elsewhere."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
