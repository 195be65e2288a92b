"""The Redis fixture starts a real redis-server that answers."""

from __future__ import annotations

import redis


def test_redis_url_is_a_real_server(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
        assert client.info("server")["redis_version"]
        assert redis_url.startswith("redis://127.0.0.1:")
    finally:
        client.close()


def test_fresh_redis_url_is_empty(fresh_redis_url: str) -> None:
    client = redis.Redis.from_url(fresh_redis_url)
    try:
        assert client.dbsize() == 0
        client.set("dmmail:test", "1")
    finally:
        client.close()
