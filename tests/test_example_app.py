"""The example app: config classes per environment and its form, on the embedded sandbox.

``app`` is pytest-flask's convention: ``client`` is its test client, and flask-dmmail's
plugin gives ``dmmail_outbox`` and ``mailchimp_sandbox`` for that app."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from example_app import create_app
from flask_dmmail.errors import ConfigurationError
from flask_dmmail.sandbox.mailchimp import member_address
from flask_dmmail.testing import DMMailOutbox, MailchimpSandbox

SUPPLIER = member_address("supplier")  # an address Mailchimp (and the sandbox) accepts
KEY = "live-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b0"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    app = create_app("test")
    yield app
    app.extensions["dmmail"].close()


def test_the_form_sends_a_welcome_email(
    client: FlaskClient, dmmail_outbox: DMMailOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="example_app.audit"):
        response = client.post(
            "/send", data={"name": "Ada", "email": "ada@example.gov.uk"}, follow_redirects=True
        )
    assert response.status_code == 200
    assert "Email sent" in response.get_data(as_text=True)
    assert len(dmmail_outbox) == 1
    assert dmmail_outbox[0].subject == "Welcome to the Digital Marketplace, Ada"
    assert [r.message for r in caplog.records if r.name == "example_app.audit"] == ["email sent"]
    outbox = client.get("/_dmmail/").get_data(as_text=True)
    assert "Welcome to the Digital Marketplace, Ada" in outbox


def test_a_bad_address_is_shown_to_the_user_and_logged_as_a_failure(
    client: FlaskClient, dmmail_outbox: DMMailOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="example_app.audit"):
        response = client.post("/send", data={"name": "A", "email": "nope"})
    assert response.status_code == 400
    assert "not a valid email address" in response.get_data(as_text=True)
    assert [r.message for r in caplog.records if r.name == "example_app.audit"] == [
        "email failed: InvalidEmailAddressError"
    ]
    assert dmmail_outbox == []


def test_development_without_a_key_runs_on_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    app = create_app("development")
    try:
        assert app.extensions["dmmail"].sandbox is not None
    finally:
        app.extensions["dmmail"].close()


@pytest.mark.parametrize("stage", ["preview", "staging", "production"])
def test_live_stages_need_a_key_and_redirect_test_domains(
    stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    with pytest.raises(ConfigurationError) as raised:
        create_app(stage, SECRET_KEY="s")
    assert raised.value.key == "DM_NOTIFY_KEY"
    monkeypatch.setenv("DM_NOTIFY_KEY", KEY)
    app = create_app(stage, SECRET_KEY="s")
    mailer = app.extensions["dmmail"]
    assert mailer.sandbox is None
    prepared = mailer.prepare("x@sub.example.com", "welcome", {"name": "n", "framework": "f"})
    assert prepared.redirected


def test_dm_environment_chooses_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DM_ENVIRONMENT", "nowhere")
    with pytest.raises(ValueError, match="DM_ENVIRONMENT"):
        create_app()


@pytest.mark.parametrize(
    ("before", "status", "message"),
    [
        (None, 302, "You are on the list"),
        ("subscribed", 302, "already on the list"),
        ("unsubscribed", 400, "unsubscribed from this list before"),
    ],
)
def test_the_mailing_list_form_subscribes_through_mailchimp(
    client: FlaskClient,
    mailchimp_sandbox: MailchimpSandbox,
    before: str | None,
    status: int,
    message: str,
) -> None:
    mailchimp_state = mailchimp_sandbox.state
    if before == "subscribed":
        mailchimp_state.add_members("a1b2c3d4e5", [SUPPLIER])
    elif before == "unsubscribed":
        mailchimp_state.add_members("a1b2c3d4e5", [SUPPLIER])
        mailchimp_state.unsubscribe("a1b2c3d4e5", SUPPLIER)
    response = client.post("/mailing-list", data={"email": SUPPLIER})
    assert response.status_code == status
    page = client.get("/").get_data(as_text=True) if status == 302 else response.get_data(True)
    assert message in page
    members = mailchimp_state.members("a1b2c3d4e5")
    assert [m["status"] for m in members] == [before or "subscribed"]
