"""SSE streams and the live publisher: shapes, first event at once, auth, token expiry, one publish per tick
across processes, many clients, and Redis restarting under an open stream."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import threading
import time
import zlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
import requests
from flask_jwt_extended import create_access_token
from rq import Queue

from app.domain import keys, users
from app.domain.users import Role
from app.embedded_redis import free_port, start_redis_server
from tests.api.test_auth import assert_error
from tests.api.test_live_ticker import ticker_for
from tests.conftest import PASSWORD
from tests.helpers import make_active_job, start_gunicorn, stop_worker, wait_for

API = "/api/v1/admin/jobs"


def read_events(response, count: int) -> list[dict]:
    """The next `count` data events of an open test-client stream."""
    events = []
    for chunk in response.response:
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        if text.startswith("data:"):
            events.append(json.loads(text[len("data:") :]))
            if len(events) == count:
                return events
    raise AssertionError("stream ended early")


# --- in-process (Flask test client) -----------------------------------------------------------------


def test_live_needs_a_token_and_a_known_queue(client, auth):
    assert_error(client.get(f"{API}/live"), 401, "missing_token")
    assert_error(client.get(f"{API}/queue/ghost/live", headers=auth("moderator")), 404, "queue_not_found")
    assert_error(client.get(f"{API}/queue/bad%20name/live", headers=auth("moderator")), 400, "validation_error")


def test_first_event_at_once_is_the_metrics_document(client, auth, connection):
    Queue("l-first", connection=connection).enqueue("workers.tasks.noop")
    started = time.monotonic()
    response = client.get(f"{API}/live", headers=auth("moderator"), buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert (
        response.headers["Cache-Control"] == "no-cache, no-transform" and response.headers["X-Accel-Buffering"] == "no"
    )
    [event] = read_events(response, 1)
    response.close()
    assert time.monotonic() - started < 1.0
    assert set(event) >= {"timestamp", "queues", "totals", "successRate", "processingRate"}
    assert event["queues"][0]["queueName"] == "l-first" and event["queues"][0]["waiting"] == 1


def test_the_stream_starts_with_a_retry_hint_and_unnamed_events(client, auth):
    response = client.get(f"{API}/live", headers=auth("moderator"), buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b"retry: 2000\n\n"
    first = next(chunks).decode()
    assert first.startswith("data:") and "event:" not in first
    response.close()


def test_queue_stream_first_event(client, auth, connection):
    job = make_active_job(connection, "l-queue", 35)
    response = client.get(f"{API}/queue/l-queue/live", headers=auth("moderator"), buffered=False)
    [event] = read_events(response, 1)
    response.close()
    assert event["queue"]["queueName"] == "l-queue" and event["queue"]["active"] == 1
    [active] = event["activeJobs"]
    assert active["jobId"] == job.id and active["workerName"] == "test-worker" and active["runningFor"] >= 35 * 60_000
    assert [alert["severity"] for alert in event["stuck"]] == ["medium"]


def test_cookie_sessions_can_stream(client, tokens):
    client.set_cookie("access_token_cookie", tokens["moderator"])
    response = client.get(f"{API}/live", buffered=False)
    assert response.status_code == 200
    assert read_events(response, 1)[0]["queues"] == []
    response.close()


def test_the_stream_ends_when_the_token_expires(app, client, make_user, connection):
    make_user("short", Role.MODERATOR)
    claims = {"role": "moderator", "uid": users.get_user(connection, "short").uid}  # the user's tokens carry its uid
    with app.app_context():
        token = create_access_token("short", additional_claims=claims, expires_delta=timedelta(seconds=2))
    started = time.monotonic()
    response = client.get(f"{API}/live", headers={"Authorization": f"Bearer {token}"}, buffered=False)
    chunks = [chunk.decode() for chunk in response.response]  # ends by itself
    assert 1.0 < time.monotonic() - started < 4.0
    assert chunks[-1].startswith(": the access token has expired")


def test_a_client_that_accepts_deflate_gets_the_same_events_deflated(app, client, make_user, connection):
    """Content-Encoding: deflate (RFC 1950), negotiated; the body inflates, event for event, to the plain stream,
    and a stream that ends by itself ends with a complete zlib stream (final block and Adler-32 check)."""
    Queue("l-deflate", connection=connection).enqueue("workers.tasks.noop")
    make_user("deflated", Role.MODERATOR)
    claims = {"role": "moderator", "uid": users.get_user(connection, "deflated").uid}
    with app.app_context():
        token = create_access_token("deflated", additional_claims=claims, expires_delta=timedelta(seconds=2))
    headers = {"Authorization": f"Bearer {token}"}
    plain = client.get(f"{API}/live", headers=headers, buffered=False)
    assert "Content-Encoding" not in plain.headers and plain.headers["Vary"] == "Accept-Encoding"
    [plain_first] = read_events(plain, 1)
    plain.close()

    refused = client.get(f"{API}/live", headers={**headers, "Accept-Encoding": "gzip, deflate;q=0"}, buffered=False)
    assert "Content-Encoding" not in refused.headers
    refused.close()

    response = client.get(f"{API}/live", headers={**headers, "Accept-Encoding": "gzip, deflate, br"}, buffered=False)
    assert response.headers["Content-Encoding"] == "deflate"
    body = b"".join(response.response)  # the token expires: the stream ends by itself
    inflater = zlib.decompressobj()
    text = (inflater.decompress(body) + inflater.flush()).decode()
    assert inflater.eof and not inflater.unused_data  # complete: final block, and the checksum matched
    assert zlib.decompress(body).decode() == text
    assert text.startswith("retry: 2000\n\n") and text.endswith(": the access token has expired\n\n")
    first = json.loads(text.split("\n\n")[1][len("data:") :])
    assert first["queues"] == plain_first["queues"] and first["queues"][0]["queueName"] == "l-deflate"


# --- the publisher ----------------------------------------------------------------------------------


def test_one_publisher_per_tick_and_another_takes_over(connection):
    first, second = ticker_for(connection), ticker_for(connection)
    now = (time.time() // 2) * 2 + 100  # a future tick nobody else claims
    assert first.tick(now) is True
    assert second.tick(now + 0.3) is False  # same tick: already published
    assert second.tick(now + 2) is True  # the next tick: the first one "died"; the second publishes
    assert 0 < connection.pttl(keys.live_tick_lock(int(now // 2))) <= 6000
    assert json.loads(json.loads(connection.get(keys.live_snapshot()))["data"])["queues"] == []


def test_queue_documents_are_published_for_watched_queues_only(connection):
    Queue("l-idle", connection=connection).enqueue("workers.tasks.noop")
    make_active_job(connection, "l-busy", 1)  # active but nobody watches it: nothing computed for it
    Queue("l-watched", connection=connection).enqueue("workers.tasks.noop")
    subscriber = connection.pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(keys.live_channel("l-watched"))
    ticker_for(connection).publish(time.time())
    assert connection.exists(keys.live_snapshot("l-watched"))
    assert not connection.exists(keys.live_snapshot("l-idle"), keys.live_snapshot("l-busy"))
    message, deadline = None, time.monotonic() + 3
    while message is None and time.monotonic() < deadline:  # the first read returns the subscribe confirmation
        message = subscriber.get_message(timeout=0.5)
    assert message is not None
    assert json.loads(json.loads(message["data"])["data"])["queue"]["queueName"] == "l-watched"
    subscriber.close()


# --- real gunicorn + gevent processes ----------------------------------------------------------------


@pytest.fixture
def moderator_token(connection, make_user):
    make_user("streamer", Role.MODERATOR)

    def token_for(port: int) -> str:
        response = requests.post(
            f"http://127.0.0.1:{port}/api/v1/auth/login",
            json={"username": "streamer", "password": PASSWORD},
            timeout=10,
        )
        return response.json()["access_token"]

    return token_for


class StreamReader(threading.Thread):
    """Reads one SSE stream in the background, noting when each data event arrived."""

    def __init__(self, url: str, token: str, limit: int, timeout: float = 30):
        super().__init__(daemon=True)
        self.url, self.token, self.limit, self.timeout = url, token, limit, timeout
        self.events: list[tuple[float, dict]] = []
        self.error: Exception | None = None
        self.hang_up = threading.Event()

    def run(self) -> None:
        try:
            with requests.get(
                self.url, headers={"Authorization": f"Bearer {self.token}"}, stream=True, timeout=self.timeout
            ) as response:
                assert response.status_code == 200
                for line in response.iter_lines(decode_unicode=True):
                    if self.hang_up.is_set():  # so the server can stop without waiting out its graceful timeout
                        return
                    if line and line.startswith("data:"):
                        self.events.append((time.monotonic(), json.loads(line[5:])))
                        if len(self.events) >= self.limit:
                            return
        except Exception as exc:  # reported by the test
            self.error = exc


def command_calls(connection, command: str) -> int:
    return int(connection.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def publish_count(connection) -> int:
    return command_calls(connection, "publish")


ENTRY_FIELDS = {"queueName", "waiting", "active", "completed", "failed", "delayed", "paused"}


def test_events_every_two_seconds_under_gunicorn(redis_url, connection, moderator_token):
    Queue("l-cadence", connection=connection).enqueue("workers.tasks.noop")
    port = free_port()
    server = start_gunicorn(redis_url, port)
    try:
        reader = StreamReader(f"http://127.0.0.1:{port}{API}/live", moderator_token(port), limit=4)
        reader.start()
        reader.join(20)
        assert reader.error is None and len(reader.events) == 4
        gaps = [later[0] - earlier[0] for earlier, later in zip(reader.events[1:], reader.events[2:], strict=False)]
        assert all(1.5 <= gap <= 2.5 for gap in gaps), gaps
        for _, event in reader.events:
            assert set(event) >= {"timestamp", "queues", "totals", "successRate", "processingRate"}
            [entry] = event["queues"]
            assert set(entry) >= ENTRY_FIELDS and entry["queueName"] == "l-cadence" and entry["waiting"] == 1
            assert event["totals"]["waiting"] == 1
        stamps = [datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")) for _, event in reader.events[1:]]
        assert [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)] == [2.0, 2.0]  # ticks
    finally:
        stop_worker(server)


def test_fifty_clients_one_computation_per_tick(redis_url, connection, moderator_token):
    port = free_port()
    server = start_gunicorn(redis_url, port, LIVE_TICK_SECONDS="1")
    ticks = connection.pubsub(ignore_subscribe_messages=True)
    ticks.subscribe(keys.live_channel())

    def evals_over(count: int, then=lambda: None) -> tuple[int, int]:
        """EVALs between a jobs-feed message and the `count`-th after it (every feed and task of those ticks);
        `then()` runs at the start of the window."""
        while ticks.get_message(timeout=0.01):  # drop what is queued: start on a fresh tick
            pass
        wait_for(lambda: ticks.get_message(timeout=0.2) is not None, timeout=10)
        before, seen = command_calls(connection, "eval"), 0
        then()
        while seen < count:
            seen += ticks.get_message(timeout=3) is not None
        return command_calls(connection, "eval") - before, seen

    try:
        token = moderator_token(port)  # the first request starts the publisher
        wait_for(lambda: connection.exists(keys.live_snapshot()), timeout=5)
        idle_evals, idle_ticks = evals_over(3)  # what a tick costs with nobody connected (all feeds and tasks)
        readers = [StreamReader(f"http://127.0.0.1:{port}{API}/live", token, limit=4) for _ in range(50)]
        busy_evals, busy_ticks = evals_over(3, then=lambda: [reader.start() for reader in readers])
        for reader in readers:
            reader.join(30)
        assert all(reader.error is None and len(reader.events) == 4 for reader in readers)  # first + 3 ticks
        stamps = {event["timestamp"] for reader in readers for _, event in reader.events[1:]}
        assert 3 <= len(stamps) <= 5  # every client saw the same few ticks
        # Fifty clients cost no computation: their first events came from the stored snapshot, and each tick is
        # computed once (a tick's tasks may fall on either side of the window: a few EVALs of slack, not 50).
        assert busy_evals <= idle_evals * busy_ticks / idle_ticks + 4
    finally:
        ticks.close()
        stop_worker(server)


def test_a_client_that_goes_away_is_unsubscribed(redis_url, connection, moderator_token):
    make_active_job(connection, "l-leaving", 11)
    channel = keys.live_channel("l-leaving")
    port = free_port()
    server = start_gunicorn(redis_url, port, LIVE_TICK_SECONDS="1")
    try:
        reader = StreamReader(f"http://127.0.0.1:{port}{API}/queue/l-leaving/live", moderator_token(port), limit=3)
        reader.start()
        reader.join(10)
        assert reader.error is None and len(reader.events) == 3  # and the client has hung up
        assert all(event["queue"]["queueName"] == "l-leaving" for _, event in reader.events)
        assert all(event["stuck"][0]["severity"] == "low" for _, event in reader.events)
        # The server notices at its next write, ends that stream's greenlet and drops the channel.
        wait_for(lambda: connection.pubsub_numsub(channel)[0][1] == 0, timeout=5)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        assert server.poll() is None
    finally:
        stop_worker(server)


def test_two_web_processes_publish_once_per_tick_and_one_takes_over_when_the_other_dies(
    redis_url, connection, moderator_token
):
    ports = [free_port(), free_port()]
    servers = [start_gunicorn(redis_url, port, LIVE_TICK_SECONDS="1") for port in ports]
    try:
        for port in ports:  # the first request starts each process's publisher
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        workers = {
            int(pid) for server in servers for pid in subprocess.check_output(["pgrep", "-P", str(server.pid)]).split()
        }
        assert len(workers) == 2
        subscriber = connection.pubsub(ignore_subscribe_messages=True)
        subscriber.subscribe(keys.live_channel())

        def watch(seconds: float) -> list[tuple[int, int]]:
            """(tick, pid of the process that held its lock) for every document published meanwhile."""
            published, deadline = [], time.monotonic() + seconds
            while time.monotonic() < deadline:
                message = subscriber.get_message(timeout=0.1)
                if message:
                    stamp = json.loads(json.loads(message["data"])["data"])["timestamp"]
                    tick = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
                    owner = connection.get(keys.live_tick_lock(tick)).decode()
                    published.append((tick, int(owner.split(":")[1])))
            return published

        before = watch(5.2)
        ticks = [tick for tick, _ in before]
        assert 4 <= len(ticks) <= 6 and len(ticks) == len(set(ticks))  # never two publishes of one tick
        assert {pid for _, pid in before} <= workers
        winner = collections.Counter(pid for _, pid in before).most_common(1)[0][0]
        os.kill(winner, signal.SIGKILL)  # its master respawns it, but a new worker publishes only once asked
        after = watch(4.2)
        assert {pid for _, pid in after} == workers - {winner}
        ticks = [tick for tick, _ in after]
        assert len(ticks) >= 3 and len(ticks) == len(set(ticks))
        assert all(later - earlier == 1 for earlier, later in zip(ticks, ticks[1:], strict=False))  # no tick missed
        subscriber.close()
    finally:
        for server in servers:
            stop_worker(server)


def test_redis_restart_under_an_open_stream(tmp_path: Path, moderator_token):
    port, web_port = free_port(), free_port()
    redis_process = start_redis_server(tmp_path / "redis", port=port, persist=True)
    url = f"redis://127.0.0.1:{port}/0"
    users.create_user(redis.Redis.from_url(url), "streamer", PASSWORD, Role.MODERATOR)
    server = start_gunicorn(url, web_port, LIVE_TICK_SECONDS="1", SSE_HEARTBEAT_SECONDS="1")
    try:
        token = moderator_token(web_port)
        reader = StreamReader(f"http://127.0.0.1:{web_port}{API}/live", token, limit=1000, timeout=60)
        reader.start()
        time.sleep(2.5)
        redis.Redis.from_url(url).save()  # the user survives the restart (its stream re-checks the session)
        redis_process.terminate()
        redis_process.wait(timeout=10)
        assert requests.get(f"http://127.0.0.1:{web_port}/readyz", timeout=5).status_code == 503
        refused = requests.get(  # a new stream meanwhile: the JSON error, never a 500
            f"http://127.0.0.1:{web_port}{API}/live", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert refused.status_code == 503 and refused.json()["success"] is False
        time.sleep(4)  # long enough for reconnect attempts to back off
        seen_before_restart = len(reader.events)
        redis_process = start_redis_server(tmp_path / "redis", port=port, persist=True)
        restarted = time.monotonic()
        wait_for(lambda: len(reader.events) > seen_before_restart, timeout=5)
        resumed_after = reader.events[seen_before_restart][0] - restarted
        assert resumed_after <= 2.0  # within a tick (1 s) plus the hub's reconnect delay (<= 1 s)
        time.sleep(1.5)
        assert reader.is_alive() and reader.error is None  # the stream stayed open
        assert len(reader.events) >= seen_before_restart + 2
        assert requests.get(f"http://127.0.0.1:{web_port}/readyz", timeout=5).status_code == 200
        restarted_redis = redis.Redis.from_url(url)
        # one pub/sub subscription for the process again: the hub resubscribed once, nothing left dangling
        assert restarted_redis.pubsub_numsub(keys.live_channel()) == [(keys.live_channel().encode(), 1)]
        reader.hang_up.set()
        reader.join(5)
        wait_for(lambda: restarted_redis.pubsub_numsub(keys.live_channel())[0][1] == 0, timeout=10)
    finally:
        stop_worker(server)
        redis_process.terminate()
        redis_process.wait(timeout=10)


@pytest.mark.parametrize("value", [b"\xff", b"5", b"[" * 5000, b'{"no": "message"}'])
@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/api/v1/admin/jobs/live", keys.live_snapshot()),
        ("/api/v1/workers/live-stream", keys.WORKERS_SNAPSHOT),
        ("/api/v1/alerts/live", keys.ALERTS_SNAPSHOT),
    ],
)
def test_a_snapshot_another_program_overwrote_is_computed_afresh(client, auth, connection, path, key, value):
    connection.set(key, value)
    response = client.get(path, headers=auth("moderator"), buffered=False)
    [event] = read_events(response, 1)
    response.close()
    assert event["timestamp"]
