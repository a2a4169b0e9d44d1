"""`rq-monitor-pool`: RQ's WorkerPool, supervised (WORKERS.md § The pool service). N MonitoredWorker children named
`<pool>.<slot>`, registered in Redis with the pool; a dead child is replaced within a second and its job recovered
as stalled at once; memory limit, default job timeout, graceful shutdown with a grace period, slot control,
health, and seed 003's events (a capped Redis stream plus `pool.on(event, fn)` callbacks).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any

import psutil
import redis
from rq import Queue
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.logutils import setup_loghandlers
from rq.worker_pool import WorkerData, WorkerPool

from app.domain import keys, pools, stalled, worker_control
from app.domain.stalled import Recovered
from workers import pool_health, processes
from workers.monitored_worker import MonitoredWorker
from workers.pool_worker import PoolWorker

log = logging.getLogger(__name__)

LOOP_SECONDS = 0.2  # between two looks at the children (a dead child's horse keeps its sentinel open: poll)
STALL_CHECK_SECONDS = 1.0
HARD_LIMIT_FACTOR = 1.5  # above this times the memory limit the work horse is killed
QUICK_DEATH_SECONDS = 5.0  # a child that dies sooner than this after its start is respawned with a backoff
MAX_BACKOFF_SECONDS = 5.0
REDIS_SOCKET_TIMEOUT = 5.0  # a frozen Redis costs the pool's loop a few seconds a look, never its life
REDIS_CONNECT_TIMEOUT = 2.0


def default_size() -> int:
    """seed 003's default: half the CPU cores, at least one."""
    return max(1, (os.cpu_count() or 1) // 2)


def _queue_class(max_job_duration: int) -> type[Queue]:
    """Queues whose default timeout (for jobs that have none) is the pool's --max-job-duration."""
    return type("PoolQueue", (Queue,), {"DEFAULT_TIMEOUT": max_job_duration})


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set for the duration of a fork, so that the child starts with them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_POOLS: weakref.WeakSet[MonitoredPool] = weakref.WeakSet()


def _close_pool_sockets() -> None:
    """In a forked child: close the pool's health-port and pub/sub sockets, so that a child outliving its pool (a
    job still running after a SIGKILL) does not keep the port from a restarted pool."""
    for pool in list(_POOLS):
        pool.close_inherited()


os.register_at_fork(after_in_child=_close_pool_sockets)


class MonitoredPool(WorkerPool):
    """rq.worker_pool.WorkerPool with slots, supervision, control and health (small overrides calling super())."""

    def __init__(
        self,
        queues: list[str],
        connection: redis.Redis,
        num_workers: int | None = None,
        *,
        name: str | None = None,
        memory_limit_mb: float | None = None,
        max_job_duration: int = 600,
        grace_period: float = 25.0,
        capabilities: dict[str, Any] | None = None,
        heartbeat_seconds: float = 10.0,
        stale_seconds: float = 300.0,
        worker_class: type[MonitoredWorker] = PoolWorker,
        **kwargs: Any,
    ) -> None:
        size = num_workers or default_size()
        super().__init__(
            queues, connection, size, worker_class=worker_class, queue_class=_queue_class(max_job_duration), **kwargs
        )
        self.name = name or f"{socket.gethostname().split('.')[0]}-{os.getpid()}"
        self.memory_limit_mb = memory_limit_mb
        self.max_job_duration = max_job_duration
        self.grace_period = grace_period
        self.capabilities = capabilities
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        self.slots: dict[int, str] = {slot: pools.SLOT_STARTING for slot in range(1, size + 1)}
        self.restarts = 0
        self.started_at = time.time()
        self._callbacks: dict[str, list[Callable[[dict[str, Any]], Any]]] = defaultdict(list)
        self._exiting: dict[int, str] = {}  # slot -> why we asked its child to exit (stop, restart, recycle)
        self.rss: dict[int, float] = {}  # slot -> MB of its child and work horse, at each heartbeat (health)
        self._spawned_at: dict[int, float] = {}
        self._quick_deaths: dict[int, int] = defaultdict(int)  # consecutive deaths soon after start, per slot
        self._not_before: dict[int, float] = {}  # slot -> when it may be respawned (crash-loop backoff)
        self._deadline: float | None = None  # graceful shutdown: when running jobs are interrupted
        self._announce_shutdown = False  # set by the signal handler (no Redis there), emitted by the loop
        self._pubsub: Any = None
        self._last_stall_check = self._last_beat = float("-inf")
        self._healthy: bool | None = None
        self._logging_level = "INFO"
        self.health_server: ThreadingHTTPServer | None = None
        _POOLS.add(self)

    # --- events ---------------------------------------------------------------------------------------

    def on(self, event: str, callback: Callable[[dict[str, Any]], Any]) -> None:
        """Call `callback(event_dict)` in the pool process on each `event` the pool itself emits."""
        if event not in pools.EVENTS:
            raise ValueError(f"unknown pool event {event!r}; one of {', '.join(pools.EVENTS)}")
        self._callbacks[event].append(callback)

    def emit(self, event: str, slot: int | None = None, job_id: str | None = None, stream: bool = True, **details: Any):
        worker = self.worker_name(slot) if slot else None
        if stream:
            try:
                pools.add_event(self.connection, event, self.name, slot, worker, job_id, details)
            except redis.RedisError as exc:
                self.log.warning("Pool %s: event %s not written: %s", self.name, event, exc)
        payload = {"event": event, "pool": self.name, "slot": slot, "worker": worker, "jobId": job_id, **details}
        for callback in self._callbacks.get(event, []):
            try:
                callback(payload)
            except Exception:
                self.log.exception("Pool %s: a %s callback failed", self.name, event)

    # --- children -------------------------------------------------------------------------------------

    def worker_name(self, slot: int) -> str:
        return f"{self.name}.{slot}"

    def _slot_of(self, worker_name: str) -> int:
        return int(worker_name.rpartition(".")[2])

    def _child_env(self, slot: int) -> dict[str, str]:
        env = {"RQMON_POOL": self.name, "RQMON_SLOT": str(slot), "RQMON_POOL_PID": str(os.getpid())}
        if self.memory_limit_mb:
            env["RQMON_MEMORY_LIMIT_MB"] = repr(self.memory_limit_mb)
        if self.capabilities is not None:
            env["RQMON_WORKER_CAPABILITIES"] = json.dumps(self.capabilities)
        return env

    def start_worker(self, count: int | None = None, burst: bool = True, _sleep: float = 0, logging_level: str = ""):
        """Start the child of slot `count` (RQ's start_workers passes 1..N), named `<pool>.<slot>`."""
        slot = count or next(s for s in self.slots if self.worker_name(s) not in self.worker_dict)
        name = self.worker_name(slot)
        process = self.get_worker_process(name, burst=burst, _sleep=_sleep, logging_level=logging_level or "WARNING")
        with _environment(self._child_env(slot)):
            process.start()
        self.worker_dict[name] = WorkerData(name=name, pid=process.pid, process=process)  # type: ignore[arg-type]
        self.slots[slot] = pools.SLOT_RUNNING
        self._spawned_at[slot] = time.monotonic()
        self.emit("workerReady", slot, pid=process.pid)

    def check_workers(self, respawn: bool = True) -> None:
        super().check_workers(respawn=False)  # reaps the dead (handle_dead_worker below)
        if not respawn or self.status == self.Status.STOPPED:
            return
        for slot, state in self.slots.items():
            if state == pools.SLOT_STOPPED or self.worker_name(slot) in self.worker_dict:
                continue
            if time.monotonic() >= self._not_before.get(slot, 0.0):
                self.start_worker(slot, burst=self._burst, logging_level=self._logging_level)
                self.restarts += 1
                self.emit("workerRestarted", slot, restarts=self.restarts)

    def reap_workers(self) -> None:
        """RQ's joins each child for 0.1 s (a loop of N children lasts N / 10 s): a non-blocking look instead."""
        for data in list(self.worker_dict.values()):
            if not data.process.is_alive():
                self.handle_dead_worker(data)

    def handle_dead_worker(self, worker_data: WorkerData) -> None:
        super().handle_dead_worker(worker_data)
        slot = self._slot_of(worker_data.name)
        reason = self._exiting.pop(slot, None)
        exit_code = worker_data.process.exitcode
        self._kill_orphans()  # its work horse (and scheduler) must not go on running the job
        self._recover_dead(worker_data.name)
        with contextlib.suppress(redis.RedisError):
            pools.retire_worker(self.connection, worker_data.name, self._queue_names)
        if self.slots.get(slot) != pools.SLOT_STOPPED:
            self.slots[slot] = pools.SLOT_STARTING
        if reason is None and exit_code != 0 and self.status != self.Status.STOPPED:
            self.emit("workerError", slot, exitCode=exit_code)
        if time.monotonic() - self._spawned_at.get(slot, 0.0) < QUICK_DEATH_SECONDS and reason is None:
            self._quick_deaths[slot] += 1  # Redis away, a broken import...: do not respawn five times a second
            deaths = self._quick_deaths[slot]
            backoff = 0.0 if deaths == 1 else min(MAX_BACKOFF_SECONDS, 0.25 * 2 ** (deaths - 1))
            self._not_before[slot] = time.monotonic() + backoff
        else:
            self._quick_deaths[slot] = 0
            self._not_before.pop(slot, None)
        if self.slots.get(slot) == pools.SLOT_STOPPED:
            self._show_stopped(slot)
        self.emit("workerClosed", slot, exitCode=exit_code, reason=reason or "exited")

    def _kill_orphans(self) -> None:
        processes.kill_orphans({data.pid for data in self.worker_dict.values()})

    def _recover(self, dead_workers: list[str] | None = None) -> list[Recovered]:
        try:
            recovered = stalled.recover_stalled(self.connection, time.time(), self.stale_seconds, dead_workers or [])
        except redis.RedisError as exc:
            self.log.warning("Pool %s: stalled-job check failed: %s", self.name, exc)
            return []
        for run in recovered:
            self.log.warning("Pool %s: job %s of %s was stalled: %s", self.name, run.job_id, run.worker, run.action)
            slot = self._slot_of(run.worker) if run.worker.startswith(self.name + ".") else None
            self.emit("workerStalled", slot, run.job_id, stream=False, action=run.action, queue=run.queue)
        return recovered

    def _recover_dead(self, name: str, attempts: int = 3) -> None:
        """Its runs, before the slot starts again under the same name (after which the name no longer tells them
        apart). A run whose meta changed between the two scripts is found again and moved on the next attempt."""
        try:
            runs = sorted(self._executions(name))
        except redis.RedisError:
            runs = []
        if runs:
            self.log.warning("Pool %s: child %s died running %s", self.name, name, ", ".join(r.decode() for r in runs))
        for _ in range(attempts):
            self._recover(dead_workers=[name])
            try:
                left = stalled.find_stalled(self.connection, time.time(), self.stale_seconds, [name])
            except redis.RedisError:
                return
            if not any(run.worker == name for run in left):
                return
        self.log.warning("Pool %s: runs of %s still active after %d attempts", self.name, name, attempts)

    def _ask_exit(self, slot: int, reason: str) -> None:
        """Warm stop of one child: it finishes its current job, then exits (RQ's SIGTERM). Signalled once only: RQ
        takes a second stop signal for a forced stop, which kills the work horse and its job."""
        data = self.worker_dict.get(self.worker_name(slot))
        if data is None:  # no child: nothing to note (a stale note would mark its next child as exiting)
            return
        already = slot in self._exiting
        self._exiting[slot] = reason
        if not already and data.process.is_alive():
            self.stop_worker(data, sig=signal.SIGTERM)

    # --- running --------------------------------------------------------------------------------------

    def start(self, burst: bool = False, logging_level: str = "INFO") -> None:
        """RQ's loop, but waking at once when a child dies, and with heartbeat, control, stall checks and the
        grace period of a shutdown."""
        self._burst, self._logging_level = burst, logging_level
        setup_loghandlers(logging_level, DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT, name=__name__)
        with contextlib.suppress(Exception):  # Linux: orphaned work horses come back to the pool
            processes.become_subreaper()
        self.status = self.Status.STARTED
        self._beat(force=True)
        self.emit("started", size=self.num_workers, queues=self._queue_names, pid=os.getpid())
        self.start_workers(burst=burst, logging_level=logging_level)
        self._install_signal_handlers()
        try:
            while not self._safe_loop_once(burst):
                time.sleep(LOOP_SECONDS)
        finally:
            self._close()

    def _safe_loop_once(self, burst: bool) -> bool:
        try:
            return self._loop_once(burst)
        except redis.RedisError as exc:  # Redis restarting: the children carry on, the pool looks again
            self.log.warning("Pool %s: Redis unavailable (%s); looking again", self.name, exc)
            return False

    def _loop_once(self, burst: bool) -> bool:
        """One look; True when the pool is done."""
        if self.status == self.Status.STOPPED:
            if self._announce_shutdown:
                self._announce_shutdown = False
                self.emit("shuttingDown", gracePeriod=self.grace_period)
            if self.all_workers_have_stopped():
                return True
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self._interrupt_running_jobs()
            return False
        self.check_workers(respawn=not burst)
        if burst and self.number_of_active_workers == 0:
            return True
        self._control()
        self._beat()
        if time.monotonic() - self._last_stall_check >= STALL_CHECK_SECONDS:
            self._last_stall_check = time.monotonic()
            self._recover()
        return False

    def request_stop(self, signum: Any = None, frame: Any = None) -> None:
        """First SIGTERM/SIGINT: no new jobs, running ones get the grace period. A second: no more waiting. A signal
        handler: it only sets state and signals children (no Redis: the loop emits `shuttingDown`)."""
        if self._deadline is not None:
            self.log.warning("Pool %s: second signal, interrupting running jobs now", self.name)
            self._deadline = time.monotonic()
            return
        self._deadline = time.monotonic() + self.grace_period
        self._announce_shutdown = True
        super().request_stop(signum, frame)  # STOPPED, and stop_workers() below

    def stop_workers(self) -> None:
        """RQ's warm stop (SIGINT) to every child not already asked to exit: a second signal would kill its job."""
        for name, data in list(self.worker_dict.items()):
            slot = self._slot_of(name)
            already = slot in self._exiting
            self._exiting[slot] = "shutdown"
            if not already:
                self.stop_worker(data)

    def _interrupt_running_jobs(self) -> None:
        """Grace period over: kill what still runs and put its jobs back at the head of their queues."""
        names = list(self.worker_dict)
        self.log.warning("Pool %s: grace period over, interrupting the jobs of %s", self.name, ", ".join(names))
        for name in names:
            with contextlib.suppress(OSError):
                os.kill(self.worker_dict[name].pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(self.worker_dict[name].process.is_alive() for name in names) and time.monotonic() < deadline:
            time.sleep(0.01)  # join() would wait for the work horses too: they hold the children's sentinels
        for name in names:
            self.worker_dict.pop(name, None)
        self._kill_orphans()
        interrupted: list[Recovered] = []
        with contextlib.suppress(redis.RedisError):
            interrupted = stalled.requeue_interrupted(self.connection, names)
            for name in names:
                pools.retire_worker(self.connection, name, self._queue_names)
        self.emit("forceShutdown", stream=False, jobs=[run.job_id for run in interrupted])
        for name in names:
            self.emit("workerClosed", self._slot_of(name), reason="interrupted")

    def _close(self) -> None:
        if self.health_server is not None:
            self.health_server.shutdown()
        for slot, state in self.slots.items():
            if state == pools.SLOT_STOPPED:
                with contextlib.suppress(redis.RedisError):
                    pools.retire_worker(self.connection, self.worker_name(slot), self._queue_names)
        with contextlib.suppress(Exception):
            if self._pubsub is not None:
                self._pubsub.close()
        with contextlib.suppress(redis.RedisError):
            pools.unregister_pool(self.connection, self.name)
        self.emit("shutdown", restarts=self.restarts)

    # --- heartbeat, memory, health --------------------------------------------------------------------

    def _beat(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_beat < self.heartbeat_seconds:
            return
        self._last_beat = time.monotonic()
        try:
            self._check_memory()
            for slot, state in self.slots.items():
                if state == pools.SLOT_STOPPED and self.worker_name(slot) not in self.worker_dict:
                    self._show_stopped(slot)
        except redis.RedisError as exc:
            self.log.warning("Pool %s: memory check not done: %s", self.name, exc)
        health = self.health()
        if health["healthy"] != self._healthy:
            self._healthy = health["healthy"]
            self.emit("healthUpdate", **health)  # in the stream only when it changes
        else:
            self.emit("healthUpdate", stream=False, **health)
        try:
            pools.register_pool(
                self.connection, self.registration(health), pools.pool_ttl(self.heartbeat_seconds), time.time()
            )
        except redis.RedisError as exc:
            self.log.warning("Pool %s: registration not written: %s", self.name, exc)

    def registration(self, health: dict[str, Any]) -> dict[str, Any]:
        config = {
            "queues": self._queue_names,
            "memoryLimitMb": self.memory_limit_mb,
            "maxJobDuration": self.max_job_duration,
            "gracePeriod": self.grace_period,
            "capabilities": self.capabilities,
        }
        slots = {
            str(slot): {
                "worker": self.worker_name(slot),
                "state": state,
                "pid": getattr(self.worker_dict.get(self.worker_name(slot)), "pid", None),
                "rssMb": round(self.rss.get(slot, 0.0), 1),
            }
            for slot, state in self.slots.items()
        }
        return {
            "name": self.name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "size": self.num_workers,
            "started": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "config": config,
            "restarts": self.restarts,
            "slots": slots,
            "health": health,
        }

    def _check_memory(self) -> None:
        for name, data in list(self.worker_dict.items()):
            slot = self._slot_of(name)
            self.rss[slot] = rss = processes.rss_mb(data.pid)
            limit = self.memory_limit_mb
            if not limit or rss <= limit:
                continue
            if rss > HARD_LIMIT_FACTOR * limit:
                self._kill_horse(slot, data, rss)
            elif slot not in self._exiting:
                self.emit("highMemoryUsage", slot, rssMb=round(rss, 1), limitMb=limit, action="recycle")
                self._ask_exit(slot, "recycle")

    def _kill_horse(self, slot: int, data: WorkerData, rss: float) -> None:
        horse = processes.horse_of(data.pid)
        if horse is None:
            return
        job_ids = [entry.decode().split(":")[0] for entry in self._executions(data.name)]
        with self.connection.pipeline() as pipe:
            for job_id in job_ids:
                pipe.set(keys.memory_kill(job_id), "1", ex=300)
            pipe.execute()
        with contextlib.suppress(psutil.Error):
            horse.kill()
        self.emit(
            "highMemoryUsage",
            slot,
            job_ids[0] if job_ids else None,
            rssMb=round(rss, 1),
            limitMb=self.memory_limit_mb,
            action="killed",
        )
        if slot not in self._exiting:
            self._ask_exit(slot, "recycle")

    def _show_stopped(self, slot: int) -> None:
        """A slot stopped by control stays visible as a `stopped` worker of this pool (so that it can be started
        again from the views): a registration the pool refreshes at its heartbeat, removed at `start`."""
        with contextlib.suppress(redis.RedisError):
            pools.show_stopped_slot(
                self.connection,
                self.worker_name(slot),
                self.name,
                slot,
                self._queue_names,
                pools.pool_ttl(self.heartbeat_seconds),
                memory_limit_mb=self.memory_limit_mb,
                capabilities=json.dumps(self.capabilities or {}),
            )

    def _executions(self, worker_name: str) -> list[bytes]:
        return list(self.connection.smembers(f"rq:worker:{worker_name}:executions"))

    def health(self) -> dict[str, Any]:
        return pool_health.health(self)

    def serve_health(self, port: int, host: str = "0.0.0.0") -> None:
        self.health_server = pool_health.serve_health(self, port, host)

    def close_inherited(self) -> None:
        """A forked copy's sockets, closed in the child only (no shutdown: the pool goes on with its own)."""
        _POOLS.discard(self)
        if self.health_server is not None:
            with contextlib.suppress(OSError):
                self.health_server.socket.close()
            self.health_server = None
        if self._pubsub is not None and self._pubsub.connection is not None:
            with contextlib.suppress(Exception):
                self._pubsub.connection.disconnect()  # another pid: a close, no shutdown of the pool's
            self._pubsub = None

    # --- control --------------------------------------------------------------------------------------

    def _control(self) -> None:
        """Slot commands from the pool's channel (start, restart, stop), answered on their reply key."""
        try:
            if self._pubsub is None:
                self._pubsub = self.connection.pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(keys.pool_control_channel(self.name))
            while (message := self._pubsub.get_message(timeout=0)) is not None:
                command = worker_control.parse_command(message.get("data"))
                if command is not None:
                    worker_control.send_reply(self.connection, command.id, self._carry_out(command))
        except redis.RedisError as exc:
            self.log.warning("Pool %s: control channel lost (%s); subscribing again", self.name, exc)
            with contextlib.suppress(Exception):
                self._pubsub.close()
            self._pubsub = None

    def _slot_status(self, slot: int) -> str:
        if self.slots[slot] == pools.SLOT_STOPPED:
            return "stopped" if self.worker_name(slot) not in self.worker_dict else "stopping"
        if slot in self._exiting:
            return "stopping"
        return "busy" if self._executions(self.worker_name(slot)) else "idle"

    def _carry_out(self, command: worker_control.Command) -> worker_control.Ack:
        slot = command.slot
        if slot not in self.slots:
            return worker_control.Ack(False, None, None, f"Pool {self.name} has no slot {slot}", "unknown_slot")
        before = self._slot_status(slot)
        name = self.worker_name(slot)
        if command.action == "stop":
            self.slots[slot] = pools.SLOT_STOPPED
            if slot in self._exiting:  # already asked to exit: no second signal, which would kill its job
                self._exiting[slot] = "stop"
                return worker_control.Ack(True, before, "stopping", f"{name} is already stopping; not respawned")
            self._ask_exit(slot, "stop")
            after = "stopping" if name in self.worker_dict else "stopped"
            return worker_control.Ack(True, before, after, f"{name} stops after its current job; not respawned")
        if command.action == "restart":
            if name not in self.worker_dict:
                return worker_control.Ack(False, before, before, f"{name} is not running: start it", "not_running")
            if slot in self._exiting:  # already asked to exit: no second signal; it comes back after its job
                self.slots[slot] = pools.SLOT_RUNNING
                if self._exiting[slot] == "stop":
                    self._exiting[slot] = "restart"
                return worker_control.Ack(True, before, "stopping", f"{name} is already stopping; it restarts")
            self._ask_exit(slot, "restart")
            return worker_control.Ack(True, before, "stopping", f"{name} restarts after its current job")
        if command.action == "start":
            if self.slots[slot] != pools.SLOT_STOPPED:
                return worker_control.Ack(False, before, before, f"{name} is already running", "already_running")
            self.slots[slot] = pools.SLOT_STARTING
            if name not in self.worker_dict:
                self._exiting.pop(slot, None)
                pools.retire_worker(self.connection, name, self._queue_names)  # its `stopped` registration
                self._not_before.pop(slot, None)
                self.start_worker(slot, burst=self._burst, logging_level=self._logging_level)
            return worker_control.Ack(True, before, "idle", f"{name} started")
        return worker_control.Ack(False, before, before, f"A pool does not {command.action!r} its slots", "unsupported")


# --- command line ---------------------------------------------------------------------------------------


def _parse_run(argv: list[str]) -> Any:
    import argparse

    parser = argparse.ArgumentParser(prog="rq-monitor-pool", description=__doc__)
    parser.add_argument("queues", nargs="+", metavar="QUEUE")
    parser.add_argument("--workers", "-n", type=int, default=None, help="children (default: CPU cores / 2, >= 1)")
    parser.add_argument("--url", "-u", default=os.environ.get("REDIS_URL") or "redis://localhost:6379/0")
    parser.add_argument("--name", default=None, help="pool name (default: <host>-<pid>); children are <name>.<slot>")
    parser.add_argument("--memory-limit-mb", type=float, default=None)
    parser.add_argument("--max-job-duration", type=int, default=600, help="timeout of jobs that have none (s)")
    parser.add_argument("--grace-period", type=float, default=25.0, help="seconds running jobs get at shutdown")
    parser.add_argument("--health-port", type=int, default=None)
    parser.add_argument("--capabilities", default=None, help="JSON object (<= 4 KiB, 32 levels) shown")
    parser.add_argument("--burst", action="store_true", help="children exit when the queues are empty")
    parser.add_argument("--logging-level", default="INFO")
    return parser.parse_args(argv)


def connect(url: str) -> redis.Redis:
    """The pool's client, with timeouts (its children's RQ raises the read timeout above its dequeue wait)."""
    return redis.Redis.from_url(url, socket_timeout=REDIS_SOCKET_TIMEOUT, socket_connect_timeout=REDIS_CONNECT_TIMEOUT)


def main(argv: list[str] | None = None) -> int:
    import sys

    import config

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["health"]:
        return pool_health.health_command(argv[1:])
    args = _parse_run(argv)
    names = ("WORKER_HEARTBEAT_SECONDS", "WORKER_STALE_SECONDS")  # only the pool's: never fail on the web's
    found = config.from_env({name: os.environ[name] for name in names if name in os.environ})
    settings = {name: found.get(name, getattr(config.Config, name)) for name in names}
    capabilities = None
    if args.capabilities is not None:
        try:
            capabilities = config.from_env({"RQMON_WORKER_CAPABILITIES": args.capabilities})[
                "RQMON_WORKER_CAPABILITIES"
            ]
        except ValueError as exc:
            print(f"rq-monitor-pool: --capabilities: {exc}", file=sys.stderr)
            return 2
    pool = MonitoredPool(
        args.queues,
        connect(args.url),
        args.workers,
        name=args.name,
        memory_limit_mb=args.memory_limit_mb,
        max_job_duration=args.max_job_duration,
        grace_period=args.grace_period,
        capabilities=capabilities,
        heartbeat_seconds=float(settings["WORKER_HEARTBEAT_SECONDS"]),
        stale_seconds=float(settings["WORKER_STALE_SECONDS"]),
    )
    if args.health_port is not None:
        pool.serve_health(args.health_port)
    pool.start(burst=args.burst, logging_level=args.logging_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
