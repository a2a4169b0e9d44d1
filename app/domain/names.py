"""Validation of the names that become parts of Redis keys, before any key is built."""

from __future__ import annotations

import re

from app.domain.errors import InvalidInput

# RQ accepts any string; we accept what real deployments use and refuse what could smuggle key syntax.
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}")
_JOB_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}")
_USERNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")
# The same rules as JSON Schema patterns, for the OpenAPI document's path parameters.
PATH_PARAMETER_PATTERNS = {"queueName": f"^{_QUEUE_NAME.pattern}$", "jobId": f"^{_JOB_ID.pattern}$"}


def is_queue_name(name: str) -> bool:
    return bool(_QUEUE_NAME.fullmatch(name))


def is_job_id(job_id: str) -> bool:
    return bool(_JOB_ID.fullmatch(job_id))


def check_queue_name(name: str) -> str:
    if not is_queue_name(name):
        raise InvalidInput(
            "Invalid queue name",
            {"queueName": "1-128 characters: letters, digits and _ . : @ -"},
        )
    return name


def check_job_id(job_id: str) -> str:
    if not is_job_id(job_id):
        raise InvalidInput("Invalid job id", {"jobId": "1-128 characters: letters, digits and _ . : @ -"})
    return job_id


def check_username(name: str) -> str:
    if not _USERNAME.fullmatch(name):
        raise InvalidInput("Invalid username", {"username": "1-64 characters: letters, digits and _ . @ -"})
    return name


_WORKER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,199}")  # RQ's host.pid or uuid, a pool's <pool>.<slot>


def check_worker_name(name: str) -> str:
    if not _WORKER_NAME.fullmatch(name):
        raise InvalidInput("Invalid worker name", {"name": "1-200 characters: letters, digits and _ . : @ -"})
    return name
