"""The guards the README promises, attacked: the redirect, the stage guard, the sandbox switch.

Each test tries a way around a guard that a hostile reviewer found (issue "Safety guards that
hold") and checks, in the sandbox's own store, where the email really went.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask

from flask_dmmail import DMMail, Mailer
from flask_dmmail.errors import (
    ConfigurationError,
    InvalidOptionError,
    InvalidPersonalisationError,
    RecipientNotAllowedOnStageError,
    UnknownTemplateError,
)
from flask_dmmail.notify import map_error
from flask_dmmail.sandbox import Sandbox

from .secrets_scan import register_secret

SAFE = "functional-tests@digitalmarketplace.service.gov.uk"
SIMULATOR = "simulate-delivered@notifications.service.gov.uk"
PERSONAL = {"name": "N", "framework": "F"}
KEY = "my_test_key-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b0"


# -- 1. the redirect in every spelling Notify delivers to --------------------------------------

ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
BYPASSES = [
    *(f"buyer@exam{zw}ple.com" for zw in ZERO_WIDTH),
    *(f"buyer@example{zw}.com" for zw in ZERO_WIDTH),
    *(f"buyer@example.c{zw}om" for zw in ZERO_WIDTH),
    *(f"buy{zw}er@example.com" for zw in ZERO_WIDTH),
    "buyer@ｅｘａｍｐｌｅ.com",  # full-width letters
    "buyer@example。com",  # ideographic full stop
    "buyer@example．com",  # full-width full stop
    "buyer@example｡com",  # half-width ideographic full stop
    "buyer@exa\u00admple.com",  # soft hyphen
    "buyer@EXAＭＰＬＥ.COM",
    "buyer@sub。example．com",
    "buyer@bücher.example",  # the rule is written in punycode
    "buyer@xn--bcher-kva.example",
    "buyer@straße.test",  # the rule is written in Unicode (IDNA 2003 maps ß to ss)
    "buyer@strasse.test",
]


@pytest.fixture
def redirecting_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(
        DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS={
            "example.com": SAFE,
            "xn--bcher-kva.example": SAFE,
            "straße.test": SAFE,
        }
    )


@pytest.mark.parametrize("recipient", BYPASSES)
def test_no_spelling_of_a_redirected_domain_escapes_the_redirect(
    redirecting_app: Flask, sandbox: Sandbox, recipient: str
) -> None:
    sent = redirecting_app.extensions["dmmail"].send(recipient, "welcome", PERSONAL)
    assert sent is not None
    assert sent.redirected and sent.redirected_by == "domain"
    stored = sandbox.state.get(sent.id)
    assert stored is not None and stored.email_address == SAFE


@pytest.mark.parametrize(
    "recipient", ["buyer@exаmple.com", "buyer@example.co", "buyer@notexample.com"]
)
def test_other_domains_are_still_not_redirected(redirecting_app: Flask, recipient: str) -> None:
    sent = redirecting_app.extensions["dmmail"].send(recipient, "welcome", PERSONAL)
    assert sent is not None and not sent.redirected


def test_zero_width_characters_are_removed_from_what_is_sent(app: Flask, sandbox: Sandbox) -> None:
    sent = app.extensions["dmmail"].send("a@exam\u200bple.gov.uk", "welcome", PERSONAL)
    assert sent is not None and sent.sent_to == "a@example.gov.uk"
    assert sandbox.state.outbox()[0].email_address == "a@example.gov.uk"


@pytest.mark.parametrize("recipient", ["a@exam\u200bple.gov.uk", "a@bücher.example"])
def test_a_dropped_connection_never_stores_two_copies_of_one_email(
    make_app: Callable[..., Flask], sandbox: Sandbox, recipient: str
) -> None:
    """Every POST is stored and then its connection dropped: the look-up must find the one
    stored email, whatever spelling of the address was given."""
    mailer: Mailer = make_app(DM_NOTIFY_RETRIES=3).extensions["dmmail"]
    sandbox.state.set_faults(drop_rate=1.0, paths=["/v2/notifications/email"])
    sent = mailer.send(recipient, "welcome", PERSONAL)
    sandbox.state.clear_faults()
    assert sent is not None
    assert [n.id for n in sandbox.state.outbox()] == [sent.id]


# -- 4. the stage guard ------------------------------------------------------------------------


@pytest.fixture
def staging(make_app: Callable[..., Flask]) -> Callable[..., Mailer]:
    def factory(**config: Any) -> Mailer:
        settings = {
            "DM_ENVIRONMENT": "staging",
            "DM_NOTIFY_ALLOWED_RECIPIENTS": ["digital.gov.uk", "lead@supplier.co.uk"],
            "DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS": {"example.com": SAFE},
        }
        settings.update(config)
        mailer: Mailer = make_app(**settings).extensions["dmmail"]
        return mailer

    return factory


@pytest.mark.parametrize(
    ("recipient", "goes_to"),
    [
        ("someone@digital.gov.uk", "someone@digital.gov.uk"),
        ("someone@team.digital.gov.uk", "someone@team.digital.gov.uk"),
        ("Lead@Supplier.co.uk", "Lead@Supplier.co.uk"),
        ("buyer@example.com", SAFE),  # the redirect's domains come first
        ("simulate-delivered@notifications.service.gov.uk", None),
        ("real.supplier@supplier.co.uk", SIMULATOR),
        ("someone@digital.gov.uk.evil.org", SIMULATOR),
        ("someone@notdigital.gov.uk", SIMULATOR),
        ("someone@gov.uk", SIMULATOR),
        ("lead@supplier.co.uk.evil.org", SIMULATOR),
        ("le\u200bad@supp\u200blier.co.uk", "lead@supplier.co.uk"),
        ("someone@dіgital.gov.uk", SIMULATOR),  # Cyrillic
    ],
)
def test_outside_production_only_allowed_recipients_are_sent_as_given(
    staging: Callable[..., Mailer], sandbox: Sandbox, recipient: str, goes_to: str | None
) -> None:
    sent = staging().send(recipient, "welcome", PERSONAL)
    assert sent is not None
    stored = sandbox.state.get(sent.id)
    if goes_to is None:  # a simulator address: allowed, and Notify does not store it
        assert not sent.redirected and stored is None
        return
    assert sent.sent_to == goes_to
    assert sent.redirected is (goes_to.lower() != recipient.replace("\u200b", "").lower())
    if goes_to == SIMULATOR:
        assert stored is None  # Notify's simulator: accepted, never stored nor delivered
    else:
        assert stored is not None and stored.email_address == goes_to


def test_the_stage_guard_is_counted_in_the_log_line(
    staging: Callable[..., Mailer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flask_dmmail")
    sent = staging().send("real.supplier@supplier.co.uk", "welcome", PERSONAL)
    assert sent is not None and sent.redirected_by == "stage"
    (line,) = [r for r in caplog.records if r.getMessage().startswith("Email sent")]
    assert line.redirected_by == "stage"  # type: ignore[attr-defined]
    assert line.redirected is True  # type: ignore[attr-defined]


def test_the_stage_guard_can_refuse_instead(
    staging: Callable[..., Mailer], sandbox: Sandbox
) -> None:
    mailer = staging(DM_NOTIFY_STAGE_GUARD="refuse")
    with pytest.raises(RecipientNotAllowedOnStageError) as raised:
        mailer.send("real.supplier@supplier.co.uk", "welcome", PERSONAL)
    assert "supplier" not in str(raised.value)
    assert sandbox.state.outbox() == []
    assert mailer.send("someone@digital.gov.uk", "welcome", PERSONAL) is not None


def test_a_safe_address_of_the_apps_choosing(
    staging: Callable[..., Mailer], sandbox: Sandbox
) -> None:
    mailer = staging(DM_NOTIFY_SAFE_ADDRESS="dm-team@digital.gov.uk")
    sent = mailer.send("real.supplier@supplier.co.uk", "welcome", PERSONAL)
    assert sent is not None and sent.sent_to == "dm-team@digital.gov.uk"


def test_production_sends_every_address_as_given(
    staging: Callable[..., Mailer], sandbox: Sandbox
) -> None:
    mailer = staging(DM_ENVIRONMENT="production")
    sent = mailer.send("real.supplier@supplier.co.uk", "welcome", PERSONAL)
    assert sent is not None and not sent.redirected
    # Not "Production", "production " or a typo: only the exact stage name turns the guard off.
    for near in ("prod", "productoin", "pre-production"):
        guarded = staging(DM_ENVIRONMENT=near).send("x@supplier.co.uk", "welcome", PERSONAL)
        assert guarded is not None and guarded.redirected_by == "stage"


def test_bulk_goes_through_the_stage_guard(
    staging: Callable[..., Mailer], sandbox: Sandbox, tmp_path: Any
) -> None:
    report = staging().send_bulk(
        "welcome",
        [("someone@digital.gov.uk", PERSONAL), ("real.supplier@supplier.co.uk", PERSONAL)],
        journal=tmp_path / "run.journal",
    )
    assert report.sent == 2 and report.redirected == 1
    # The simulator address took the other one (Notify accepts it and stores nothing).
    assert [n.email_address for n in sandbox.state.outbox()] == ["someone@digital.gov.uk"]


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"DM_ENVIRONMENT": None}, "DM_ENVIRONMENT"),
        ({"DM_ENVIRONMENT": "staging\nproduction"}, "DM_ENVIRONMENT"),
        ({"DM_NOTIFY_ALLOWED_RECIPIENTS": ["not a domain"]}, "DM_NOTIFY_ALLOWED_RECIPIENTS"),
        ({"DM_NOTIFY_ALLOWED_RECIPIENTS": ["a@@b.gov.uk"]}, "DM_NOTIFY_ALLOWED_RECIPIENTS"),
        ({"DM_NOTIFY_ALLOWED_RECIPIENTS": {"a": 1}}, "DM_NOTIFY_ALLOWED_RECIPIENTS"),
        ({"DM_NOTIFY_STAGE_GUARD": "off"}, "DM_NOTIFY_STAGE_GUARD"),
        ({"DM_NOTIFY_SAFE_ADDRESS": "nobody"}, "DM_NOTIFY_SAFE_ADDRESS"),
        ({"DM_MAILCHIMP_ALLOW_UNLISTED_AUDIENCES": True}, "DM_MAILCHIMP_ALLOW_UNLISTED_AUDIENCES"),
    ],
)
def test_stage_settings_are_checked(
    make_app: Callable[..., Flask], config: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        make_app(**{"DM_ENVIRONMENT": "staging", **config})
    assert raised.value.key == key


def test_the_stage_and_allowed_recipients_come_from_the_environment_too(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox
) -> None:
    monkeypatch.setenv("DM_ENVIRONMENT", "preview")
    monkeypatch.setenv("DM_NOTIFY_ALLOWED_RECIPIENTS", "digital.gov.uk, lead@supplier.co.uk")
    mailer: Mailer = make_app(DM_ENVIRONMENT=None).extensions["dmmail"]
    assert mailer.settings.stage == "preview"
    sent = mailer.send("lead@supplier.co.uk", "welcome", PERSONAL)
    assert sent is not None and not sent.redirected


# -- 2. the sandbox cannot take over a live app ------------------------------------------------


def _live_app(**config: Any) -> Flask:
    app = Flask("live")
    app.config.update({"SECRET_KEY": "s", "DM_ENVIRONMENT": "production", **config})
    DMMail(app)
    return app


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("DM_NOTIFY_KEY", "DM_NOTIFY_API_KEY", "DM_MAIL_SANDBOX", "DM_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_stray_environment_switch_does_not_replace_a_configured_key(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    clean_environment.setenv("DM_MAIL_SANDBOX", "1")
    app = _live_app(DM_NOTIFY_KEY=KEY)
    assert app.extensions["dmmail"].sandbox is None
    assert app.extensions["dmmail"].notify.base_url == "https://api.notifications.service.gov.uk"
    assert "dmmail_outbox" not in app.blueprints


def test_outside_debug_and_testing_only_the_apps_config_can_turn_the_sandbox_on(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    clean_environment.setenv("DM_MAIL_SANDBOX", "true")
    clean_environment.setenv("DM_NOTIFY_KEY", KEY)
    app = _live_app(DM_ENVIRONMENT="staging")
    assert app.extensions["dmmail"].sandbox is None


def test_the_sandbox_is_never_on_in_production(clean_environment: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as raised:
        _live_app(DM_NOTIFY_KEY=KEY, DM_MAIL_SANDBOX=True)
    assert raised.value.key == "DM_MAIL_SANDBOX"


def test_an_explicit_sandbox_outside_debug_is_logged_loudly(
    clean_environment: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flask_dmmail")
    app = _live_app(DM_ENVIRONMENT="staging", DM_MAIL_SANDBOX=True)
    try:
        assert app.extensions["dmmail"].sandbox is not None
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "NO EMAIL IS SENT" in errors[0].getMessage()
    finally:
        app.extensions["dmmail"].close()


def test_a_debug_app_on_real_notify_says_so_at_start(
    clean_environment: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean_environment.setenv("DM_NOTIFY_KEY", KEY)
    register_secret(KEY[-36:], kind="api key")
    caplog.set_level(logging.INFO, logger="flask_dmmail")
    app = Flask("debug")
    app.config.update(SECRET_KEY="s")
    app.debug = True
    DMMail(app)
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    text = warning.getMessage()
    assert "https://api.notifications.service.gov.uk" in text
    assert "'my_test_key'" in text and "environment" in text
    assert KEY[-36:] not in text


# -- 5. Notify's injection guard, sanitise_content_for -----------------------------------------

LINK = "[click here](https://evil.example/login)"


def test_sanitise_content_for_strips_links_from_a_typed_value(app: Flask, sandbox: Sandbox) -> None:
    mailer: Mailer = app.extensions["dmmail"]
    plain = mailer.send("a@example.gov.uk", "welcome", {"name": LINK, "framework": "F"})
    guarded = mailer.send(
        "b@example.gov.uk",
        "welcome",
        {"name": LINK, "framework": "F"},
        sanitise_content_for=["name"],
    )
    assert plain is not None and guarded is not None
    assert "evil.example/login" in plain.body
    assert "evil.example/login" not in guarded.body


def test_config_names_the_fields_that_are_always_sanitised(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    mailer: Mailer = make_app(DM_NOTIFY_SANITISE={"welcome": ["name"]}).extensions["dmmail"]
    sent = mailer.send("a@example.gov.uk", "welcome", {"name": LINK, "framework": "F"})
    assert sent is not None and "evil.example/login" not in sent.body
    other = mailer.send("a@example.gov.uk", "reset_password", {"url": "https://x.gov.uk/r"})
    assert other is not None and "https://x.gov.uk/r" in other.body


@pytest.mark.parametrize("bad", ["name", [""], [3], {"name": True}])
def test_a_bad_sanitise_list_is_refused_before_sending(
    mailer: Mailer, sandbox: Sandbox, bad: Any
) -> None:
    with pytest.raises(InvalidOptionError):
        mailer.send("a@example.gov.uk", "welcome", PERSONAL, sanitise_content_for=bad)
    assert sandbox.state.outbox() == []


def test_dm_notify_sanitise_is_checked(make_app: Callable[..., Flask]) -> None:
    for bad in ({"nope": ["name"]}, {"welcome": "name"}, {"welcome": [1]}):
        with pytest.raises(ConfigurationError) as raised:
            make_app(DM_NOTIFY_SANITISE=bad)
        assert raised.value.key == "DM_NOTIFY_SANITISE"


# -- 6. allow_resend=False with a reference shared by a run ------------------------------------


def test_no_resend_with_a_shared_reference_sends_to_every_recipient_once(
    mailer: Mailer, make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    recipients = [f"supplier{n}@example.gov.uk" for n in range(5)]
    for _ in range(2):
        for address in recipients:
            mailer.send(address, "welcome", PERSONAL, reference="welcome-run-7", allow_resend=False)
    assert len(sandbox.state.outbox()) == 5
    fresh: Mailer = make_app().extensions["dmmail"]  # another process: only Notify knows
    results = [
        fresh.send(a, "welcome", PERSONAL, reference="welcome-run-7", allow_resend=False)
        for a in [*recipients, "newcomer@example.gov.uk"]
    ]
    assert results[:5] == [None] * 5 and results[5] is not None
    assert len(sandbox.state.outbox()) == 6


# -- 12. hostile values get typed errors --------------------------------------------------------


def test_an_int_too_long_to_write_is_a_typed_refusal(mailer: Mailer, sandbox: Sandbox) -> None:
    with pytest.raises(InvalidPersonalisationError):
        mailer.send("a@example.gov.uk", "welcome", {"name": 10**5000, "framework": "F"})
    with pytest.raises(InvalidPersonalisationError):
        mailer.send("a@example.gov.uk", "welcome", {"name": [1, -(10**5000)], "framework": "F"})
    assert mailer.send("a@example.gov.uk", "welcome", {"name": 10**100, "framework": 1})
    assert len(sandbox.state.outbox()) == 1


@pytest.mark.parametrize(
    "when",
    [
        datetime.min.replace(tzinfo=timezone(timedelta(hours=5))),
        datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))),
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        datetime.max.replace(tzinfo=UTC),
    ],
)
def test_scheduled_for_at_the_datetime_limits_is_a_typed_refusal(
    mailer: Mailer, sandbox: Sandbox, when: Any
) -> None:
    with pytest.raises(InvalidOptionError):
        mailer.send("a@example.gov.uk", "welcome", PERSONAL, scheduled_for=when)
    assert sandbox.state.outbox() == []


def test_an_address_given_as_the_template_is_not_echoed(mailer: Mailer) -> None:
    address = "private.person@example.gov.uk"
    with pytest.raises(UnknownTemplateError) as raised:
        mailer.send(address, address)
    assert "private.person" not in str(raised.value)
    with pytest.raises(UnknownTemplateError, match="'welcom'"):
        mailer.send(address, "welcom")


# -- 14. scrubbing is linear in the values ---------------------------------------------------


def test_scrubbing_a_message_with_a_huge_value_still_removes_the_short_ones() -> None:
    import json

    import requests
    from notifications_python_client.errors import HTTPError

    answer = requests.Response()
    answer.status_code = 400
    answer._content = json.dumps(
        {"errors": [{"error": "BadRequestError", "message": "Bad value Ada Lovelace here"}]}
    ).encode()
    huge = "x" * 2_000_000
    error = map_error(HTTPError(response=answer), secrets=[huge, "Ada Lovelace", "ADA"])
    assert "Ada" not in error.message and "[redacted]" in error.message


# -- dependencies: rfc3987 (GPL) replaced by an RFC 3986 check --------------------------------


@pytest.mark.parametrize(
    "url", ["https://exämple.gov.uk/unsubscribe", "https://", "https://a b.gov.uk/", "http://x.uk"]
)
def test_the_unsubscribe_url_is_checked_as_notifys_uri_format_does(
    mailer: Mailer, sandbox: Sandbox, url: str
) -> None:
    with pytest.raises(InvalidOptionError):
        mailer.send("a@example.gov.uk", "welcome", PERSONAL, one_click_unsubscribe_url=url)
    assert sandbox.state.outbox() == []


def test_rfc3987_is_no_longer_a_dependency() -> None:
    from importlib.metadata import requires

    assert not any("rfc3987" in r for r in requires("flask-dmmail") or [])
