"""DM_NOTIFY_REPLY_TO_IDS: an app names its reply-to addresses as it names its templates, so
that ``reply_to_id`` takes a name; in sandbox mode the named ids exist in the sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from flask_dmmail import DMMail, Mailer
from flask_dmmail.config import KEYS
from flask_dmmail.errors import ConfigurationError, InvalidOptionError, NotifyBadRequestError
from flask_dmmail.replyto import reply_to_seed
from flask_dmmail.sandbox import Sandbox
from tests.conftest import REPLY_TO_ID, SEED, TEMPLATES
from tests.secrets_scan import register_secret

ADDRESS = "reply-to-names@example.gov.uk"
PERSONAL = {"name": "Ada Replyto", "framework": "G-Cloud Replyto 15"}
#: Named in the app's config only: the session sandbox's seed does not have it.
UNSEEDED_ID = "7e6d5c4b-3a29-4b18-8c07-f6e5d4c3b2a1"


@pytest.fixture(autouse=True)
def _secrets() -> None:
    register_secret(ADDRESS, *PERSONAL.values(), kind="test input")


def test_reply_to_id_takes_a_name_from_the_config(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    app = make_app(DM_NOTIFY_REPLY_TO_IDS={"enquiries": REPLY_TO_ID})
    mailer: Mailer = app.extensions["dmmail"]
    sent = mailer.send(ADDRESS, "welcome", PERSONAL, reply_to_id="enquiries")
    assert sent is not None
    stored = sandbox.state.get(sent.id)
    assert stored is not None
    assert stored.email_reply_to_id == REPLY_TO_ID
    assert stored.reply_to == "enquiries@example.gov.uk"
    # A UUID is still taken as it is.
    again = mailer.send(ADDRESS, "welcome", PERSONAL, reply_to_id=REPLY_TO_ID.upper())
    assert again is not None
    assert sandbox.state.get(again.id).email_reply_to_id == REPLY_TO_ID  # type: ignore[union-attr]
    # prepare resolves it the same way.
    assert mailer.prepare(ADDRESS, "welcome", PERSONAL, reply_to_id="enquiries").reply_to_id == (
        REPLY_TO_ID
    )


def test_an_unknown_name_is_refused_before_any_request_naming_the_known_ones(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    app = make_app(DM_NOTIFY_REPLY_TO_IDS={"enquiries": REPLY_TO_ID, "frameworks": UNSEEDED_ID})
    with pytest.raises(InvalidOptionError) as raised:
        app.extensions["dmmail"].send(ADDRESS, "welcome", PERSONAL, reply_to_id="enquries")
    message = raised.value.message
    assert "'enquries'" in message
    assert "DM_NOTIFY_REPLY_TO_IDS" in message
    assert "enquiries, frameworks" in message
    assert sandbox.state.outbox() == []


def test_a_value_that_is_not_a_name_is_not_echoed(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    app = make_app()
    with pytest.raises(InvalidOptionError) as raised:
        app.extensions["dmmail"].send(ADDRESS, "welcome", PERSONAL, reply_to_id=ADDRESS)
    assert ADDRESS not in raised.value.message
    assert "(none configured)" in raised.value.message
    assert sandbox.state.outbox() == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"enquiries": "not-a-uuid"}, "'enquiries' must map to a reply-to address UUID"),
        ({"": REPLY_TO_ID}, "every reply-to name must be a non-empty string"),
        ('{"enquiries": 7}', "'enquiries' must map to a reply-to address UUID"),
        ("[1, 2]", "must be a mapping"),
    ],
)
def test_bad_config_is_refused_naming_the_key(
    make_app: Callable[..., Flask], value: object, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        make_app(DM_NOTIFY_REPLY_TO_IDS=value)
    assert raised.value.key == "DM_NOTIFY_REPLY_TO_IDS"
    assert expected in raised.value.message


def test_the_key_is_read_from_json_and_is_listed(make_app: Callable[..., Flask]) -> None:
    assert "DM_NOTIFY_REPLY_TO_IDS" in KEYS
    app = make_app(DM_NOTIFY_REPLY_TO_IDS=f'{{"enquiries": "{REPLY_TO_ID.upper()}"}}')
    assert dict(app.extensions["dmmail"].settings.reply_to_ids) == {"enquiries": REPLY_TO_ID}


@pytest.fixture
def sandbox_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Flask]]:
    """Apps in sandbox mode (testing, no key)."""
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    apps: list[Flask] = []

    def factory(**config: object) -> Flask:
        app = Flask(f"reply_to_{len(apps)}")
        app.testing = True
        app.config.update(SECRET_KEY="s", DM_NOTIFY_TEMPLATES=TEMPLATES, **config)
        DMMail(app)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["dmmail"].close()


def test_in_sandbox_mode_the_named_ids_exist_as_stand_ins(
    sandbox_app: Callable[..., Flask],
) -> None:
    app = sandbox_app(DM_NOTIFY_REPLY_TO_IDS={"enquiries": UNSEEDED_ID})
    mailer: Mailer = app.extensions["dmmail"]
    sent = mailer.send(ADDRESS, "welcome", PERSONAL, reply_to_id="enquiries")
    assert sent is not None
    assert mailer.sandbox is not None
    stored = mailer.sandbox.state.get(sent.id)
    assert stored is not None
    assert stored.email_reply_to_id == UNSEEDED_ID
    assert stored.reply_to == "enquiries.reply-to@sandbox.invalid"
    # An id the app does not name is Notify's own refusal, in the sandbox as on Notify.
    with pytest.raises(NotifyBadRequestError, match="does not exist"):
        mailer.send(
            ADDRESS, "welcome", PERSONAL, reply_to_id="0d0d0d0d-1111-4222-8333-444455556666"
        )


def test_a_seeded_address_wins_over_the_stand_in(sandbox_app: Callable[..., Flask]) -> None:
    app = sandbox_app(
        DM_NOTIFY_REPLY_TO_IDS={"enquiries": REPLY_TO_ID}, DM_NOTIFY_SANDBOX_TEMPLATES=SEED
    )
    mailer: Mailer = app.extensions["dmmail"]
    sent = mailer.send(ADDRESS, "welcome", PERSONAL, reply_to_id="enquiries")
    assert sent is not None
    assert mailer.sandbox is not None
    assert mailer.sandbox.state.get(sent.id).reply_to == "enquiries@example.gov.uk"  # type: ignore[union-attr]


def test_reply_to_seed_gives_the_seed_entries(make_app: Callable[..., Flask]) -> None:
    app = make_app(DM_NOTIFY_REPLY_TO_IDS={"Enquiries (G-Cloud)": REPLY_TO_ID})
    assert reply_to_seed(app.extensions["dmmail"].settings) == [
        {"id": REPLY_TO_ID, "email_address": "enquiries-g-cloud.reply-to@sandbox.invalid"}
    ]


def test_the_cli_takes_a_reply_to_name_and_config_lists_the_names(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    app = make_app(DM_NOTIFY_REPLY_TO_IDS={"enquiries": REPLY_TO_ID, "frameworks": UNSEEDED_ID})
    runner = app.test_cli_runner()
    args = ["dmmail", "send", ADDRESS, "welcome", "name=Ada", "framework=DOS"]
    result = runner.invoke(args=[*args, "--reply-to-id", "enquiries"])
    assert result.exit_code == 0, result.output
    [stored] = sandbox.state.outbox()
    assert stored.email_reply_to_id == REPLY_TO_ID
    config = runner.invoke(args=["dmmail", "config"])
    assert "reply-to names: enquiries, frameworks\n" in config.output
