"""What an audit entry adds to an action: the same admin action (PATCH .../pause) through the app in-process with
the audit hook and without it, alternating request by request, plus the audit write alone (XADD MAXLEN ~ and
XTRIM MINID, one pipelined round trip) on a stream already at its cap of 100,000 entries. Budget: <= 0.5 ms.

    .venv/bin/python bench/audit_bench.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rq import Queue

from app import create_app
from app.auditing import record_request
from app.domain import audit, keys, users
from app.domain.users import Role
from bench._common import SECRET, private_redis

BUDGET_MS = 0.5


def fill_to_cap(connection) -> None:  # type: ignore[no-untyped-def]
    """A full log: AUDIT_CAP entries shaped like real ones, so every write also trims."""
    fields = {
        "actor": "bench",
        "role": "admin",
        "action": "queue.pause",
        "target": "q",
        "params": "{}",
        "status": "200",
        "address": "127.0.0.1",
    }
    for _ in range(keys.AUDIT_CAP // 1000):
        with connection.pipeline(transaction=False) as pipe:
            for _ in range(1000):
                pipe.xadd(keys.AUDIT, fields)
            pipe.execute()


def make_app(url: str, audited: bool):  # type: ignore[no-untyped-def]
    app = create_app(
        {
            "REDIS_URL": url,
            "JWT_SECRET_KEY": SECRET,
            "LIVE_PUBLISHER_ENABLED": False,
            "TESTING": True,
            "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",
        }
    )
    app.instance_path = tempfile.mkdtemp(prefix="rqmon-audit-bench-")
    hooks = app.after_request_funcs[None]
    position = hooks.index(record_request)
    if audited:  # the same hook, timed: what it adds to each action, apart from the noise of the whole request
        hooks[position] = timed_hook
    else:
        del hooks[position]
    return app


HOOK_MS: list[float] = []


def timed_hook(response):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = record_request(response)
    HOOK_MS.append((time.perf_counter() - start) * 1000)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    rounds = parser.parse_args().rounds
    with private_redis("rqmon-audit-bench-") as (url, connection):
        fill_to_cap(connection)
        Queue("bench-q", connection=connection).enqueue("workers.tasks.add", 1, 2)
        users.create_user(connection, "bench-admin", "bench-password", Role.ADMIN, "pbkdf2:sha256:1")
        clients = {name: make_app(url, name == "with").test_client() for name in ("with", "without")}
        token = (
            clients["with"]
            .post("/api/v1/auth/login", json={"username": "bench-admin", "password": "bench-password"})
            .get_json()["access_token"]
        )
        headers = {"Authorization": f"Bearer {token}"}
        times: dict[str, list[float]] = {"with": [], "without": []}
        for index in range(rounds + 50):
            for name in ("with", "without") if index % 2 else ("without", "with"):
                start = time.perf_counter()
                response = clients[name].patch("/api/v1/admin/jobs/queue/bench-q/pause", headers=headers)
                elapsed = time.perf_counter() - start
                assert response.status_code == 200
                if index >= 50:  # warm-up: connections open, scripts loaded
                    times[name].append(elapsed * 1000)
        writes = []
        for _ in range(rounds):
            start = time.perf_counter()
            audit.record(
                connection,
                actor="bench-admin",
                role="admin",
                action="queue.pause",
                target="bench-q",
                params={"type": "all"},
                status=200,
                address="127.0.0.1",
            )
            writes.append((time.perf_counter() - start) * 1000)
        length = connection.xlen(keys.AUDIT)
    hook = statistics.median(HOOK_MS[-rounds:])
    with_ms, without_ms = statistics.median(times["with"]), statistics.median(times["without"])
    extra = with_ms - without_ms
    write = statistics.median(writes)
    print(f"action PATCH /queue/<q>/pause, {rounds} rounds each, interleaved, median:")
    print(f"  with audit {with_ms:.3f} ms, without {without_ms:.3f} ms: extra {extra:.3f} ms")
    print(f"  the audit hook itself (params, redaction, the write), timed inside the request: median {hook:.3f} ms")
    print(
        f"audit write alone (XADD MAXLEN ~ + XTRIM MINID, one round trip, full log): median {write:.3f} ms, "
        f"p95 {statistics.quantiles(writes, n=20)[-1]:.3f} ms; log length after: {length}"
    )
    verdict = "PASS" if max(extra, hook) <= BUDGET_MS else "FAIL"
    print(f"budget <= {BUDGET_MS} ms: {verdict}")


if __name__ == "__main__":
    main()
