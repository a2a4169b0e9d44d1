"""SSE fan-out: N concurrent clients of /api/v1/admin/jobs/live on ONE gunicorn gevent worker.

For 1, 100 and 1,000 clients: does every client receive every tick, the p99 delivery lag (client read time minus
the tick the document was computed for, which is its `timestamp`), the web worker's RSS, and Redis commands per
tick (INFO commandstats), which must not grow with the number of clients. Budget: p99 lag <= 300 ms.
Clients ask for `Accept-Encoding: gzip, deflate, br` as browsers do (the stream comes deflated), or not with
`--identity`; every client reads every byte of every event; 10 of them inflate and JSON-decode everything, the
others only each event's head (see `client`).
`python bench/sse_bench.py [--clients 1,100,1000] [--ticks 5] [--identity]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import sys
import time
import zlib
from datetime import datetime
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.domain import users  # noqa: E402
from app.domain.users import Role  # noqa: E402
from app.embedded_redis import free_port, start_private_redis  # noqa: E402
from app.launcher import start_web, wait_for_web  # noqa: E402

SECRET = "bench-secret-key-that-is-long-enough-for-hs256"
STREAM = "/api/v1/admin/jobs/live"
CHECKING_CLIENTS = 10  # inflate and JSON-decode every event they receive


TIMESTAMP = re.compile(rb'"timestamp":\s*"([^"]+)"')


def timestamp_of(line: bytes) -> str:
    """The event's `timestamp`, read from its head: every client reads every byte of every event, but JSON-decoding
    1,000 copies of a 648 KB document per tick on the server's own 2 cores would measure the clients, not the server
    (a browser decodes its one copy on its own machine)."""
    found = TIMESTAMP.search(line, 0, 256)
    return found.group(1).decode() if found else json.loads(line[5:])["timestamp"]


async def client(
    port: int,
    token: str,
    received: list[tuple[float, str]],
    connected: asyncio.Event,
    path: str = STREAM,
    deflate: bool = True,
    check: bool = True,
) -> None:
    """One EventSource. It asks for deflate as browsers do (unless --identity) and reads every byte of every event
    (de-chunked: the server writes an event as one chunk). A checking client inflates the whole stream and
    JSON-decodes every event; the others inflate only an event's head to read its timestamp (each deflated event
    is self-contained), as inflating 1,000 copies on the server's own 2 cores would measure the clients."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    accept = "Accept-Encoding: gzip, deflate, br\r\n" if deflate else ""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n"
    writer.write(f"{request}{accept}\r\n".encode())
    await writer.drain()
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        assert b"transfer-encoding: chunked" in head, head
        deflated = b"content-encoding: deflate" in head
        assert deflated == deflate, head
        inflater = zlib.decompressobj()
        pending, first = b"", True
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                return
            chunk = (await reader.readexactly(size + 2))[:-2]
            if deflated and not check:  # the event's head only
                piece = chunk[2:] if first else chunk  # the first chunk opens with the zlib header
                first = False
                event = zlib.decompressobj(-zlib.MAX_WBITS).decompress(piece, 256)
                if event.startswith(b"data:"):
                    received.append((time.time(), timestamp_of(event)))
                    connected.set()
                continue
            pending += inflater.decompress(chunk) if deflated else chunk
            while (end := pending.find(b"\n\n")) >= 0:
                event, pending = pending[:end], pending[end + 2 :]
                if event.startswith(b"data:"):
                    stamp = json.loads(event[len(b"data:") :])["timestamp"] if check else timestamp_of(event)
                    received.append((time.time(), stamp))
                    connected.set()
    finally:
        writer.close()


def worker_rss_mb(master_pid: int) -> float:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    for line in Path(f"/proc/{children[0]}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_cpu_seconds(master_pid: int) -> float:
    """CPU time (user + system) of the gunicorn worker so far."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    fields = Path(f"/proc/{children[0]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def commands(connection: redis.Redis) -> int:
    stats = connection.info("commandstats")
    return sum(int(value["calls"]) for name, value in stats.items() if name != "cmdstat_info")


async def measure(
    port: int,
    token: str,
    count: int,
    ticks: int,
    connection: redis.Redis,
    master: int,
    path: str = STREAM,
    deflate: bool = True,
) -> str:
    streams = [[] for _ in range(count)]
    events = [asyncio.Event() for _ in range(count)]
    tasks = [
        asyncio.create_task(client(port, token, streams[i], events[i], path, deflate, check=i < CHECKING_CLIENTS))
        for i in range(count)
    ]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in events)), timeout=60)
    await asyncio.sleep(2.0 - time.time() % 2.0 + 0.5)  # start just after a tick
    for stream in streams:
        stream.clear()
    before, started = commands(connection), time.time()
    server_cpu, client_cpu = worker_cpu_seconds(master), time.process_time()
    await asyncio.sleep(ticks * 2.0)
    server_cpu, client_cpu = worker_cpu_seconds(master) - server_cpu, time.process_time() - client_cpu
    elapsed_ticks = (time.time() - started) / 2.0
    after = commands(connection)
    rss = worker_rss_mb(master)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    published = {stamp for stream in streams for _, stamp in stream}
    complete = sum(1 for stream in streams if {stamp for _, stamp in stream} >= published)
    lags = sorted(
        (received - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()) * 1000
        for stream in streams
        for received, stamp in stream
    )
    p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else float("nan")
    p50 = lags[len(lags) // 2] if lags else float("nan")
    verdict = "PASS" if complete == count and p99 <= 300 else "FAIL"
    return (
        f"{count:>7} {len(published):>6} {complete:>9}/{count:<5} {p50:8.1f} {p99:8.1f} {rss:8.1f} "
        f"{(after - before) / elapsed_ticks:10.1f} {1000 * server_cpu / elapsed_ticks:12.0f} "
        f"{1000 * client_cpu / elapsed_ticks:12.0f}  {verdict}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", default="1,100,1000")
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--path", default=STREAM, help="the stream, e.g. /api/v1/workers/live-stream")
    parser.add_argument("--workers", type=int, default=0, help="workers registered (bench/workers_bench.seed)")
    parser.add_argument("--identity", action="store_true", help="clients that do not accept deflate")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    redis_process, url = start_private_redis()
    connection = redis.Redis.from_url(url)
    users.create_user(connection, "bench", "bench-password", Role.MODERATOR)
    for index in range(10):  # a few queues so the document has some weight
        connection.sadd("rqmon:queues", f"sse-{index}")
    if args.workers:
        from bench.workers_bench import seed as seed_workers

        seed_workers(connection, args.workers)
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": url,
        "JWT_SECRET_KEY": SECRET,
        "RQMON_ENV": "production",
        "JWT_ACCESS_TOKEN_EXPIRES": "3600",
    }
    web = start_web(env, port, worker_connections=4000, cwd=ROOT)
    try:
        wait_for_web(port, web)
        token = requests.post(
            f"http://127.0.0.1:{port}/api/v1/auth/login",
            json={"username": "bench", "password": "bench-password"},
            timeout=10,
        ).json()["access_token"]
        print(f"{args.path}: one gunicorn gevent worker, tick 2 s, {args.ticks} ticks per run\n")
        print(
            f"{'clients':>7} {'ticks':>6} {'got all':>15} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>8} {'cmds/tick':>10}"
            f" {'web CPU ms/t':>12} {'clients ms/t':>12}"
        )
        for count in (int(part) for part in args.clients.split(",")):
            print(
                asyncio.run(measure(port, token, count, args.ticks, connection, web.pid, args.path, not args.identity)),
                flush=True,
            )
    finally:
        web.terminate()
        web.wait(timeout=10)
        redis_process.terminate()
        redis_process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
