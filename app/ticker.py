"""The ticker: every tick, ONE process of the deployment publishes every registered feed and runs every tick task.

Each web process runs a ticker thread (a greenlet under gunicorn + gevent); at every tick boundary they race for
that tick's lock (`SET NX` on a per-tick key with a short TTL), so exactly one works each tick, and when it dies
another wins the very next tick. `flask --app app monitor publish` runs the same loop as its own process;
`LIVE_PUBLISHER_ENABLED=false` keeps the web processes out of the election.

Registering (at set-up, before the first request: in `create_app` or a blueprint's `record_once`):

    from app.ticker import Feed, register_feed, register_task

    register_feed(app, Feed(
        name="workers",
        channel=lambda subject: keys.workers_channel(),        # pub/sub channel of a subject's document
        snapshot_key=lambda subject: keys.workers_snapshot(),  # where the latest document waits for new streams
        compute=lambda tick, subject: get_overview(tick.connection, tick.now),
    ))
    register_task(app, "stalled-jobs", lambda tick: recover_stalled(tick.connection, tick.now))

- A feed without `subjects` publishes one document per tick (subject None). With `subjects(tick) -> names`, it
  publishes one document per subject (the `queue` feed: one per queue).
- `needs_watchers=True`: a subject's document is computed only while a stream listens on its channel (one
  `PUBSUB NUMSUB` for all of them, in the round trip that publishes the other feeds).
- `tick.once(name, compute)` shares one computation between the feeds and tasks of a tick (the queue documents
  reuse the tick's metrics); `tick.config` is the app's configuration (thresholds and other settings).
- Tasks run after publishing, in registration order; each is given the `Tick`. An exception in a feed or a
  task is logged and the others still run; the stream helper is `app.sse.event_stream`.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Flask
from flask.sansio.app import App

from app.domain import keys
from app.sse import wire

log = logging.getLogger(__name__)

SNAPSHOT_TTL_TICKS = 5  # a snapshot older than this many ticks is not worth sending as a first event


@dataclass
class Tick:
    """What a feed or task of one tick is given: the connection, the tick's time, the settings, shared results."""

    connection: redis.Redis
    now: float
    config: Mapping[str, Any]
    shared: dict[str, Any] = field(default_factory=dict)

    def once(self, name: str, compute: Callable[[], Any]) -> Any:
        if name not in self.shared:
            self.shared[name] = compute()
        return self.shared[name]


@dataclass(frozen=True)
class Feed:
    """What one area computes and publishes every tick."""

    name: str
    channel: Callable[[str | None], str]
    snapshot_key: Callable[[str | None], str]
    compute: Callable[[Tick, str | None], Any]
    subjects: Callable[[Tick], list[str]] | None = None
    needs_watchers: bool = False


@dataclass(frozen=True)
class Task:
    name: str
    run: Callable[[Tick], Any]


@dataclass
class Registry:
    feeds: list[Feed] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)


def registry_of(app: App) -> Registry:
    return app.extensions.setdefault("ticker_registry", Registry())


def register_feed(app: App, feed: Feed) -> None:
    registry = registry_of(app)
    if any(known.name == feed.name for known in registry.feeds):
        raise ValueError(f"a feed named {feed.name!r} is already registered")
    registry.feeds.append(feed)


def register_task(app: App, name: str, run: Callable[[Tick], Any]) -> None:
    registry = registry_of(app)
    if any(known.name == name for known in registry.tasks):
        raise ValueError(f"a tick task named {name!r} is already registered")
    registry.tasks.append(Task(name, run))


class Ticker:
    def __init__(
        self,
        connection: redis.Redis,
        tick_seconds: float,
        feeds: list[Feed] | tuple[Feed, ...] = (),
        tasks: list[Task] | tuple[Task, ...] = (),
        config: Mapping[str, Any] | None = None,
    ):
        self.connection = connection
        self.tick_seconds = tick_seconds
        self.feeds = list(feeds)
        self.tasks = list(tasks)
        self.config = config or {}
        # Who holds a tick's lock, readable by operators: host, process, and a random part for uniqueness.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopped = threading.Event()
        self.published_ticks = 0

    def current_tick(self, now: float) -> int:
        return int(now // self.tick_seconds)

    def claim(self, tick: int) -> bool:
        lock_ttl_ms = int(self.tick_seconds * 3000)
        return bool(self.connection.set(keys.live_tick_lock(tick), self.owner, nx=True, px=lock_ttl_ms))

    def _documents(self, tick: Tick, feed: Feed, subjects: list[str | None]) -> list[tuple[str | None, str]]:
        """(subject, wire message) of each subject whose document computes; a failing one is logged, skipped."""
        documents = []
        for subject in subjects:
            try:
                documents.append((subject, wire(feed.compute(tick, subject))))
            except redis.RedisError:
                raise
            except Exception:
                log.exception("ticker: feed %r failed this tick for %r", feed.name, subject)
        return documents

    def _subjects(self, tick: Tick, feed: Feed) -> list[str | None]:
        try:
            return list(feed.subjects(tick)) if feed.subjects else [None]
        except redis.RedisError:
            raise
        except Exception:
            log.exception("ticker: subjects of feed %r failed this tick", feed.name)
            return []

    def publish(self, now: float) -> Tick:
        """Compute and publish this tick's documents (the caller holds the tick's lock): one round trip for every
        document that is always published and the watcher counts, one more only when someone watches."""
        tick = Tick(self.connection, now, self.config)
        ttl = max(1, math.ceil(self.tick_seconds * SNAPSHOT_TTL_TICKS))
        watchable: list[tuple[Feed, str | None]] = []
        with self.connection.pipeline(transaction=False) as pipe:
            for feed in self.feeds:
                subjects = self._subjects(tick, feed)
                if feed.needs_watchers:
                    watchable += [(feed, subject) for subject in subjects]
                    continue
                for subject, message in self._documents(tick, feed, subjects):
                    pipe.set(feed.snapshot_key(subject), message, ex=ttl)
                    pipe.publish(feed.channel(subject), message)
            channels = [feed.channel(subject) for feed, subject in watchable]
            if channels:
                pipe.pubsub_numsub(*channels)
            results = pipe.execute()
        watchers = dict(results[-1]) if channels else {}
        watched: dict[Feed, list[str | None]] = {}
        for feed, subject in watchable:
            if watchers.get(feed.channel(subject).encode()):
                watched.setdefault(feed, []).append(subject)
        if watched:
            with self.connection.pipeline(transaction=False) as pipe:
                for feed, subjects in watched.items():
                    for subject, message in self._documents(tick, feed, subjects):
                        pipe.set(feed.snapshot_key(subject), message, ex=ttl)
                        pipe.publish(feed.channel(subject), message)
                pipe.execute()
        self.published_ticks += 1
        return tick

    def run_tasks(self, tick: Tick) -> None:
        for task in self.tasks:
            try:
                task.run(tick)
            except Exception:  # one task failing must not stop the others, nor the next tick
                log.exception("ticker: task %r failed", task.name)

    def tick(self, now: float | None = None) -> bool:
        """Publish this tick and run its tasks if this process wins it; never raises for Redis being away."""
        now = time.time() if now is None else now
        try:
            if not self.claim(self.current_tick(now)):
                return False
            tick = self.publish(now)
        except redis.RedisError as exc:
            log.warning("ticker: Redis unavailable (%s); retrying next tick", exc)
            return False
        self.run_tasks(tick)
        return True

    def run(self) -> None:
        while not self.stopped.is_set():
            next_boundary = (self.current_tick(time.time()) + 1) * self.tick_seconds
            if self.stopped.wait(max(0.0, next_boundary - time.time())):
                return
            try:
                self.tick(next_boundary)
            except Exception:  # a bug in one tick must not end live updates for good
                log.exception("ticker: tick failed")

    def stop(self) -> None:
        self.stopped.set()


def make_ticker(app: Flask) -> Ticker:
    registry = registry_of(app)
    return Ticker(
        app.extensions["redis"], float(app.config["LIVE_TICK_SECONDS"]), registry.feeds, registry.tasks, app.config
    )


def init_ticker(app: Flask) -> None:
    """Start this process's ticker on its first request (after gunicorn forked it), never for CLI commands."""
    if not app.config["LIVE_PUBLISHER_ENABLED"]:
        return
    started = threading.Lock()

    @app.before_request
    def _start_ticker() -> None:
        if "ticker" in app.extensions or not started.acquire(blocking=False):
            return
        ticker = make_ticker(app)
        app.extensions["ticker"] = ticker
        threading.Thread(target=ticker.run, name="ticker", daemon=True).start()
