"""Fixtures for the sandbox's Mailchimp half: a real server on 127.0.0.1 and the official client.

Every Mailchimp test talks HTTP to the sandbox through ``mailchimp_marketing.Client``, set up
the way the reference describes for a non-Mailchimp host.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mailchimp_helpers import MailchimpServer, make_client

from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.mailchimp import MailchimpState


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
    return make_client(mc_server.url, mc.api_key)


@pytest.fixture
def list_id(mc: MailchimpState) -> str:
    return mc.create_list("Suppliers")
