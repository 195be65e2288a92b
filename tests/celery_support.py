"""Real parts for the queued-send tests: Celery worker processes against a real Redis.

``clean_redis`` empties the session's ``redis-server`` (``redis_url``, from
``tests/redis_support.py``) before a test. :class:`Worker` runs
``celery -A tests.celery_worker:celery_app worker`` as a process of its own session, so a test
can SIGKILL it and every child it forked at once; its output goes to the secrets scan.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from flask_dmmail.sandbox import Sandbox
from tests.secrets_scan import record_output

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    """``redis_url``, emptied for this test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return redis_url


def worker_environment(sandbox: Sandbox, broker: str, **extra: str) -> dict[str, str]:
    """The environment of a worker that sends to ``sandbox`` through ``broker``."""
    env = {
        **os.environ,
        "DM_NOTIFY_KEY": sandbox.keys.test,
        "DM_NOTIFY_BASE_URL": sandbox.url,
        "DM_NOTIFY_TIMEOUT": "2",
        "DM_NOTIFY_RETRY_BACKOFF": "0.001",
        "TEST_CELERY_BROKER": broker,
        **extra,
    }
    for name in ("FLASK_APP", "DM_MAIL_CELERY_BROKER_URL", "DM_MAIL_REDIS_URL"):
        if name not in extra:
            env.pop(name, None)
    return env


class Worker:
    """One ``celery worker`` process (and its pool's children)."""

    count = 0

    def __init__(
        self,
        env: dict[str, str],
        *,
        concurrency: int = 2,
        pool: str = "prefork",
        app: str = "tests.celery_worker:celery_app",
    ):
        Worker.count += 1
        self.name = f"w{Worker.count}"
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                app,
                "worker",
                "--loglevel=INFO",
                f"--concurrency={concurrency}",
                f"--pool={pool}",
                "-n",
                f"{self.name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: killpg reaches its children
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if " ready." in line:
                self.ready.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = 120) -> Worker:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            assert self.process.poll() is None, f"the worker exited:\n{self.output}"
            assert time.monotonic() < deadline, f"the worker did not start:\n{self.output}"
        return self

    def kill(self) -> None:
        """SIGKILL the worker and its children: no clean-up of any kind."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._finish()

    def stop(self) -> None:
        """A warm shutdown (SIGTERM), then SIGKILL if it takes too long."""
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=60)
        self.kill()

    def _finish(self) -> None:
        self.process.wait(timeout=60)
        self._reader.join(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()
        record_output(f"celery worker {self.name}", self.output)


@pytest.fixture
def workers() -> Iterator[Callable[..., Worker]]:
    """Start workers (``workers(env, concurrency=2)``); each is stopped after the test."""
    started: list[Worker] = []

    def start(env: dict[str, str], **options: object) -> Worker:
        worker = Worker(env, **options)  # type: ignore[arg-type]
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll ``condition`` until it holds (no assertion on how long it took)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
