"""Server-Sent Events over Redis pub/sub, framed with flask-sse's `Message` (the only part of flask-sse we use):

- one pub/sub connection per process (the Hub), fanned out in memory to every open stream, instead of one
  Redis connection per client; it uses the app's shared connection pool;
- the channel is chosen by the server from the validated route, never by a `?channel=` from the client: any
  blueprint serves its own stream route with `event_stream(channel, first_event, expires_at)`;
- the first event is sent at once (the latest published snapshot), a comment heartbeat keeps idle connections
  open, `retry:` makes clients reconnect quickly, and the stream ends when the access token expires or, checked
  at every heartbeat, is revoked (logout, its user deleted);
- Redis going away closes nothing: the Hub reconnects and streams resume with the next tick.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import redis
from flask import Response, current_app, stream_with_context
from flask_jwt_extended import get_jwt
from flask_sse import Message

from app.extensions import get_redis
from app.security import still_authorized

log = logging.getLogger(__name__)

CLIENT_BACKLOG = 5  # events kept for a slow client; older ones are dropped (each event is a full snapshot)
# Reconnect attempts back off only up to this, so that streams resume within a tick of Redis coming back
# (a refused connection costs next to nothing, whatever the number of web processes).
RECONNECT_MAX_SECONDS = 1.0


def wire(document: Any) -> str:
    """flask-sse's wire format (JSON of Message.to_dict()), the document already serialized as its data. orjson
    first (a tick's documents reach 600 KB: a fifth of the stdlib's time), the stdlib for what orjson refuses
    (lone surrogates and integers past 64 bits in job data)."""
    try:
        return orjson.dumps(Message(orjson.dumps(document).decode()).to_dict()).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(Message(json.dumps(document, separators=(",", ":"))).to_dict())


def frame(wire_message: bytes | str) -> str:
    """A published message as an unnamed SSE event, framed once for all the process's clients."""
    return str(Message(**json.loads(wire_message)))


class Hub:
    """One pub/sub subscription per process; streams register a local queue per channel."""

    def __init__(self, connection: redis.Redis):
        self.connection = connection
        self.lock = threading.Lock()
        self.listeners: dict[str, set[queue.Queue[str]]] = {}
        self.started = False

    def subscribe(self, channel: str) -> queue.Queue[str]:
        inbox: queue.Queue[str] = queue.Queue(maxsize=CLIENT_BACKLOG)
        with self.lock:
            self.listeners.setdefault(channel, set()).add(inbox)
            if not self.started:
                self.started = True
                threading.Thread(target=self.run, name="sse-hub", daemon=True).start()
        return inbox

    def unsubscribe(self, channel: str, inbox: queue.Queue[str]) -> None:
        with self.lock:
            inboxes = self.listeners.get(channel, set())
            inboxes.discard(inbox)
            if not inboxes:
                self.listeners.pop(channel, None)

    def channels(self) -> set[str]:
        with self.lock:
            return set(self.listeners)

    def deliver(self, channel: str, event: str) -> None:
        with self.lock:
            inboxes = list(self.listeners.get(channel, ()))
        for inbox in inboxes:
            try:
                inbox.put_nowait(event)
            except queue.Full:  # a slow client gets the newest snapshot, not a growing backlog
                try:
                    inbox.get_nowait()
                    inbox.put_nowait(event)
                except (queue.Empty, queue.Full):
                    pass

    def stop_if_idle(self) -> bool:
        """Under the lock, so that a stream subscribing meanwhile starts a new listener instead."""
        with self.lock:
            if self.listeners:
                return False
            self.started = False
            return True

    def run(self) -> None:
        """Listen while streams are open; (re)subscribe to the channels they want, from this thread only."""
        backoff = 0.25
        while True:
            pubsub = self.connection.pubsub(ignore_subscribe_messages=True)
            subscribed: set[str] = set()
            try:
                while True:
                    wanted = self.channels()
                    if not wanted and self.stop_if_idle():  # no stream left: release the connection
                        return
                    if wanted - subscribed:
                        pubsub.subscribe(*(wanted - subscribed))
                    if subscribed - wanted:
                        pubsub.unsubscribe(*(subscribed - wanted))
                    subscribed = wanted
                    message = pubsub.get_message(timeout=0.2)
                    if message and message["type"] == "message":
                        self.receive(message["channel"], message["data"])
                    backoff = 0.25
            except redis.RedisError as exc:
                log.warning("live hub lost Redis (%s); reconnecting in %.2fs", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)
            except Exception:  # a bug here must not leave every stream of the process silent for good
                log.exception("live hub failed; restarting it")
                time.sleep(backoff)
            finally:
                with contextlib.suppress(redis.RedisError):
                    pubsub.close()

    def receive(self, channel: bytes, data: bytes) -> None:
        """A message that is not flask-sse's format (someone else publishing) is dropped, not fatal."""
        try:
            event = frame(data)
        except (ValueError, TypeError):
            log.warning("live hub: dropped a malformed message on %r", channel)
            return
        self.deliver(channel.decode(), event)


def get_hub() -> Hub:
    """The process's Hub, made on first use (it starts listening with its first stream)."""
    extensions = current_app.extensions
    if "sse_hub" not in extensions:
        extensions["sse_hub"] = Hub(get_redis())
    return extensions["sse_hub"]


def event_stream(channel: str, first_event: Callable[[], str | None], expires_at: float) -> Response:
    """An SSE response for a server-chosen channel: `retry:`, then `first_event()` at once (a framed event, or
    None), then every event published on `channel`, comment heartbeats, and the end at `expires_at`."""
    hub = get_hub()
    heartbeat = float(current_app.config["SSE_HEARTBEAT_SECONDS"])
    retry_ms = int(current_app.config["SSE_RETRY_MS"])
    connection = get_redis()
    claims = dict(get_jwt())  # captured here: the re-checks below need no request context

    def revoked() -> bool:
        """Logout, a deleted (or replaced) user, a revoked API token: checked once a heartbeat, one round trip.
        Redis unavailable ends nothing (the stream resumes with it), as for the Hub."""
        try:
            return not still_authorized(connection, claims)
        except redis.RedisError:
            return False

    @stream_with_context
    def events() -> Iterator[str]:
        # Subscribed when the body is first read, not when the response is made: a HEAD (or a client gone before
        # the first read) never runs this generator, so its `finally` could not release the inbox. Still before
        # `first_event()`, so that nothing published after that snapshot is missed.
        inbox = hub.subscribe(channel)
        try:
            yield f"retry: {retry_ms}\n\n"
            try:
                first = first_event()
            except redis.RedisError:
                first = None
            if first:
                yield first
            next_check = time.time() + heartbeat
            while True:
                now = time.time()
                remaining = expires_at - now
                if remaining <= 0:  # EventSource reconnects, and re-authenticates (or is sent to log in)
                    yield ": the access token has expired\n\n"
                    return
                if now >= next_check:  # by the clock, not by idle periods: busy streams are checked too
                    if revoked():
                        yield ": the session has ended\n\n"
                        return
                    next_check = now + heartbeat
                try:
                    yield inbox.get(timeout=max(0.0, min(heartbeat, remaining, next_check - now)))
                except queue.Empty:
                    yield ": keep-alive\n\n"
        finally:
            hub.unsubscribe(channel, inbox)

    response = Response(events(), mimetype="text/event-stream")  # type: ignore[call-arg]
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def snapshot_event(connection: redis.Redis, key: str, compute: Callable[[], Any]) -> str:
    """The latest published document as an event; computed on the spot when nothing was published yet."""
    published = connection.get(key)
    return frame(published if published is not None else wire(compute()))
