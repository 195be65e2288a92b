"""The outbox mounted at /_dmmail/ of an app shows recipients and bodies (reset links too).

Outside debug and testing (an app that opted into the sandbox on, say, staging) it is served
only to a client on the machine itself; everyone else gets a plain 404. In every mode it
answers only to loopback host names, so a page whose name rebinds to 127.0.0.1 cannot read it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail import DMMail, Mailer

from .conftest import RESET_ID, SEED, TEMPLATES

RESET_LINK = "https://example.gov.uk/reset/s3cr3t-token"
REMOTE = {"REMOTE_ADDR": "10.1.2.3"}


def _embedded_app(name: str, **config: object) -> Flask:
    app = Flask(name)
    app.config.update(
        SECRET_KEY="not-a-real-secret",
        DM_NOTIFY_TEMPLATES=TEMPLATES,
        DM_NOTIFY_SANDBOX_TEMPLATES=SEED,
        **config,
    )
    DMMail(app)
    return app


def _send_reset(app: Flask) -> str:
    mailer: Mailer = app.extensions["dmmail"]
    assert mailer.sandbox is not None
    client = NotificationsAPIClient(mailer.sandbox.keys.test, base_url=mailer.sandbox.url)
    try:
        sent = client.send_email_notification("dev@example.gov.uk", RESET_ID, {"url": RESET_LINK})
    finally:
        client.request_session.close()
    return str(sent["id"])


@pytest.fixture
def staging_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """A non-debug, non-testing app that turned the sandbox on in its own config."""
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    app = _embedded_app("staging_outbox", DM_MAIL_SANDBOX=True, DM_ENVIRONMENT="staging")
    assert not app.debug and not app.testing
    yield app
    app.extensions["dmmail"].close()


@pytest.fixture
def testing_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    app = _embedded_app("testing_outbox", TESTING=True)
    yield app
    app.extensions["dmmail"].close()


def _pages(sent_id: str) -> list[str]:
    return [
        "/_dmmail/",
        f"/_dmmail/email/{sent_id}",
        "/_dmmail/mailchimp/",
        "/_dmmail/mailchimp/audience/abcabcabca",
        "/_dmmail/email/no-such-email",
    ]


def test_a_remote_client_gets_404_from_a_staging_outbox(staging_app: Flask) -> None:
    sent_id = _send_reset(staging_app)
    client = staging_app.test_client()
    for path in _pages(sent_id):
        page = client.get(path, environ_base=REMOTE)
        assert page.status_code == 404, path
        assert RESET_LINK not in page.get_data(as_text=True)
        assert "dev@example.gov.uk" not in page.get_data(as_text=True)


def test_a_proxied_client_gets_404_from_a_staging_outbox(staging_app: Flask) -> None:
    """Behind a proxy on the same machine every client seems to come from 127.0.0.1."""
    _send_reset(staging_app)
    client = staging_app.test_client()
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
        value = "for=203.0.113.9" if header == "Forwarded" else "203.0.113.9"
        page = client.get(
            "/_dmmail/", headers={header: value}, environ_base={"REMOTE_ADDR": "127.0.0.1"}
        )
        assert page.status_code == 404, header


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_the_staging_outbox_works_from_the_machine_itself(staging_app: Flask, address: str) -> None:
    sent_id = _send_reset(staging_app)
    client = staging_app.test_client()
    local = {"REMOTE_ADDR": address}
    index = client.get("/_dmmail/", environ_base=local)
    assert index.status_code == 200
    assert "Reset your password" in index.get_data(as_text=True)
    email = client.get(f"/_dmmail/email/{sent_id}", environ_base=local)
    assert email.status_code == 200
    assert RESET_LINK in email.get_data(as_text=True)
    assert client.get("/_dmmail/mailchimp/", environ_base=local).status_code == 200


def test_a_rebinding_host_is_refused_even_from_the_machine_itself(staging_app: Flask) -> None:
    sent_id = _send_reset(staging_app)
    client = staging_app.test_client()
    for path in _pages(sent_id):
        page = client.get(
            path, headers={"Host": "rebind.evil.example"}, environ_base={"REMOTE_ADDR": "127.0.0.1"}
        )
        assert page.status_code == 403, path
        assert RESET_LINK not in page.get_data(as_text=True)


def test_in_testing_the_outbox_is_served_to_any_client_by_a_loopback_name(
    testing_app: Flask,
) -> None:
    sent_id = _send_reset(testing_app)
    client = testing_app.test_client()
    for host in ("localhost", "127.0.0.1:5000", "[::1]:5000", "app.localhost:5000"):
        page = client.get(f"/_dmmail/email/{sent_id}", headers={"Host": host}, environ_base=REMOTE)
        assert page.status_code == 200, host
        assert RESET_LINK in page.get_data(as_text=True)
    for host in ("evil.example", "localhost.evil.example:5000", "192.168.1.20:5000"):
        page = client.get("/_dmmail/", headers={"Host": host}, environ_base=REMOTE)
        assert page.status_code == 403, host
        assert "Reset your password" not in page.get_data(as_text=True)


def test_the_apps_own_server_name_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    app = _embedded_app("named_outbox", TESTING=True, SERVER_NAME="dev.example.test:5000")
    try:
        client = app.test_client()
        assert client.get("/_dmmail/").status_code == 200
        assert client.get("/_dmmail/", headers={"Host": "evil.example:5000"}).status_code == 403
    finally:
        app.extensions["dmmail"].close()


def test_the_rest_of_the_app_is_untouched(staging_app: Flask) -> None:
    @staging_app.get("/hello")
    def hello() -> str:
        return "hi"

    client = staging_app.test_client()
    page = client.get("/hello", headers={"Host": "www.example.gov.uk"}, environ_base=REMOTE)
    assert page.status_code == 200
