"""app.domain.workers against a real redis-server: both RQ layouts, plain and monitored workers, liveness per
WORKERS.md, round trips, and removing stale workers (hashes written as RQ and MonitoredWorker write them)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
import redis.connection
from redis import Redis
from rq import Queue
from rq.job import JobStatus
from rq.utils import utcformat

from app.domain import pools
from app.domain import workers as registry
from app.domain.errors import WorkerNotFound, WorkerNotStale
from app.domain.stalled import STALLED_COUNTER
from tests.helpers import make_active_job

NOW = time.time()


def rq_time(seconds_ago: float) -> str:
    return utcformat(datetime.fromtimestamp(NOW - seconds_ago, UTC).replace(tzinfo=None))


def register(
    connection: Redis,
    name: str,
    heartbeat_ago: float,
    *,
    monitored: bool = True,
    ttl: int | None = 480,
    queues: str = "dq",
    **fields: str,
) -> None:
    """A worker hash as RQ (plus MonitoredWorker's fields) writes it, with the TTL its last heartbeat set."""
    key = registry.WORKER_PREFIX + name
    mapping = {
        "birth": rq_time(heartbeat_ago + 3600),
        "last_heartbeat": rq_time(heartbeat_ago),
        "queues": queues,
        "pid": "4242",
        "hostname": "host-a",
        "state": "idle",
        "successful_job_count": "8",
        "failed_job_count": "2",
        "total_working_time": "5.0",
        **fields,
    }
    if monitored:
        mapping.setdefault(registry.MONITORED, registry.monitored_value())
        mapping[registry.HEARTBEAT_AT] = f"{NOW - heartbeat_ago:.3f}"
    connection.hset(key, mapping=mapping)
    if ttl is not None:
        connection.expire(key, ttl)
    connection.sadd(registry.WORKERS_SET, key)


def read(connection: Redis) -> dict[str, dict]:
    return {w["worker_name"]: w for w in registry.read_workers(connection, NOW, 60, 300)}


@pytest.mark.parametrize(
    ("monitored", "heartbeat_ago", "ttl", "liveness"),
    [
        (True, 5, 480, "active"),
        (True, 59.9, 480, "active"),
        (True, 61, 480, "inactive"),
        (True, 299.9, 480, "inactive"),
        (True, 301, 480, "stale"),
        (True, 1000, None, "stale"),  # immortal hash
        # a plain worker: its own cadence, worker_ttl (420) + 60 by default, as promised by the TTL it set
        (False, 400, 80, "active"),  # idle plain workers heartbeat every 405 s: not stale at 60 or 300 s
        (False, 430, 50, "inactive"),  # past its worker_ttl, its key not yet expired
        (False, 85, 5, "inactive"),  # busy: RQ's monitor interval (30 s) + 60
        (False, 20, 70, "active"),
        (False, 500, None, "stale"),  # immortal: older than worker_ttl + 60 without a heartbeat
        (False, 430, None, "inactive"),
    ],
)
def test_liveness_per_workers_md(connection, monitored, heartbeat_ago, ttl, liveness):
    register(connection, "w1", heartbeat_ago, monitored=monitored, ttl=ttl)
    worker = read(connection)["w1"]
    assert worker["liveness"] == liveness
    assert worker["status"] == ("stale" if liveness == "stale" else "idle")
    assert worker["seconds_since_heartbeat"] == pytest.approx(heartbeat_ago, abs=0.01)


def test_a_registration_whose_hash_is_gone_is_stale(connection):
    connection.sadd(registry.WORKERS_SET, registry.WORKER_PREFIX + "ghost")
    ghost = read(connection)["ghost"]
    assert ghost["liveness"] == "stale" and ghost["hostname"] is None and ghost["control"] == []


def test_fields_of_a_monitored_and_a_plain_worker(connection):
    register(
        connection,
        "pool-a.2",
        3,
        queues="q1,q2",
        **{
            registry.USAGE: registry.usage_value(120.5, 12.0),
            registry.MONITORED: registry.monitored_value(None, "pool-a", 2, '{"gpu": true}'),
            registry.PAUSED: "0",
        },
    )
    register(connection, "plain", 3, monitored=False)
    workers = read(connection)
    monitored, plain = workers["pool-a.2"], workers["plain"]
    assert monitored["queues"] == ["q1", "q2"] and monitored["pool"] == "pool-a" and monitored["slot"] == 2
    assert monitored["memory_usage_mb"] == 120.5 and monitored["cpu_percent"] == 12.0
    assert monitored["memory_limit_mb"] is None and monitored["capabilities"] == {"gpu": True}
    assert monitored["tasks_processed"] == 10 and monitored["error_rate"] == 20.0
    assert monitored["avg_processing_time"] == 0.5 and monitored["uptime_seconds"] == pytest.approx(3603, abs=1)
    assert monitored["control"] == ["pause", "stop", "restart"] and monitored["monitored"] is True
    assert plain["monitored"] is False and plain["capabilities"] is None and plain["memory_usage_mb"] is None
    assert plain["control"] == ["stop"] and plain["pid"] == 4242 and plain["hostname"] == "host-a"


@pytest.mark.parametrize(
    ("fields", "suspended", "status", "control"),
    [
        ({registry.PAUSED: "1"}, False, "paused", ["resume", "stop"]),
        ({registry.STATE_OVERRIDE: "stopping", registry.PAUSED: "1"}, False, "stopping", []),
        ({"shutdown_requested_date": rq_time(1), "state": "busy"}, False, "stopping", []),  # RQ's warm shutdown
        ({"state": "busy"}, False, "busy", ["pause", "stop"]),
        ({"state": "suspended"}, True, "suspended", ["pause", "stop"]),
        ({}, True, "suspended", ["pause", "stop"]),
    ],
)
def test_status(connection, fields, suspended, status, control):
    register(connection, "w1", 3, **fields)
    if suspended:
        connection.set(registry.SUSPENDED_KEY, 1)
    worker = read(connection)["w1"]
    assert worker["status"] == status and worker["control"] == control


def test_current_job_in_rq3_executions_layout(connection):
    job = make_active_job(connection, "dq3", minutes_running=2)  # an execution of worker "test-worker"
    register(connection, "test-worker", 3, monitored=False, state="busy")
    # the job's start is relative to the real clock (NOW is the module's import time)
    worker = {w["worker_name"]: w for w in registry.read_workers(connection, time.time(), 60, 1e9)}["test-worker"]
    assert worker["status"] == "busy"
    assert worker["current_job"] == {
        "job_id": job.id,
        "queue": "dq3",
        "job_name": "workers.tasks.sleep_for",
        "started_at": worker["current_job"]["started_at"],
        "running_for": pytest.approx(120, abs=2),
    }


def test_current_job_in_rq2_current_job_field(connection):
    """RQ 2.x names the running job in the worker hash (`current_job`) instead of an executions set."""
    queue = Queue("dq2", connection=connection)
    job = queue.enqueue("workers.tasks.add", 1, 2)
    register(connection, "rq2-worker", 3, monitored=False, state="busy", current_job=job.id)
    current = read(connection)["rq2-worker"]["current_job"]
    assert current["job_id"] == job.id and current["queue"] == "dq2" and current["job_name"] == "workers.tasks.add"


def test_every_worker_is_read_in_one_round_trip(connection, monkeypatch):
    for i in range(50):
        register(connection, f"w{i}", 3, monitored=bool(i % 2))
    make_active_job(connection, "dq-rt", minutes_running=1)
    register(connection, "test-worker", 3)
    sent: list[int] = []
    real_send = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(1)
        return real_send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    workers = registry.read_workers(connection, NOW, 60, 300)
    assert len(workers) == 51 and len(sent) == 1


def test_reading_writes_nothing(connection):
    register(connection, "w1", 1000, ttl=None)
    connection.sadd(registry.WORKERS_SET, registry.WORKER_PREFIX + "ghost")
    before = {key: connection.dump(key) for key in connection.keys("*")}
    read(connection)
    assert {key: connection.dump(key) for key in connection.keys("*")} == before


def test_removing_a_stale_worker_recovers_its_job_as_stalled(connection):
    job = make_active_job(connection, "dq-stale", minutes_running=30)
    register(connection, "test-worker", 400, queues="dq-stale", state="busy")
    result = registry.remove_stale_worker(connection, "test-worker", NOW, 60, 300)
    assert result == {"worker_name": "test-worker", "removed": True, "abandoned_job": job.id}
    key = registry.WORKER_PREFIX + "test-worker"
    assert not connection.exists(key) and not connection.sismember(registry.WORKERS_SET, key)
    assert not connection.exists(key + ":executions")
    assert job.get_status(refresh=True) == JobStatus.QUEUED
    assert Queue("dq-stale", connection=connection).job_ids[0] == job.id
    assert job.get_meta(refresh=True)[STALLED_COUNTER] == 1


def test_only_a_stale_worker_is_removed(connection):
    register(connection, "alive", 30)
    register(connection, "sleepy", 120)
    for name in ("alive", "sleepy"):
        with pytest.raises(WorkerNotStale):
            registry.remove_stale_worker(connection, name, NOW, 60, 300)
    with pytest.raises(WorkerNotFound):
        registry.remove_stale_worker(connection, "nobody", NOW, 60, 300)
    assert set(read(connection)) == {"alive", "sleepy"}


def test_cleanup_removes_every_stale_worker_and_no_other(connection):
    register(connection, "alive", 30)
    register(connection, "old-1", 400)
    register(connection, "old-2", 900, monitored=False, ttl=None)
    connection.sadd(registry.WORKERS_SET, registry.WORKER_PREFIX + "ghost")
    removed = registry.cleanup_stale_workers(connection, NOW, 60, 300)
    assert sorted(removed) == ["ghost", "old-1", "old-2"]
    assert set(read(connection)) == {"alive"}


def test_reads_hand_out_their_own_objects_and_see_every_change(connection):
    own = registry.monitored_value(capabilities='{"gpu": true, "models": ["a", {"b": 1}]}')
    register(connection, "w1", 3, queues="q1,q2", **{registry.MONITORED: own, registry.PAUSED: "0"})
    first = read(connection)["w1"]
    first["queues"].append("mutated")
    first["capabilities"]["gpu"] = "mutated"
    first["capabilities"]["models"][1]["b"] = "mutated"
    first["capabilities"]["models"].append("mutated")
    again = read(connection)["w1"]
    assert again["queues"] == ["q1", "q2"] and again["capabilities"] == {"gpu": True, "models": ["a", {"b": 1}]}
    connection.hset(registry.WORKER_PREFIX + "w1", registry.PAUSED, "1")
    assert read(connection)["w1"]["status"] == "paused"


@pytest.mark.parametrize(
    "raw",
    [
        "2026-12-01T05:25:28.385444Z",  # RQ's utcformat
        "2026-12-01T05:25:28Z",
        "2026-12-31T23:59:59.999999Z",
        "2026-12-01T05:25:28.385444+00:00",  # not RQ's form: the full parse
        "2026-12-01T05:25:xx.1Z",
        "garbage-but-long-enough:xxZ",
        "2026-12-01T05:25:28,5Z",
        "2026-12-01T05:25:28.385444+00:00Z",
        "2026-12-01T05:25:5Z",
        "2026-12-01T05:25:1e1Z",
        "2026-12-01T05:25: 28Z",
        "2026-12-01T05:25:2_8Z",
        "2026-12-01T05:25:.5Z",
        "2026-12-01T05:25:60.500000Z",
        "2026-12-01T05:25:28.38544Z",
        "2026-12-01T05:25:2\u00b2.385444Z",  # a digit to str.isdigit, not to float()
        "2026-12-01T05:25:\u0662\u0668.385444Z",  # Arabic-Indic digits: float() reads them, fromisoformat does not
        "2026-12-01T05:25:2\u0663.385444Z",
        "2026-12-01T05:25:28.38544\uff14Z",  # a fullwidth digit
        "2026-12-01T05+01:00.385444Z",  # a minute part that is an hour with an offset
    ],
)
def test_the_heartbeat_fast_parse_agrees_with_the_full_parse(raw):
    expected, got = registry._rq_time(raw), registry._heartbeat_time(raw)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "seconds", [0.0, 0.0004, 0.0006, 1.23449, 12345.6789, 86400 * 365 + 0.1234, -2.5004, 6816.8925, 1e300, 1e16]
)
def test_millis_is_the_nearest_millisecond(seconds):
    assert abs(registry._millis(seconds) - seconds) <= 0.0005 + 1e-9 * abs(seconds)
    assert registry._millis(seconds) == pytest.approx(round(seconds, 3), abs=0.0011)  # ties may go up, not to even


def test_garbage_figures_in_one_hash_never_break_the_read_of_the_others(connection):
    register(connection, "good", 3)
    register(
        connection,
        "bad",
        3,
        total_working_time="inf",
        successful_job_count="x",
        failed_job_count="1e999",
        **{registry.USAGE: "nan 1e999", registry.MONITORED: "garbage"},
    )
    register(connection, "worse", 3, total_working_time="1e999", **{registry.USAGE: "", registry.MONITORED: "\x1d\x1d"})
    workers = read(connection)
    assert workers["good"]["tasks_processed"] == 10 and workers["good"]["avg_processing_time"] == 0.5
    bad = workers["bad"]
    assert bad["total_working_time"] == 0.0 and bad["memory_usage_mb"] is None and bad["cpu_percent"] is None
    assert bad["tasks_processed"] == 0 and bad["avg_processing_time"] is None and bad["capabilities"] == {}
    assert workers["worse"]["total_working_time"] == 0.0 and workers["worse"]["avg_processing_time"] == 0.0


def test_a_stopped_pool_slot_keeps_the_memory_limit_and_capabilities_of_its_children(connection):
    pools.show_stopped_slot(
        connection, "pool-s.2", "pool-s", 2, ["q1"], 60, memory_limit_mb=512.0, capabilities='{"gpu": true}'
    )
    worker = read(connection)["pool-s.2"]
    assert worker["status"] == "stopped" and worker["control"] == ["start"]
    assert (worker["pool"], worker["slot"]) == ("pool-s", 2)
    assert worker["memory_limit_mb"] == 512.0 and worker["capabilities"] == {"gpu": True}


def test_a_heartbeat_with_an_offset_is_shown_in_utc(connection):
    beat = datetime.fromtimestamp(NOW - 10, UTC).astimezone(timezone(timedelta(hours=-2)))
    register(connection, "offset", 10, last_heartbeat=beat.isoformat())
    worker = read(connection)["offset"]
    assert worker["seconds_since_heartbeat"] == pytest.approx(10, abs=0.01) and worker["liveness"] == "active"
    shown = datetime.fromisoformat(worker["last_heartbeat"])
    assert worker["last_heartbeat"].endswith("Z") and shown.timestamp() == pytest.approx(NOW - 10, abs=0.001)


def _deep(depth: int) -> str:
    return '{"a": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({registry.MONITORED: registry.monitored_value(capabilities=_deep(900))}, id="deep-capabilities"),
        pytest.param({registry.MONITORED: registry.monitored_value(capabilities=_deep(6000))}, id="deeper"),
        pytest.param({"successful_job_count": "9" * 400, "failed_job_count": "1" + "0" * 300}, id="huge-counts"),
        pytest.param({"hostname": "a\x1fb"}, id="unit-separator"),
        pytest.param({"state": "\x1e"}, id="record-separator"),
        pytest.param({"queues": "dq\x1f\x1e\x1fnot-a-record"}, id="record-boundary"),
        pytest.param({"last_heartbeat": "\x1f"}, id="separator-heartbeat"),
    ],
)
def test_one_unreadable_hash_never_breaks_the_read_of_the_others(connection, fields):
    """Any value someone writes into one worker's hash: the others read as before, their jobs stay theirs."""
    register(connection, "bad", 3, **fields)
    register(connection, "good", 3, state="busy")
    job = make_active_job(connection, "dq", minutes_running=1)
    connection.hset(registry.WORKER_PREFIX + "good", "current_job", job.id)
    workers = read(connection)
    good = workers["good"]
    assert good["tasks_processed"] == 10 and good["liveness"] == "active" and good["current_job"]["job_id"] == job.id
    assert [name for name, worker in workers.items() if worker["current_job"]] == ["good"]
    bad = workers.get("bad") or next(w for n, w in workers.items() if n.startswith("bad"))
    assert bad["liveness"] in ("active", "stale")  # read, or shown as a registration without a hash
    assert isinstance(bad["capabilities"], dict) or bad["capabilities"] is None
    assert bad["tasks_processed"] < 2**63


def test_capabilities_deeper_than_the_api_allows_read_as_none(connection):
    register(connection, "deep", 3, **{registry.MONITORED: registry.monitored_value(capabilities=_deep(40))})
    register(connection, "fine", 3, **{registry.MONITORED: registry.monitored_value(capabilities=_deep(20))})
    workers = read(connection)
    assert workers["deep"]["capabilities"] == {} and workers["deep"]["liveness"] == "active"
    assert workers["fine"]["capabilities"] == {"a": eval("[" * 20 + "]" * 20)}  # noqa: S307 - a literal


def test_a_key_in_the_registry_that_is_not_a_hash_reads_as_stale(connection):
    register(connection, "good", 3)
    connection.set(registry.WORKER_PREFIX + "odd", "not a hash")
    connection.sadd(registry.WORKERS_SET, registry.WORKER_PREFIX + "odd")
    workers = read(connection)
    assert workers["good"]["liveness"] == "active" and workers["odd"]["liveness"] == "stale"
    assert registry.read_worker(connection, "odd", NOW, 60, 300)["status"] == "stale"


@pytest.mark.parametrize(
    "job_fields",
    [
        {"origin": b"\xff\xfeq", "started_at": b"\xff"},
        {"started_at": "9999-12-31T23:59:59-01:00"},  # year 10000 in UTC
        {"started_at": "9999-12-31T23:59:59.999999Z"},
    ],
)
def test_a_running_job_with_unreadable_fields_never_breaks_the_read(connection, job_fields):
    register(connection, "runner", 3, state="busy")
    register(connection, "other", 3)
    job = make_active_job(connection, "dq", minutes_running=1)
    connection.hset(registry.WORKER_PREFIX + "runner", "current_job", job.id)
    connection.hset(f"rq:job:{job.id}", mapping=job_fields)
    workers = read(connection)
    assert workers["runner"]["current_job"]["job_id"] == job.id and workers["other"]["liveness"] == "active"


def test_a_current_job_id_that_is_not_utf8_never_breaks_the_read(connection):
    register(connection, "runner", 3, state="busy", current_job=b"\xff\xfe")
    register(connection, "other", 3)
    workers = read(connection)
    assert workers["runner"]["current_job"]["job_id"] == "\ufffd\ufffd" and workers["other"]["tasks_processed"] == 10
