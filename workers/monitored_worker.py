"""`rq worker -w workers.MonitoredWorker`: an rq.Worker that honours per-queue pause and BullMQ priorities and
records every ended attempt (trends, success rate, attempts and errors per job). Small overrides that call super().
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from typing import Any

import redis.exceptions
from redis.client import Pipeline
from redis.commands.core import Script
from rq import Queue, Retry, Worker, worker_registration
from rq.exceptions import AbandonedJobError, DequeueTimeout

try:
    from rq.exceptions import StopRequested
except ImportError:  # RQ 2.x defines it beside its Worker
    from rq.worker import StopRequested  # type: ignore[attr-defined,no-redef]
from rq.job import Job
from rq.registry import ScheduledJobRegistry

import config
from app.domain import attempts, keys, outcomes, priority, worker_control
from app.domain import workers as registry
from app.domain.history import Outcome
from app.domain.queues import QueueKeys
from workers.liveness import ResourceSampler

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.5  # how often a worker whose queues are all paused looks again
BLOCKING_DEQUEUE_SECONDS = 1  # bounds how late a resume or a new prioritized job is noticed
_LOOK_AGAIN = object()  # a dequeued job went back (paused queue, or back to its priority): look again at once

# Which of the worker's queues may run now (not paused), promoting the best prioritized job of a queue whose list
# is empty. KEYS: paused set, then (list, prioritized set) per queue. ARGV: queue names, in the worker's order.
_RUNNABLE_QUEUES_LUA = """
local runnable = {}
for i, name in ipairs(ARGV) do
  if redis.call('SISMEMBER', KEYS[1], name) == 0 then
    local list, prioritized = KEYS[2 * i], KEYS[2 * i + 1]
    if redis.call('LLEN', list) == 0 then
      local best = redis.call('ZPOPMIN', prioritized)
      if best[1] then redis.call('RPUSH', list, best[1]) end
    end
    table.insert(runnable, name)
  end
end
return runnable
"""

# Put a job popped from a queue paused a moment ago back at the head of its list, untouched, atomically.
# KEYS: paused set, list, intermediate list. ARGV: queue name, job id. Returns 1 when it was put back.
_PUT_BACK_IF_PAUSED_LUA = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('LREM', KEYS[3], 1, ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[2])
return 1
"""


def _resolve_driver_info_once(connection: Any) -> None:
    """Every work horse opens a new connection, and a pool made by `Redis.from_url` (the `rq` CLI's) leaves redis-py
    to resolve its CLIENT SETINFO name and version from the package metadata for each one (~0.2-0.5 ms of every job):
    resolve it once here, as `Redis(...)` itself does; the same values are sent."""
    try:
        from redis.driver_info import resolve_driver_info
    except ImportError:  # redis-py before 7 reads no metadata per connection
        return
    kwargs = getattr(getattr(connection, "connection_pool", None), "connection_kwargs", None)
    if isinstance(kwargs, dict) and not {"driver_info", "lib_name", "lib_version"} & kwargs.keys():
        kwargs["driver_info"] = resolve_driver_info()


def _intermediate_key(queue: Queue) -> str:
    try:
        from rq.intermediate_queue import IntermediateQueue
    except ImportError:  # pragma: no cover
        return queue.key + ":intermediate"
    return IntermediateQueue.get_intermediate_queue_key(queue.key)


class MonitoredWorker(Worker):
    """rq.Worker plus per-queue pause, priorities and outcome recording."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _resolve_driver_info_once(self.connection)
        self._runnable_script = Script(self.connection, _RUNNABLE_QUEUES_LUA)
        self._put_back_script = Script(self.connection, _PUT_BACK_IF_PAUSED_LUA)
        # The job whose end is being written, its outcome and its meta as read just before RQ's end-of-job pipeline.
        self._ending: tuple[Job, Outcome, dict[str, Any] | None] | None = None
        self._starting: Job | None = None  # the job whose start (attemptsStarted) is being written
        self._init_liveness()

    # --- start-up -----------------------------------------------------------------------------------

    def work(self, *args: Any, **kwargs: Any) -> bool:
        # RQ registers the worker before it installs its signal handlers, and its loop is what catches a stop: a
        # SIGTERM in between (a pool killed while its children start) would end the process and leave its
        # registration behind. Handlers first, and a stop asked before the loop still unregisters.
        self._install_signal_handlers()
        try:
            return bool(super().work(*args, **kwargs))
        except StopRequested:
            self.teardown()
            return False

    def register_birth(self) -> None:
        super().register_birth()
        with self.connection.pipeline() as pipe:
            pipe.sadd(keys.KNOWN_QUEUES, *self.queue_names())
            pipe.hset(self.key, registry.MONITORED, self._monitored_value)  # a MonitoredWorker from its birth
            pipe.execute()
        self._beat(force=True)

    # --- dequeue: pause and priority ----------------------------------------------------------------

    def runnable_queues(self) -> list[Queue]:
        """The worker's queues that are not paused, in order; promotes prioritized jobs (one round trip)."""
        if self._paused:  # the whole worker is paused (control): no queue is runnable
            return []
        names = self.queue_names()
        script_keys = [keys.PAUSED_QUEUES]
        for name in names:
            script_keys += [QueueKeys(name).waiting, QueueKeys(name).prioritized]
        runnable = {name.decode() for name in self._runnable_script(keys=script_keys, args=names)}
        return [queue for queue in self.queues if queue.name in runnable]

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        burst = timeout is None
        idle_since = time.monotonic()
        connection_wait = 1.0
        while True:
            try:
                queues, result = self._dequeue_once(burst)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
                # As rq.Worker's own dequeue loop: an idle worker waits out a Redis restart or outage.
                self.log.error(
                    "Worker %s: could not connect to Redis instance: %s retrying in %d seconds...",
                    self.name,
                    error,
                    connection_wait,
                )
                time.sleep(connection_wait)
                connection_wait = min(connection_wait * self.exponential_backoff_factor, self.max_connection_wait_time)
                continue
            connection_wait = 1.0
            if result is _LOOK_AGAIN:
                continue
            if result is not None:
                return result
            if burst or self._stop_requested:
                return None
            if max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time:
                return None
            if not queues:
                time.sleep(IDLE_POLL_SECONDS)

    def _dequeue_once(self, burst: bool) -> tuple[list[Queue], Any]:
        """One look at the runnable queues: a (job, queue) to run, None, or _LOOK_AGAIN when a job was put back."""
        queues = self.runnable_queues()
        if not queues:
            self.heartbeat()
            return queues, None
        self._ordered_queues = queues
        # Non-blocking pop through RQ (state, heartbeat, logging); blocking is done below in short steps.
        result = super().dequeue_job_and_maintain_ttl(None)
        if result is None and not burst:
            result = self._blocking_dequeue(queues)
        if result is not None and (self._put_back_if_paused(*result) or self._back_to_priority(*result)):
            return queues, _LOOK_AGAIN
        return queues, result

    def _blocking_dequeue(self, queues: list[Queue]) -> tuple[Job, Queue] | None:
        try:
            return self.queue_class.dequeue_any(
                queues,
                BLOCKING_DEQUEUE_SECONDS,
                connection=self.connection,
                job_class=self.job_class,
                serializer=self.serializer,
                death_penalty_class=self.death_penalty_class,
            )
        except DequeueTimeout:
            return None

    def _put_back_if_paused(self, job: Job, queue: Queue) -> bool:
        """A blocked dequeue may return a job from a queue paused a moment ago: it goes back, untouched."""
        put_back = self._put_back_script(
            keys=[keys.PAUSED_QUEUES, queue.key, _intermediate_key(queue)], args=[queue.name, job.id]
        )
        if put_back:
            self.log.info("Worker %s: queue %s is paused; job %s put back at the head", self.name, queue.name, job.id)
        return bool(put_back)

    def _back_to_priority(self, job: Job, queue: Queue) -> bool:
        """RQ re-enqueues a retried job into the list (at once, or from the ScheduledJobRegistry when its backoff
        ends): a prioritized one goes back to `prioritized` with its priority instead of running before better ones."""
        if not job.meta.get(attempts.PRIORITY_PENDING):
            return False
        del job.meta[attempts.PRIORITY_PENDING]
        priority.requeue_prioritized(self.connection, queue.name, job, _intermediate_key(queue))
        self.log.info("Worker %s: retried job %s goes back to its priority", self.name, job.id)
        return True

    # --- attempts -----------------------------------------------------------------------------------

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        try:
            # The job was fetched a moment ago by the dequeue: its meta is fresh, no need to read it again.
            job.meta[attempts.ATTEMPTS_STARTED] = int(job.meta.get(attempts.ATTEMPTS_STARTED, 0)) + 1
            # RQ counts retries down and forgets the total: keep the configured attempts from the first run.
            job.meta.setdefault(attempts.ATTEMPTS, 1 + int(job.retries_left or 0))
            self._starting = job  # written by heartbeat() below, inside RQ's own start-of-job pipeline
        except Exception:  # recording must never stop the job from running
            self.log.exception("Worker %s: could not record the start of job %s", self.name, job.id)
        super().prepare_job_execution(job, remove_from_intermediate_queue)
        if self._starting is not None:  # an RQ whose start-of-job pipeline does not heartbeat: one write more
            self._starting = None
            self._save_meta_quietly(job)

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is not None and self._starting is not None:
            job, self._starting = self._starting, None
            try:
                pipeline.hset(job.key, "meta", job.serializer.dumps(job.meta))
            except Exception:
                self.log.exception("Worker %s: could not record the start of job %s", self.name, job.id)
        if pipeline is None and timeout is None and self._beat_is_fresh():
            return  # an idle loop's heartbeat (every second, see BLOCKING_DEQUEUE_SECONDS): at our cadence instead
        super().heartbeat(timeout, pipeline)
        self._beat()

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        if pipeline is None and state == self._state and self._beat_is_fresh():
            return  # RQ's idle loop writes the same state every second
        super().set_state(state, pipeline)

    def _beat_is_fresh(self) -> bool:
        """Whether the product's heartbeat was written less than WORKER_HEARTBEAT_SECONDS ago. RQ's idle-loop
        heartbeat and state wait for it too: an idle MonitoredWorker otherwise costs Redis 4 writes a second (a plain
        `rq worker` blocks for minutes)."""
        return time.monotonic() - self._beat_at < 0.9 * self._beat_every

    def _save_meta_quietly(self, job: Job) -> None:
        try:
            job.save_meta()
        except Exception:
            self.log.exception("Worker %s: could not record the start of job %s", self.name, job.id)

    # Signatures differ between RQ 2.12 and 3 (3 adds `execution`): pass everything through unchanged.

    def handle_job_success(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        self._ending = (job, "ok", self._fresh_meta(job))
        try:
            super().handle_job_success(job, queue, *args, **kwargs)
        finally:
            self._ending = None

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        job.__dict__["_rqmon_exception"] = exc_info[1] if len(exc_info) > 1 else None  # for handle_job_failure
        super().handle_exception(job, *exc_info)

    def handle_job_failure(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        exc_string = kwargs.get("exc_string", args[1] if len(args) > 1 else "")
        will_retry = job.should_retry and self._stopped_job_id != job.id
        backoff = job.get_retry_interval() if will_retry else 0
        self._ending = (job, "retry" if will_retry else "fail", self._fresh_meta(job))
        # RQ 3 calls handle_exception first; RQ 2 calls this inside the `except` of the failed run.
        self._note_error(job, exc_string, job.__dict__.pop("_rqmon_exception", None) or sys.exc_info()[1])
        try:
            super().handle_job_failure(job, queue, *args, **kwargs)
        finally:
            self._ending = None
        if backoff > 0:
            self._round_up_backoff(job, queue, backoff)

    def _round_up_backoff(self, job: Job, queue: Queue, backoff: int) -> None:
        """RQ schedules a retry at a time truncated to the second (up to a second early): round it up, so that a
        backoff never waits less than its delay. GT: never earlier than RQ's time; XX: never re-adds the job."""
        try:
            due = math.ceil(time.time() + backoff)
            self.connection.zadd(ScheduledJobRegistry(queue=queue).key, {job.id: due}, xx=True, gt=True)
        except Exception:
            self.log.exception("Worker %s: could not round up the backoff of job %s", self.name, job.id)

    def handle_job_retry(self, job: Job, queue: Queue, retry: Any, *args: Any, **kwargs: Any) -> None:
        exhausted = bool(job.number_of_retries and job.number_of_retries >= retry.max)
        backoff = 0 if exhausted else Retry.get_interval(job.number_of_retries or 0, retry.intervals)
        self._ending = (job, "fail" if exhausted else "retry", self._fresh_meta(job))
        self._note_error(job, "the job returned Retry")
        try:
            super().handle_job_retry(job, queue, retry, *args, **kwargs)
        finally:
            self._ending = None
        if backoff > 0:
            self._round_up_backoff(job, queue, backoff)

    def _fresh_meta(self, job: Job) -> dict[str, Any] | None:
        """The job may have saved meta while it ran: read it now, before RQ's pipeline holds the connection
        (reading it from inside that pipeline would open a second connection in every work horse)."""
        try:
            return job.get_meta(refresh=True)
        except Exception:  # recording must never fail the job; _queue_record reads it again
            self.log.exception("Worker %s: could not read the meta of job %s", self.name, job.id)
            return None

    def _note_error(self, job: Job, exc_string: str, exception: BaseException | None = None) -> None:
        """failedReason is the exception's own message (BullMQ); only the traceback is known when the run ended
        outside the work horse (killed, timed out): then both come from its text."""
        described = attempts.describe_exception(exception, exc_string) if exception is not None else None
        message, name = described or attempts.describe_failure(exc_string)
        job.__dict__["_rqmon_error"] = outcomes.failure(message, name, exc_string or "")

    # RQ calls these with the pipeline of its own end-of-job bookkeeping: our record joins that pipeline.

    def increment_successful_job_count(self, pipeline: Pipeline | None = None) -> None:
        super().increment_successful_job_count(pipeline=pipeline)
        self._record_ending(pipeline)

    def increment_failed_job_count(self, pipeline: Pipeline | None = None) -> None:
        super().increment_failed_job_count(pipeline=pipeline)
        self._record_ending(pipeline)

    def _record_ending(self, pipeline: Pipeline | None) -> None:
        if self._ending is None or pipeline is None:
            return
        job, outcome, meta = self._ending
        self._ending = None  # once per ended attempt, even if RQ increments twice
        try:
            self._queue_record(pipeline, job, outcome, meta)
        except Exception:  # never fail or lose the job because of the monitor
            self.log.exception("Worker %s: could not record the end of job %s", self.name, job.id)

    def _queue_record(self, pipeline: Pipeline, job: Job, outcome: Outcome, meta: dict[str, Any] | None) -> None:
        if meta is None:
            meta = job.get_meta(refresh=True)
        error = job.__dict__.pop("_rqmon_error", None)
        outcomes.record_end(pipeline, job, outcome, meta, error, outcomes.duration_ms_of(job))

    # --- abandoned jobs -----------------------------------------------------------------------------

    def clean_registries(self) -> None:
        """RQ's maintenance fails (or retries) the jobs of workers that died, calling the exception handlers for
        each one first: ours records that abandoned attempt (attempt made, error, trends)."""
        handlers = self._exc_handlers
        self._exc_handlers = [self._record_abandoned, *handlers]
        try:
            super().clean_registries()
        finally:
            self._exc_handlers = handlers

    def _record_abandoned(self, job: Job, exc_type: Any, *rest: Any) -> bool:
        if exc_type is not AbandonedJobError:
            return True
        outcome: Outcome = "retry" if job.retries_left and job.retries_left > 0 else "fail"
        try:  # RQ saves this job object when it retries it: its meta carries the record too
            with self.connection.pipeline() as pipe:
                outcomes.record_abandoned_attempt(pipe, job, outcome=outcome)
                pipe.execute()
        except Exception:
            self.log.exception("Worker %s: could not record the abandoned job %s", self.name, job.id)
        return True

    # --- liveness and control (WORKERS.md) ----------------------------------------------------------

    def _init_liveness(self) -> None:
        settings = config.worker_settings()  # a bad RQMON_WORKER_CAPABILITIES stops start-up, with the reason
        self._beat_every = float(settings["WORKER_HEARTBEAT_SECONDS"])
        self._pool: str | None = settings["RQMON_POOL"]
        self._slot: int | None = settings["RQMON_SLOT"]
        self._memory_limit_mb: float | None = settings["RQMON_MEMORY_LIMIT_MB"]
        self._capabilities = json.dumps(settings["RQMON_WORKER_CAPABILITIES"])
        self._monitored_value = registry.monitored_value(
            self._memory_limit_mb, self._pool, self._slot, self._capabilities
        )
        # RQ's monitor loop heartbeats a busy worker every job_monitoring_interval: make that at least as often.
        self.job_monitoring_interval = max(1, min(int(self.job_monitoring_interval), int(self._beat_every)))
        self._beat_at = float("-inf")
        self._sampler = ResourceSampler()
        self._paused = False  # kept in the process, so a pause outlives a Redis restart; written at every beat
        self._stopping = False
        self._claimed = False  # a job is being started or run (set under the control lock)
        self._control_lock = threading.Lock()
        self._hset_if_exists = Script(self.connection, attempts.HSET_IF_EXISTS_LUA)

    def _beat(self, force: bool = False) -> None:
        """The product's heartbeat, every WORKER_HEARTBEAT_SECONDS (RQ calls heartbeat() far more often): the
        worker's resources and control state in its RQ hash, and its registration back if Redis lost it."""
        if self.is_horse or (not force and self._beat_is_fresh()):
            return
        self._beat_at = time.monotonic()
        try:
            self._write_beat()
        except Exception as exc:  # never stop the worker; RQ's own loop deals with Redis being away
            self.log.warning("Worker %s: heartbeat not written: %s", self.name, exc)

    def _write_beat(self) -> None:
        rss_mb, cpu_percent = self._sampler.sample(self.horse_pid)
        fields: dict[str | bytes, bytes | float | int | str] = {
            registry.HEARTBEAT_AT: f"{time.time():.3f}",
            registry.MONITORED: self._monitored_value,
            registry.USAGE: registry.usage_value(rss_mb, cpu_percent),
            **self._control_fields(),
        }
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.hset(self.key, mapping=fields)
            pipe.hexists(self.key, "birth")
            pipe.ttl(self.key)
            pipe.sismember(self.redis_workers_keys, self.key)
            _, born, ttl, registered = pipe.execute()
        if (born and registered and ttl >= 0) or self.birth_date is None:
            return
        self.log.warning("Worker %s: registration lost (Redis restarted?), registering again", self.name)
        with self.connection.pipeline() as pipe:
            if not born:
                pipe.hset(self.key, mapping={**self.serialize(), "state": self.get_state()})
            worker_registration.register(self, pipe)
            pipe.expire(self.key, self.worker_ttl + 60)
            pipe.execute()

    def _control_fields(self) -> dict[str | bytes, bytes | float | int | str]:
        fields: dict[str | bytes, bytes | float | int | str] = {registry.PAUSED: "1" if self._paused else "0"}
        if self._stopping:
            fields[registry.STATE_OVERRIDE] = registry.WorkerStatus.STOPPING.value
        return fields

    def subscribe(self) -> None:
        """RQ's pub/sub thread listens on the product's control channel too (no second connection)."""
        super().subscribe()
        if self.pubsub is not None:
            self.pubsub.subscribe(**{keys.worker_control_channel(self.name): self._on_control})

    def _on_control(self, message: dict[str, Any]) -> None:
        """Runs in RQ's pub/sub thread: never raises (that would end the thread, and RQ's own commands with it)."""
        try:
            command = worker_control.parse_command(message.get("data"))
            if command is None:
                self.log.warning("Worker %s: ignored an unreadable control message", self.name)
                return
            worker_control.send_reply(self.connection, command.id, self._carry_out(command.action))
        except Exception:
            self.log.exception("Worker %s: control message not handled", self.name)

    def _carry_out(self, action: str) -> worker_control.Ack:
        with self._control_lock:
            before = self._status()
            if action == worker_control.Action.PAUSE:
                self._paused, done = True, "paused"
            elif action == worker_control.Action.RESUME:
                self._paused, done = False, "resumed"
            elif action == worker_control.Action.STOP:
                # Like RQ's warm shutdown: the work loop ends after the current job (or at once when idle).
                self._stopping, self._stop_requested, done = True, True, "stopping after its current job"
            else:
                message = f"Worker {self.name} cannot {action} itself (only its pool can)"
                return worker_control.Ack(False, before, before, message, "action_not_supported")
            flat = [item for pair in self._control_fields().items() for item in pair]
            self._hset_if_exists(keys=[self.key], args=flat)
            return worker_control.Ack(True, before, self._status(), f"Worker {self.name} {done}")

    def _status(self) -> str:
        busy = self._claimed or self.get_state() == "busy"
        override = registry.WorkerStatus.STOPPING.value if self._stopping else None
        state = registry.status_of(
            state=self.get_state(), paused=self._paused, override=override, suspended=False, busy=busy
        )
        return state.value

    def execute_job(self, job: Job, queue: Queue) -> None:
        """A job popped just as a pause or stop was acknowledged goes back to the head of its queue, untouched;
        otherwise it is claimed under the control lock, so a pause answered from then on calls it the current job."""
        with self._control_lock:
            if not (self._paused or self._stopping):
                self._claimed = True
        if not self._claimed:
            with self.connection.pipeline() as pipe:
                pipe.lrem(_intermediate_key(queue), 1, job.id)
                pipe.lpush(queue.key, job.id)
                pipe.execute()
            self.log.info("Worker %s: paused or stopping; job %s put back at the head", self.name, job.id)
            return
        try:
            super().execute_job(job, queue)
        finally:
            self._claimed = False
