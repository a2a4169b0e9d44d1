"""The stream machinery in one process: heartbeat, the server-chosen channel, the process-wide pub/sub hub
(one subscription, released with the last stream, robust to foreign messages), when the publisher starts,
and `flask monitor publish` as its own process."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from rq import Queue

from app.domain import history, keys, users
from app.domain import tokens as api_tokens
from app.domain.users import Role
from app.embedded_redis import free_port
from app.sse import wire
from app.ticker import make_ticker
from tests.api.test_live_ticker import ticker_for
from tests.conftest import login, make_app
from tests.helpers import BIN, ROOT, make_active_job, wait_for

API = "/api/v1/admin/jobs"
THRESHOLDS = (10, 30, 60, 120)


def chunks_of(response) -> Iterator[str]:
    return (chunk.decode() if isinstance(chunk, bytes) else chunk for chunk in response.response)


def data_of(chunk: str) -> dict:
    assert chunk.startswith("data:") and "event:" not in chunk, chunk
    return json.loads(chunk[len("data:") :])


def subscribers(connection: redis.Redis, channel: str) -> int:
    return int(connection.pubsub_numsub(channel)[0][1])


@pytest.fixture(autouse=True)
def no_earlier_subscriber(redis_url):
    """Streams of earlier tests (another app's hub, a server being stopped) have let go of their channels: a
    test that waits for "one subscriber" sees its own."""
    connection = redis.Redis.from_url(redis_url)
    wait_for(lambda: not connection.pubsub_channels(), timeout=10)
    connection.close()


@pytest.fixture
def heartbeat_app(redis_url, tmp_path):
    return make_app(redis_url, tmp_path, SSE_HEARTBEAT_SECONDS=0.3)


def test_an_idle_stream_gets_comment_heartbeats(heartbeat_app, tokens):
    client = heartbeat_app.test_client()
    headers = {"Authorization": f"Bearer {tokens['moderator']}"}
    response = client.get(f"{API}/live", headers=headers, buffered=False)
    chunks = chunks_of(response)
    assert next(chunks) == "retry: 2000\n\n"
    data_of(next(chunks))
    started = time.monotonic()
    assert [next(chunks), next(chunks)] == [": keep-alive\n\n"] * 2  # nothing published: comments only
    assert 0.5 <= time.monotonic() - started < 1.5
    response.close()


def test_the_channel_is_chosen_by_the_server_not_the_client(client, auth, connection):
    make_active_job(connection, "l-chosen", 1)
    spoofed = f"?channel={keys.live_channel('l-chosen')}"
    response = client.get(f"{API}/live{spoofed}", headers=auth("moderator"), buffered=False)
    chunks = chunks_of(response)
    next(chunks)
    assert "queues" in data_of(next(chunks))
    wait_for(lambda: subscribers(connection, keys.live_channel()) == 1, timeout=3)
    assert subscribers(connection, keys.live_channel("l-chosen")) == 0
    connection.publish(keys.live_channel("l-chosen"), wire({"spoofed": True}))
    ticker_for(connection).publish(time.time())
    assert data_of(next(chunks))["queues"][0]["queueName"] == "l-chosen"
    response.close()
    # flask-sse's own `?channel=` route is not registered.
    assert client.get(f"{API}?channel={keys.live_channel()}", headers=auth("moderator")).status_code == 404


def test_a_queue_stream_receives_each_published_queue_document(client, auth, connection):
    make_active_job(connection, "l-ticks", 12)
    response = client.get(f"{API}/queue/l-ticks/live", headers=auth("moderator"), buffered=False)
    chunks = chunks_of(response)
    next(chunks)
    data_of(next(chunks))
    wait_for(lambda: subscribers(connection, keys.live_channel("l-ticks")) == 1, timeout=3)
    tick = (time.time() // 2) * 2
    ticker_for(connection).publish(tick)
    event = data_of(next(chunks))
    response.close()
    assert set(event) == {"timestamp", "queue", "activeJobs", "activeCount", "stuck", "stuckCount", "stuckBySeverity"}
    assert event["activeCount"] == 1 and event["stuckCount"] == 1
    assert event["stuckBySeverity"] == {"low": 1, "medium": 0, "high": 0, "critical": 0}
    assert event["timestamp"].endswith("Z") and event["queue"]["queueName"] == "l-ticks"
    [active] = event["activeJobs"]
    assert set(active) >= {"jobId", "jobName", "startedAt", "runningFor", "workerName", "attemptsMade"}
    assert [alert["severity"] for alert in event["stuck"]] == ["low"]


def test_a_new_stream_starts_with_the_event_the_hub_last_received_without_reading_the_snapshot(
    client, auth, connection
):
    make_active_job(connection, "l-recent", 12)
    first = client.get(f"{API}/queue/l-recent/live", headers=auth("moderator"), buffered=False)
    chunks = chunks_of(first)
    next(chunks)
    data_of(next(chunks))
    wait_for(lambda: subscribers(connection, keys.live_channel("l-recent")) == 1, timeout=3)
    ticker_for(connection).publish((time.time() // 2) * 2)
    published = data_of(next(chunks))
    connection.delete(keys.live_snapshot("l-recent"))  # not read: the hub has it
    second = client.get(f"{API}/queue/l-recent/live", headers=auth("moderator"), buffered=False)
    second_chunks = chunks_of(second)
    next(second_chunks)
    assert data_of(next(second_chunks)) == published  # the very document, not one computed on the spot
    second.close()
    first.close()


def test_the_queue_document_carries_the_queues_metrics_entry(client, auth, connection):
    make_active_job(connection, "l-entry", 1)
    for outcome in ("ok", "ok", "ok", "fail"):
        history.record_attempt(connection, "l-entry", outcome, 10, "j", "f")
    [entry] = [q for q in client.get(f"{API}/metrics", headers=auth("moderator")).get_json()["queues"]]
    assert entry["successRate"] == 75.0 and entry["processingRate"] > 0
    on_connect = client.get(f"{API}/queue/l-entry/live", headers=auth("moderator"), buffered=False)  # computed now
    chunks = chunks_of(on_connect)
    next(chunks)
    assert data_of(next(chunks))["queue"] == entry
    wait_for(lambda: subscribers(connection, keys.live_channel("l-entry")) == 1, timeout=3)
    ticker_for(connection).publish(time.time())  # watched: its document is published
    on_connect.close()
    published = json.loads(json.loads(connection.get(keys.live_snapshot("l-entry")))["data"])
    assert published["queue"] == entry


def test_one_subscription_per_process_released_with_the_last_stream(app, client, auth, connection):
    streams = [client.get(f"{API}/live", headers=auth("moderator"), buffered=False) for _ in range(3)]
    for stream in streams:
        chunks = chunks_of(stream)
        next(chunks), next(chunks)
    wait_for(lambda: subscribers(connection, keys.live_channel()) == 1, timeout=3)
    hub = app.extensions["sse_hub"]
    assert sum(len(inboxes) for inboxes in hub.listeners.values()) == 3
    for stream in streams[:0:-1]:  # newest first: in one thread, request contexts must unwind in order
        stream.close()
    time.sleep(0.5)
    assert subscribers(connection, keys.live_channel()) == 1
    streams[0].close()
    wait_for(lambda: subscribers(connection, keys.live_channel()) == 0, timeout=3)
    wait_for(lambda: not hub.started, timeout=3)  # the listener ended with its last stream
    assert hub.listeners == {}
    again = client.get(f"{API}/live", headers=auth("moderator"), buffered=False)
    chunks = chunks_of(again)
    next(chunks), next(chunks)
    wait_for(lambda: subscribers(connection, keys.live_channel()) == 1, timeout=3)
    ticker_for(connection).publish(time.time())
    assert "queues" in data_of(next(chunks))
    again.close()


LIVE_PATHS = [f"{API}/live", f"{API}/queue/l-head/live", "/api/v1/workers/live-stream", "/api/v1/alerts/live"]


def listening(app) -> int:
    hub = app.extensions.get("sse_hub")
    return 0 if hub is None else sum(len(inboxes) for inboxes in hub.listeners.values())


@pytest.mark.parametrize("path", LIVE_PATHS)
def test_a_head_or_an_unread_get_leaves_no_listener(app, client, auth, connection, path):
    make_active_job(connection, "l-head", 1)
    for _ in range(3):
        head = client.head(path, headers=auth("moderator"))
        assert head.status_code == 200 and head.mimetype == "text/event-stream"
        head.close()
    unread = client.get(path, headers=auth("moderator"), buffered=False)
    assert unread.status_code == 200
    unread.close()  # closed before its first chunk was read
    assert listening(app) == 0
    assert app.extensions["sse_hub"].channels() == set()
    read = client.get(path, headers=auth("moderator"), buffered=False)
    chunks = chunks_of(read)
    next(chunks), next(chunks)  # a stream that is read still subscribes, from its first chunk on
    assert listening(app) == 1
    read.close()
    assert listening(app) == 0


@pytest.mark.parametrize("foreign", [b"not json", b"[1, 2]", b'{"no": "data"}', b"\xff\xfe"])
def test_the_hub_drops_foreign_messages_and_keeps_delivering(client, auth, connection, foreign):
    # the previous case's hub (another app) releases its subscription within a poll: not to be counted as ours
    wait_for(lambda: subscribers(connection, keys.live_channel()) == 0, timeout=3)
    response = client.get(f"{API}/live", headers=auth("moderator"), buffered=False)
    chunks = chunks_of(response)
    next(chunks), next(chunks)
    wait_for(lambda: subscribers(connection, keys.live_channel()) == 1, timeout=3)
    connection.publish(keys.live_channel(), foreign)
    connection.publish(keys.live_channel(), wire({"after": "foreign"}))
    assert data_of(next(chunks)) == {"after": "foreign"}
    response.close()


def test_the_publisher_starts_on_the_first_request_never_for_cli_commands(redis_url, tmp_path):
    app = make_app(redis_url, tmp_path, LIVE_PUBLISHER_ENABLED=True, LIVE_TICK_SECONDS=0.5)
    result = app.test_cli_runner().invoke(args=["users", "list"])
    assert result.exit_code == 0, result.output
    assert "ticker" not in app.extensions
    assert app.test_client().get("/healthz").status_code == 200
    publisher = app.extensions["ticker"]
    try:
        app.test_client().get("/healthz")
        assert app.extensions["ticker"] is publisher  # one per process
        wait_for(lambda: publisher.published_ticks >= 2, timeout=3)
    finally:
        publisher.stop()


def test_the_publisher_rides_out_an_unreachable_redis(tmp_path):
    app = make_app(f"redis://127.0.0.1:{free_port()}/0", tmp_path)  # nobody listens there
    publisher = make_ticker(app)
    started = time.monotonic()
    assert publisher.tick() is False and publisher.published_ticks == 0
    assert time.monotonic() - started < 0.5  # fails fast (the app's pool does not retry): next tick is on time


def test_monitor_publish_runs_the_publisher_as_its_own_process(redis_url, connection):
    Queue("l-cli", connection=connection).enqueue("workers.tasks.noop")
    subscriber = connection.pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(keys.live_channel())
    env = {**os.environ, "REDIS_URL": redis_url, "JWT_SECRET_KEY": "cli-secret", "LIVE_TICK_SECONDS": "0.5"}
    process = subprocess.Popen(
        [str(BIN / "flask"), "--app", "app", "monitor", "publish"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        stamps, deadline = [], time.monotonic() + 10
        while len(stamps) < 3 and time.monotonic() < deadline and process.poll() is None:
            message = subscriber.get_message(timeout=0.2)
            if message:
                document = json.loads(json.loads(message["data"])["data"])
                stamps.append(document["timestamp"])
        assert len(stamps) == 3, process.poll()
        assert document["queues"][0]["queueName"] == "l-cli"
        assert len(set(stamps)) == 3 and json.loads(connection.get(keys.live_snapshot()))["data"]
    finally:
        subscriber.close()
        process.terminate()
        output = process.communicate(timeout=10)[0]
    assert "publishing live snapshots every 0.5s" in output


def read_until_end(chunks: Iterator[str], within: float) -> list[str]:
    """The chunks up to the stream's end (it must end within `within` seconds)."""
    started = time.monotonic()
    seen = list(chunks)
    assert time.monotonic() - started < within, seen
    return seen


def open_stream(client, credential: str) -> tuple[Any, Iterator[str]]:
    """A stream and its chunks once it has sent its first keep-alive (its first check passed). Streams of one
    thread are read one at a time: each holds its request context while open."""
    response = client.get(f"{API}/live", headers={"Authorization": f"Bearer {credential}"}, buffered=False)
    chunks = chunks_of(response)
    assert next(chunks).startswith("retry:")
    data_of(next(chunks))
    assert next(chunks) == ": keep-alive\n\n"
    return response, chunks


def assert_still_open(client, credential: str) -> None:
    response, chunks = open_stream(client, credential)
    assert next(chunks) == ": keep-alive\n\n" and next(chunks) == ": keep-alive\n\n"
    response.close()


def test_an_open_stream_ends_within_a_heartbeat_of_its_logout(heartbeat_app, make_user):
    client = heartbeat_app.test_client()
    token = login(client, make_user("streamer-out", "moderator"))["access_token"]
    other = login(client, "streamer-out")["access_token"]  # another session of the same user: not ended
    _, chunks = open_stream(client, token)
    assert client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert read_until_end(chunks, within=0.3 + 0.5)[-1] == ": the session has ended\n\n"
    assert_still_open(client, other)


def test_an_open_stream_ends_when_its_user_is_deleted_or_its_api_token_revoked(heartbeat_app, make_user, connection):
    client = heartbeat_app.test_client()
    token = login(client, make_user("streamer-gone", "moderator"))["access_token"]
    creator = users.get_user(connection, make_user("token-maker", "super_admin"))
    assert creator is not None
    secret, _ = api_tokens.create_token(
        connection, "stream-token", Role.MODERATOR, creator.username, creator.role, creator_uid=creator.uid
    )
    _, chunks = open_stream(client, token)
    users.delete_user(connection, "streamer-gone")
    assert read_until_end(chunks, within=0.8)[-1] == ": the session has ended\n\n"
    assert_still_open(client, secret)
    _, chunks = open_stream(client, secret)
    api_tokens.revoke_token(connection, "stream-token")
    assert read_until_end(chunks, within=0.8)[-1] == ": the session has ended\n\n"


def test_a_stream_checks_its_token_once_a_heartbeat_however_busy(heartbeat_app, tokens, connection, round_trips):
    client = heartbeat_app.test_client()
    response, chunks = open_stream(client, tokens["moderator"])
    round_trips[0] = publishes = 0
    started = time.monotonic()
    while time.monotonic() - started < 1.5:
        connection.publish(keys.live_channel(), wire({"busy": True}))  # an event at every read: never idle
        publishes += 1
        assert next(chunks)
    checks = round_trips[0] - publishes
    assert 1.5 / 0.3 - 2 <= checks <= 1.5 / 0.3 + 2  # one pipeline a heartbeat, busy or idle
    response.close()
