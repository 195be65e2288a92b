"""init_app: registration, config keys, their defaults and the errors that name them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from flask import Flask
from flask.cli import load_dotenv

from flask_dmmail import DMMail, ExtensionError, Mailer
from flask_dmmail.config import KEYS, Settings
from flask_dmmail.errors import ConfigurationError, DMMailError

KEY = "my_test_key-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b0"
TEMPLATE = "6f1a3c1e-8a0b-4c3e-9d0f-5b6a7c8d9e01"


@pytest.fixture(autouse=True)
def _no_keys_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key the tests leave unset takes its default, whatever the environment holds."""
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DM_MAIL_SANDBOX_PERSIST", "false")  # no sandbox in ./instance


def make(config: dict[str, Any], *, debug: bool = False, testing: bool = False) -> Flask:
    app = Flask("config_test")
    app.config.update({"SECRET_KEY": "s", "DM_ENVIRONMENT": "production", **config})
    app.debug = debug
    app.testing = testing
    DMMail(app)
    return app


def close(app: Flask) -> None:
    app.extensions["dmmail"].close()


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("DM_NOTIFY_KEY", "not-a-key", "two UUIDs"),
        ("DM_NOTIFY_KEY", KEY[:-1], "two UUIDs"),
        ("DM_NOTIFY_API_KEY", 12345, "two UUIDs"),
        ("DM_NOTIFY_TEMPLATES", {"welcome": "welcome"}, "template UUID"),
        ("DM_NOTIFY_TEMPLATES", "[1, 2]", "mapping"),
        ("DM_NOTIFY_TEMPLATES", "{not json", "JSON object"),
        ("DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS", {"example": "a@b.gov.uk"}, "not a domain"),
        ("DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS", {"example.com": "nobody"}, "valid email"),
        ("DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS", '{"example.com": 5}', "valid email"),
        ("DM_NOTIFY_TIMEOUT", "soon", "number"),
        ("DM_NOTIFY_TIMEOUT", 0, "at least"),
        ("DM_NOTIFY_RETRIES", -1, "at least"),
        ("DM_NOTIFY_RETRIES", 1.5, "whole number"),
        ("DM_NOTIFY_BASE_URL", "ftp://notify", "http"),
        ("DM_MAIL_SANDBOX", "maybe", "True or False"),
        ("DM_NOTIFY_SANDBOX_TEMPLATES", "/no/such/seed.json", "does not exist"),
        ("DM_MAILCHIMP_API_KEY", "not_a_real_key", "Mailchimp API key"),
        ("DM_MAILCHIMP_AUDIENCES", {"dos": "not a list id!"}, "list id"),
        ("DM_NOTIFY_CALLBACK_TOKEN", "short", "16 characters"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_a_bad_value_is_refused_with_an_error_naming_its_key(
    key: str, value: object, words: str
) -> None:
    config = {"DM_NOTIFY_KEY": KEY, key: value}
    if key == "DM_NOTIFY_API_KEY":
        del config["DM_NOTIFY_KEY"]
    with pytest.raises(ConfigurationError) as raised:
        make(config)
    assert raised.value.key == key
    assert str(raised.value).startswith(f"{key}: ")
    assert words in str(raised.value)


def test_the_key_never_appears_in_the_error() -> None:
    bad = KEY.replace("-3d844edf", "3d844edf")
    with pytest.raises(ConfigurationError) as raised:
        make({"DM_NOTIFY_KEY": bad})
    assert bad not in str(raised.value)
    assert "3d844edf" not in repr(raised.value)


def test_without_a_key_outside_debug_and_testing_init_app_says_how_to_get_one() -> None:
    with pytest.raises(ConfigurationError) as raised:
        make({})
    message = str(raised.value)
    assert raised.value.key == "DM_NOTIFY_KEY"
    assert "API integration > API keys" in message
    assert "live key" in message
    # Production must send: its error never suggests the sandbox.
    assert "sandbox" not in message.lower()


def test_a_debug_app_without_a_key_is_told_about_test_keys() -> None:
    with pytest.raises(ConfigurationError) as raised:
        make({"DM_MAIL_SANDBOX": False}, debug=True)
    assert "choose 'Test'" in str(raised.value)


@pytest.mark.parametrize(("debug", "testing"), [(True, False), (False, True)])
def test_without_a_key_debug_or_testing_apps_run_on_the_embedded_sandbox(
    debug: bool, testing: bool
) -> None:
    app = make({}, debug=debug, testing=testing)
    mailer = app.extensions["dmmail"]
    try:
        assert mailer.sandbox is not None
        assert mailer.settings.sandbox is True
        assert mailer.notify.base_url == mailer.sandbox.url
        assert mailer.sandbox.url.startswith("http://127.0.0.1:")
    finally:
        close(app)


def test_a_key_turns_the_automatic_sandbox_off_even_in_debug() -> None:
    app = make({"DM_NOTIFY_KEY": KEY}, debug=True)
    assert app.extensions["dmmail"].sandbox is None
    assert app.extensions["dmmail"].notify.base_url == "https://api.notifications.service.gov.uk"


def test_dm_mail_sandbox_true_in_the_app_config_wins_over_a_key_outside_production() -> None:
    app = make({"DM_NOTIFY_KEY": KEY, "DM_MAIL_SANDBOX": "true", "DM_ENVIRONMENT": "staging"})
    try:
        assert app.extensions["dmmail"].sandbox is not None
    finally:
        close(app)


def test_the_old_key_name_is_read_too() -> None:
    app = make({"DM_NOTIFY_API_KEY": KEY})
    assert app.extensions["dmmail"].settings.notify_key == KEY


def test_a_key_from_a_dotenv_file_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text(f"DM_NOTIFY_KEY={KEY}\n")
    monkeypatch.setenv("DM_NOTIFY_KEY", "")  # restored by monkeypatch after the test
    monkeypatch.delenv("DM_NOTIFY_KEY")
    load_dotenv(env)
    try:
        app = make({})
        assert app.extensions["dmmail"].settings.notify_key == KEY
        assert app.extensions["dmmail"].sandbox is None
    finally:
        monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)


def test_json_strings_from_the_environment_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DM_NOTIFY_TEMPLATES", json.dumps({"welcome": TEMPLATE.upper()}))
    monkeypatch.setenv("DM_NOTIFY_REPLY_TO_IDS", json.dumps({"enquiries": TEMPLATE.upper()}))
    monkeypatch.setenv(
        "DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS",
        json.dumps({" Example.COM. ": "safe@example.gov.uk"}),
    )
    app = make({"DM_NOTIFY_KEY": KEY})
    settings = app.extensions["dmmail"].settings
    assert dict(settings.templates) == {"welcome": TEMPLATE}
    assert dict(settings.reply_to_ids) == {"enquiries": TEMPLATE}
    assert dict(settings.redirects) == {"example.com": "safe@example.gov.uk"}


def test_the_app_config_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DM_NOTIFY_TIMEOUT", "99")
    app = make({"DM_NOTIFY_KEY": KEY, "DM_NOTIFY_TIMEOUT": 3})
    assert app.extensions["dmmail"].settings.timeout == 3


def test_defaults() -> None:
    settings = make({"DM_NOTIFY_KEY": KEY}).extensions["dmmail"].settings
    assert settings.notify_base_url == "https://api.notifications.service.gov.uk"
    assert settings.timeout == 15
    assert settings.retries == 3
    assert settings.retry_backoff == 0.5
    assert dict(settings.templates) == {}
    assert dict(settings.redirects) == {}
    assert settings.sandbox is False


def test_settings_are_frozen_and_their_repr_hides_secrets() -> None:
    mailer = make({"DM_NOTIFY_KEY": KEY}).extensions["dmmail"]
    with pytest.raises(AttributeError):
        mailer.settings.retries = 5
    for text in (repr(mailer.settings), repr(mailer), repr(mailer.notify), repr(mailer.hasher)):
        assert KEY not in text
        assert "3d844edf" not in text
        assert "test-secret" not in text


def test_config_changes_after_init_app_are_not_read() -> None:
    app = make({"DM_NOTIFY_KEY": KEY, "DM_NOTIFY_RETRIES": 2})
    app.config["DM_NOTIFY_RETRIES"] = 9
    assert app.extensions["dmmail"].settings.retries == 2


def test_registering_twice_is_a_clear_error() -> None:
    app = make({"DM_NOTIFY_KEY": KEY})
    with pytest.raises(ExtensionError, match="already registered"):
        DMMail(app)
    assert isinstance(ExtensionError("x"), DMMailError)


def test_one_extension_object_serves_several_apps_and_never_keeps_one() -> None:
    ext = DMMail()
    first, second = Flask("first"), Flask("second")
    for app, retries in ((first, 1), (second, 2)):
        app.config.update(
            SECRET_KEY="s",
            DM_NOTIFY_KEY=KEY,
            DM_NOTIFY_RETRIES=retries,
            DM_ENVIRONMENT="production",
        )
        ext.init_app(app)
    assert not any(isinstance(v, Flask) for v in vars(ext).values())
    with first.app_context():
        assert DMMail.mailer().settings.retries == 1
    with second.app_context():
        assert DMMail.mailer().settings.retries == 2
    assert isinstance(first.extensions["dmmail"], Mailer)


def test_using_the_extension_without_an_app_or_registration_is_a_clear_error() -> None:
    with pytest.raises(ExtensionError, match="app context"):
        DMMail().send("a@example.gov.uk", TEMPLATE)
    app = Flask("unregistered")
    with app.app_context(), pytest.raises(ExtensionError, match="not registered"):
        DMMail().send("a@example.gov.uk", TEMPLATE)


def test_the_cli_group_is_registered() -> None:
    app = make({"DM_NOTIFY_KEY": KEY})
    assert "dmmail" in app.cli.commands
    result = app.test_cli_runner().invoke(args=["dmmail", "config"])
    assert result.exit_code == 0, result.output
    assert "mode: notify" in result.output
    assert KEY not in result.output


def test_no_secret_key_outside_debug_needs_a_hash_key() -> None:
    app = Flask("no_secret")
    app.config.update(DM_NOTIFY_KEY=KEY, DM_ENVIRONMENT="production")
    with pytest.raises(ConfigurationError) as raised:
        DMMail(app)
    assert raised.value.key == "DM_MAIL_HASH_KEY"


def settings_of(app: Flask) -> Settings:
    mailer = app.extensions["dmmail"]
    assert isinstance(mailer, Mailer)
    return mailer.settings


# -- every key, from a config class ------------------------------------------------------------


class StagingConfig:
    """A config class as an app would load it (``app.config.from_object``), every key set."""

    SECRET_KEY = "staging-secret"
    DM_ENVIRONMENT = " Staging "
    DM_NOTIFY_KEY = KEY
    DM_NOTIFY_BASE_URL = "https://notify.example.gov.uk/"
    DM_NOTIFY_TEMPLATES: ClassVar[dict[str, Any]] = {"welcome": TEMPLATE.upper()}
    DM_NOTIFY_REPLY_TO_IDS: ClassVar[dict[str, Any]] = {"enquiries": TEMPLATE.upper()}
    DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS: ClassVar[dict[str, Any]] = {
        "Example.COM.": "safe@digital.gov.uk"
    }
    DM_NOTIFY_TIMEOUT = "7.5"
    DM_NOTIFY_RETRIES = "4"
    DM_NOTIFY_RETRY_BACKOFF = 0.25
    DM_MAIL_SANDBOX = "off"
    DM_MAIL_SANDBOX_PERSIST = "no"
    DM_NOTIFY_SANDBOX_TEMPLATES: ClassVar[dict[str, Any]] = {"templates": []}
    DM_MAIL_HASH_KEY = "staging-hash-key"
    DM_MAILCHIMP_API_KEY = "0123456789abcdef-us5"
    DM_MAILCHIMP_BASE_URL = "https://mailchimp.example.gov.uk/3.0/"
    DM_MAILCHIMP_AUDIENCES: ClassVar[dict[str, Any]] = {"suppliers": "d35601203b"}
    DM_MAILCHIMP_TIMEOUT = 12
    DM_MAILCHIMP_RETRIES = 1
    DM_MAILCHIMP_RETRY_BACKOFF = "0.1"
    DM_MAILCHIMP_WEBHOOK_TOKEN = "w" * 32
    DM_NOTIFY_CALLBACK_TOKEN = "c" * 20
    DM_NOTIFY_BULK_RATE = 1200
    DM_NOTIFY_ALLOWED_RECIPIENTS = "digital.gov.uk, Lead@Supplier.co.uk"
    DM_NOTIFY_STAGE_GUARD = "Refuse"
    DM_NOTIFY_SAFE_ADDRESS = "dm-team@digital.gov.uk"
    DM_NOTIFY_SANITISE: ClassVar[dict[str, Any]] = {"welcome": ["name"]}
    DM_MAIL_REDIS_URL = "redis://:redis-password@redis.example.gov.uk:6379/2"
    DM_MAIL_REDIS_REQUIRED = "true"
    DM_NOTIFY_RATE_LIMIT = "6000"
    DM_NOTIFY_BULK_SHARE = "0.5"
    DM_NOTIFY_KEY_TYPE = "Team"
    DM_MAIL_CELERY_BROKER_URL = "redis://redis.example.gov.uk:6379/0"
    DM_MAIL_QUEUE_RETRIES = "2"


def test_a_config_class_sets_every_key() -> None:
    # The old key name has a test of its own; the unlisted-audiences switch is for
    # production only (see the stage rules below).
    assert set(KEYS) - set(vars(StagingConfig)) == {
        "DM_NOTIFY_API_KEY",
        "DM_MAILCHIMP_ALLOW_UNLISTED_AUDIENCES",
    }
    app = Flask("staging")
    app.config.from_object(StagingConfig)
    DMMail(app)
    settings = settings_of(app)
    assert (settings.notify_key, settings.notify_key_source) == (KEY, "config")
    assert settings.notify_key_name == "my_test_key"
    assert settings.notify_base_url == "https://notify.example.gov.uk"
    assert dict(settings.templates) == {"welcome": TEMPLATE}
    assert dict(settings.redirects) == {"example.com": "safe@digital.gov.uk"}
    assert (settings.timeout, settings.retries, settings.retry_backoff) == (7.5, 4, 0.25)
    assert settings.sandbox is False
    assert settings.sandbox_persist is False
    assert settings.sandbox_seed == {"templates": []}
    assert dict(settings.reply_to_ids) == {"enquiries": TEMPLATE}
    assert settings.hash_key == b"staging-hash-key"
    assert settings.mailchimp_api_key == "0123456789abcdef-us5"
    assert settings.mailchimp_base_url == "https://mailchimp.example.gov.uk/3.0"
    assert dict(settings.audiences) == {"suppliers": "d35601203b"}
    assert (
        settings.mailchimp_timeout,
        settings.mailchimp_retries,
        settings.mailchimp_retry_backoff,
    ) == (12.0, 1, 0.1)
    assert settings.mailchimp_webhook_token == "w" * 32
    assert settings.callback_token == "c" * 20
    assert settings.bulk_rate == 1200.0
    assert (settings.stage, settings.production, settings.guards_recipients) == (
        "staging",
        False,
        True,
    )
    assert settings.stage_guard == "refuse"
    assert settings.safe_address == "dm-team@digital.gov.uk"
    assert dict(settings.sanitise) == {TEMPLATE: frozenset({"name"})}
    assert settings.celery_broker_url == "redis://redis.example.gov.uk:6379/0"
    assert settings.queue_retries == 2
    allowed = settings.allowed_recipients
    assert allowed.allows("someone@digital.gov.uk") and allowed.allows("lead@supplier.co.uk")
    assert allowed.allows("anyone@example.com")  # a redirected domain goes to its address
    assert not allowed.allows("other@supplier.co.uk")
    assert settings.redis_url == "redis://:redis-password@redis.example.gov.uk:6379/2"
    assert "redis-password" not in repr(settings)
    assert (settings.redis_required, settings.rate_limit, settings.bulk_share) == (True, 6000, 0.5)
    assert settings.notify_key_type == "team"


def test_the_defaults_of_the_other_keys() -> None:
    settings = settings_of(make({"DM_NOTIFY_KEY": KEY}))
    assert settings.notify_key_source == "config"
    assert settings.sandbox_seed is None
    assert settings.mailchimp_api_key is None and settings.mailchimp_base_url is None
    assert dict(settings.audiences) == {}
    assert (
        settings.mailchimp_timeout,
        settings.mailchimp_retries,
        settings.mailchimp_retry_backoff,
    ) == (30.0, 3, 0.5)
    assert settings.mailchimp_webhook_token is None and settings.callback_token is None
    assert settings.bulk_rate == 2700.0
    assert (settings.stage, settings.production, settings.guards_recipients) == (
        "production",
        True,
        False,
    )
    assert settings.stage_guard == "redirect"
    assert settings.safe_address == "simulate-delivered@notifications.service.gov.uk"
    assert dict(settings.sanitise) == {}


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("DM_NOTIFY_TIMEOUT", float("nan"), "must be a number of at least 0.1."),
        ("DM_NOTIFY_TIMEOUT", True, "must be a number of at least 0.1."),
        ("DM_NOTIFY_RETRY_BACKOFF", -0.5, "must be a number of at least 0."),
        ("DM_MAILCHIMP_TIMEOUT", 0.05, "must be a number of at least 0.1."),
        ("DM_MAILCHIMP_RETRIES", "many", "must be a number of at least 0."),
        ("DM_MAILCHIMP_RETRY_BACKOFF", -1, "must be a number of at least 0."),
        ("DM_NOTIFY_BULK_RATE", 0, "must be a number of at least 1."),
        ("DM_MAIL_SANDBOX", 2, "must be True or False"),
        ("DM_NOTIFY_TEMPLATES", {"": TEMPLATE}, "every template name must be a non-empty string"),
        ("DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS", {5: "a@b.gov.uk"}, "every domain must be a"),
        ("DM_NOTIFY_SANDBOX_TEMPLATES", 42, "must be a path to a seed file or a mapping"),
        ("DM_MAIL_HASH_KEY", 12345, "must be a string or bytes."),
        ("DM_MAILCHIMP_BASE_URL", "mailchimp.example/3.0", "must be an http(s) URL ending /3.0."),
        ("DM_MAILCHIMP_AUDIENCES", {"": "d35601203b"}, "every audience name must be a non-empty"),
        ("DM_MAILCHIMP_WEBHOOK_TOKEN", "long enough but spaced", "letters, digits, '-' or '_'"),
        ("DM_NOTIFY_CALLBACK_TOKEN", 1234567890123456789, "at least 16 characters"),
        ("DM_ENVIRONMENT", "Prod Server", "must be a stage name such as 'production'"),
        ("DM_NOTIFY_ALLOWED_RECIPIENTS", "[not json", "is not a JSON list of strings."),
        ("DM_NOTIFY_ALLOWED_RECIPIENTS", 42, "must be a list of strings (or a comma-separated"),
        ("DM_NOTIFY_ALLOWED_RECIPIENTS", ["a@@b.gov.uk"], "with an '@' is not a valid email"),
        ("DM_NOTIFY_ALLOWED_RECIPIENTS", [7], "every entry must be a domain or an email"),
        ("DM_NOTIFY_STAGE_GUARD", "off", "must be 'redirect' or 'refuse'."),
        ("DM_NOTIFY_SAFE_ADDRESS", "nobody", "must be one valid email address"),
        ("DM_NOTIFY_SANITISE", {"nope": ["name"]}, "every key must be a template name from"),
        ("DM_NOTIFY_SANITISE", {TEMPLATE: "name"}, "must map to a list of personalisation field"),
        ("DM_NOTIFY_SANITISE", {TEMPLATE: [""]}, "every field name must be a non-empty string"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_more_bad_values_are_refused_with_a_message_naming_the_key(
    key: str, value: object, words: str
) -> None:
    config = {"DM_NOTIFY_KEY": KEY, "DM_ENVIRONMENT": "staging", key: value}
    with pytest.raises(ConfigurationError) as raised:
        make(config)
    assert raised.value.key == key
    assert str(raised.value).startswith(f"{key}: ")
    assert words in str(raised.value)


def test_a_secret_that_is_refused_is_not_repeated() -> None:
    token = "spaced but secret value"
    with pytest.raises(ConfigurationError) as raised:
        make({"DM_NOTIFY_KEY": KEY, "DM_MAILCHIMP_WEBHOOK_TOKEN": token})
    assert "secret value" not in str(raised.value)


# -- the hash key ------------------------------------------------------------------------------


def test_the_hash_key_is_derived_from_the_secret_key_unless_set() -> None:
    def hash_key(**config: Any) -> bytes:
        return settings_of(make({"DM_NOTIFY_KEY": KEY, **config})).hash_key

    assert hash_key(SECRET_KEY="one") == hash_key(SECRET_KEY="one")
    assert hash_key(SECRET_KEY="one") != hash_key(SECRET_KEY="two")
    assert b"one" not in hash_key(SECRET_KEY="one")
    assert hash_key(SECRET_KEY="one", DM_MAIL_HASH_KEY=b"\x00raw") == b"\x00raw"


def test_a_testing_app_without_any_secret_still_gets_a_hash_key() -> None:
    app = Flask("no_secret_testing")
    app.config.update(DM_NOTIFY_KEY=KEY, DM_ENVIRONMENT="test")
    app.testing = True
    DMMail(app)
    assert settings_of(app).hash_key


# -- stage rules -------------------------------------------------------------------------------


def test_an_app_that_names_no_stage_is_told_what_a_stage_is() -> None:
    app = Flask("no_stage")
    app.config.update(SECRET_KEY="s", DM_NOTIFY_KEY=KEY)
    with pytest.raises(ConfigurationError) as raised:
        DMMail(app)
    assert raised.value.key == "DM_ENVIRONMENT"
    message = str(raised.value)
    assert "'production' on production" in message
    assert "keeps mail away from real people" in message


@pytest.mark.parametrize(
    ("debug", "testing", "stage"), [(True, False, "development"), (False, True, "test")]
)
def test_debug_and_testing_apps_have_a_stage_without_naming_one(
    debug: bool, testing: bool, stage: str
) -> None:
    app = Flask("implicit_stage")
    app.config.update(SECRET_KEY="s", DM_NOTIFY_KEY=KEY)
    app.debug, app.testing = debug, testing
    DMMail(app)
    settings = settings_of(app)
    assert (settings.stage, settings.production, settings.guards_recipients) == (
        stage,
        False,
        True,
    )


def test_the_stage_name_is_trimmed_and_lower_cased() -> None:
    assert settings_of(make({"DM_NOTIFY_KEY": KEY, "DM_ENVIRONMENT": " PRODUCTION "})).production
    assert settings_of(make({"DM_NOTIFY_KEY": KEY, "DM_ENVIRONMENT": "Pre-Prod"})).stage == (
        "pre-prod"
    )


def test_a_stage_in_sandbox_mode_does_not_guard_recipients() -> None:
    app = make({"DM_NOTIFY_KEY": KEY, "DM_ENVIRONMENT": "staging", "DM_MAIL_SANDBOX": True})
    try:
        settings = settings_of(app)
        assert settings.sandbox and not settings.guards_recipients
    finally:
        close(app)


def test_the_allowed_recipients_are_matched_in_notifys_canonical_form() -> None:
    settings = settings_of(
        make(
            {
                "DM_NOTIFY_KEY": KEY,
                "DM_ENVIRONMENT": "staging",
                "DM_NOTIFY_ALLOWED_RECIPIENTS": ["Digital.Gov.UK.", "lead@bücher.example"],
            }
        )
    )
    allowed = settings.allowed_recipients
    for address in (
        "someone@digital.gov.uk",
        "someone@team.digital.gov.uk",  # a subdomain
        "Some\u200bone@DIGITAL.gov.uk",
        "lead@xn--bcher-kva.example",
        "simulate-delivered-2@notifications.service.gov.uk",  # Notify's simulator, always
        "anyone@simulator.notify",
    ):
        assert allowed.allows(address), address
    for address in ("someone@notdigital.gov.uk", "someone@gov.uk", "other@bücher.example"):
        assert not allowed.allows(address), address


def test_unlisted_audiences_are_a_production_matter() -> None:
    production = make({"DM_NOTIFY_KEY": KEY, "DM_MAILCHIMP_ALLOW_UNLISTED_AUDIENCES": True})
    assert settings_of(production).mailchimp_allow_unlisted_audiences is True
    staging = make({"DM_NOTIFY_KEY": KEY, "DM_ENVIRONMENT": "staging"})
    assert settings_of(staging).mailchimp_allow_unlisted_audiences is False
    with pytest.raises(ConfigurationError) as raised:
        make(
            {
                "DM_NOTIFY_KEY": KEY,
                "DM_ENVIRONMENT": "staging",
                "DM_MAILCHIMP_ALLOW_UNLISTED_AUDIENCES": "true",
            }
        )
    assert "is on in the stage 'staging'" in str(raised.value)
    assert "remove the key" in str(raised.value)


def test_the_sandbox_on_production_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigurationError) as raised:
        make({"DM_NOTIFY_KEY": KEY, "DM_MAIL_SANDBOX": "yes"})
    assert "every email would be dropped by a local sandbox" in str(raised.value)


def test_a_key_from_the_environment_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DM_NOTIFY_KEY", KEY)
    settings = settings_of(make({}))
    assert (settings.notify_key, settings.notify_key_source) == (KEY, "environment")
