"""Health probes, the one error shape for HTTP errors, and Redis being down (503, never a 500 page)."""

from __future__ import annotations

import pytest
import redis
from rq import Queue

from app.domain import users
from app.domain.users import Role
from app.embedded_redis import free_port, start_redis_server
from tests.api.test_auth import assert_error
from tests.conftest import CHEAP_HASH_METHOD, PASSWORD, login, make_app


def test_healthz_answers_without_redis(redis_url, tmp_path):
    app = make_app(f"redis://127.0.0.1:{free_port()}/0", tmp_path)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_when_redis_answers(client):
    assert client.get("/readyz").status_code == 200


def test_redis_down_gives_503_json_everywhere(redis_url, tmp_path, tokens):
    app = make_app(f"redis://127.0.0.1:{free_port()}/0", tmp_path)
    client = app.test_client()
    assert_error(client.get("/readyz"), 503, "redis_unavailable")
    assert_error(
        client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['admin']}"}),
        503,
        "redis_unavailable",
    )
    assert_error(client.post("/api/v1/auth/login", json={"username": "a", "password": "b"}), 503, "redis_unavailable")


@pytest.fixture
def replica(tmp_path):
    """A private redis-server made a replica of a port nobody listens on: it answers reads, refuses writes."""
    process = start_redis_server(tmp_path / "replica", persist=False)
    url = f"redis://127.0.0.1:{(tmp_path / 'replica' / 'redis.port').read_text().strip()}/0"
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_a_read_only_replica_gives_503_not_500(replica, tmp_path):
    """Regression: READONLY (a replica after a failover) was a 500; it is Redis being unavailable for writes."""
    connection = redis.Redis.from_url(replica)
    users.create_user(connection, "rosa", PASSWORD, Role.ADMIN, CHEAP_HASH_METHOD)
    Queue("replica-q", connection=connection).enqueue("workers.tasks.add", 1, 2)
    client = make_app(replica, tmp_path).test_client()
    headers = {"Authorization": f"Bearer {login(client, 'rosa')['access_token']}"}
    connection.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
    try:
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 200  # reads still work
        body = assert_error(
            client.patch("/api/v1/admin/jobs/queue/replica-q/pause", headers=headers), 503, "redis_unavailable"
        )
        assert "read-only" in body["error"]["message"]
        assert_error(
            client.post("/api/v1/auth/login", json={"username": "rosa", "password": "x"}), 503, "redis_unavailable"
        )
    finally:
        connection.execute_command("REPLICAOF", "NO", "ONE")
        connection.close()


def test_redis_loading_its_data_gives_503(app, client):
    @app.post("/loading")
    def loading():
        raise redis.BusyLoadingError("LOADING Redis is loading the dataset in memory")

    body = assert_error(client.post("/loading"), 503, "redis_unavailable")
    assert "loading" in body["error"]["message"]


def test_unknown_route_and_wrong_method_are_json(client):
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    response = client.put("/healthz")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/admin/login", "/admin/", "/static/app.js", "/api/v1/nothing-here", "/api/v1/admin/jobs/metrics"],
)
def test_security_headers_on_every_response(client, path):
    response = client.get(path)  # a page, a redirect, a static file, a JSON error, a 401
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"].split("script-src")[1].split(";")[0]
    assert response.headers["Referrer-Policy"]


def test_unexpected_errors_are_json_without_a_stack_trace(app, client):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    body = assert_error(client.get("/boom"), 500, "internal_error")
    assert "secret internals" not in str(body) and "Traceback" not in str(body)


def test_openapi_document_describes_the_routes(client, auth):
    response = client.get("/api/v1/openapi.json", headers=auth("moderator"))
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/auth/login" in document["paths"]
    login = document["paths"]["/api/v1/auth/login"]["post"]
    assert "requestBody" in login and login.get("security") in ([], None, [{}])
    assert "bearer" in document["components"]["securitySchemes"]
    api_paths = {
        rule.rule.replace("<", "{").replace(">", "}")
        for rule in client.application.url_map.iter_rules()
        if rule.rule.startswith("/api/") and rule.rule != "/api/v1/openapi.json"  # the document itself
    }
    assert api_paths <= set(document["paths"]), api_paths - set(document["paths"])
    # the schemas that validate the retry body are the ones documented
    retry = next(path for path in document["paths"] if path.startswith("/api/v1/admin/jobs/retry/"))
    body_ref = document["paths"][retry]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = document["components"]["schemas"][body_ref.rsplit("/", 1)[-1]]
    assert body_schema.get("additionalProperties") is False
    assert {"priority", "attempts", "backoff", "dataOverrides", "argsOverrides", "removeOriginal", "force"} == set(
        body_schema["properties"]
    )
    assert body_schema["properties"]["argsOverrides"]["anyOf"][0]["type"] == "array"
