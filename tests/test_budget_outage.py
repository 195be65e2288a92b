"""The shared budget when its Redis stops answering: a typed error (``DM_MAIL_REDIS_REQUIRED``,
on in production) or each process's own bucket, a pause through a short outage, and a bulk
run that stops resumably. Nothing is ever posted twice or lost.

Each test has its own real ``redis-server`` (``restartable_redis``), with a password that
the secrets scan watches for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from flask_dmmail import Mailer, signals
from flask_dmmail.budget import BULK, TRANSACTIONAL, SharedBudget
from flask_dmmail.errors import BulkAbortedError, RedisUnavailableError
from flask_dmmail.sandbox import Sandbox
from tests.redis_support import RestartableRedis
from tests.secrets_scan import register_secret

pytestmark = pytest.mark.slow


class Watch(logging.Handler):
    """Sets an event when the library logs a message holding ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = threading.Event()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "flask_dmmail" and self.text in record.getMessage():
            self.count += 1
            self.seen.set()


@pytest.fixture
def watch() -> Iterator[Callable[[str], Watch]]:
    handlers: list[Watch] = []
    logger = logging.getLogger("flask_dmmail")

    def make(text: str) -> Watch:
        handler = Watch(text)
        logger.addHandler(handler)
        handlers.append(handler)
        return handler

    yield make
    for handler in handlers:
        logger.removeHandler(handler)


@pytest.fixture
def server(restartable_redis: RestartableRedis) -> RestartableRedis:
    register_secret(restartable_redis.password, kind="Redis password")
    return restartable_redis


def mailer_on(make_app: Callable[..., Flask], server: RestartableRedis, **config: Any) -> Mailer:
    app = make_app(DM_MAIL_REDIS_URL=server.url, **config)
    mailer = app.extensions["dmmail"]
    assert isinstance(mailer, Mailer) and mailer.budget is not None
    fill(mailer.budget)
    return mailer


def fill(budget: SharedBudget) -> None:
    """A full bucket (a service that has been idle)."""
    seconds, micros = budget.client.time()
    budget.client.hset(
        budget.key,
        mapping={"tokens": budget.shape.capacity, "ts": seconds + micros / 1_000_000},
    )


def reset(mailer: Mailer, n: int) -> Any:
    return mailer.send(f"user{n}@example.gov.uk", "reset_password", {"url": f"https://x/{n}"})


def references(sandbox: Sandbox) -> list[str | None]:
    return [n.reference for n in sandbox.state.outbox()]


def test_a_send_raises_a_typed_error_when_redis_is_down_and_required(
    make_app: Callable[..., Flask], server: RestartableRedis, sandbox: Sandbox
) -> None:
    mailer = mailer_on(make_app, server)  # production: DM_MAIL_REDIS_REQUIRED is on
    assert mailer.settings.redis_required
    failed: list[dict[str, Any]] = []

    def on_failed(sender: Flask, **extra: Any) -> None:
        failed.append(extra)

    server.stop()
    with (
        signals.email_failed.connected_to(on_failed),
        pytest.raises(RedisUnavailableError) as raised,
    ):
        reset(mailer, 1)
    error = raised.value
    assert (error.service, error.status_code, error.transient, error.attempts) == (
        "redis",
        None,
        True,
        0,
    )
    assert "DM_MAIL_REDIS_URL" in error.message and "DM_MAIL_REDIS_REQUIRED" in error.message
    assert server.password not in error.message
    assert sandbox.state.outbox() == []  # nothing was posted
    assert len(failed) == 1 and failed[0]["error"] is error
    server.start()
    reset(mailer, 1)  # the same email, sent again: once
    assert len(references(sandbox)) == 1


def test_a_send_waits_through_a_short_outage(
    make_app: Callable[..., Flask],
    server: RestartableRedis,
    sandbox: Sandbox,
    watch: Callable[[str], Watch],
) -> None:
    mailer = mailer_on(make_app, server)
    assert mailer.budget is not None
    mailer.budget.outage_grace[TRANSACTIONAL] = 120.0
    down = watch("did not answer")
    server.stop()

    def restart_once_seen() -> None:
        if down.seen.wait(60):
            server.start()

    restarter = threading.Thread(target=restart_once_seen)
    restarter.start()
    try:
        reset(mailer, 1)
    finally:
        restarter.join(timeout=120)
    assert down.count == 1  # it paused, and said so once
    assert len(references(sandbox)) == 1


def test_without_required_each_process_falls_back_to_its_own_bucket(
    make_app: Callable[..., Flask],
    server: RestartableRedis,
    sandbox: Sandbox,
    watch: Callable[[str], Watch],
) -> None:
    mailer = mailer_on(make_app, server, DM_MAIL_REDIS_REQUIRED=False)
    budget = mailer.budget
    assert budget is not None
    down, back = watch("did not answer"), watch("answers again")
    server.stop()
    for n in range(3):
        reset(mailer, n)
    assert down.count == 1 and len(references(sandbox)) == 3
    server.start()
    n = 3
    while not back.seen.is_set() and n < 200:  # Redis is asked again every few seconds
        reset(mailer, n)
        n += 1
        back.seen.wait(0.1)
    assert back.seen.is_set()
    client = redis.Redis.from_url(server.url)
    try:
        assert client.exists(budget.key)  # the shared bucket is in use again
    finally:
        client.close()
    assert len(set(references(sandbox))) == len(references(sandbox)) == n


def test_a_bulk_run_stops_resumably_when_redis_stays_down(
    make_app: Callable[..., Flask],
    server: RestartableRedis,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    mailer = mailer_on(make_app, server)
    assert mailer.budget is not None
    mailer.budget.outage_grace[BULK] = 1.0
    recipients = [(f"bulk{n}@example.gov.uk", {"url": f"https://x/{n}"}) for n in range(5)]
    server.stop()
    with pytest.raises(BulkAbortedError) as raised:
        mailer.send_bulk("reset_password", recipients, journal=tmp_path / "j.db")
    assert isinstance(raised.value.__cause__, RedisUnavailableError)
    assert "RedisUnavailableError" in raised.value.message
    assert sandbox.state.outbox() == []
    server.start()
    report = mailer.send_bulk("reset_password", recipients, journal=tmp_path / "j.db")
    assert report.complete and report.sent == 5
    assert len(set(references(sandbox))) == len(references(sandbox)) == 5
