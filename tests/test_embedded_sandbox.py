"""DM_MAIL_SANDBOX: the Mailer runs the sandbox in-process and points the real client at it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail import DMMail, Mailer
from flask_dmmail.errors import ConfigurationError, TemplateNotFoundError

from .conftest import SEED, TEMPLATES, WELCOME_ID


@pytest.fixture
def sandbox_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    app = Flask("embedded")
    app.testing = True
    app.config.update(
        SECRET_KEY="s", DM_NOTIFY_TEMPLATES=TEMPLATES, DM_NOTIFY_SANDBOX_TEMPLATES=SEED
    )
    DMMail(app)
    yield app
    app.extensions["dmmail"].close()


def test_sends_land_in_the_embedded_sandbox(sandbox_app: Flask) -> None:
    mailer: Mailer = sandbox_app.extensions["dmmail"]
    assert mailer.sandbox is not None
    sent = mailer.send("dev@example.gov.uk", "welcome", {"name": "Dev", "framework": "DOS"})
    assert sent is not None
    assert [n.id for n in mailer.sandbox.state.outbox()] == [sent.id]
    assert sent.subject == "Welcome, Dev"


def test_the_sandbox_keys_work_with_any_notify_client(sandbox_app: Flask) -> None:
    sandbox = sandbox_app.extensions["dmmail"].sandbox
    client = NotificationsAPIClient(sandbox.keys.test, base_url=sandbox.url)
    response: dict[str, Any] = client.send_email_notification(
        "a@example.gov.uk", WELCOME_ID, {"name": "A", "framework": "B"}
    )
    assert response["content"]["subject"] == "Welcome, A"


def test_an_unknown_template_id_is_template_not_found_as_on_notify(sandbox_app: Flask) -> None:
    mailer: Mailer = sandbox_app.extensions["dmmail"]
    with pytest.raises(TemplateNotFoundError, match="Template not found"):
        mailer.send(
            "dev@example.gov.uk",
            "9b9b9b9b-1111-4222-8333-444455556666",
            {"first_name": "Dev", "code": 1234},
        )
    assert mailer.sandbox is not None and mailer.sandbox.state.outbox() == []


def test_the_outbox_page_is_mounted_in_the_app(sandbox_app: Flask) -> None:
    mailer: Mailer = sandbox_app.extensions["dmmail"]
    sent = mailer.send("dev@example.gov.uk", "welcome", {"name": "Outboxed", "framework": "DOS"})
    assert sent is not None
    client = sandbox_app.test_client()
    page = client.get("/_dmmail/")
    assert page.status_code == 200
    assert "Welcome, Outboxed" in page.get_data(as_text=True)
    detail = client.get(f"/_dmmail/email/{sent.id}")
    assert detail.status_code == 200
    assert "<h2" in detail.get_data(as_text=True)


def test_sandbox_templates_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED))
    app = Flask("embedded_file")
    app.debug = True
    app.config.update(DM_NOTIFY_TEMPLATES=TEMPLATES, DM_NOTIFY_SANDBOX_TEMPLATES=str(seed))
    DMMail(app)
    try:
        sent = app.extensions["dmmail"].send("a@example.gov.uk", "reset_password", {"url": "u"})
        assert sent is not None and sent.body == "Reset it here: u"
    finally:
        app.extensions["dmmail"].close()


def test_without_the_sandbox_there_is_no_outbox_page(app: Flask) -> None:
    assert app.extensions["dmmail"].sandbox is None
    assert app.test_client().get("/_dmmail/").status_code == 404


def test_a_failed_init_app_stops_the_sandbox_it_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DM_NOTIFY_KEY", raising=False)

    def sandbox_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("dmmail-sandbox-")}

    before = sandbox_threads()
    app = Flask("bad_audience")
    app.testing = True
    # A valid list id the sandbox cannot create (the Mailchimp client rewrites "server").
    app.config.update(SECRET_KEY="s", DM_MAILCHIMP_AUDIENCES={"news": "server1"})
    with pytest.raises(ConfigurationError, match="DM_MAILCHIMP_AUDIENCES"):
        DMMail(app)
    assert sandbox_threads() == before
