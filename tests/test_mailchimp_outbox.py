"""The sandbox outbox's Mailchimp pages: audiences, members and sent campaigns, in an app in
sandbox mode (``/_dmmail/mailchimp/``) and on the standalone sandbox."""

from __future__ import annotations

import html
from collections.abc import Iterator

import pytest
import requests
from flask import Flask

from flask_dmmail import DMMail
from flask_dmmail.sandbox import Sandbox

CAMPAIGN_HTML = "<h1>Hello</h1><script>alert(1)</script><p>*|UNSUB|*</p>"


@pytest.fixture
def sandbox_app() -> Iterator[Flask]:
    app = Flask("mc_outbox")
    app.config.update(
        TESTING=True,
        DM_MAIL_SANDBOX=True,
        DM_MAILCHIMP_AUDIENCES={"suppliers": "abcabcabca", "buyers": "1234512345"},
    )
    DMMail(app)
    try:
        yield app
    finally:
        app.extensions["dmmail"].close()


def test_the_mailchimp_page_lists_audiences_and_sent_campaigns(sandbox_app: Flask) -> None:
    mailchimp = sandbox_app.extensions["dmmail"].mailchimp
    mailchimp.subscribe_many("suppliers", ["a@digital.gov.uk", "b@digital.gov.uk"])
    sent = mailchimp.send_campaign(
        "suppliers", title="DOS7 week 1", subject="New", html=CAMPAIGN_HTML
    )
    client = sandbox_app.test_client()

    page = client.get("/_dmmail/mailchimp/").get_data(as_text=True)
    assert 'data-list-id="abcabcabca"' in page and 'data-list-id="1234512345"' in page
    assert "DOS7 week 1" in page and f'data-campaign-id="{sent.campaign_id}"' in page
    assert 'class="dm-nav__current"><a href="/_dmmail/mailchimp/">Mailchimp' in page

    members = client.get("/_dmmail/mailchimp/audience/abcabcabca").get_data(as_text=True)
    assert "a@digital.gov.uk" in members and "b@digital.gov.uk" in members
    assert "2 members" in members
    none = client.get("/_dmmail/mailchimp/audience/abcabcabca?status=unsubscribed")
    assert "a@digital.gov.uk" not in none.get_data(as_text=True)

    campaign = client.get(f"/_dmmail/mailchimp/campaign/{sent.campaign_id}")
    text = campaign.get_data(as_text=True)
    assert campaign.status_code == 200
    assert 'sandbox=""' in text
    assert f'srcdoc="{html.escape(CAMPAIGN_HTML)}"' in text  # escaped, inside the frame
    assert "<script>alert(1)</script>" not in text

    # the Notify outbox is still the current page there
    outbox = client.get("/_dmmail/").get_data(as_text=True)
    assert 'class="dm-nav__current"><a href="/_dmmail/">Notify outbox' in outbox


def test_unknown_audiences_and_campaigns_are_404(sandbox_app: Flask) -> None:
    client = sandbox_app.test_client()
    assert client.get("/_dmmail/mailchimp/audience/ffffffffff").status_code == 404
    missing = client.get("/_dmmail/mailchimp/campaign/ffffffffff")
    assert missing.status_code == 404 and "no campaign" in missing.get_data(as_text=True)


def test_the_standalone_sandbox_has_the_pages_too(notify_sandbox: Sandbox) -> None:
    list_id = notify_sandbox.state.mailchimp.create_list("Standalone audience")
    page = requests.get(f"{notify_sandbox.url}/mailchimp/", timeout=10)
    assert page.status_code == 200 and "Standalone audience" in page.text
    audience = requests.get(f"{notify_sandbox.url}/mailchimp/audience/{list_id}", timeout=10)
    assert audience.status_code == 200 and "No members." in audience.text
