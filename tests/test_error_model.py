"""One error model: every error lives in ``flask_dmmail.errors``; the service errors share one
base with the same attributes; and ``transient`` is exactly what the retry code retries.

The retry decisions are observed, not restated: each Notify or Mailchimp answer is served by
the sandbox's server (an instrument on it answers the request with that failure) to the
official clients, and the test counts how many times the request was made.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import flask_dmmail
from flask_dmmail import errors
from flask_dmmail.errors import (
    ApiKeyNotFoundError,
    ApiKeyRevokedError,
    CampaignError,
    ClockSkewError,
    DailyLimitError,
    DMMailError,
    ForgottenMemberError,
    InvalidMemberAddressError,
    MailchimpAuthError,
    MailchimpBadRequestError,
    MailchimpError,
    MailchimpForbiddenError,
    MailchimpNotFoundError,
    MailchimpProtocolError,
    MailchimpRateLimitError,
    MailchimpUnavailableError,
    MailchimpValidationError,
    MemberComplianceError,
    MemberExistsError,
    MissingPersonalisationError,
    NotificationNotFoundError,
    NotifyAuthError,
    NotifyBadRequestError,
    NotifyError,
    NotifyForbiddenError,
    NotifyProtocolError,
    NotifyUnavailableError,
    NotifyValidationError,
    RateLimitError,
    RecipientNotAllowedError,
    RedisUnavailableError,
    ServiceError,
    TemplateNotFoundError,
)
from flask_dmmail.mailchimp import Audiences
from tests.mailchimp_support import Instrument
from tests.secrets_scan import register_secret

EMAIL = r"^/v2/notifications/email$"
PING = r"/ping$"
RECIPIENT = ("bulk.person@example.gov.uk", {"url": "https://example.gov.uk/reset"})
JSON = "application/json"
register_secret(RECIPIENT[0], kind="recipient")
register_secret(RECIPIENT[1]["url"], kind="personalisation")


def notify_body(status: int, error_class: str, message: str) -> dict[str, Any]:
    return {"status_code": status, "errors": [{"error": error_class, "message": message}]}


#: An answer of Notify to a send that maps to each NotifyError class: (status, body, type).
NOTIFY_ANSWERS: dict[type[NotifyError], tuple[int, bytes | dict[str, Any], str]] = {
    NotifyError: (418, notify_body(418, "TeapotError", "I am a teapot"), JSON),
    NotifyValidationError: (
        400,
        notify_body(400, "ValidationError", "template_id is required"),
        JSON,
    ),
    NotifyBadRequestError: (400, notify_body(400, "BadRequestError", "Unknown reply_to"), JSON),
    TemplateNotFoundError: (400, notify_body(400, "BadRequestError", "Template not found"), JSON),
    MissingPersonalisationError: (
        400,
        notify_body(400, "BadRequestError", "Missing personalisation: name"),
        JSON,
    ),
    RecipientNotAllowedError: (
        400,
        notify_body(
            400, "BadRequestError", "Can’t send to this recipient using a team-only API key"
        ),
        JSON,
    ),
    NotifyAuthError: (401, notify_body(401, "AuthError", "Unauthorized: no token"), JSON),
    ClockSkewError: (
        403,
        notify_body(
            403, "AuthError", "Error: Your system clock must be accurate to within 30 seconds"
        ),
        JSON,
    ),
    ApiKeyNotFoundError: (
        403,
        notify_body(403, "AuthError", "Invalid token: API key not found"),
        JSON,
    ),
    ApiKeyRevokedError: (
        403,
        notify_body(403, "AuthError", "Invalid token: API key revoked"),
        JSON,
    ),
    NotifyForbiddenError: (403, notify_body(403, "BadRequestError", "Cannot send letters"), JSON),
    NotificationNotFoundError: (404, notify_body(404, "NoResultFound", "No result found"), JSON),
    RateLimitError: (
        429,
        notify_body(
            429,
            "RateLimitError",
            "Exceeded rate limit for key type TEST of 3 requests per 60 seconds",
        ),
        JSON,
    ),
    DailyLimitError: (
        429,
        notify_body(429, "TooManyRequestsError", "Exceeded send limits (email: 50) for today"),
        JSON,
    ),
    NotifyUnavailableError: (
        500,
        notify_body(500, "InternalServerError", "Internal server error"),
        JSON,
    ),
    NotifyProtocolError: (201, b"<html>not Notify</html>", "text/html"),
}


def problem(status: int, title: str, detail: str = "Something is wrong.") -> dict[str, Any]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}


#: An answer of Mailchimp to a ping that maps to each MailchimpError class.
MAILCHIMP_ANSWERS: dict[type[MailchimpError], tuple[int, bytes | dict[str, Any], str]] = {
    MailchimpAuthError: (401, problem(401, "API Key Invalid"), JSON),
    MailchimpForbiddenError: (403, problem(403, "Forbidden"), JSON),
    MailchimpNotFoundError: (404, problem(404, "Resource Not Found"), JSON),
    MailchimpBadRequestError: (400, problem(400, "Bad Request"), JSON),
    MemberExistsError: (400, problem(400, "Member Exists"), JSON),
    MemberComplianceError: (400, problem(400, "Member In Compliance State"), JSON),
    ForgottenMemberError: (400, problem(400, "Forgotten Email Not Subscribed"), JSON),
    MailchimpValidationError: (400, problem(400, "Invalid Resource"), JSON),
    InvalidMemberAddressError: (
        400,
        problem(400, "Invalid Resource", "looks fake or invalid"),
        JSON,
    ),
    MailchimpRateLimitError: (429, problem(429, "Too Many Requests"), JSON),
    MailchimpUnavailableError: (500, problem(500, "Internal Server Error"), JSON),
    MailchimpProtocolError: (200, b"[1, 2, 3]", JSON),
}

#: Service errors no single answer produces: the bases, and CampaignError, whose
#: ``transient`` is its cause's (tests/test_mailchimp_campaigns.py).
# RedisUnavailableError's wait for Redis (its retry decision) is tested in
# tests/test_budget_outage.py, against a real redis-server that stops.
NOT_FROM_AN_ANSWER = {ServiceError, MailchimpError, CampaignError, RedisUnavailableError}


def error_classes() -> list[type[DMMailError]]:
    return [
        cls
        for cls in vars(errors).values()
        if inspect.isclass(cls) and issubclass(cls, DMMailError)
    ]


# -- one place ---------------------------------------------------------------------------------


def test_every_error_of_the_package_is_defined_in_errors_py() -> None:
    for module in pkgutil.walk_packages(flask_dmmail.__path__, "flask_dmmail."):
        if module.name.endswith("__main__"):
            continue
        importlib.import_module(module.name)
    found: list[type[DMMailError]] = []
    todo: list[type[DMMailError]] = [DMMailError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    elsewhere = [
        f"{c.__module__}.{c.__qualname__}"
        for c in found
        if c.__module__.startswith("flask_dmmail") and c.__module__ != "flask_dmmail.errors"
    ]
    assert elsewhere == []
    assert sorted(c.__name__ for c in error_classes()) == sorted(errors.__all__)


def test_names_users_catch_still_import_from_where_they_did() -> None:
    from flask_dmmail.extension import ExtensionError
    from flask_dmmail.webhooks import InvalidReceipt

    assert ExtensionError is errors.ExtensionError is flask_dmmail.ExtensionError
    assert issubclass(ExtensionError, RuntimeError)
    assert InvalidReceipt is errors.InvalidReceiptError
    assert issubclass(InvalidReceipt, ValueError) and issubclass(InvalidReceipt, DMMailError)


def test_the_module_docstring_draws_every_error() -> None:
    tree = (errors.__doc__ or "").split("::", 1)[1]
    drawn = set(re.findall(r"── (\w+)", tree)) | {tree.split()[0]}
    assert drawn == set(errors.__all__)


# -- one base, the same attributes -------------------------------------------------------------


def test_the_service_errors_share_one_base_with_the_same_attributes() -> None:
    for cls in error_classes():
        if not issubclass(cls, ServiceError) or cls in (ServiceError, CampaignError):
            continue
        error = cls("A message.")
        expected = {NotifyError: "notify", MailchimpError: "mailchimp"}
        service = next((v for k, v in expected.items() if issubclass(cls, k)), "redis")
        assert error.service == service, cls
        assert error.status_code is None or cls is MissingPersonalisationError
        assert isinstance(error.transient, bool)
        if cls is not DailyLimitError:
            assert error.retry_after is None, cls


def test_a_mailchimp_error_has_status_code_and_status_as_its_old_name() -> None:
    error = MailchimpNotFoundError("Not found.", status=404, title="Resource Not Found")
    assert error.status_code == error.status == 404
    assert MailchimpError("x", status_code=429).status == 429
    campaign = CampaignError("x", step="send", campaign_id=None, draft_deleted=False, status=400)
    assert campaign.status_code == 400 and campaign.service == "mailchimp"


def test_the_daily_limit_says_when_it_resets() -> None:
    before = datetime.now(UTC)
    error = DailyLimitError("Exceeded send limits (email: 50) for today", status_code=429)
    after = datetime.now(UTC)
    assert error.retry_after is not None
    resets = before + timedelta(seconds=error.retry_after)
    midnight = datetime.combine(after.date(), datetime.min.time(), UTC) + timedelta(days=1)
    assert midnight - timedelta(seconds=1) <= resets <= midnight + (after - before)
    assert DailyLimitError("x", retry_after=60).retry_after == 60


# -- transient is the retry decision -----------------------------------------------------------


def test_every_service_error_class_has_its_retry_decision_checked() -> None:
    service_errors = {c for c in error_classes() if issubclass(c, ServiceError)}
    assert service_errors == {*NOTIFY_ANSWERS, *MAILCHIMP_ANSWERS, *NOT_FROM_AN_ANSWER}


@pytest.mark.parametrize("cls", list(NOTIFY_ANSWERS), ids=lambda c: c.__name__)
def test_a_send_retries_exactly_the_transient_notify_errors(
    cls: type[NotifyError], make_app: Callable[..., Flask], instrument: Instrument
) -> None:
    mailer = make_app(DM_NOTIFY_RETRIES=2).extensions["dmmail"]
    status, body, content_type = NOTIFY_ANSWERS[cls]
    instrument.fail("POST", EMAIL, status=status, body=body, content_type=content_type)
    with pytest.raises(NotifyError) as raised:
        mailer.send(RECIPIENT[0], "reset_password", RECIPIENT[1])
    assert type(raised.value) is cls
    posts = len(instrument.paths("POST", "/v2/notifications/email"))
    assert posts in (1, 3)
    assert cls.transient is raised.value.transient is (posts == 3)
    assert raised.value.attempts == posts


@pytest.mark.parametrize("cls", list(NOTIFY_ANSWERS), ids=lambda c: c.__name__)
def test_a_bulk_run_retries_exactly_the_transient_notify_errors(
    cls: type[NotifyError], make_app: Callable[..., Flask], instrument: Instrument, tmp_path: Path
) -> None:
    mailer = make_app(DM_NOTIFY_RETRIES=0).extensions["dmmail"]
    status, body, content_type = NOTIFY_ANSWERS[cls]
    instrument.fail("POST", EMAIL, status=status, body=body, content_type=content_type, times=2)
    try:
        report = mailer.send_bulk("reset_password", [RECIPIENT], journal=tmp_path / "run.journal")
    except errors.BulkAbortedError as error:
        assert type(error.__cause__) is cls
        retried = False
    else:
        retried = report.sent == 1
        assert report.sent + report.failed == 1
        if not retried:
            assert report.failures[0].error_class == cls.__name__
    assert cls.transient is retried


@pytest.mark.parametrize("cls", list(MAILCHIMP_ANSWERS), ids=lambda c: c.__name__)
def test_mailchimp_calls_retry_exactly_the_transient_mailchimp_errors(
    cls: type[MailchimpError], make_mc_app: Callable[..., Flask], instrument: Instrument
) -> None:
    audiences = make_mc_app(DM_MAILCHIMP_RETRIES=2).extensions["dmmail"].mailchimp
    assert isinstance(audiences, Audiences)
    status, body, content_type = MAILCHIMP_ANSWERS[cls]
    instrument.fail("GET", PING, status=status, body=body, content_type=content_type)
    with pytest.raises(MailchimpError) as raised:
        audiences.ping()
    assert type(raised.value) is cls
    calls = len(instrument.paths("GET", "/ping"))
    assert calls in (1, 3)
    assert cls.transient is raised.value.transient is (calls == 3)
    if isinstance(body, dict):
        assert raised.value.status_code == raised.value.status == status


@pytest.mark.parametrize(
    "cls",
    [RateLimitError, DailyLimitError, NotifyUnavailableError, TemplateNotFoundError],
    ids=lambda c: c.__name__,
)
def test_the_cli_exits_75_exactly_when_the_send_was_retried(
    cls: type[NotifyError], make_app: Callable[..., Flask], instrument: Instrument
) -> None:
    runner = make_app(DM_NOTIFY_RETRIES=1).test_cli_runner()
    status, body, content_type = NOTIFY_ANSWERS[cls]
    instrument.fail("POST", EMAIL, status=status, body=body, content_type=content_type)
    result = runner.invoke(
        args=["dmmail", "send", RECIPIENT[0], "reset_password", f"url={RECIPIENT[1]['url']}"]
    )
    retried = len(instrument.paths("POST", "/v2/notifications/email")) == 2
    assert result.exit_code == (75 if retried else 1)
    assert retried is cls.transient
