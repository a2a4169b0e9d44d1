"""Redis frozen (SIGSTOP: the socket stays open, nothing answers): Redis-backed requests fail fast with 503,
/readyz faster still, and they recover at once after SIGCONT; the socket timeouts do not break idle pub/sub.
Uses a private redis-server it stops and continues itself."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from app.domain import keys, users
from app.domain.users import Role
from app.embedded_redis import free_port, start_redis_server
from app.sse import wire
from tests.api.test_auth import assert_error
from tests.conftest import PASSWORD, make_app
from tests.helpers import wait_for

API = "/api/v1/admin/jobs"


@pytest.fixture
def private_redis(tmp_path) -> Iterator[tuple[str, object]]:
    process = start_redis_server(tmp_path / "redis", port=free_port(), persist=False)
    port = (tmp_path / "redis" / "redis.port").read_text().strip()
    yield f"redis://127.0.0.1:{port}/0", process
    os.kill(process.pid, signal.SIGCONT)
    process.terminate()
    process.wait(timeout=10)


def timed(call) -> tuple[object, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_a_frozen_redis_gives_503_within_two_seconds_and_readyz_within_one(private_redis, tmp_path):
    url, process = private_redis
    users.create_user(redis.Redis.from_url(url), "frozen-reader", PASSWORD, Role.MODERATOR)
    app = make_app(url, tmp_path)
    client = app.test_client()
    login = client.post("/api/v1/auth/login", json={"username": "frozen-reader", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.get_json()['access_token']}"}
    assert client.get(f"{API}/metrics", headers=headers).status_code == 200  # a pooled connection exists
    os.kill(process.pid, signal.SIGSTOP)
    try:
        for call in (
            lambda: client.get(f"{API}/metrics", headers=headers),
            lambda: client.get("/api/v1/auth/me", headers=headers),
            lambda: client.post("/api/v1/auth/login", json={"username": "frozen-reader", "password": "x"}),
        ):
            response, elapsed = timed(call)
            assert_error(response, 503, "redis_unavailable")
            assert elapsed < 2.0, elapsed
        response, elapsed = timed(lambda: client.get("/readyz"))
        assert_error(response, 503, "redis_unavailable")
        assert elapsed < 1.0, elapsed
    finally:
        os.kill(process.pid, signal.SIGCONT)
    wait_for(lambda: client.get("/readyz").status_code == 200, timeout=10)
    assert client.get(f"{API}/metrics", headers=headers).status_code == 200


def test_an_idle_stream_outlives_the_socket_timeout_and_still_gets_events(private_redis, tmp_path, caplog):
    url, _process = private_redis
    connection = redis.Redis.from_url(url)
    users.create_user(connection, "idle-streamer", PASSWORD, Role.MODERATOR)
    app = make_app(url, tmp_path, SSE_HEARTBEAT_SECONDS=0.5)
    client = app.test_client()
    login = client.post("/api/v1/auth/login", json={"username": "idle-streamer", "password": PASSWORD})
    response = client.get(
        f"{API}/live", headers={"Authorization": f"Bearer {login.get_json()['access_token']}"}, buffered=False
    )
    chunks = (chunk.decode() if isinstance(chunk, bytes) else chunk for chunk in response.response)
    assert next(chunks).startswith("retry:")
    assert next(chunks).startswith("data:")
    wait_for(lambda: connection.pubsub_numsub(keys.live_channel())[0][1] == 1, timeout=5)
    idle_until = time.monotonic() + 4  # well past the app's socket timeout, with nothing published
    while time.monotonic() < idle_until:
        assert next(chunks) == ": keep-alive\n\n"
    assert connection.pubsub_numsub(keys.live_channel())[0][1] == 1  # the same subscription, never dropped
    connection.publish(keys.live_channel(), wire({"after": "idle"}))
    received = next(chunk for chunk in chunks if chunk.startswith("data:"))
    assert json.loads(received[len("data:") :]) == {"after": "idle"}
    response.close()
    assert "live hub lost Redis" not in caplog.text


def test_a_control_command_waits_past_the_socket_timeout_for_its_acknowledgement(app, connection):
    """Blocking commands on the app's client (BLPOP for a worker's answer) wait their whole timeout in slices
    shorter than the socket timeout, instead of failing when the socket timeout ends."""
    from app.domain import worker_control  # noqa: PLC0415
    from app.extensions import REDIS_SOCKET_TIMEOUT_SECONDS  # noqa: PLC0415

    channel = keys.worker_control_channel("slow-ack")
    listener = connection.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(channel)
    wait_for(lambda: connection.pubsub_numsub(channel)[0][1] == 1, timeout=5)
    delay = REDIS_SOCKET_TIMEOUT_SECONDS + 1.5

    def answer_late() -> None:
        message = None
        while message is None:
            message = listener.get_message(timeout=1)
        time.sleep(delay)
        ack = worker_control.Ack(True, "idle", "paused", "paused", None)
        worker_control.send_reply(connection, json.loads(message["data"])["id"], ack)

    thread = threading.Thread(target=answer_late, daemon=True)
    thread.start()
    started = time.monotonic()
    ack = worker_control._ask(app.extensions["redis"], channel, {"action": "pause"}, "idle", "slow-ack", 10)
    assert ack.acknowledged and ack.status_after == "paused", ack
    assert time.monotonic() - started >= delay
    thread.join(5)
    listener.close()
