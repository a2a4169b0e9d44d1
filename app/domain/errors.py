"""Small exception classes the domain raises; app/errors.py turns them into HTTP responses."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "not_found"


class QueueNotFound(NotFound):
    code = "queue_not_found"

    def __init__(self, queue: str):
        super().__init__(f"Queue '{queue}' does not exist")


class JobNotFound(NotFound):
    code = "job_not_found"

    def __init__(self, queue: str, job_id: str):
        super().__init__(f"Job '{job_id}' does not exist in queue '{queue}'")


class UserNotFound(NotFound):
    code = "user_not_found"


class Conflict(DomainError):
    """The object is in a state that forbids the action."""

    code = "conflict"


class JobNotRetryable(Conflict):
    code = "job_not_retryable"


class InvalidInput(DomainError):
    code = "validation_error"


class JobAlreadyRetried(Conflict):
    """A retry of a job that was already retried would run it twice; `force` says that is meant."""

    code = "already_retried"

    def __init__(self, job_id: str, copy_id: str | None):
        if copy_id:
            message = f"Job '{job_id}' was already retried as '{copy_id}'; send \"force\": true to retry it again"
        else:
            message = f"Job '{job_id}' is being retried right now; send \"force\": true to retry it again"
        super().__init__(message, {"retriedAs": copy_id})


class WorkerNotFound(NotFound):
    code = "worker_not_found"

    def __init__(self, worker_name: str):
        super().__init__(f"Worker '{worker_name}' does not exist")


class ActionNotSupported(Conflict):
    """A control action the worker cannot take (a plain `rq worker` cannot pause; only pool slots restart)."""

    code = "action_not_supported"


class WorkerNotStale(Conflict):
    code = "worker_not_stale"


class JobNotActive(Conflict):
    code = "job_not_active"


class TokenNotFound(NotFound):
    code = "token_not_found"

    def __init__(self, name: str):
        super().__init__(f"API token '{name}' does not exist")
