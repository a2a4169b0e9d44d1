"""The embedded redis-server: started once per instance folder, reused by later processes."""

from __future__ import annotations

import subprocess

import pytest
import redis

from app import embedded_redis
from app.embedded_redis import ensure_embedded_redis, find_redis_server, stop_embedded_redis


def test_embedded_redis_is_started_once_and_reused(tmp_path):
    assert find_redis_server()
    url = ensure_embedded_redis(tmp_path)
    try:
        client = redis.Redis.from_url(url)
        client.set("probe", "1")
        assert ensure_embedded_redis(tmp_path) == url  # a second process would reuse it
        assert client.get("probe") == b"1"
        assert str(tmp_path) == client.config_get("dir")["dir"]
        client.close()
    finally:
        assert stop_embedded_redis(tmp_path)


def test_a_server_that_never_answers_is_not_left_running(tmp_path, monkeypatch):
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    def never_ready(url, process=None, timeout=10.0):
        raise RuntimeError(f"redis-server at {url} did not answer within {timeout}s")

    monkeypatch.setattr(embedded_redis.subprocess, "Popen", recording_popen)
    monkeypatch.setattr(embedded_redis, "wait_until_ready", never_ready)
    with pytest.raises(RuntimeError, match="did not answer"):
        embedded_redis.start_redis_server(tmp_path / "data", ready_timeout=0.1)
    [process] = started
    assert process.poll() is not None  # killed and reaped, not a stray server
