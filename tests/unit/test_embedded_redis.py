"""The embedded redis-server: started once per instance folder, reused by later processes."""

from __future__ import annotations

import redis

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
