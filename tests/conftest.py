"""Shared fixtures: a Notify sandbox on 127.0.0.1 and apps configured against it.

The suite follows pytest-flask's conventions: ``app`` is the app under test (here one built by
``make_app``, talking to the plugin's sandbox as it would to Notify; a module that tests an
app in sandbox mode defines its own ``app``), and pytest-flask gives ``client``, ``config``
and ``live_server`` for it (``live_server_scope = function`` in setup.cfg). While a test uses
``app``, pytest-flask keeps a request context of it pushed, so ``DMMail().send(...)`` needs no
``app_context()``. The ``notify_sandbox``, ``mailchimp_sandbox``, ``dmmail_outbox`` and
``dmmail_faults`` fixtures come from flask-dmmail's own pytest plugin
(``flask_dmmail.testing``), the same ones users get: with a sandbox-mode ``app`` they are that
app's; with the ``app`` here (which depends on ``notify_sandbox``) the sandbox is the
session's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from flask_dmmail import DMMail, Mailer
from flask_dmmail.sandbox import Sandbox

# The session-wide secrets scan: log records, exception messages and CLI output must never
# hold a registered secret (API keys, recipients, personalisation values); see the module.
# ``redis_url``: a real redis-server for the tests that need one (tests/redis_support.py).
pytest_plugins = (
    "tests.secrets_scan",
    "tests.mailchimp_support",
    "tests.redis_support",
    "pytester",
)

# The suite's apps outside testing mode keep their embedded sandbox in memory, not in the
# instance folder of the working directory (tests of that turn it on in the app's config).
os.environ["DM_MAIL_SANDBOX_PERSIST"] = "false"

WELCOME_ID = "6f1a3c1e-8a0b-4c3e-9d0f-5b6a7c8d9e01"
RESET_ID = "0c2b8e7a-1f3d-4e5a-8b6c-7d9e0f1a2b3c"
REPLY_TO_ID = "1d2c3b4a-5e6f-4a7b-8c9d-0e1f2a3b4c5d"

SEED: dict[str, Any] = {
    "templates": [
        {
            "id": WELCOME_ID,
            "name": "Welcome",
            "type": "email",
            "subject": "Welcome, ((name))",
            "body": "# Hello ((name))\n\nYou registered for ((framework)).",
        },
        {
            "id": RESET_ID,
            "name": "Reset password",
            "type": "email",
            "subject": "Reset your password",
            "body": "Reset it here: ((url))",
        },
    ],
    "reply_to_addresses": [{"id": REPLY_TO_ID, "email_address": "enquiries@example.gov.uk"}],
}

TEMPLATES = {"welcome": WELCOME_ID, "reset_password": RESET_ID}


@pytest.fixture
def sandbox(notify_sandbox: Sandbox) -> Sandbox:
    """The plugin's sandbox, emptied and seeded with this suite's templates."""
    notify_sandbox.state.seed(SEED)
    return notify_sandbox


@pytest.fixture
def make_app(sandbox: Sandbox) -> Iterator[Callable[..., Flask]]:
    """Build an app that talks to the sandbox as it would to Notify (a real key and URL).

    Its stage is production unless a test names another: each test then sees exactly the
    behaviour it is about, and the stage guards have tests of their own."""
    apps: list[Flask] = []

    def factory(key: str | None = None, **config: Any) -> Flask:
        app = Flask(f"test_app_{len(apps)}")
        app.config.update(
            SECRET_KEY="test-secret",
            DM_NOTIFY_KEY=key or sandbox.keys.test,
            DM_NOTIFY_BASE_URL=sandbox.url,
            DM_NOTIFY_TEMPLATES=TEMPLATES,
            DM_NOTIFY_RETRY_BACKOFF=0.001,
            DM_NOTIFY_TIMEOUT=2,
            DM_MAIL_SANDBOX=False,
            DM_ENVIRONMENT="production",
        )
        app.config.update(config)
        DMMail(app)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["dmmail"].close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """pytest-flask's app: one made by :func:`make_app` with its defaults."""
    return make_app()


@pytest.fixture
def mailer(app: Flask) -> Mailer:
    mailer = app.extensions["dmmail"]
    assert isinstance(mailer, Mailer)
    return mailer


class RecordAll(logging.Handler):
    """Keeps every record of every logger, for the no-personal-data checks."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        """Every message and every extra field of every record, as one string."""
        parts = []
        for record in self.records:
            parts.append(record.getMessage())
            parts.extend(f"{k}={v!r}" for k, v in vars(record).items() if k not in ("msg", "args"))
        return "\n".join(parts)


@pytest.fixture
def all_logs() -> Iterator[RecordAll]:
    handler = RecordAll()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


class RefillAfter429(logging.Handler):
    """Plays the clock for rate-limit tests.

    The tests set the sandbox's rate so low that no token comes back on its own while they
    run (1 a minute), so a 429 comes whatever the machine's speed. When the library
    announces that it will retry a 429 (its ``flask_dmmail`` warning with
    ``error="RateLimitError"``; not the error that says it gave up), this refills the
    sandbox's buckets (``set_limits`` at ``rate_limit``: by default the same 1 a minute,
    which gives a fresh bucket), so the retry needs no wait either. ``refills`` counts the
    announcements."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(logging.DEBUG)
        self.sandbox = sandbox
        self.rate_limit = 1
        self.refills = 0
        # A filter, not a test in emit: records of no interest never take the handler's
        # lock (the sandbox may log while it holds its own).
        self.addFilter(
            lambda record: (
                record.name == "flask_dmmail"
                and record.levelno == logging.WARNING
                and getattr(record, "error", None) == "RateLimitError"
            )
        )

    def emit(self, record: logging.LogRecord) -> None:
        self.refills += 1
        self.sandbox.state.set_limits(rate_limit=self.rate_limit)


@pytest.fixture
def refill_after_429(sandbox: Sandbox) -> Iterator[RefillAfter429]:
    """A :class:`RefillAfter429` on the ``flask_dmmail`` logger for the test."""
    handler = RefillAfter429(sandbox)
    logger = logging.getLogger("flask_dmmail")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
