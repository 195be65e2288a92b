"""Mailchimp's unsubscribe/cleaned webhook: the URL check, the secret token, the form fields,
the ``audience_unsubscribed`` signal, and a real delivery from the sandbox."""

from __future__ import annotations

import io
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pytest
from flask import Flask, url_for
from werkzeug.serving import make_server

from flask_dmmail.errors import MailchimpValidationError
from flask_dmmail.sandbox.mailchimp import MailchimpState
from flask_dmmail.sandbox.server import SandboxRequestHandler
from flask_dmmail.webhooks import mailchimp_webhooks_blueprint
from tests.conftest import RecordAll
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


NOT_FOUND = "Not Found\n"


def assert_clean_logs(all_logs: RecordAll) -> None:
    """No record of ours holds the address or a control character (a forged line)."""
    assert ADDRESS.lower() not in all_logs.text().lower()
    for record in all_logs.records:
        if record.name != "flask_dmmail":
            continue
        texts = [record.getMessage()]
        texts += [v for k, v in vars(record).items() if isinstance(v, str) and k != "msg"]
        for text in texts:
            assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text), text[:80]


@pytest.mark.parametrize(
    "list_id",
    [
        "a1b2c3d4e5\nINFO Mailchimp webhook: forged line",
        ADDRESS,
        "a1b2c3d4e5 " + ADDRESS,
        "a" * 33,
        "a1b2-c3d4e5",
        "a1b2c3d4e\u00e9",
        "b" * 50_000,
    ],
    ids=["newline", "address", "id-and-address", "too-long", "dash", "non-ascii", "50-kb"],
)
def test_a_list_id_that_is_not_an_audience_id_is_refused_and_not_logged(
    app: Flask, fired: list[Fired], all_logs: RecordAll, list_id: str
) -> None:
    response = app.test_client().post(PATH, data=unsubscribe_form(**{"data[list_id]": list_id}))
    assert response.status_code == 400
    assert unsubscribed(fired) == []
    assert list_id not in response.get_data(as_text=True)
    assert list_id not in all_logs.text()
    assert_clean_logs(all_logs)
    [refusal] = [r for r in all_logs.records if r.name == "flask_dmmail"]
    assert refusal.levelname == "WARNING" and refusal.__dict__["http_status"] == 400


def test_a_list_id_with_surrounding_spaces_is_still_accepted(
    app: Flask, fired: list[Fired]
) -> None:
    form = unsubscribe_form(**{"data[list_id]": f" {SUPPLIERS}\n"})
    assert app.test_client().post(PATH, data=form).status_code == 200
    assert unsubscribed(fired)[0].kwargs["audience"] == SUPPLIERS


def test_a_body_over_64_kb_is_413_before_the_form_is_read(
    app: Flask, fired: list[Fired], all_logs: RecordAll
) -> None:
    form = unsubscribe_form(**{"data[list_id]": "c" * (1024 * 1024)})
    response = app.test_client().post(PATH, data=form)
    assert response.status_code == 413
    assert response.get_data(as_text=True) == "Request Entity Too Large\n"
    assert unsubscribed(fired) == []
    assert_clean_logs(all_logs)


def test_a_streamed_body_over_64_kb_is_413(app: Flask, fired: list[Fired]) -> None:
    # No Content-Length (chunked, as a WSGI server that terminates the input passes it on).
    body = urlencode(unsubscribe_form(**{"data[list_id]": "c" * (1024 * 1024)})).encode()
    response = app.test_client().post(
        PATH,
        input_stream=io.BytesIO(body),
        content_type="application/x-www-form-urlencoded",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert unsubscribed(fired) == []


def test_a_large_event_under_the_cap_is_accepted(app: Flask, fired: list[Fired]) -> None:
    form = unsubscribe_form(**{"data[merges][NOTES]": "n" * (60 * 1024)})
    assert app.test_client().post(PATH, data=form).status_code == 200
    assert unsubscribed(fired)[0].kwargs["audience"] == SUPPLIERS


def test_a_streamed_event_under_the_cap_is_accepted(app: Flask, fired: list[Fired]) -> None:
    body = urlencode(unsubscribe_form()).encode()
    response = app.test_client().post(
        PATH,
        input_stream=io.BytesIO(body),
        content_type="application/x-www-form-urlencoded",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 200
    assert unsubscribed(fired)[0].kwargs["reason"] == "manual"


@pytest.mark.parametrize(
    "method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "BREW"]
)
@pytest.mark.parametrize("token", [TOKEN, TOKEN[:-1] + "X"], ids=["right-token", "wrong-token"])
def test_every_other_method_gets_the_wrong_token_404(
    app: Flask, fired: list[Fired], method: str, token: str
) -> None:
    client = app.test_client()
    wrong = client.get("/_dmmail/callbacks/mailchimp/" + TOKEN[:-1] + "X")
    response = client.open(
        "/_dmmail/callbacks/mailchimp/" + token, method=method, data=unsubscribe_form()
    )
    assert response.status_code == 404
    assert response.get_data(as_text=True) == wrong.get_data(as_text=True) == NOT_FOUND
    assert response.mimetype == wrong.mimetype
    assert "Allow" not in response.headers
    assert unsubscribed(fired) == []


def test_a_copy_mounted_at_another_url_answers_other_methods_the_same_way(
    app: Flask, fired: list[Fired]
) -> None:
    app.register_blueprint(mailchimp_webhooks_blueprint("hooks"), url_prefix="/hooks/mailchimp/")
    client = app.test_client()
    with app.test_request_context():
        assert url_for("hooks.event", token=TOKEN) == f"/hooks/mailchimp/{TOKEN}"
    assert client.get(f"/hooks/mailchimp/{TOKEN}").status_code == 200
    for method in ("PUT", "OPTIONS"):
        response = client.open(f"/hooks/mailchimp/{TOKEN}", method=method)
        assert response.status_code == 404
        assert response.get_data(as_text=True) == NOT_FOUND
    assert client.post(f"/hooks/mailchimp/{TOKEN}", data=unsubscribe_form()).status_code == 200
    assert len(unsubscribed(fired)) == 1


def test_head_is_answered_as_get(app: Flask) -> None:
    client = app.test_client()
    assert client.head(PATH).status_code == 200
    assert client.head("/_dmmail/callbacks/mailchimp/wrong-token-123456").status_code == 404


BAD_VALUES = {
    "newline": "manual\nINFO Mailchimp webhook: forged line",
    "address": ADDRESS,
    "word-and-address": "manual " + ADDRESS,
    "control": "manual\x1b[31m",
    "too-long": "m" * 200,
}


@pytest.mark.parametrize("value", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
@pytest.mark.parametrize(
    ("field", "kwarg"),
    [
        ("data[reason]", "reason"),
        ("data[action]", "action"),
        ("data[campaign_id]", "campaign_id"),
        ("fired_at", "fired_at"),
    ],
)
def test_a_malformed_field_is_dropped_and_never_logged(
    app: Flask, fired: list[Fired], all_logs: RecordAll, field: str, kwarg: str, value: str
) -> None:
    response = app.test_client().post(PATH, data=unsubscribe_form(**{field: value}))
    assert response.status_code == 200  # the unsubscribe itself is kept
    [event] = unsubscribed(fired)
    expected = {
        "audience": SUPPLIERS,
        "audience_name": "suppliers",
        "event": "unsubscribe",
        "reason": "manual",
        "action": "unsub",
        "campaign_id": "cb398d21d2",
        "fired_at": "2024-05-01 09:30:00",
        "to_hash": app.extensions["dmmail"].hasher.hash_address(ADDRESS),
    }
    assert event.kwargs == {**expected, kwarg: None}
    assert value not in all_logs.text()
    assert_clean_logs(all_logs)
    [line] = [r for r in all_logs.records if r.name == "flask_dmmail"]
    assert line.levelname == "WARNING" and field in line.getMessage()


@pytest.mark.parametrize("value", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_an_unknown_type_is_ignored_without_logging_a_malformed_value(
    app: Flask, fired: list[Fired], all_logs: RecordAll, value: str
) -> None:
    response = app.test_client().post(PATH, data=unsubscribe_form(type=value))
    assert response.status_code == 200
    assert unsubscribed(fired) == []
    assert value not in all_logs.text()
    assert_clean_logs(all_logs)


def test_a_well_formed_unknown_type_is_logged_by_name(
    app: Flask, fired: list[Fired], all_logs: RecordAll
) -> None:
    assert app.test_client().post(PATH, data=unsubscribe_form(type="upemail")).status_code == 200
    [line] = [r for r in all_logs.records if r.name == "flask_dmmail"]
    assert line.__dict__["event"] == "upemail" and "upemail" in line.getMessage()


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    # A request handler that logs no request lines: the token is in the URL, so an access
    # log would hold it (keep the app's access logs of this path private, see the README).
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=SandboxRequestHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
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


# ---------------------------------------------------------------- Mailchimp's checks of the URL
# (issue 10, Mailchimp item 3: a GET that must answer 200, and no second webhook at one URL;
# sources in tests/sandbox/test_mailchimp_webhook_checks.py)


def test_add_webhook_is_refused_when_the_route_does_not_answer(
    app: Flask, mc_state: MailchimpState, caplog: pytest.LogCaptureFixture
) -> None:
    # The sandbox plays Mailchimp: its HTTP client logs (DEBUG) the URL it checks.
    caplog.set_level(logging.INFO, logger="urllib3")
    audiences = app.extensions["dmmail"].mailchimp
    with socket.socket() as sock:  # a port nothing listens on: the app is not served
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(MailchimpValidationError) as exc:
        audiences.add_webhook("suppliers", f"http://127.0.0.1:{port}{PATH}")
    assert "couldn't verify the URL is working" in str(exc.value)
    assert TOKEN not in str(exc.value)
    assert mc_state.get_webhooks(SUPPLIERS, "")["total_items"] == 0


def test_add_webhook_twice_at_one_url_is_refused(
    app: Flask, served: str, mc_state: MailchimpState, caplog: pytest.LogCaptureFixture
) -> None:
    # The sandbox plays Mailchimp: its HTTP client logs (DEBUG) the URL it checks.
    caplog.set_level(logging.INFO, logger="urllib3")
    audiences = app.extensions["dmmail"].mailchimp
    assert audiences.add_webhook("suppliers", served + PATH)
    with pytest.raises(MailchimpValidationError) as exc:
        audiences.add_webhook("suppliers", served + PATH)
    assert "url" in str(exc.value)
    assert mc_state.get_webhooks(SUPPLIERS, "")["total_items"] == 1
