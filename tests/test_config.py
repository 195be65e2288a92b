"""init_app: registration, config keys, their defaults and the errors that name them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.cli import load_dotenv

from flask_dmmail import DMMail, ExtensionError, Mailer
from flask_dmmail.errors import ConfigurationError, DMMailError

KEY = "my_test_key-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b0"
TEMPLATE = "6f1a3c1e-8a0b-4c3e-9d0f-5b6a7c8d9e01"


@pytest.fixture(autouse=True)
def _no_keys_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DM_NOTIFY_KEY", "DM_NOTIFY_API_KEY", "DM_MAIL_SANDBOX", "DM_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)


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
    monkeypatch.setenv(
        "DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS",
        json.dumps({" Example.COM. ": "safe@example.gov.uk"}),
    )
    app = make({"DM_NOTIFY_KEY": KEY})
    settings = app.extensions["dmmail"].settings
    assert dict(settings.templates) == {"welcome": TEMPLATE}
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
