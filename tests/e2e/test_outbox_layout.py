"""The outbox pages at 1280 px wide: nothing is cut off or pushed sideways, whatever the
references, addresses and subjects (a derived reference is 50 characters without a space).

The app runs on pytest-flask's ``live_server``, in sandbox mode; its ``/_dmmail/`` pages send
the browser to its sandbox, which serves the same pages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask

from flask_dmmail import DMMail
from flask_dmmail.sandbox import Sandbox
from flask_dmmail.testing import DMMailOutbox
from tests.secrets_scan import register_secret

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

TEMPLATE_ID = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
SEED = {
    "templates": [
        {
            "id": TEMPLATE_ID,
            "name": "Supplier declaration reminder for the Digital Outcomes framework",
            "subject": "((framework)): your supplier declaration is due by ((date))",
            "body": "Hello ((name))\n\nReturn it at https://www.digitalmarketplace.service.gov.uk/"
            "suppliers/frameworks/digital-outcomes-and-specialists-7/declaration/edit/"
            "section-one-of-the-declaration",
        }
    ]
}
ADDRESSES = [
    "a.rather.long.name.of.a.supplier.contact@department-for-example-services.gov.uk",
    "short@example.gov.uk",
]
PERSONAL = {
    "framework": "Digital Outcomes and Specialists 7",
    "date": "Wednesday 1 January 2031 at 5pm",
    "name": "Ada",
}

#: Every element of the page whose right edge is past the viewport, and whether the page
#: scrolls sideways (nothing is named by its text: that holds addresses).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const cut = [];
  if (document.documentElement.scrollWidth > width) {
    cut.push(`the page is ${document.documentElement.scrollWidth} px wide`);
  }
  document.querySelectorAll("th, td, dt, dd, h1, h2, p, pre, table").forEach((el, i) => {
    const right = el.getBoundingClientRect().right;
    if (right > width + 0.5) cut.push(`${el.tagName} #${i} ends at ${Math.round(right)} px`);
  });
  document.querySelectorAll("table").forEach((table, i) => {
    if (table.scrollWidth > table.clientWidth + 1) cut.push(`table #${i} is cut off`);
  });
  return cut;
}"""


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """pytest-flask's app: in sandbox mode, with one long-named template and audience."""
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    app = Flask("layout_app")
    app.config.update(
        TESTING=True,
        SECRET_KEY="layout",
        DM_NOTIFY_TEMPLATES={"declaration_reminder": TEMPLATE_ID},
        DM_NOTIFY_SANDBOX_TEMPLATES=SEED,
        DM_MAILCHIMP_AUDIENCES={
            "digital_outcomes_and_specialists_7_suppliers_who_asked_for_news": "f3a1c0e2b7"
        },
    )
    DMMail(app)
    yield app
    app.extensions["dmmail"].close()


def _overflow(page: Page) -> list[str]:
    found: list[str] = page.evaluate(OVERFLOW)
    return found


def test_nothing_is_cut_off_at_1280_px(
    app: Flask,
    live_server: Any,
    page: Page,
    dmmail_outbox: DMMailOutbox,
    notify_sandbox: Sandbox,
) -> None:
    register_secret(*ADDRESSES, *PERSONAL.values(), kind="test input")
    dmmail = DMMail()
    for address in ADDRESSES:  # pytest-flask pushed the app's context
        dmmail.send(address, "declaration_reminder", PERSONAL)
    sent = dmmail_outbox.wait_for(2)
    assert len(sent) == 2
    assert page.viewport_size == {"width": 1280, "height": 900}

    page.goto(live_server.url("/_dmmail/"))
    assert page.url == notify_sandbox.url + "/"
    assert page.locator("#outbox tbody tr").count() == 2
    assert _overflow(page) == []
    last = page.locator("#outbox thead th").last
    assert last.inner_text() == "Key"
    assert last.is_visible()
    page.screenshot(path="/tmp/dmmail-outbox-1280.png", full_page=True)

    page.goto(live_server.url(f"/_dmmail/email/{sent[0].id}"))
    assert page.locator("#email-body").is_visible()
    assert _overflow(page) == []

    page.goto(live_server.url("/_dmmail/mailchimp/"))
    assert page.locator("#audiences tbody tr").count() == 1
    assert _overflow(page) == []
