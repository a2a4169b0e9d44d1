"""Control of workers with acknowledgement (WORKERS.md § Control), and stopping a running job.

A command is published on a channel the product owns (the worker's, or its pool's for slot actions) as
`{"id", "action", "at"}`; the worker (or pool) answers with one JSON reply pushed on `keys.control_reply(id)`,
which the caller pops with a deadline. Plain `rq worker` processes only get RQ's own shutdown command.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from redis import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.command import PUBSUB_CHANNEL_TEMPLATE, send_shutdown_command, send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from app.domain import keys
from app.domain.errors import ActionNotSupported, InvalidInput, JobNotActive
from app.domain.jobs import fetch_job
from app.domain.states import JobState
from app.domain.workers import WorkerStatus, read_worker

DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_MESSAGE_BYTES = 1024  # a command is a few dozen bytes; anything longer on the channel is garbage


class Action(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    RESTART = "restart"
    START = "start"


WORKER_ACTIONS = frozenset({Action.PAUSE, Action.RESUME, Action.STOP})  # what a MonitoredWorker answers itself
POOL_ACTIONS = frozenset({Action.START, Action.RESTART, Action.STOP})  # what a pool answers for its slots


@dataclass(frozen=True)
class Ack:
    """The outcome of one command. `error` is a short code when the command was not carried out."""

    acknowledged: bool
    status_before: str | None
    status_after: str | None
    message: str
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class Command:
    id: str
    action: str
    slot: int | None = None


def parse_command(raw: Any) -> Command | None:
    """A command read from a control channel, or None for anything that is not one (garbage is ignored)."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_MESSAGE_BYTES:
            return None
        raw = raw.decode(errors="replace")
    try:
        message = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(message, dict):
        return None
    request_id, action, slot = message.get("id"), message.get("action"), message.get("slot")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 64 or not isinstance(action, str):
        return None
    return Command(request_id, action, slot if isinstance(slot, int) else None)


def send_reply(connection: Redis, request_id: str, ack: Ack) -> None:
    """Answer one command (the worker's or pool's side)."""
    key = keys.control_reply(request_id)
    with connection.pipeline(transaction=True) as pipe:
        pipe.rpush(key, ack.to_json())
        pipe.expire(key, keys.CONTROL_REPLY_TTL_SECONDS)
        pipe.execute()


def send_control(
    connection: Redis,
    worker_name: str,
    action: str,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    *,
    now: float | None = None,
    active_seconds: float = 60.0,
    stale_seconds: float = 300.0,
) -> Ack:
    """Send `action` to a worker (or its pool) and wait at most `timeout` seconds for its answer.

    InvalidInput for an unknown action, WorkerNotFound for an unknown worker, ActionNotSupported when the worker
    cannot take the action. A worker that does not listen, or does not answer in time, gives an Ack with
    `acknowledged` False and the reason; a plain worker's stop is RQ's fire-and-forget shutdown."""
    try:
        wanted = Action(action)
    except ValueError:
        raise InvalidInput(f"Unknown action '{action}'; expected one of {', '.join(a.value for a in Action)}") from None
    now = time.time() if now is None else now
    worker = read_worker(connection, worker_name, now, active_seconds, stale_seconds)
    before = worker["status"]
    if not worker["monitored"]:
        return _plain_control(connection, worker_name, wanted, before)
    if worker["pool"] and wanted in POOL_ACTIONS:
        channel = keys.pool_control_channel(worker["pool"])
        extra: dict[str, Any] = {"slot": worker["slot"], "worker": worker_name}
    elif wanted in WORKER_ACTIONS:
        channel, extra = keys.worker_control_channel(worker_name), {}
    else:
        raise ActionNotSupported(f"Worker '{worker_name}' is not in a pool: only pool slots can {wanted.value}")
    if before == WorkerStatus.STALE:
        return Ack(False, before, before, f"Worker '{worker_name}' is stale; it cannot answer", "worker_stale")
    return _ask(connection, channel, {"action": wanted.value, **extra}, before, worker_name, timeout)


def _plain_control(connection: Redis, worker_name: str, action: Action, before: str) -> Ack:
    if action is not Action.STOP:
        raise ActionNotSupported(
            f"Worker '{worker_name}' is a plain rq worker: it can only be stopped "
            f"(run it as rq worker -w workers.MonitoredWorker, or in rq-monitor-pool, to {action.value} it)"
        )
    send_shutdown_command(connection, worker_name)
    return Ack(
        False,
        before,
        None,
        f"RQ's shutdown command was sent to '{worker_name}'; plain rq workers do not acknowledge commands",
        "not_acknowledged",
    )


BLOCKING_WAIT_SECONDS = 1.0


def _ask(connection: Redis, channel: str, message: dict[str, Any], before: str, name: str, timeout: float) -> Ack:
    request_id = uuid.uuid4().hex
    reply_key = keys.control_reply(request_id)
    listeners = connection.publish(channel, json.dumps({"id": request_id, "at": time.time(), **message}))
    if not listeners:
        return Ack(False, before, before, f"Worker '{name}' is not listening for commands (not running)", "no_listener")
    popped = None
    deadline = time.monotonic() + max(timeout, 0.01)
    try:
        while popped is None and (remaining := deadline - time.monotonic()) > 0:
            # waits of at most a second: each ends before the client's socket timeout (app/extensions.py, 1.5 s)
            popped = connection.blpop([reply_key], timeout=min(remaining, BLOCKING_WAIT_SECONDS))
    except RedisTimeoutError:  # a frozen Redis
        popped = None
    if popped is None:
        connection.delete(reply_key)  # an answer arriving later expires with its TTL anyway
        return Ack(False, before, None, f"No acknowledgement from '{name}' within {timeout:g} s", "timeout")
    return _parse_ack(popped[1], before, name)


def _parse_ack(raw: bytes, before: str, name: str) -> Ack:
    try:
        reply = json.loads(raw)
        return Ack(
            acknowledged=bool(reply["acknowledged"]),
            status_before=reply.get("status_before") or before,
            status_after=reply.get("status_after"),
            message=str(reply.get("message") or ""),
            error=reply.get("error"),
        )
    except (ValueError, TypeError, KeyError):
        return Ack(False, before, None, f"Unreadable acknowledgement from '{name}'", "bad_reply")


def stop_job(connection: Redis, queue_name: str, job_id: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> bool:
    """Stop a running job now through RQ's stop-job command; it ends `stopped` among the failed (retryable).

    QueueNotFound/JobNotFound as for any job; JobNotActive when it is not running or no worker listens. Waits up
    to `timeout` for the job to end; returns whether it did."""
    job, state = fetch_job(connection, queue_name, job_id)
    if state != JobState.ACTIVE:
        raise JobNotActive(f"Job '{job_id}' is {state}, not active; only a running job can be stopped")
    return stop_run(connection, job, timeout)


def stop_run(connection: Redis, job: Job, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> bool:
    """Ask the worker running `job` to stop it (RQ's stop-job command) and wait up to `timeout` for the run to end,
    i.e. for the worker to have written its end: True once it has (or had already), False when it has not.

    JobNotActive when no worker listens on the job's worker's RQ channel: its worker is gone."""
    worker_name = job.worker_name
    if not worker_name or not connection.pubsub_numsub(PUBSUB_CHANNEL_TEMPLATE % worker_name)[0][1]:
        raise JobNotActive(f"Job '{job.id}' has no running worker to stop it (its worker is gone)")
    try:
        send_stop_job_command(connection, job.id, serializer=job.serializer)
    except (NoSuchJobError, InvalidJobOperation):  # RQ re-reads the job: gone, or no worker's any more
        return True
    started = JobStatus.STARTED.value.encode()
    deadline = time.monotonic() + timeout
    while connection.hget(job.key, "status") == started:  # None: the hash is gone, the run long over
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
