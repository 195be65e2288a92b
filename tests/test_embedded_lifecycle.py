"""The embedded sandbox in one process: nothing starts with the app, it starts on first use, apps
with the same templates share it, and it stops with its last app (garbage-collected or closed).
Testing mode reads no API key from the environment; Mailchimp's production error does not
suggest the sandbox."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dotenv import load_dotenv
from flask import Flask

from flask_dmmail import DMMail, Mailer
from flask_dmmail.errors import ConfigurationError
from flask_dmmail.sandbox import Sandbox

from .conftest import SEED, TEMPLATES
from .secrets_scan import register_secret

KEY = "my_test_key-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b0"
OTHER_SEED: dict[str, Any] = {"templates": SEED["templates"][:1]}


def sandbox_threads() -> set[threading.Thread]:
    """The threads of every embedded sandbox (server, ticker, connections, saver)."""
    return {t for t in threading.enumerate() if t.name.startswith("dmmail-sandbox")}


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait for ``condition`` (threads end a moment after their sandbox stops)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("DM_NOTIFY_KEY", "DM_NOTIFY_API_KEY", "DM_MAILCHIMP_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def testing_app(no_keys: pytest.MonkeyPatch) -> Iterator[Callable[..., Flask]]:
    made: list[Flask] = []

    def make(seed: Any = SEED, **config: Any) -> Flask:
        app = Flask(f"lifecycle_{len(made)}")
        app.testing = True
        app.config.update(
            SECRET_KEY="s", DM_NOTIFY_TEMPLATES=TEMPLATES, DM_NOTIFY_SANDBOX_TEMPLATES=seed
        )
        app.config.update(config)
        DMMail(app)
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["dmmail"].close()


def mailer_of(app: Flask) -> Mailer:
    mailer = app.extensions["dmmail"]
    assert isinstance(mailer, Mailer)
    return mailer


def test_creating_an_app_starts_no_thread(testing_app: Callable[..., Flask]) -> None:
    before = sandbox_threads()
    apps = [testing_app() for _ in range(5)]
    assert sandbox_threads() == before
    assert all(repr(mailer_of(app)).endswith("mode=sandbox>") for app in apps)


def test_the_sandbox_starts_on_first_use(testing_app: Callable[..., Flask]) -> None:
    app = testing_app()
    mailer = mailer_of(app)
    sent = mailer.send("dev@example.gov.uk", "welcome", {"name": "First", "framework": "DOS"})
    assert sent is not None
    sandbox = mailer.sandbox
    assert isinstance(sandbox, Sandbox)
    assert mailer.notify.base_url == sandbox.url
    assert [n.id for n in sandbox.state.outbox()] == [sent.id]


def test_the_outbox_page_starts_it_too(testing_app: Callable[..., Flask]) -> None:
    app = testing_app()
    page = app.test_client().get("/_dmmail/")
    assert page.status_code == 200
    assert mailer_of(app).sandbox is not None


def test_apps_with_the_same_templates_share_one_sandbox(
    testing_app: Callable[..., Flask],
) -> None:
    first, second, other = testing_app(), testing_app(), testing_app(OTHER_SEED)
    assert mailer_of(first).sandbox is mailer_of(second).sandbox
    assert mailer_of(other).sandbox is not mailer_of(first).sandbox
    sent = mailer_of(second).send("a@example.gov.uk", "reset_password", {"url": "u"})
    assert sent is not None
    assert mailer_of(first).get_notification(sent.id).status == "delivered"


def test_the_sandbox_stops_when_its_last_app_is_closed(
    testing_app: Callable[..., Flask],
) -> None:
    first, second = testing_app(OTHER_SEED), testing_app(OTHER_SEED)
    sandbox = mailer_of(first).sandbox
    assert sandbox is mailer_of(second).sandbox
    mailer_of(first).close()
    assert mailer_of(second).send("a@example.gov.uk", "welcome", {"name": "n", "framework": "f"})
    mailer_of(second).close()
    assert sandbox is not None
    wait_until(lambda: not any(str(sandbox.port) in t.name for t in sandbox_threads()), "stop")


def test_the_sandbox_stops_when_its_apps_are_garbage_collected(no_keys: pytest.MonkeyPatch) -> None:
    before = sandbox_threads()

    def use_one_app(name: str) -> None:
        app = Flask(name)
        app.testing = True
        app.config.update(SECRET_KEY="s", DM_NOTIFY_TEMPLATES=TEMPLATES)
        DMMail(app)
        assert mailer_of(app).send("a@example.gov.uk", "welcome", {"name": "n", "framework": "f"})

    for n in range(3):
        use_one_app(f"collected_{n}")
    gc.collect()
    wait_until(lambda: sandbox_threads() <= before, "the sandbox's threads to end")


def test_a_closed_app_starts_its_sandbox_again_when_used(
    testing_app: Callable[..., Flask],
) -> None:
    mailer = mailer_of(testing_app())
    first = mailer.sandbox
    mailer.close()
    assert mailer.send("a@example.gov.uk", "welcome", {"name": "n", "framework": "f"})
    assert mailer.sandbox is not first


def test_testing_mode_keeps_nothing_in_the_instance_folder(
    testing_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = testing_app()
    app.instance_path = str(tmp_path / "instance")
    mailer = mailer_of(app)
    assert mailer.settings.sandbox_persist is False
    assert mailer.send("a@example.gov.uk", "welcome", {"name": "n", "framework": "f"})
    assert not (tmp_path / "instance").exists()


# -- keys from the environment ---------------------------------------------------------------


def test_a_key_in_the_environment_does_not_take_a_test_run_to_notify(
    testing_app: Callable[..., Flask], no_keys: pytest.MonkeyPatch
) -> None:
    register_secret(KEY[-36:], kind="api key")
    no_keys.setenv("DM_NOTIFY_KEY", KEY)
    no_keys.setenv("DM_MAILCHIMP_API_KEY", "0123456789abcdef0123456789abcdef-us5")
    mailer = mailer_of(testing_app())
    assert mailer.settings.sandbox is True
    assert mailer.settings.notify_key is None
    assert mailer.settings.mailchimp_api_key is None
    sandbox = mailer.sandbox
    assert sandbox is not None and mailer.notify.base_url == sandbox.url


def test_a_key_in_a_dotenv_file_does_not_either(
    testing_app: Callable[..., Flask], no_keys: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    register_secret(KEY[-36:], kind="api key")
    env = tmp_path / ".env"
    env.write_text(f"DM_NOTIFY_KEY={KEY}\n")
    no_keys.setenv("DM_NOTIFY_KEY", "")  # so that monkeypatch removes what load_dotenv sets
    no_keys.delenv("DM_NOTIFY_KEY")
    load_dotenv(env)
    mailer = mailer_of(testing_app())
    assert mailer.settings.notify_key is None and mailer.settings.sandbox is True


def test_the_apps_own_config_can_still_send_a_test_run_to_notify(
    testing_app: Callable[..., Flask],
) -> None:
    register_secret(KEY[-36:], kind="api key")
    mailer = mailer_of(testing_app(DM_NOTIFY_KEY=KEY))
    assert mailer.settings.sandbox is False and mailer.sandbox is None
    assert mailer.notify.base_url == "https://api.notifications.service.gov.uk"


def test_outside_testing_the_environment_still_gives_the_key(no_keys: pytest.MonkeyPatch) -> None:
    register_secret(KEY[-36:], kind="api key")
    no_keys.setenv("DM_NOTIFY_KEY", KEY)
    app = Flask("debug_env")
    app.debug = True
    app.config.update(SECRET_KEY="s")
    DMMail(app)
    assert mailer_of(app).settings.notify_key_source == "environment"


# -- Mailchimp's production error ------------------------------------------------------------


def test_a_missing_mailchimp_key_on_production_does_not_suggest_the_sandbox(
    no_keys: pytest.MonkeyPatch,
) -> None:
    register_secret(KEY[-36:], kind="api key")
    app = Flask("production_mailchimp")
    app.config.update(SECRET_KEY="s", DM_ENVIRONMENT="production", DM_NOTIFY_KEY=KEY)
    DMMail(app)
    with pytest.raises(ConfigurationError) as raised:
        mailer_of(app).mailchimp.ping()
    assert raised.value.key == "DM_MAILCHIMP_API_KEY"
    assert "sandbox" not in str(raised.value).lower()


def test_elsewhere_it_still_does(no_keys: pytest.MonkeyPatch) -> None:
    register_secret(KEY[-36:], kind="api key")
    app = Flask("staging_mailchimp")
    app.config.update(SECRET_KEY="s", DM_ENVIRONMENT="staging", DM_NOTIFY_KEY=KEY)
    DMMail(app)
    with pytest.raises(ConfigurationError, match="DM_MAIL_SANDBOX = True"):
        mailer_of(app).mailchimp.ping()
