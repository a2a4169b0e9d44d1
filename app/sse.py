"""Server-Sent Events over Redis pub/sub, framed with flask-sse's `Message` (the only part of flask-sse we use):

- one pub/sub connection per process (the Hub), fanned out in memory to every open stream, instead of one
  Redis connection per client; it uses the app's shared connection pool;
- the channel is chosen by the server from the validated route, never by a `?channel=` from the client: any
  blueprint serves its own stream route with `event_stream(channel, first_event, expires_at)`;
- the first event is sent at once (the latest published snapshot), a comment heartbeat keeps idle connections
  open, `retry:` makes clients reconnect quickly, and the stream ends when the access token expires or, checked
  at every heartbeat, is revoked (logout, its user deleted);
- Redis going away closes nothing: the Hub reconnects and streams resume with the next tick;
- a client that accepts it gets the stream deflated (`Content-Encoding: deflate`, RFC 1950): each event is
  framed, encoded and compressed ONCE per process and the same bytes go to every such client (a 1,000-worker
  overview is 640 KB of JSON a tick, 20 KB deflated), each client's stream only keeping its running checksum.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from functools import cached_property, lru_cache
from typing import Any

import orjson
import redis
from flask import Response, current_app, request, stream_with_context
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
    """A published message as an unnamed SSE event."""
    return str(Message(**json.loads(wire_message)))


class Event:
    """A framed SSE event as sent: its bytes, and (made on first need, once per process) the same bytes deflated as
    one self-contained piece of a zlib stream (a fresh compressor, flushed to a byte boundary: it can follow any
    other piece) with their Adler-32, so that a client's stream appends it without compressing anything."""

    def __init__(self, text: bytes):
        self.text = text

    @cached_property
    def deflated(self) -> bytes:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        return compressor.compress(self.text) + compressor.flush(zlib.Z_SYNC_FLUSH)

    @cached_property
    def adler(self) -> int:
        return zlib.adler32(self.text)


# What `framed` raises for a message that is not flask-sse's format (someone else's publish or write).
MALFORMED = (ValueError, TypeError, RecursionError)


@lru_cache(maxsize=8)  # a tick's message reaches the Hub and every first event: framed once per process
def framed(wire_message: bytes | str) -> Event:
    """A published message as an Event (one of MALFORMED when it is not flask-sse's format)."""
    return Event(frame(wire_message).encode())


@lru_cache(maxsize=64)
def comment(text: str) -> Event:
    """A fixed line (`retry:`, a comment): the same Event for every stream."""
    return Event(text.encode())


ADLER_BASE = 65521  # the largest prime below 2**16 (RFC 1950)


def adler32_combine(adler1: int, adler2: int, length2: int) -> int:
    """The Adler-32 of A + B from those of A and of B (zlib's adler32_combine): O(1) per event per client."""
    remainder = length2 % ADLER_BASE
    sum1 = adler1 & 0xFFFF
    sum2 = (remainder * sum1) % ADLER_BASE
    sum1 = (sum1 + (adler2 & 0xFFFF) + ADLER_BASE - 1) % ADLER_BASE
    sum2 = (sum2 + (adler1 >> 16) + (adler2 >> 16) + ADLER_BASE - remainder) % ADLER_BASE
    return sum1 | (sum2 << 16)


class DeflateStream:
    """One client's `Content-Encoding: deflate` body: the zlib header, shared deflated events, and at a normal end
    an empty final block and the Adler-32 of everything sent (computed from the events', never over the bytes)."""

    HEADER = b"\x78\x9c"  # deflate, 32 KiB window, default level; a valid check value
    FINAL_BLOCK = b"\x03\x00"  # an empty, final, fixed-Huffman block

    def __init__(self) -> None:
        self.adler = 1  # Adler-32 of nothing

    def piece(self, event: Event) -> bytes:
        self.adler = adler32_combine(self.adler, event.adler, len(event.text))
        return event.deflated

    def end(self) -> bytes:
        return self.FINAL_BLOCK + self.adler.to_bytes(4, "big")


def accepts_deflate() -> bool:
    """Whether the request's Accept-Encoding allows deflate (absent or q=0: no)."""
    return request.accept_encodings["deflate"] > 0


class Hub:
    """One pub/sub subscription per process; streams register a local queue per channel."""

    def __init__(self, connection: redis.Redis):
        self.connection = connection
        self.lock = threading.Lock()
        self.listeners: dict[str, set[queue.Queue[Event]]] = {}
        self.latest: dict[str, tuple[float, Event]] = {}  # channel -> (received at, its last event)
        self.started = False

    def subscribe(self, channel: str) -> queue.Queue[Event]:
        inbox: queue.Queue[Event] = queue.Queue(maxsize=CLIENT_BACKLOG)
        with self.lock:
            self.listeners.setdefault(channel, set()).add(inbox)
            if not self.started:
                self.started = True
                threading.Thread(target=self.run, name="sse-hub", daemon=True).start()
        return inbox

    def unsubscribe(self, channel: str, inbox: queue.Queue[Event]) -> None:
        with self.lock:
            inboxes = self.listeners.get(channel, set())
            inboxes.discard(inbox)
            if not inboxes:
                self.listeners.pop(channel, None)
                self.latest.pop(channel, None)

    def channels(self) -> set[str]:
        with self.lock:
            return set(self.listeners)

    def recent(self, channel: str, max_age: float) -> Event | None:
        """The last event received on `channel` if at most `max_age` seconds old: a new stream's first event
        without reading (and hashing) the snapshot from Redis - 1,000 streams reconnecting at once after a restart
        would read 1,000 copies of a 640 KB document."""
        with self.lock:
            received_at, event = self.latest.get(channel, (0.0, None))
        return event if time.monotonic() - received_at <= max_age else None

    def deliver(self, channel: str, event: Event) -> None:
        with self.lock:
            if channel in self.listeners:
                self.latest[channel] = (time.monotonic(), event)
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
            event = framed(data)
        except MALFORMED:
            log.warning("live hub: dropped a malformed message on %r", channel)
            return
        self.deliver(channel.decode(), event)


def get_hub() -> Hub:
    """The process's Hub, made on first use (it starts listening with its first stream)."""
    extensions = current_app.extensions
    if "sse_hub" not in extensions:
        extensions["sse_hub"] = Hub(get_redis())
    return extensions["sse_hub"]


def event_stream(channel: str, first_event: Callable[[], Event | None], expires_at: float) -> Response:
    """An SSE response for a server-chosen channel: `retry:`, then `first_event()` at once (an Event, or None),
    then every event published on `channel`, comment heartbeats, and the end at `expires_at`; deflated for a
    client that accepts it."""
    hub = get_hub()
    deflate = accepts_deflate()
    heartbeat = float(current_app.config["SSE_HEARTBEAT_SECONDS"])
    tick_seconds = float(current_app.config["LIVE_TICK_SECONDS"])
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
    def events() -> Iterator[bytes]:
        # Subscribed when the body is first read, not when the response is made: a HEAD (or a client gone before
        # the first read) never runs this generator, so its `finally` could not release the inbox. Still before
        # `first_event()`, so that nothing published after that snapshot is missed.
        inbox = hub.subscribe(channel)
        body = DeflateStream() if deflate else None

        def send(event: Event, last: bool = False) -> bytes:
            if body is None:
                return event.text
            return body.piece(event) + body.end() if last else body.piece(event)

        try:
            opening = send(comment(f"retry: {retry_ms}\n\n"))
            yield DeflateStream.HEADER + opening if body is not None else opening
            try:
                first = hub.recent(channel, tick_seconds) or first_event()
            except redis.RedisError:
                first = None
            if first:
                yield send(first)
            next_check = time.time() + heartbeat
            while True:
                now = time.time()
                remaining = expires_at - now
                if remaining <= 0:  # EventSource reconnects, and re-authenticates (or is sent to log in)
                    yield send(comment(": the access token has expired\n\n"), last=True)
                    return
                if now >= next_check:  # by the clock, not by idle periods: busy streams are checked too
                    if revoked():
                        yield send(comment(": the session has ended\n\n"), last=True)
                        return
                    next_check = now + heartbeat
                try:
                    yield send(inbox.get(timeout=max(0.0, min(heartbeat, remaining, next_check - now))))
                except queue.Empty:
                    yield send(comment(": keep-alive\n\n"))
        finally:
            hub.unsubscribe(channel, inbox)

    response = Response(events(), mimetype="text/event-stream")  # type: ignore[call-arg]
    response.headers["Cache-Control"] = "no-cache, no-transform"
    response.headers["X-Accel-Buffering"] = "no"
    response.headers["Vary"] = "Accept-Encoding"
    if deflate:
        response.headers["Content-Encoding"] = "deflate"
    return response


def snapshot_event(connection: redis.Redis, key: str, compute: Callable[[], Any]) -> Event:
    """The latest published document as an event (the same Event as the tick's message: framed and compressed once
    however many clients connect); computed on the spot when nothing (readable) was published yet."""
    published = connection.get(key)
    if published is not None:
        try:
            return framed(published)
        except MALFORMED:  # not what the ticker writes (another program's value): computed as if none
            pass
    return Event(frame(wire(compute())).encode())
