"""A real Redis for the tests: Debian's ``redis-server``, started by pytest-redis.

``redis_url`` is a session-wide ``redis-server`` on a free loopback port, with its own
temporary directory (pytest-redis's ``redis_proc``: the real executable, stopped when the
session ends). Its database 0 is shared by every test that asks for ``redis_url``; a test
that needs an empty database asks for ``fresh_redis_url`` (database 1, emptied before the
test). No fake Redis anywhere.

Without ``redis-server`` the tests that need it are skipped, unless ``DMMAIL_REQUIRE_REDIS=1``
(CI sets it; ``.ci/run`` installs the package), when they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
import redis
from pytest_redis.executor import RedisExecutor

__all__ = ["fresh_redis_url", "redis_server", "redis_url"]

#: The database ``fresh_redis_url`` empties and hands out.
FRESH_DB = 1


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> RedisExecutor:
    """The session's ``redis-server`` (pytest-redis's ``redis_proc``), on 127.0.0.1."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("DMMAIL_REQUIRE_REDIS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    server = request.getfixturevalue("redis_proc")
    assert isinstance(server, RedisExecutor)
    return server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisExecutor) -> str:
    """``redis://127.0.0.1:<port>/0`` of the session's real ``redis-server``."""
    return f"redis://{redis_server.host}:{redis_server.port}/0"


@pytest.fixture
def fresh_redis_url(redis_server: RedisExecutor) -> Iterator[str]:
    """A URL of an empty database (``FRESH_DB``) of the session's ``redis-server``."""
    url = f"redis://{redis_server.host}:{redis_server.port}/{FRESH_DB}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        yield url
    finally:
        client.close()
