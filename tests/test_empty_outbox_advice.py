"""The empty outbox at ``/_dmmail/`` of an app in sandbox mode says how to send from the app, and
names no port or key: the embedded sandbox's change at every restart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_dmmail import DMMail
from flask_dmmail.sandbox import Sandbox
from tests.conftest import TEMPLATES


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """pytest-flask's app, in sandbox mode."""
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    app = Flask("advice_app")
    app.config.update(TESTING=True, SECRET_KEY="s", DM_NOTIFY_TEMPLATES=TEMPLATES)
    DMMail(app)
    yield app
    app.extensions["dmmail"].close()


def test_the_empty_outbox_of_an_app_names_no_port_or_key(
    client: FlaskClient, notify_sandbox: Sandbox
) -> None:
    page = client.get("/_dmmail/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "No emails sent yet" in text
    assert "no key or address to set" in text
    keys = notify_sandbox.keys
    for secret in (keys.test, keys.team, keys.live):
        assert secret not in text
    assert f":{notify_sandbox.port}" not in text
    assert (
        "The app’s templates (<code>DM_NOTIFY_TEMPLATES</code>): reset_password, welcome." in text
    )
    assert "flask dmmail send" in text


def test_the_standalone_sandbox_names_the_page_it_is_on(notify_sandbox: Sandbox) -> None:
    with notify_sandbox.app.test_client() as client:
        text = client.get("/", headers={"Host": "localhost:6011"}).get_data(as_text=True)
    assert 'base_url="http://localhost:6011"' in text
    assert notify_sandbox.keys.test not in text and "test key:" in text
