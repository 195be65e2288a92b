"""The example app in a real browser: submit its form, then read the email at /_dmmail/."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from werkzeug.serving import make_server

from example_app import create_app

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture
def app_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    app = create_app("test")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        app.extensions["dmmail"].close()


def test_a_sent_email_is_readable_in_the_apps_outbox(app_url: str, page: Page) -> None:
    page.goto(app_url + "/")
    page.fill("#name", "Grace <Hopper>")
    page.fill("#email", "grace@example.gov.uk")
    page.click("button[type=submit]")
    assert "Email sent" in page.inner_text("[role=status]")

    page.click("text=Open the sandbox outbox")
    assert page.url == app_url + "/_dmmail/"
    page.click("text=Welcome to the Digital Marketplace, Grace <Hopper>")

    assert page.inner_text("h2") == "Hello Grace <Hopper>"
    items = page.locator("li").all_inner_texts()
    assert "we email you when the framework opens" in items
    link = page.locator("a[href='https://www.digitalmarketplace.service.gov.uk']")
    assert link.count() == 1
    page.screenshot(path="/tmp/dmmail-example-app-outbox.png", full_page=True)
