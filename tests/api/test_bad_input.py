"""Bad request bodies and tokens: a clear 4xx in the one error shape, never a 500 (API.md "Conventions")."""

from __future__ import annotations

import io

import pytest
from rq import Queue

from app.domain.users import Role
from tests.api.test_auth import assert_error
from tests.api.test_job_actions import failed_job as make_failed_job
from tests.conftest import login

API = "/api/v1/admin/jobs"


@pytest.fixture
def admin(client, make_user) -> dict[str, str]:
    return {"Authorization": f"Bearer {login(client, make_user('bad-input-admin', Role.ADMIN))['access_token']}"}


@pytest.fixture
def failed_job(connection):
    return make_failed_job(connection, None, "bad-input")


def nested(depth: int) -> str:
    """A JSON object nested `depth` levels (`{}` is one level)."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def body_routes(job_id: str = "nope") -> list[tuple[str, str]]:
    return [
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", f"{API}/retry/bad-input/{job_id}"),
        ("PATCH", f"{API}/queue/bad-input/pause"),
        ("DELETE", f"{API}/queue/bad-input/clear"),
    ]


@pytest.mark.parametrize("method,path", body_routes())
@pytest.mark.parametrize("depth", [33, 300, 1000, 10_000])
def test_bodies_nested_deeper_than_32_levels_are_refused(client, admin, method, path, depth):
    response = client.open(path, method=method, data=nested(depth), content_type="application/json", headers=admin)
    body = assert_error(response, 400, "invalid_json")
    assert "32" in body["error"]["message"]


def test_retry_overrides_nested_just_within_the_limit_are_accepted_and_readable(client, admin, failed_job):
    overrides = {"x": 1}
    for _ in range(29):  # body → dataOverrides → 30 levels of "x" objects: 32 levels in all
        overrides = {"x": overrides}
    response = client.post(f"{API}/retry/bad-input/{failed_job.id}", json={"dataOverrides": overrides}, headers=admin)
    assert response.status_code == 201, response.get_json()
    new_id = response.get_json()["newJobId"]
    detail = client.get(f"{API}/job/bad-input/{new_id}", headers=admin)
    assert detail.status_code == 200 and detail.get_json()["data"]["kwargs"]["x"]["x"]["x"]


@pytest.mark.parametrize("depth", [32, 260, 600])
def test_retry_overrides_nested_too_deep_are_refused(client, admin, failed_job, depth):
    response = client.post(
        f"{API}/retry/bad-input/{failed_job.id}",
        data=f'{{"dataOverrides": {nested(depth)}}}',
        content_type="application/json",
        headers=admin,
    )
    assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize("method,path", body_routes())
@pytest.mark.parametrize(
    "text",
    ["null", "NaN", '{"priority": NaN}', '{"attempts": Infinity}', '{"a": -Infinity}', '{"a": -1e999}', "[1]", "7"],
)
def test_null_non_objects_and_non_finite_numbers_are_refused(client, admin, method, path, text):
    response = client.open(path, method=method, data=text, content_type="application/json", headers=admin)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["success"] is False
    assert response.get_json()["error"]["code"] in ("invalid_json", "validation_error")


def test_nan_in_retry_overrides_never_reaches_a_job(client, admin, failed_job, connection):
    response = client.post(
        f"{API}/retry/bad-input/{failed_job.id}",
        data='{"dataOverrides": {"x": NaN, "y": 1e400}}',
        content_type="application/json",
        headers=admin,
    )
    assert_error(response, 400, "invalid_json")
    assert Queue("bad-input", connection=connection).count == 0


def post_chunked(client, path: str, body: bytes, headers: dict[str, str]):
    """A body without Content-Length, as gunicorn hands a chunked one to the app (it marks the input terminated)."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={**headers, "Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},
    )


@pytest.mark.parametrize("size", [64 * 1024 + 1, 200 * 1024])
def test_a_chunked_body_over_64_kib_is_413(client, admin, failed_job, size):
    padding = b'{"dataOverrides": {"pad": "' + b"x" * size + b'"}}'
    response = post_chunked(client, f"{API}/retry/bad-input/{failed_job.id}", padding, admin)
    assert_error(response, 413, "payload_too_large")


def test_a_chunked_body_within_64_kib_is_read_whole(client, admin, failed_job):
    body = b'{"dataOverrides": {"pad": "' + b"x" * (60 * 1024) + b'"}}'
    response = post_chunked(client, f"{API}/retry/bad-input/{failed_job.id}", body, admin)
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("token", ["garbage", "a.b", "a.b.c", "x" * 200, "eyJhbGciOiJIUzI1NiJ9.e30.e30"])
def test_bad_tokens_get_the_products_message_not_pyjwts(client, token):
    response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    body = assert_error(response, 401, "invalid_token")
    message = body["error"]["message"]
    assert message == "The token is not valid"
    for raw in ("segments", "padding", "decode", "Invalid header", "utf-8", "Signature"):
        assert raw.lower() not in message.lower()
