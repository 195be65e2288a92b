"""The sandbox's outbox page in a real browser, after sends through the official client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail.sandbox import Sandbox

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

TEMPLATE_ID = "3b0f5f8e-2c1d-4e7a-9b6c-1a2b3c4d5e6f"
OTHER_TEMPLATE_ID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
SEED = {
    "templates": [
        {
            "id": TEMPLATE_ID,
            "name": "Application received",
            "type": "email",
            "subject": 'Your application to ((framework)) - "received"',
            "body": (
                "# Hello ((name))\n\n"
                "We have your application. You still need:\n\n"
                "* ((first thing))\n"
                "* a signed declaration\n\n"
                "^ Apply by 5pm on ((date)).\n\n"
                "Read [the guidance](https://www.gov.uk/guidance) or go to "
                "https://www.digitalmarketplace.service.gov.uk"
            ),
        },
        {
            "id": OTHER_TEMPLATE_ID,
            "name": "Plain note",
            "type": "email",
            "subject": "A note",
            "body": "Just a note.",
        },
    ]
}
SCREENSHOT = "/tmp/dmmail-outbox-email.png"
INJECTED = "<script>document.title=location.href</script>"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    started = Sandbox.start(seed=SEED)
    try:
        yield started
    finally:
        started.stop()


def test_outbox_lists_emails_and_shows_the_rendered_email(sandbox: Sandbox, page: Page) -> None:
    page.goto(sandbox.url + "/")
    assert page.locator("#empty-outbox h2").inner_text() == "No emails sent yet"
    advice = page.locator("#empty-outbox").inner_text()
    # No key (it changes at every start unless a service id is fixed): the line it printed.
    assert sandbox.keys.test not in advice and "test key:" in advice
    assert f'base_url="{sandbox.url}"' in page.locator("#empty-outbox pre").inner_text()

    client = NotificationsAPIClient(sandbox.keys.test, base_url=sandbox.url)
    try:
        first = client.send_email_notification(
            email_address="first@example.gov.uk", template_id=OTHER_TEMPLATE_ID
        )
        sent = client.send_email_notification(
            email_address="supplier@example.gov.uk",
            template_id=TEMPLATE_ID,
            personalisation={
                "name": f"Ada {INJECTED}",
                "framework": "G-Cloud 14",
                "first_thing": "a company number",
                "date": "1 June",
            },
            reference="application-42",
        )
    finally:
        client.request_session.close()

    page.goto(sandbox.url + "/")
    rows = page.locator("#outbox tbody tr")
    assert rows.count() == 2
    newest, oldest = rows.nth(0), rows.nth(1)
    assert newest.get_attribute("data-notification-id") == sent["id"]
    assert oldest.get_attribute("data-notification-id") == first["id"]
    cells = [cell.strip() for cell in newest.locator("td").all_inner_texts()]
    assert cells[1:5] == [
        "supplier@example.gov.uk",
        "Your application to G-Cloud 14 – “received”",
        "Application received",
        "application-42",
    ]
    assert cells[5] in {"created", "sending", "delivered"}
    assert cells[6] == "Test"
    assert oldest.locator("td").nth(4).inner_text().strip() == "None"

    newest.get_by_role("link", name="Your application to G-Cloud 14").click()
    page.wait_for_url(re.compile(rf"/email/{sent['id']}$"))

    assert page.locator("h1#subject").inner_text() == sent["content"]["subject"]
    body = page.locator("#email-body")
    assert body.locator("h2").inner_text() == f"Hello Ada {INJECTED}"
    assert body.locator("script").count() == 0
    assert page.title().startswith("Your application to G-Cloud 14")
    assert body.locator("ul li").all_inner_texts() == ["a company number", "a signed declaration"]
    assert body.locator("blockquote").inner_text().strip() == "Apply by 5pm on 1 June."
    guidance = body.get_by_role("link", name="the guidance")
    assert guidance.get_attribute("href") == "https://www.gov.uk/guidance"
    bare = body.get_by_role("link", name="https://www.digitalmarketplace.service.gov.uk")
    assert bare.get_attribute("href") == "https://www.digitalmarketplace.service.gov.uk"
    assert page.locator("#reference").inner_text() == "application-42"
    assert page.locator("#key-type").inner_text() == "Test"
    assert "Application received" in page.locator("#template").inner_text()
    assert TEMPLATE_ID in page.locator("#template").inner_text()
    page.screenshot(path=SCREENSHOT, full_page=True)

    page.get_by_role("link", name="Back to the outbox").click()
    page.wait_for_url(sandbox.url + "/")
    assert page.locator("#outbox tbody tr").count() == 2


def test_unknown_email_is_a_page_not_an_error(sandbox: Sandbox, page: Page) -> None:
    response = page.goto(sandbox.url + "/email/00000000-0000-4000-8000-000000000000")
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "Email not found"
