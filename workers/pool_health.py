"""A pool's health (`rq-monitor-pool`): the document, the `--health-port` server, and the `health` subcommand (a
container probe reading the pools' registrations)."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import psutil
import redis

from app.domain import pools

if TYPE_CHECKING:
    from workers.pool import MonitoredPool


def health(pool: MonitoredPool) -> dict[str, Any]:
    """The pool's health document (its heartbeat's, the `--health-port`'s)."""
    try:
        redis_connected = bool(pool.connection.ping())
    except redis.RedisError:
        redis_connected = False
    alive = sum(1 for data in pool.worker_dict.values() if data.process.is_alive())
    used = sum(pool.rss.values())  # the children, each with its work horse (sampled at every heartbeat)
    limit = pool.memory_limit_mb
    total = limit * pool.num_workers if limit else psutil.virtual_memory().total / 1048576
    return {
        "healthy": redis_connected and alive > 0 and pool.status != pool.Status.STOPPED,
        "totalWorkers": pool.num_workers,
        "activeWorkers": alive,
        "memoryUsage": {
            "used": round(used, 1),
            "total": round(total, 1),
            "percentUsed": round(100 * used / total, 1),
        },
        "redisConnected": redis_connected,
        "uptime": round(time.time() - pool.started_at, 1),
    }


def serve_health(pool: MonitoredPool, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """`--health-port`: GET anything -> the health JSON, 200 when healthy, else 503 (served by a daemon thread)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            document = pool.health()
            body = json.dumps(document).encode()
            self.send_response(200 if document["healthy"] else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def health_command(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="rq-monitor-pool health", description="exit 0 when the pool is healthy")
    parser.add_argument("--url", "-u", default=os.environ.get("REDIS_URL") or "redis://localhost:6379/0")
    parser.add_argument("--pool", default=None, help="the pool's name (default: every registered pool)")
    args = parser.parse_args(argv)
    try:
        report = pools.pool_health(redis.Redis.from_url(args.url, socket_timeout=5), args.pool)
    except redis.RedisError as exc:
        report = {"healthy": False, "redisConnected": False, "error": str(exc)}
    print(json.dumps(report))
    return 0 if report["healthy"] else 1
