"""The live publisher: every tick, ONE process of the deployment computes the live documents and publishes them.

Each web process runs a publisher thread (a greenlet under gunicorn + gevent); at every tick boundary they race
for that tick's lock (`SET NX` on a per-tick key with a short TTL), so exactly one publishes each tick, and when it
dies another wins the very next tick. `flask --app app monitor publish` runs the same loop as its own process.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from typing import Any

import redis
from flask import Flask

from app.domain import keys
from app.domain.metrics import get_metrics
from app.domain.snapshots import get_queue_snapshot
from app.sse import wire

log = logging.getLogger(__name__)

SNAPSHOT_TTL_TICKS = 5  # a snapshot older than this many ticks is not worth sending as a first event


class Publisher:
    def __init__(self, connection: redis.Redis, tick_seconds: float, thresholds: tuple[int, ...]):
        self.connection = connection
        self.tick_seconds = tick_seconds
        self.thresholds = thresholds
        # Who holds a tick's lock, readable by operators: host, process, and a random part for uniqueness.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopped = threading.Event()
        self.published_ticks = 0

    def current_tick(self, now: float) -> int:
        return int(now // self.tick_seconds)

    def claim(self, tick: int) -> bool:
        lock_ttl_ms = int(self.tick_seconds * 3000)
        return bool(self.connection.set(keys.live_tick_lock(tick), self.owner, nx=True, px=lock_ttl_ms))

    def publish(self, now: float) -> dict[str, Any]:
        """Compute and publish this tick's documents (the caller holds the tick's lock)."""
        metrics = get_metrics(self.connection, now)
        ttl = max(1, math.ceil(self.tick_seconds * SNAPSHOT_TTL_TICKS))
        queue_channels = [keys.live_channel(q["queueName"]) for q in metrics["queues"]]
        with self.connection.pipeline(transaction=False) as pipe:
            message = wire(metrics)
            pipe.set(keys.live_snapshot(), message, ex=ttl)
            pipe.publish(keys.live_channel(), message)
            if queue_channels:
                pipe.pubsub_numsub(*queue_channels)
            results = pipe.execute()
        watched = {channel.decode() for channel, count in (results[2] if queue_channels else []) if count}
        with self.connection.pipeline(transaction=False) as pipe:
            for entry in metrics["queues"]:
                name = entry["queueName"]
                if keys.live_channel(name) in watched or entry["active"]:
                    snapshot = wire(get_queue_snapshot(self.connection, name, self.thresholds, now, entry))
                    pipe.set(keys.live_snapshot(name), snapshot, ex=ttl)
                    pipe.publish(keys.live_channel(name), snapshot)
            pipe.execute()
        self.published_ticks += 1
        return metrics

    def tick(self, now: float | None = None) -> bool:
        """Publish this tick if this process wins it; never raises for Redis being away."""
        now = time.time() if now is None else now
        try:
            if not self.claim(self.current_tick(now)):
                return False
            self.publish(now)
            return True
        except redis.RedisError as exc:
            log.warning("live publisher: Redis unavailable (%s); retrying next tick", exc)
            return False

    def run(self) -> None:
        while not self.stopped.is_set():
            next_boundary = (self.current_tick(time.time()) + 1) * self.tick_seconds
            if self.stopped.wait(max(0.0, next_boundary - time.time())):
                return
            try:
                self.tick(next_boundary)
            except Exception:  # a bug in one tick must not end live updates for good
                log.exception("live publisher: tick failed")

    def stop(self) -> None:
        self.stopped.set()


def make_publisher(app: Flask) -> Publisher:
    return Publisher(
        app.extensions["redis"],
        float(app.config["LIVE_TICK_SECONDS"]),
        tuple(app.config["STUCK_THRESHOLDS_MINUTES"]),
    )


def init_live(app: Flask) -> None:
    """Start this process's publisher on its first request (after gunicorn forked it), never for CLI commands."""
    if not app.config["LIVE_PUBLISHER_ENABLED"]:
        return
    started = threading.Lock()

    @app.before_request
    def _start_publisher() -> None:
        if "live_publisher" in app.extensions or not started.acquire(blocking=False):
            return
        publisher = make_publisher(app)
        app.extensions["live_publisher"] = publisher
        threading.Thread(target=publisher.run, name="live-publisher", daemon=True).start()
