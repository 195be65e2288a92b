"""Test helpers: :func:`record` and the pytest plugin (fixtures ``dmmail_outbox`` and
``notify_sandbox``), registered through the ``pytest11`` entry point."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask

from . import signals
from .notify import SentEmail

if TYPE_CHECKING:
    from .sandbox import Sandbox

__all__ = ["dmmail_outbox", "notify_sandbox", "record"]


@contextmanager
def record(app: Flask | None = None) -> Iterator[list[SentEmail]]:
    """Collect every :class:`~flask_dmmail.SentEmail` sent inside the block (by ``app``, or
    any app)::

        with record(app) as sent:
            app.extensions["dmmail"].send("a@example.com", "welcome")
        assert sent[0].template_id == ...

    :param app: only this app's sends; None for every app's.
    """
    sent: list[SentEmail] = []

    def receiver(sender: Flask, email: SentEmail, **_: Any) -> None:
        sent.append(email)

    if app is None:
        signals.email_sent.connect(receiver, weak=False)
    else:
        signals.email_sent.connect(receiver, sender=app, weak=False)
    try:
        yield sent
    finally:
        signals.email_sent.disconnect(receiver)


_OUTBOX: list[SentEmail] = []


def _collect(sender: Flask, email: SentEmail, **_: Any) -> None:
    _OUTBOX.append(copy.copy(email))


@pytest.fixture
def dmmail_outbox() -> Iterator[list[SentEmail]]:
    """Every email any app sent during the test, as copies. The same list object is
    cleared in place before each test, so keeping a reference to it is safe."""
    _OUTBOX.clear()
    signals.email_sent.connect(_collect, weak=False)
    try:
        yield _OUTBOX
    finally:
        signals.email_sent.disconnect(_collect)


@pytest.fixture(scope="session")
def _dmmail_session_sandbox() -> Iterator[Sandbox]:
    from .sandbox import Sandbox

    sandbox = Sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def notify_sandbox(_dmmail_session_sandbox: Sandbox) -> Sandbox:
    """A running Notify sandbox on 127.0.0.1, emptied before each test. It has
    ``.url`` and ``.keys.test``, ``.keys.team`` and ``.keys.live``."""
    _dmmail_session_sandbox.state.reset()
    return _dmmail_session_sandbox
