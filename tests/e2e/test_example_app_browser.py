"""The example app in a real browser, on pytest-flask's ``live_server``: submit its form, find the
email in ``dmmail_outbox``, then read it through the app's outbox link."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask

from example_app import create_app
from flask_dmmail.sandbox import Sandbox
from flask_dmmail.testing import DMMailOutbox
from tests.secrets_scan import register_secret

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

ADDRESS = "grace@example.gov.uk"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """pytest-flask's app: the example app's test configuration (sandbox mode)."""
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    app = create_app("test")
    yield app
    app.extensions["dmmail"].close()


def test_a_sent_email_is_in_the_outbox_and_readable_in_the_browser(
    app: Flask,
    live_server: Any,
    page: Page,
    dmmail_outbox: DMMailOutbox,
    notify_sandbox: Sandbox,
) -> None:
    register_secret(ADDRESS, "Grace <Hopper>", kind="test input")
    page.goto(live_server.url("/"))
    page.fill("#name", "Grace <Hopper>")
    page.fill("#email", ADDRESS)
    page.click("button[type=submit]")
    assert "Email sent" in page.inner_text("[role=status]")

    # The live server is another process: the email is read from the app's sandbox.
    [email] = dmmail_outbox.wait_for(1)
    assert email.subject == "Welcome to the Digital Marketplace, Grace <Hopper>"
    assert email.sent_to == ADDRESS
    assert [n.id for n in notify_sandbox.state.outbox()] == [email.id]

    page.click("text=Open the sandbox outbox")
    assert page.url == notify_sandbox.url + "/"
    page.click("text=Welcome to the Digital Marketplace, Grace <Hopper>")
    assert page.url == f"{notify_sandbox.url}/email/{email.id}"

    assert page.inner_text("h2") == "Hello Grace <Hopper>"
    items = page.locator("li").all_inner_texts()
    assert "we email you when the framework opens" in items
    link = page.locator("a[href='https://www.digitalmarketplace.service.gov.uk']")
    assert link.count() == 1
    page.screenshot(path="/tmp/dmmail-example-app-outbox.png", full_page=True)
