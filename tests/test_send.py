"""Mailer.send through the real Notify client against the sandbox."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from flask_dmmail import Mailer, SentEmail, attachment
from flask_dmmail.errors import (
    ApiKeyRevokedError,
    DMMailError,
    InvalidEmailAddressError,
    InvalidInputError,
    InvalidOptionError,
    InvalidPersonalisationError,
    MissingPersonalisationError,
    NotificationNotFoundError,
    NotifyAuthError,
    RecipientNotAllowedError,
    TemplateNotFoundError,
    UnknownTemplateError,
)
from flask_dmmail.sandbox import Sandbox

from .conftest import REPLY_TO_ID, WELCOME_ID

PERSONAL = {"name": "Zebedee Quux", "framework": "G-Cloud 14"}


def test_send_returns_what_notify_stored(mailer: Mailer, sandbox: Sandbox) -> None:
    sent = mailer.send("Buyer.One@Example.GOV.uk ", "welcome", PERSONAL)
    assert isinstance(sent, SentEmail)
    stored = sandbox.state.get(sent.id)
    assert stored is not None
    assert stored.email_address == "Buyer.One@Example.GOV.uk"
    assert stored.reference == sent.reference
    assert sent.to == sent.sent_to == "Buyer.One@Example.GOV.uk"
    assert sent.redirected is False
    assert sent.template_id == WELCOME_ID
    assert sent.template_version == 1
    assert sent.subject == "Welcome, Zebedee Quux"
    assert sent.body == "# Hello Zebedee Quux\n\nYou registered for G-Cloud 14."
    assert sent.from_email is not None and sent.from_email.endswith("@notifications.service.gov.uk")
    assert sent.uri == f"{sandbox.url}/v2/notifications/{sent.id}"
    assert sent.scheduled_for is None
    assert sent.reference is not None and sent.reference.startswith("dmmail-")


def test_a_template_uuid_works_as_well_as_a_name(mailer: Mailer) -> None:
    by_name = mailer.send("a@example.gov.uk", "welcome", PERSONAL)
    by_id = mailer.send("a@example.gov.uk", WELCOME_ID.upper(), PERSONAL)
    assert by_name is not None and by_id is not None
    assert by_name.template_id == by_id.template_id == WELCOME_ID
    assert by_name.reference == by_id.reference


def test_every_optional_field_reaches_notify(mailer: Mailer, sandbox: Sandbox) -> None:
    when = datetime.now(UTC) + timedelta(hours=2)
    sent = mailer.send(
        "a@example.gov.uk",
        "welcome",
        PERSONAL,
        reference="my-own-reference",
        reply_to_id=REPLY_TO_ID,
        one_click_unsubscribe_url="https://www.example.gov.uk/unsubscribe?t=1",
        scheduled_for=when,
    )
    assert sent is not None
    stored = sandbox.state.get(sent.id)
    assert stored is not None
    assert stored.reference == sent.reference == "my-own-reference"
    assert stored.email_reply_to_id == REPLY_TO_ID
    assert stored.one_click_unsubscribe_url == "https://www.example.gov.uk/unsubscribe?t=1"
    assert sent.scheduled_for == when.strftime("%Y-%m-%dT%H:%M:%S")


def test_a_file_is_uploaded_through_notify(mailer: Mailer, sandbox: Sandbox) -> None:
    sandbox.state.seed(
        {
            "templates": [
                {
                    "id": "a5a4c1a2-3b4c-4d5e-8f90-1a2b3c4d5e6f",
                    "name": "File",
                    "subject": "Your file",
                    "body": "Download it: ((link_to_file))",
                }
            ]
        }
    )
    sent = mailer.send(
        "a@example.gov.uk",
        "a5a4c1a2-3b4c-4d5e-8f90-1a2b3c4d5e6f",
        {
            "link_to_file": attachment(
                io.BytesIO(b"a,b\n1,2\n"), filename="report.csv", retention_period=4
            )
        },
    )
    assert sent is not None
    stored = sandbox.state.get(sent.id)
    assert stored is not None
    assert "https://documents.service.gov.uk/d/" in sent.body
    assert [f["filename"] for f in stored.files] == ["report.csv"]
    assert stored.files[0]["retention_period"] == "4 weeks"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (dict(to="not an address"), InvalidEmailAddressError),
        (dict(to="a@b"), InvalidEmailAddressError),
        (dict(to="a..b@example.com"), InvalidEmailAddressError),
        (dict(to="a@example.c"), InvalidEmailAddressError),
        (dict(to=None), InvalidEmailAddressError),
        (dict(template="no_such_template"), UnknownTemplateError),
        (dict(template=42), UnknownTemplateError),
        (dict(personalisation=["name"]), InvalidPersonalisationError),
        (dict(personalisation={"name": object()}), InvalidPersonalisationError),
        (dict(personalisation={"name": {"nested": 1}}), InvalidPersonalisationError),
        (dict(personalisation={"name": float("nan")}), InvalidPersonalisationError),
        (dict(personalisation={1: "x"}), InvalidPersonalisationError),
        (dict(reference="r" * 1001), InvalidOptionError),
        (dict(reference=""), InvalidOptionError),
        (dict(reply_to_id="enquiries"), InvalidOptionError),
        (dict(one_click_unsubscribe_url="http://example.gov.uk/u"), InvalidOptionError),
        (dict(one_click_unsubscribe_url="https://"), InvalidOptionError),
        (dict(scheduled_for=datetime.now() + timedelta(hours=1)), InvalidOptionError),
        (dict(scheduled_for=datetime.now(UTC) - timedelta(minutes=1)), InvalidOptionError),
        (dict(scheduled_for=datetime.now(UTC) + timedelta(hours=25)), InvalidOptionError),
        (dict(scheduled_for="tomorrow"), InvalidOptionError),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, dict) else v.__name__,
)
def test_bad_input_is_refused_before_any_network_call(
    mailer: Mailer, sandbox: Sandbox, call: dict[str, Any], error: type[DMMailError]
) -> None:
    args: dict[str, Any] = {"to": "a@example.gov.uk", "template": "welcome"}
    args["personalisation"] = PERSONAL
    args.update(call)
    requests_before = len(sandbox.state.outbox())
    with pytest.raises(error) as raised:
        mailer.send(args.pop("to"), args.pop("template"), args.pop("personalisation"), **args)
    assert isinstance(raised.value, InvalidInputError)
    assert len(sandbox.state.outbox()) == requests_before


def test_an_unknown_name_lists_the_known_ones(mailer: Mailer) -> None:
    with pytest.raises(UnknownTemplateError) as raised:
        mailer.send("a@example.gov.uk", "welcom", PERSONAL)
    assert "reset_password, welcome" in str(raised.value)


def test_missing_personalisation_carries_the_names(mailer: Mailer) -> None:
    with pytest.raises(MissingPersonalisationError) as raised:
        mailer.send("a@example.gov.uk", "welcome", {"name": "Zebedee Quux"})
    assert raised.value.missing == ("framework",)
    assert raised.value.status_code == 400
    assert "Zebedee" not in str(raised.value)


def test_a_template_missing_from_notify_is_a_typed_error(mailer: Mailer) -> None:
    with pytest.raises(TemplateNotFoundError) as raised:
        mailer.send("a@example.gov.uk", "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f", {})
    assert raised.value.status_code == 400
    assert not raised.value.transient


def test_a_team_key_may_not_send_to_strangers(make_app: Any, sandbox: Sandbox) -> None:
    app: Flask = make_app(key=sandbox.keys.team)
    with pytest.raises(RecipientNotAllowedError) as raised:
        app.extensions["dmmail"].send("stranger@example.gov.uk", "welcome", PERSONAL)
    assert "team-only API key" in str(raised.value)
    assert "stranger" not in str(raised.value)


def test_a_revoked_key_is_an_auth_error(app: Flask, sandbox: Sandbox) -> None:
    sandbox.state.revoke_key("test")
    with pytest.raises(ApiKeyRevokedError) as raised:
        app.extensions["dmmail"].send("a@example.gov.uk", "welcome", PERSONAL)
    assert isinstance(raised.value, NotifyAuthError)
    assert raised.value.status_code == 403


def test_preview_fills_the_template(mailer: Mailer) -> None:
    preview = mailer.preview("welcome", PERSONAL)
    assert preview.id == WELCOME_ID
    assert preview.subject == "Welcome, Zebedee Quux"
    assert preview.body.startswith("# Hello Zebedee Quux")
    assert preview.html is not None and "Zebedee Quux" in preview.html
    assert "Zebedee" not in repr(preview)


def test_preview_of_a_missing_template(mailer: Mailer) -> None:
    with pytest.raises(TemplateNotFoundError):
        mailer.preview("0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f", {})


def test_preview_refuses_a_file_with_a_typed_error(mailer: Mailer, sandbox: Sandbox) -> None:
    with pytest.raises(InvalidPersonalisationError, match="'name'"):
        mailer.preview("welcome", {"name": attachment(b"%PDF", filename="a.pdf"), "framework": "F"})


def test_get_notification_and_not_found(mailer: Mailer) -> None:
    sent = mailer.send("a@example.gov.uk", "welcome", PERSONAL)
    assert sent is not None
    got = mailer.get_notification(sent.id)
    assert got.id == sent.id
    assert got.reference == sent.reference
    assert got.template_id == WELCOME_ID
    assert got.status in {"created", "sending", "delivered"}
    with pytest.raises(NotificationNotFoundError):
        mailer.get_notification("0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f")
    with pytest.raises(InvalidOptionError):
        mailer.get_notification("nope")


def test_notifications_walks_every_page(mailer: Mailer) -> None:
    for n in range(260):
        mailer.send(f"person{n}@example.gov.uk", "reset_password", {"url": f"https://x/{n}"})
    everything = list(mailer.notifications())
    assert len(everything) == 260
    assert len({n.id for n in everything}) == 260
    one = list(mailer.notifications(reference=everything[5].reference))
    assert [n.id for n in one] == [everything[5].id]


def test_notifications_by_status(mailer: Mailer, sandbox: Sandbox) -> None:
    good = mailer.send("a@example.gov.uk", "welcome", PERSONAL)
    bad = mailer.send("perm-fail@simulator.notify", "welcome", PERSONAL)
    assert good is not None and bad is not None
    sandbox.state.force_status(bad.id, "permanent-failure")
    failed = list(mailer.notifications(status="failed"))
    assert [n.id for n in failed] == [bad.id]
    assert failed[0].failed
