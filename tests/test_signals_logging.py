"""Signals carry the real app; log lines carry fields, never personal data or keys."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_dmmail import Mailer, SentEmail, signals
from flask_dmmail.errors import (
    InvalidEmailAddressError,
    MissingPersonalisationError,
    NotifyUnavailableError,
)
from flask_dmmail.sandbox import Sandbox
from flask_dmmail.testing import record

from .conftest import RecordAll

SECRET_NAME = "Ermintrude Quackenbush"
PERSONAL = {"name": SECRET_NAME, "framework": "Framework-Xyzzy-9"}
ADDRESS = "private.person@example.gov.uk"


def test_email_sent_has_the_real_app_as_sender(app: Flask, mailer: Mailer) -> None:
    got: list[tuple[object, SentEmail]] = []

    def receiver(sender: object, email: SentEmail, **_: Any) -> None:
        got.append((sender, email))

    with app.app_context(), signals.email_sent.connected_to(receiver):
        from flask_dmmail import DMMail

        sent = DMMail().send(ADDRESS, "welcome", PERSONAL)
    assert len(got) == 1
    assert got[0][0] is app
    assert type(got[0][0]) is Flask
    assert got[0][1] == sent


def test_email_failed_carries_the_error_and_a_hash(app: Flask, mailer: Mailer) -> None:
    failures: list[dict[str, Any]] = []

    def receiver(sender: object, **kwargs: Any) -> None:
        assert sender is app
        failures.append(kwargs)

    with signals.email_failed.connected_to(receiver):
        with pytest.raises(MissingPersonalisationError):
            mailer.send(ADDRESS, "welcome", {"name": SECRET_NAME})
        with pytest.raises(InvalidEmailAddressError):
            mailer.send("nope", "welcome", PERSONAL)
    assert isinstance(failures[0]["error"], MissingPersonalisationError)
    assert failures[0]["to_hash"] == mailer.hasher.hash_address(ADDRESS)
    assert failures[0]["template_id"] == mailer.settings.templates["welcome"]
    assert failures[0]["reference"].startswith("dmmail-")
    assert isinstance(failures[1]["error"], InvalidEmailAddressError)
    assert failures[1]["to_hash"] is None


def test_record_collects_only_its_apps_emails(app: Flask, make_app: Callable[..., Flask]) -> None:
    other = make_app()
    with record(app) as sent:
        app.extensions["dmmail"].send(ADDRESS, "welcome", PERSONAL)
        other.extensions["dmmail"].send(ADDRESS, "welcome", PERSONAL)
    assert len(sent) == 1
    app.extensions["dmmail"].send(ADDRESS, "welcome", PERSONAL)
    assert len(sent) == 1


def test_the_outbox_fixture_holds_this_tests_emails(
    mailer: Mailer, dmmail_outbox: list[SentEmail]
) -> None:
    assert dmmail_outbox == []
    sent = mailer.send(ADDRESS, "welcome", PERSONAL)
    assert dmmail_outbox == [sent]
    assert dmmail_outbox[0] is not sent


def test_one_info_line_per_send_with_its_fields(
    mailer: Mailer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="flask_dmmail"):
        sent = mailer.send(ADDRESS, "welcome", PERSONAL)
    assert sent is not None
    records = [r for r in caplog.records if r.name == "flask_dmmail"]
    assert len(records) == 1
    record_ = records[0]
    assert record_.levelno == logging.INFO
    fields = vars(record_)
    assert fields["reference"] == sent.reference
    assert fields["template_id"] == sent.template_id
    assert fields["to_hash"] == mailer.hasher.hash_address(ADDRESS)
    assert fields["notification_id"] == sent.id
    assert fields["redirected"] is False
    assert fields["attempt"] == 1
    assert isinstance(fields["duration_ms"], float)


def test_retries_warn_and_failures_error(
    make_app: Callable[..., Flask], sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    mailer: Mailer = make_app(DM_NOTIFY_RETRIES=2).extensions["dmmail"]
    sandbox.state.set_faults(error_rate=1.0)
    with (
        caplog.at_level(logging.INFO, logger="flask_dmmail"),
        pytest.raises(NotifyUnavailableError),
    ):
        mailer.send(ADDRESS, "welcome", PERSONAL)
    sandbox.state.clear_faults()
    levels = [r.levelname for r in caplog.records if r.name == "flask_dmmail"]
    assert levels == ["WARNING", "WARNING", "ERROR"]
    assert [getattr(r, "attempt", None) for r in caplog.records if r.name == "flask_dmmail"] == [
        1,
        2,
        3,
    ]


def test_a_refusal_is_logged_as_the_first_attempt(
    mailer: Mailer, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="flask_dmmail"),
        pytest.raises(MissingPersonalisationError) as raised,
    ):
        mailer.send(ADDRESS, "welcome", {"name": SECRET_NAME})
    ours = [r for r in caplog.records if r.name == "flask_dmmail"]
    assert [(r.levelname, getattr(r, "attempt", None)) for r in ours] == [("ERROR", 1)]
    assert raised.value.attempts == 1


def test_no_address_personalisation_or_key_in_any_log_record_or_error(
    make_app: Callable[..., Flask], sandbox: Sandbox, all_logs: RecordAll
) -> None:
    mailer: Mailer = make_app(DM_NOTIFY_RETRIES=1).extensions["dmmail"]
    errors: list[BaseException] = []
    mailer.send(ADDRESS, "welcome", PERSONAL)
    mailer.send(ADDRESS, "welcome", PERSONAL, allow_resend=False)
    for bad in ({"name": SECRET_NAME}, {"name": SECRET_NAME, "framework": {"x": 1}}):
        try:
            mailer.send(ADDRESS, "welcome", bad)
        except Exception as error:
            errors.append(error)
    sandbox.state.set_faults(error_rate=1.0)
    try:
        mailer.send(ADDRESS, "welcome", PERSONAL)
    except Exception as error:
        errors.append(error)
    sandbox.state.clear_faults()
    assert len(errors) == 3
    text = all_logs.text() + "\n".join(str(e) + repr(e) for e in errors)
    for secret in (ADDRESS, "private.person", SECRET_NAME, "Xyzzy", sandbox.keys.test):
        assert secret not in text
    secret_part = sandbox.keys.test[-36:]
    assert secret_part not in text
