"""Schemathesis over every operation of /api/v1/openapi.json, in-process through the WSGI app, with a real Redis,
an admin token and seeded queues and jobs (poison ones included) so that generated paths also hit real objects:
no 500 (not_a_server_error), every status documented (status_code_conformance), every body matching its
documented schema (response_schema_conformance). Bounded: MAX_EXAMPLES per operation."""

from __future__ import annotations

import collections
import zlib
from datetime import timedelta

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from rq import Queue
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from app.domain.users import Role, get_user
from app.security import issue_tokens
from tests.api.test_job_actions import failed_job
from tests.api.test_poison_jobs import SURROGATE_NAME, nested
from tests.conftest import make_app
from tests.helpers import make_active_job

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
MAX_EXAMPLES = 30


def seed(connection, name: str) -> list[str]:
    """A queue with jobs in every state, poison ones included; the ids of its jobs."""
    queue = Queue(name, connection=connection)
    ids = [queue.enqueue("workers.tasks.add", 1, 2).id]
    ids.append(queue.enqueue("workers.tasks.noop", SURROGATE_NAME).id)
    ids.append(queue.enqueue("workers.tasks.noop", tree=nested(100)).id)
    garbage = queue.enqueue("workers.tasks.noop")
    connection.hset(f"rq:job:{garbage.id}", "data", b"\x00 not a pickle")
    ids.append(garbage.id)
    ids += [failed_job(connection, None, name, f"to{n}@x").id for n in range(3)]
    ids.append(make_active_job(connection, name, 45).id)
    unreadable = make_active_job(connection, name, 50)  # stuck, and nothing of it readable but its start
    connection.hset(f"rq:job:{unreadable.id}", mapping={"data": b"?", "meta": b"?", "created_at": b"?"})
    ids.append(unreadable.id)
    ids.append(queue.enqueue_in(timedelta(hours=1), "workers.tasks.noop").id)
    return ids


@pytest.fixture
def fuzzed_app(redis_url, tmp_path) -> Flask:
    # Generated logins fail by the hundred: the throttle is tested elsewhere, here it would hide every other answer.
    return make_app(
        redis_url, tmp_path, LOGIN_LIMIT_PER_USER="100000 per minute", LOGIN_LIMIT_PER_ADDRESS="100000 per minute"
    )


@pytest.fixture
def fresh_token(fuzzed_app, make_user):
    """A new session's access token per call: a generated logout revokes the session it is sent with."""
    make_user("fuzz-admin", Role.ADMIN)

    def token() -> str:
        with fuzzed_app.test_request_context():
            from app.extensions import get_redis

            return issue_tokens(get_user(get_redis(), "fuzz-admin"))["access_token"]

    return token


@pytest.fixture
def api_schema(fuzzed_app, fresh_token):
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/openapi.json", fuzzed_app, headers={"Authorization": f"Bearer {fresh_token()}"}
    )
    return schema.exclude(path_regex=r"/live$|/live-stream$")  # SSE streams never end


def aim_at_seeded_objects(case, queue: str, seeded: list[str]) -> None:
    """Two generated cases in three get the seeded queue, one in three a seeded job of it as well."""
    parameters = case.path_parameters or {}
    if "queueName" not in parameters:
        return
    pick = zlib.crc32(repr(sorted(parameters.items())).encode())
    if pick % 3:
        parameters["queueName"] = queue
    if pick % 3 == 2 and "jobId" in parameters:
        parameters["jobId"] = seeded[(pick // 3) % len(seeded)]


def fuzz(operation, mode: GenerationMode, fresh_token, queue: str, seeded: list[str]) -> collections.Counter:
    """MAX_EXAMPLES generated calls of one operation (schemathesis' pytest loader predates pytest 9: driven by
    hypothesis directly)."""
    seen: collections.Counter = collections.Counter()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        derandomize=True,
        database=None,
    )
    def call(case) -> None:
        aim_at_seeded_objects(case, queue, seeded)
        response = case.call_and_validate(headers={"Authorization": f"Bearer {fresh_token()}"}, checks=CHECKS)
        seen[response.status_code] += 1

    call()
    return seen


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda mode: mode.value)
def test_every_operation_conforms_to_the_document(api_schema, fresh_token, connection, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    failures, seen = {}, {}
    for index, operation in enumerate(operations):
        queue = f"st-{index}"  # fresh objects for each operation: an earlier clear or retry does not starve it
        try:
            seen[operation.label] = fuzz(operation, mode, fresh_token, queue, seed(connection, queue))
        except Unsatisfiable:  # nothing to make invalid: no parameters, no body
            assert mode is GenerationMode.NEGATIVE and not operation.path_parameters and not operation.body
        except Exception as exc:  # every operation runs; all failures are reported together
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:1500]}"
    assert not failures, "\n\n".join(f"{label}\n{failure}" for label, failure in failures.items())
    print({label: dict(statuses) for label, statuses in seen.items()})
    if mode is GenerationMode.NEGATIVE:
        return
    # generated calls reached the seeded objects, not only 4xx for random names: a success, or a 409 about the job
    reached = {
        label for label, statuses in seen.items() if any(200 <= status < 300 or status == 409 for status in statuses)
    }
    assert reached >= {
        "GET /api/v1/admin/jobs/queue/{queueName}/jobs",
        "GET /api/v1/admin/jobs/job/{queueName}/{jobId}",
        "PATCH /api/v1/admin/jobs/queue/{queueName}/pause",
        "DELETE /api/v1/admin/jobs/queue/{queueName}/clear",
        "POST /api/v1/admin/jobs/retry/{queueName}/{jobId}",
        "POST /api/v1/admin/jobs/job/{queueName}/{jobId}/stop",
    }, seen
