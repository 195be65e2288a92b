"""A real Redis for the tests: Debian's ``redis-server``, started by pytest-redis.

``redis_url`` is a session-wide ``redis-server`` on a free loopback port, with its own
temporary directory (pytest-redis's ``redis_proc``: the real executable, stopped when the
session ends). Its database 0 is shared by every test that asks for ``redis_url``; a test
that needs an empty database asks for ``fresh_redis_url`` (database 1, emptied before the
test). No fake Redis anywhere. ``restartable_redis`` is a test's own ``redis-server``, which
the test may stop and start again (an outage) without disturbing the others.

Without ``redis-server`` the tests that need it are skipped, unless ``DMMAIL_REQUIRE_REDIS=1``
(CI sets it; ``.ci/run`` installs the package), when they fail.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import port_for
import pytest
import redis
from pytest_redis.executor import RedisExecutor

__all__ = [
    "RestartableRedis",
    "fresh_redis_url",
    "redis_server",
    "redis_url",
    "restartable_redis",
]

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


class RestartableRedis:
    """A ``redis-server`` of one test, on a free loopback port with its own directory, that
    asks for a password (so that a test can check it never leaks: it is in :attr:`url`).

    :param datadir: the server's directory (its socket, log and dump file).
    """

    def __init__(self, datadir: Path) -> None:
        executable = shutil.which("redis-server")
        assert executable is not None
        self.port = port_for.select_random()
        #: The server's password (``requirepass``).
        self.password = f"redis-pw-{secrets.token_hex(12)}"
        self.executor = RedisExecutor(
            executable=executable,
            databases=2,
            redis_timeout=30,
            loglevel="warning",
            host="127.0.0.1",
            port=self.port,
            datadir=datadir,
        )
        #: Its database 0, with the password.
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it, wait until it answers, and set its password (with CONFIG SET: on the
        command line, the executor's debug log would show it)."""
        self.executor.start()
        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            client.config_set("requirepass", self.password)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop it (SIGTERM; it saves its data first, and loads it on :meth:`start`)."""
        self.executor.stop()

    @property
    def running(self) -> bool:
        return bool(self.executor.running())


@pytest.fixture
def restartable_redis(redis_server: RedisExecutor) -> Iterator[RestartableRedis]:
    """A running :class:`RestartableRedis`, stopped after the test."""
    datadir = Path(tempfile.mkdtemp(prefix="dmmail-redis-"))
    server = RestartableRedis(datadir)
    server.start()
    try:
        yield server
    finally:
        if server.running:
            server.stop()
        shutil.rmtree(datadir, ignore_errors=True)
