"""``flask dmmail templates pull | check``, run with the session sandbox's test key and base URL
(DM_NOTIFY_KEY, DM_NOTIFY_BASE_URL) as a team would run them with a Notify test key."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask

from flask_dmmail import DMMail
from flask_dmmail.errors import MissingPersonalisationError
from flask_dmmail.sandbox import Sandbox

from .conftest import RESET_ID, TEMPLATES, WELCOME_ID

SMS_ID = "5e5e5e5e-1111-4222-8333-444455556666"
ARCHIVED_ID = "a0a0a0a0-1111-4222-8333-444455556666"
MISSING_ID = "0f0f0f0f-1111-4222-8333-444455556666"
FILENAME = "notify_templates.json"


@pytest.fixture
def service(sandbox: Sandbox) -> Sandbox:
    """The session sandbox with this suite's two email templates, a text message template and
    an archived email template."""
    sandbox.state.seed(
        {
            "templates": [
                {"id": SMS_ID, "name": "Code", "type": "sms", "body": "Your code is ((code))"},
                {
                    "id": ARCHIVED_ID,
                    "name": "Old welcome",
                    "subject": "Hi",
                    "body": "Old ((name))",
                    "archived": True,
                },
            ]
        }
    )
    return sandbox


@pytest.fixture
def make_cli_app(
    service: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Flask]]:
    """Apps whose root folder is ``tmp_path``; by default with the sandbox's test key."""
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    monkeypatch.delenv("DM_NOTIFY_API_KEY", raising=False)
    apps: list[Flask] = []

    def factory(*, with_key: bool = True, **config: Any) -> Flask:
        app = Flask(f"templates_cli_{len(apps)}", root_path=str(tmp_path))
        app.config.update(SECRET_KEY="s", DM_NOTIFY_TEMPLATES=TEMPLATES)
        if with_key:
            app.config.update(
                DM_NOTIFY_KEY=service.keys.test,
                DM_NOTIFY_BASE_URL=service.url,
                DM_NOTIFY_RETRY_BACKOFF=0.001,
                DM_NOTIFY_TIMEOUT=5,
                DM_MAIL_SANDBOX=False,
                DM_ENVIRONMENT="production",
            )
        else:
            app.testing = True
        app.config.update(config)
        DMMail(app)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["dmmail"].close()


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["dmmail", "templates", *args])


EXPECTED_FILE = (
    json.dumps(
        {
            "templates": [
                {
                    "body": "Reset it here: ((url))",
                    "id": RESET_ID,
                    "name": "Reset password",
                    "subject": "Reset your password",
                    "version": 1,
                },
                {
                    "body": "# Hello ((name))\n\nYou registered for ((framework)).",
                    "id": WELCOME_ID,
                    "name": "Welcome",
                    "subject": "Welcome, ((name))",
                    "version": 1,
                },
            ]
        },
        indent=2,
        sort_keys=True,
    )
    + "\n"
)


# -- pull ---------------------------------------------------------------------------------


def test_pull_writes_the_email_templates_to_the_app_root(
    make_cli_app: Callable[..., Flask], service: Sandbox, tmp_path: Path
) -> None:
    result = run(make_cli_app(), "pull")
    assert result.exit_code == 0, result.output
    target = tmp_path / FILENAME
    assert f"Wrote 2 email templates to {target}" in result.output
    text = target.read_text(encoding="utf-8")
    assert text == EXPECTED_FILE  # sorted by id, sorted keys, a final newline
    # no text message or archived template, no key, no address (created_by)
    assert SMS_ID not in text and ARCHIVED_ID not in text
    secret = service.keys.test.rsplit("-", 5)[-5:]
    assert "-".join(secret) not in text
    assert "@" not in text


def test_pull_again_changes_only_what_changed_on_the_service(
    make_cli_app: Callable[..., Flask], service: Sandbox, tmp_path: Path
) -> None:
    app = make_cli_app()
    assert run(app, "pull").exit_code == 0
    before = (tmp_path / FILENAME).read_text(encoding="utf-8")
    assert run(app, "pull").exit_code == 0
    assert (tmp_path / FILENAME).read_text(encoding="utf-8") == before
    service.state.seed(
        {
            "templates": [
                {
                    "id": RESET_ID,
                    "name": "Reset password",
                    "subject": "Reset your password",
                    "body": "Reset it at ((url)) today",
                }
            ]
        }
    )
    assert run(app, "pull").exit_code == 0
    after = (tmp_path / FILENAME).read_text(encoding="utf-8")
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert changed == [
        ('      "body": "Reset it here: ((url))",', '      "body": "Reset it at ((url)) today",'),
        ('      "version": 1', '      "version": 2'),
    ]


def test_pull_to_another_file(make_cli_app: Callable[..., Flask], tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "templates.json"
    target.parent.mkdir()
    result = run(make_cli_app(), "pull", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == EXPECTED_FILE
    assert not (tmp_path / FILENAME).exists()


def test_pull_names_the_configured_templates_the_service_lacks(
    make_cli_app: Callable[..., Flask],
) -> None:
    app = make_cli_app(DM_NOTIFY_TEMPLATES={**TEMPLATES, "code": SMS_ID, "gone": MISSING_ID})
    result = run(app, "pull")
    assert result.exit_code == 0
    assert "code, gone" in result.output


def test_pull_to_a_folder_that_does_not_exist_is_refused(
    make_cli_app: Callable[..., Flask], tmp_path: Path
) -> None:
    result = run(make_cli_app(), "pull", "--output", str(tmp_path / "nope" / FILENAME))
    assert result.exit_code == 1
    assert "does not exist" in result.stderr


def test_pull_in_sandbox_mode_without_a_key_says_how_to_get_one(
    make_cli_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = make_cli_app(with_key=False)
    assert app.extensions["dmmail"].sandbox is not None
    result = run(app, "pull")
    assert result.exit_code == 1
    assert "DM_NOTIFY_KEY" in result.stderr and "test key" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / FILENAME).exists()


def test_pull_with_the_key_from_the_environment_in_a_debug_app(
    service: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DM_NOTIFY_KEY", service.keys.test)
    monkeypatch.setenv("DM_NOTIFY_BASE_URL", service.url)
    app = Flask("templates_cli_debug", root_path=str(tmp_path))
    app.debug = True
    app.config.update(SECRET_KEY="s", DM_NOTIFY_TEMPLATES=TEMPLATES)
    DMMail(app)
    try:
        result = run(app, "pull")
    finally:
        app.extensions["dmmail"].close()
    assert result.exit_code == 0, result.output
    assert (tmp_path / FILENAME).read_text(encoding="utf-8") == EXPECTED_FILE


def test_a_revoked_key_is_refused_and_an_unavailable_notify_is_transient(
    make_cli_app: Callable[..., Flask], service: Sandbox, tmp_path: Path
) -> None:
    app = make_cli_app(DM_NOTIFY_RETRIES=0)
    service.state.revoke_key("test")
    revoked = run(app, "pull")
    assert revoked.exit_code == 1
    assert "revoked" in revoked.stderr
    service.state.revoke_key("test", revoked=False)
    service.state.set_faults(error_rate=1.0, paths=["/v2/templates"])
    try:
        down = run(app, "pull")
    finally:
        service.state.clear_faults()
    assert down.exit_code == 75
    assert not (tmp_path / FILENAME).exists()


def test_pulled_templates_make_sandbox_mode_check_personalisation(
    make_cli_app: Callable[..., Flask],
) -> None:
    assert run(make_cli_app(), "pull").exit_code == 0
    local = make_cli_app(with_key=False)  # the same root folder, in sandbox mode
    mailer = local.extensions["dmmail"]
    assert mailer.sandbox is not None
    with pytest.raises(MissingPersonalisationError):
        mailer.send("dev@example.gov.uk", "welcome", {"name": "Ada"})
    sent = mailer.send("dev@example.gov.uk", "welcome", {"name": "Ada", "framework": "DOS"})
    assert sent is not None and sent.subject == "Welcome, Ada"


# -- check --------------------------------------------------------------------------------


def test_check_passes_when_every_template_is_a_live_email_template(
    make_cli_app: Callable[..., Flask],
) -> None:
    result = run(make_cli_app(), "check")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"ok      reset_password ({RESET_ID}): version 1",
        f"ok      welcome ({WELCOME_ID}): version 1",
    ]


def test_check_fails_missing_text_message_and_archived_templates(
    make_cli_app: Callable[..., Flask],
) -> None:
    app = make_cli_app(
        DM_NOTIFY_TEMPLATES={
            "welcome": WELCOME_ID,
            "code": SMS_ID,
            "old": ARCHIVED_ID,
            "typo": MISSING_ID,
        }
    )
    result = run(app, "check")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines == [
        f"FAILED  code ({SMS_ID}): is a text message (sms) template, not an email template",
        f"FAILED  old ({ARCHIVED_ID}): is archived (deleted) in Notify: restore it or use "
        "another template",
        f"FAILED  typo ({MISSING_ID}): not found in the Notify service of this key",
        f"ok      welcome ({WELCOME_ID}): version 1",
    ]
    assert "3 of 4 templates failed the check." in result.stderr


def test_check_compares_with_the_pulled_file(
    make_cli_app: Callable[..., Flask], service: Sandbox
) -> None:
    app = make_cli_app()
    assert run(app, "pull").exit_code == 0
    assert run(app, "check").exit_code == 0
    service.state.seed(
        {
            "templates": [
                {
                    "id": WELCOME_ID,
                    "name": "Welcome",
                    "subject": "Welcome, ((name))",
                    "body": "Hello ((name)): ((framework)) is open.",
                }
            ]
        }
    )
    result = run(app, "check")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1] == (
        f"FAILED  welcome ({WELCOME_ID}): the body in {FILENAME} (version 1) differs from "
        "Notify's (version 2): run `flask dmmail templates pull` and commit the file"
    )
    # without the file the service alone is checked
    assert run(app, "check", "--no-file").exit_code == 0


def test_check_fails_a_template_the_pulled_file_lacks(
    make_cli_app: Callable[..., Flask], tmp_path: Path
) -> None:
    pulled = tmp_path / "only_reset.json"
    pulled.write_text(
        json.dumps(
            {
                "templates": [
                    {
                        "id": RESET_ID,
                        "name": "Reset password",
                        "subject": "Reset your password",
                        "body": "Reset it here: ((url))",
                        "version": 1,
                    }
                ]
            }
        )
    )
    result = run(make_cli_app(), "check", "--file", str(pulled))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"ok      reset_password ({RESET_ID}): version 1",
        f"FAILED  welcome ({WELCOME_ID}): not in only_reset.json: run "
        "`flask dmmail templates pull` and commit the file",
    ]


def test_check_with_a_damaged_file_or_both_file_options_is_refused(
    make_cli_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = make_cli_app()
    damaged = tmp_path / "damaged.json"
    damaged.write_text("{")
    result = run(app, "check", "--file", str(damaged))
    assert result.exit_code == 1
    assert "damaged.json is not valid JSON" in result.stderr
    both = run(app, "check", "--file", str(damaged), "--no-file")
    assert both.exit_code == 2


def test_check_with_no_templates_configured_has_nothing_to_do(
    make_cli_app: Callable[..., Flask],
) -> None:
    result = run(make_cli_app(DM_NOTIFY_TEMPLATES={}), "check")
    assert result.exit_code == 0
    assert "nothing to check" in result.output


def test_check_in_sandbox_mode_without_a_key_is_refused(
    make_cli_app: Callable[..., Flask],
) -> None:
    result = run(make_cli_app(with_key=False), "check")
    assert result.exit_code == 1
    assert "DM_NOTIFY_KEY" in result.stderr


def test_the_templates_group_is_listed(make_cli_app: Callable[..., Flask]) -> None:
    app = make_cli_app()
    listing = app.test_cli_runner().invoke(args=["dmmail", "--help"])
    assert "templates" in listing.output
    help_text = run(app, "--help").output
    assert "pull" in help_text and "check" in help_text
