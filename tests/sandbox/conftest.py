"""Fixtures for the sandbox tests: real servers on 127.0.0.1 and the official clients.

Notify half: ``notify_server`` is module-scoped, so each test module gets its own running
sandbox, seeded with :data:`tests.sandbox.notify_helpers.SEED`; ``sbx`` is that sandbox
reset before and after the test. Clients are the official ``NotificationsAPIClient``
(``notify_client``, ``make_notify_client``); ``http`` is a plain ``requests`` session for
raw calls.

Mailchimp half: every Mailchimp test talks HTTP to one session-wide sandbox through
``mailchimp_marketing.Client`` (``client``), set up the way the reference describes for a
non-Mailchimp host; ``mc`` is its Mailchimp state, reset before and after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.sandbox.mailchimp_helpers import MailchimpServer, make_client
from tests.sandbox.notify_helpers import SEED

# Notify


@pytest.fixture(scope="module")
def notify_server() -> Iterator[Sandbox]:
    """A running sandbox for the module, seeded with :data:`SEED`."""
    sandbox = Sandbox.start(seed=SEED)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def sbx(notify_server: Sandbox) -> Iterator[Sandbox]:
    """The module's sandbox, reset to its seed before and after the test."""
    notify_server.state.reset()
    yield notify_server
    notify_server.state.reset()


@pytest.fixture
def make_notify_client(sbx: Sandbox) -> Iterator[Callable[..., NotificationsAPIClient]]:
    """Build official Notify clients (closed after the test)."""
    made: list[NotificationsAPIClient] = []

    def factory(key: str | None = None, **kwargs: Any) -> NotificationsAPIClient:
        client = NotificationsAPIClient(key or sbx.keys.test, base_url=sbx.url, **kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.request_session.close()


@pytest.fixture
def notify_client(
    make_notify_client: Callable[..., NotificationsAPIClient],
) -> NotificationsAPIClient:
    """An official Notify client with the test key."""
    return make_notify_client()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A plain requests session for raw calls."""
    with requests.Session() as session:
        yield session


# Mailchimp


@pytest.fixture(scope="session")
def mc_server() -> Iterator[MailchimpServer]:
    sandbox = Sandbox.start()
    try:
        yield MailchimpServer(sandbox)
    finally:
        sandbox.stop()


@pytest.fixture
def mc(mc_server: MailchimpServer) -> Iterator[MailchimpState]:
    """The server's Mailchimp state, empty and with default settings."""
    mc_server.sandbox_state.clear_faults()
    state = mc_server.state
    state.reset()
    yield state
    mc_server.sandbox_state.clear_faults()
    state.reset()


@pytest.fixture
def client(mc: MailchimpState, mc_server: MailchimpServer) -> Any:
    """The official Mailchimp client, with the sandbox's key."""
    return make_client(mc_server.url, mc.api_key)


@pytest.fixture
def list_id(mc: MailchimpState) -> str:
    return mc.create_list("Suppliers")
