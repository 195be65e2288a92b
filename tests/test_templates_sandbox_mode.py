"""Templates in sandbox mode behave as Notify's: only the app's templates exist (the pulled
``notify_templates.json``, ``DM_NOTIFY_SANDBOX_TEMPLATES``, stand-ins for the names of
``DM_NOTIFY_TEMPLATES``); any other id is "Template not found"."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_dmmail import DMMail, Mailer, errors
from flask_dmmail.errors import (
    ConfigurationError,
    MissingPersonalisationError,
    TemplateNotFoundError,
)

from .conftest import RESET_ID, SEED, TEMPLATES, WELCOME_ID

UNKNOWN_ID = "9b9b9b9b-1111-4222-8333-444455556666"
#: The file ``flask dmmail templates pull`` writes, by default in the app's root folder.
DEFAULT_FILENAME = "notify_templates.json"
PULLED_WELCOME = {
    "id": WELCOME_ID,
    "name": "Welcome to the Digital Marketplace",
    "subject": "Welcome, ((name))",
    "body": "Hello ((name)), your framework is ((framework)).",
    "version": 4,
}


def write_pulled(folder: Path, *templates: dict[str, Any]) -> None:
    """A pulled file, as ``flask dmmail templates pull`` writes it (its tests check that)."""
    document = {"templates": list(templates)}
    (folder / DEFAULT_FILENAME).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


@pytest.fixture
def make_sandbox_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Flask]]:
    """Apps in sandbox mode (testing, or debug) whose root folder is ``tmp_path``."""
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    monkeypatch.delenv("DM_NOTIFY_API_KEY", raising=False)
    apps: list[Flask] = []

    def factory(*, debug: bool = False, **config: Any) -> Flask:
        app = Flask(f"sandbox_mode_{len(apps)}", root_path=str(tmp_path))
        if debug:
            app.debug = True
        else:
            app.testing = True
        app.config.update(SECRET_KEY="s", DM_NOTIFY_TEMPLATES=TEMPLATES)
        app.config.update(config)
        DMMail(app)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["dmmail"].close()


def mailer_of(app: Flask) -> Mailer:
    mailer = app.extensions["dmmail"]
    assert isinstance(mailer, Mailer) and mailer.sandbox is not None
    return mailer


@pytest.mark.parametrize("debug", [False, True], ids=["testing", "debug"])
def test_an_unknown_template_id_is_template_not_found(
    make_sandbox_app: Callable[..., Flask], debug: bool
) -> None:
    mailer = mailer_of(make_sandbox_app(debug=debug))
    with pytest.raises(TemplateNotFoundError, match="Template not found"):
        mailer.send("dev@example.gov.uk", UNKNOWN_ID, {"name": "Dev"})
    with pytest.raises(TemplateNotFoundError):
        mailer.preview(UNKNOWN_ID, {"name": "Dev"})
    assert mailer_of(make_sandbox_app()).sandbox.state.outbox() == []  # type: ignore[union-attr]


def test_a_named_template_without_a_body_is_a_stand_in_that_takes_any_personalisation(
    make_sandbox_app: Callable[..., Flask],
) -> None:
    app = make_sandbox_app()
    mailer = mailer_of(app)
    first = mailer.send("dev@example.gov.uk", "welcome", {"anything": "at all"})
    second = mailer.send("dev@example.gov.uk", "reset_password")
    assert first is not None and second is not None
    assert first.template_id == WELCOME_ID and second.template_id == RESET_ID
    assert "stand-in template" in first.body
    assert "flask dmmail templates pull" in first.body
    assert first.subject == "welcome (stand-in template)"


def test_the_outbox_marks_stand_ins_and_lists_their_personalisation(
    make_sandbox_app: Callable[..., Flask],
) -> None:
    app = make_sandbox_app(
        DM_NOTIFY_SANDBOX_TEMPLATES={
            "templates": [t for t in SEED["templates"] if t["id"] == RESET_ID]
        }
    )
    mailer = mailer_of(app)
    stand_in = mailer.send("dev@example.gov.uk", "welcome", {"first_name": "Grace", "code": 1234})
    real = mailer.send("dev@example.gov.uk", "reset_password", {"url": "https://x.example/r"})
    assert stand_in is not None and real is not None
    client = app.test_client()
    index = client.get("/_dmmail/").get_data(as_text=True)
    assert index.count("dm-stand-in") == 1
    rows = {row.split('"')[0]: row for row in index.split('data-notification-id="')[1:]}
    assert "stand-in template" in rows[stand_in.id]
    assert "stand-in template" not in rows[real.id]
    page = client.get(f"/_dmmail/email/{stand_in.id}").get_data(as_text=True)
    assert 'id="stand-in"' in page
    assert "<dt>first_name</dt><dd>Grace</dd>" in page
    assert "<dt>code</dt><dd>1234</dd>" in page
    assert 'id="stand-in"' not in client.get(f"/_dmmail/email/{real.id}").get_data(as_text=True)


def test_the_stand_ins_are_logged_once_at_start_with_the_pull_command(
    make_sandbox_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="flask_dmmail"):
        app = make_sandbox_app(
            DM_NOTIFY_SANDBOX_TEMPLATES={
                "templates": [t for t in SEED["templates"] if t["id"] == RESET_ID]
            }
        )
        mailer_of(app).send("dev@example.gov.uk", "welcome", {"name": "A"})
        mailer_of(app).send("dev@example.gov.uk", "welcome", {"name": "B"})
    lines = [r.getMessage() for r in caplog.records if "stand-in" in r.getMessage()]
    assert len(lines) == 1
    assert "welcome" in lines[0] and "reset_password" not in lines[0]
    assert "flask dmmail templates pull" in lines[0]


def test_no_stand_in_line_when_every_template_has_a_body(
    make_sandbox_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="flask_dmmail"):
        make_sandbox_app(DM_NOTIFY_SANDBOX_TEMPLATES=SEED)
    assert not [r for r in caplog.records if "stand-in" in r.getMessage()]


def test_the_pulled_file_in_the_app_root_gives_the_real_templates(
    make_sandbox_app: Callable[..., Flask], tmp_path: Path
) -> None:
    write_pulled(tmp_path, PULLED_WELCOME)
    mailer = mailer_of(make_sandbox_app())
    with pytest.raises(MissingPersonalisationError) as caught:
        mailer.send("dev@example.gov.uk", "welcome", {"name": "Ada"})
    assert list(caught.value.missing) == ["framework"]
    sent = mailer.send("dev@example.gov.uk", "welcome", {"name": "Ada", "framework": "DOS"})
    assert sent is not None
    assert sent.subject == "Welcome, Ada"
    assert sent.body == "Hello Ada, your framework is DOS."
    # reset_password is not in the file: still a stand-in
    other = mailer.send("dev@example.gov.uk", "reset_password", {"whatever": "x"})
    assert other is not None and "stand-in template" in other.body


def test_dm_notify_sandbox_templates_wins_over_the_pulled_file(
    make_sandbox_app: Callable[..., Flask], tmp_path: Path
) -> None:
    write_pulled(tmp_path, PULLED_WELCOME)
    mailer = mailer_of(make_sandbox_app(DM_NOTIFY_SANDBOX_TEMPLATES=SEED))
    sent = mailer.send("dev@example.gov.uk", "welcome", {"name": "Ada", "framework": "DOS"})
    assert sent is not None
    assert sent.body == "# Hello Ada\n\nYou registered for DOS."  # the seed's, not the file's


def test_a_seed_file_and_the_pulled_file_add_up(
    make_sandbox_app: Callable[..., Flask], tmp_path: Path
) -> None:
    write_pulled(tmp_path, PULLED_WELCOME)
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps({"templates": [t for t in SEED["templates"] if t["id"] == RESET_ID]})
    )
    mailer = mailer_of(make_sandbox_app(DM_NOTIFY_SANDBOX_TEMPLATES=str(seed)))
    welcome = mailer.send("dev@example.gov.uk", "welcome", {"name": "A", "framework": "B"})
    reset = mailer.send("dev@example.gov.uk", "reset_password", {"url": "u"})
    assert welcome is not None and welcome.body == "Hello A, your framework is B."
    assert reset is not None and reset.body == "Reset it here: u"


def test_a_damaged_pulled_file_is_refused_at_init_app_naming_it(
    make_sandbox_app: Callable[..., Flask], tmp_path: Path
) -> None:
    (tmp_path / DEFAULT_FILENAME).write_text('{"templates": [{"id": "not-a-uuid"}]}')
    with pytest.raises(errors.DMMailError, match=DEFAULT_FILENAME) as caught:
        make_sandbox_app()
    assert type(caught.value).__name__ == "TemplatesFileError"
    assert "flask dmmail templates pull" in caught.value.message


def test_a_bad_sandbox_seed_is_a_configuration_error(
    make_sandbox_app: Callable[..., Flask],
) -> None:
    with pytest.raises(ConfigurationError, match="DM_NOTIFY_SANDBOX_TEMPLATES"):
        make_sandbox_app(DM_NOTIFY_SANDBOX_TEMPLATES={"templates": "not a list"})


def test_outside_sandbox_mode_the_pulled_file_is_not_read(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    (tmp_path / DEFAULT_FILENAME).write_text("not json")
    app = make_app()
    app.root_path = str(tmp_path)
    assert app.extensions["dmmail"].sandbox is None


# -- the interface the embedded sandbox's owner uses -----------------------------------------


def test_embedded_seed_names_the_stand_ins_and_has_a_stable_key(tmp_path: Path) -> None:
    from flask_dmmail.config import Settings
    from flask_dmmail.templates_file import embedded_seed

    def seed_of(**config: Any) -> Any:

        app = Flask("seed", root_path=str(tmp_path))
        app.config.update(SECRET_KEY="s", DM_NOTIFY_TEMPLATES=TEMPLATES, **config)
        settings = Settings.from_config(app.config, testing=True, environ={})
        return embedded_seed(app, settings)

    bare = seed_of()
    assert bare.stand_ins == ("reset_password", "welcome")
    assert {t["id"] for t in bare.seed["templates"]} == {WELCOME_ID, RESET_ID}
    assert seed_of().key == bare.key
    seeded = seed_of(DM_NOTIFY_SANDBOX_TEMPLATES=SEED)
    assert seeded.stand_ins == ()
    assert seeded.key != bare.key
    assert seeded.seed["reply_to_addresses"] == SEED["reply_to_addresses"]
    write_pulled(tmp_path, PULLED_WELCOME)
    pulled = seed_of()
    assert pulled.stand_ins == ("reset_password",)
    assert pulled.key not in (bare.key, seeded.key)


def test_two_names_for_one_id_share_one_stand_in(make_sandbox_app: Callable[..., Flask]) -> None:
    mailer = mailer_of(
        make_sandbox_app(DM_NOTIFY_TEMPLATES={"welcome": WELCOME_ID, "hello": WELCOME_ID})
    )
    first = mailer.send("dev@example.gov.uk", "hello", {"a": "b"})
    second = mailer.send("dev@example.gov.uk", "welcome", {"a": "b"})
    assert first is not None and second is not None
    assert first.subject == second.subject == "hello / welcome (stand-in template)"
