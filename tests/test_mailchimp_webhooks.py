"""Mailchimp's unsubscribe/cleaned webhook: the URL check, the secret token, the form fields,
the ``audience_unsubscribed`` signal, and a real delivery from the sandbox."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from werkzeug.serving import make_server

from flask_dmmail.sandbox.mailchimp import MailchimpState
from flask_dmmail.sandbox.server import SandboxRequestHandler
from tests.mailchimp_support import (
    SUPPLIERS,
    Fired,
)
from tests.secrets_scan import register_secret

TOKEN = "mc-webhook-Zx81_vQ2rT9sLp4K"
PATH = f"/_dmmail/callbacks/mailchimp/{TOKEN}"
ADDRESS = "mary.jackson@digital.gov.uk"


@pytest.fixture(autouse=True)
def _secrets() -> None:
    register_secret(TOKEN, kind="webhook token")
    register_secret(ADDRESS, kind="address")


@pytest.fixture
def app(make_mc_app: Callable[..., Flask]) -> Flask:
    return make_mc_app(DM_MAILCHIMP_WEBHOOK_TOKEN=TOKEN)


def unsubscribe_form(**overrides: str) -> dict[str, str]:
    form = {
        "type": "unsubscribe",
        "fired_at": "2024-05-01 09:30:00",
        "data[action]": "unsub",
        "data[reason]": "manual",
        "data[id]": "8a25ff1d98",
        "data[list_id]": SUPPLIERS,
        "data[email]": ADDRESS,
        "data[email_type]": "html",
        "data[merges][EMAIL]": ADDRESS,
        "data[merges][FNAME]": "Mary",
        "data[ip_opt]": "10.20.10.30",
        "data[campaign_id]": "cb398d21d2",
    }
    form.update(overrides)
    return form


def unsubscribed(fired: list[Fired]) -> list[Fired]:
    return [e for e in fired if e.signal == "audience_unsubscribed"]


def test_mailchimps_url_check_gets_200(app: Flask) -> None:
    response = app.test_client().get(PATH)
    assert response.status_code == 200


def test_an_unsubscribe_fires_the_signal_with_a_hash_only(app: Flask, fired: list[Fired]) -> None:
    response = app.test_client().post(PATH, data=unsubscribe_form())
    assert response.status_code == 200
    [event] = unsubscribed(fired)
    assert event.sender is app
    assert event.kwargs == {
        "audience": SUPPLIERS,
        "audience_name": "suppliers",
        "event": "unsubscribe",
        "reason": "manual",
        "action": "unsub",
        "campaign_id": "cb398d21d2",
        "fired_at": "2024-05-01 09:30:00",
        "to_hash": app.extensions["dmmail"].hasher.hash_address(ADDRESS),
    }


def test_a_cleaned_address_fires_the_signal(app: Flask, fired: list[Fired]) -> None:
    form = {
        "type": "cleaned",
        "fired_at": "2024-05-01 09:31:00",
        "data[list_id]": "9999999999",
        "data[campaign_id]": "4fjk2ma9xd",
        "data[reason]": "hard",
        "data[email]": ADDRESS,
    }
    assert app.test_client().post(PATH, data=form).status_code == 200
    [event] = unsubscribed(fired)
    assert event.kwargs["event"] == "cleaned"
    assert event.kwargs["reason"] == "hard"
    assert event.kwargs["action"] is None
    assert event.kwargs["audience"] == "9999999999" and event.kwargs["audience_name"] is None


@pytest.mark.parametrize(
    "path",
    [
        "/_dmmail/callbacks/mailchimp/" + TOKEN[:-1] + "X",
        "/_dmmail/callbacks/mailchimp/" + TOKEN + "X",
        "/_dmmail/callbacks/mailchimp/wrong",
    ],
)
def test_a_wrong_token_is_not_found_and_never_echoed(
    app: Flask, fired: list[Fired], path: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    with caplog.at_level(logging.DEBUG):
        for response in (client.get(path), client.post(path, data=unsubscribe_form())):
            assert response.status_code == 404
            body = response.get_data(as_text=True)
            assert TOKEN[:10] not in body and "wrong" not in body
    assert unsubscribed(fired) == []
    assert all(TOKEN[:10] not in r.getMessage() for r in caplog.records)


def test_without_a_token_configured_nothing_is_accepted(
    make_mc_app: Callable[..., Flask], fired: list[Fired]
) -> None:
    app = make_mc_app()
    client = app.test_client()
    assert client.get(PATH).status_code == 404
    assert client.post(PATH, data=unsubscribe_form()).status_code == 404
    assert unsubscribed(fired) == []


def test_other_events_are_answered_and_ignored(app: Flask, fired: list[Fired]) -> None:
    response = app.test_client().post(PATH, data=unsubscribe_form(type="profile"))
    assert response.status_code == 200
    assert unsubscribed(fired) == []


def test_an_event_without_its_address_is_a_bad_request(app: Flask, fired: list[Fired]) -> None:
    form = unsubscribe_form()
    del form["data[email]"]
    response = app.test_client().post(PATH, data=form)
    assert response.status_code == 400
    assert unsubscribed(fired) == []


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    # A request handler that logs no request lines: the token is in the URL, so an access
    # log would hold it (keep the app's access logs of this path private, see the README).
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=SandboxRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_sandbox_delivers_unsubscribes_and_bounces_to_the_app(
    app: Flask,
    served: str,
    mc_state: MailchimpState,
    fired: list[Fired],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The sandbox plays Mailchimp here, and its HTTP client logs (DEBUG) the URL it posts to.
    caplog.set_level(logging.INFO, logger="urllib3")
    audiences = app.extensions["dmmail"].mailchimp
    webhook_id = audiences.add_webhook("suppliers", served + PATH)
    assert webhook_id
    [hook] = mc_state.get_webhooks(SUPPLIERS, "")["webhooks"]
    assert hook["events"]["unsubscribe"] and hook["events"]["cleaned"]
    assert not hook["sources"]["api"]  # our own API writes do not echo back
    other = "dorothy.vaughan@digital.gov.uk"
    register_secret(other, kind="address")
    audiences.subscribe("suppliers", ADDRESS)
    audiences.subscribe("suppliers", other)
    mc_state.unsubscribe(SUPPLIERS, ADDRESS, reason="abuse")
    mc_state.bounce(SUPPLIERS, other)
    deliveries = mc_state.wait_for_webhooks()
    assert [d.status_code for d in deliveries] == [200, 200]
    hasher = app.extensions["dmmail"].hasher
    events = {e.kwargs["event"]: e.kwargs for e in unsubscribed(fired)}
    assert events["unsubscribe"]["to_hash"] == hasher.hash_address(ADDRESS)
    assert events["unsubscribe"]["reason"] == "abuse"
    assert events["cleaned"]["to_hash"] == hasher.hash_address(other)
    assert {e["audience"] for e in events.values()} == {SUPPLIERS}
