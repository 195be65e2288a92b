"""Configuration, the client's quirks, typed errors, retries and the 10-connection cap, all
through the official client against the sandbox (and a few instruments on its server)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import mailchimp_marketing
import pytest
import requests
from flask import Flask
from mailchimp_marketing.api_client import ApiClientError
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server

from flask_dmmail import DMMail
from flask_dmmail.errors import (
    ConfigurationError,
    DMMailError,
    ForgottenMemberError,
    InvalidMemberAddressError,
    MailchimpAuthError,
    MailchimpBadRequestError,
    MailchimpError,
    MailchimpNotFoundError,
    MailchimpProtocolError,
    MailchimpRateLimitError,
    MailchimpUnavailableError,
    MailchimpValidationError,
    MemberComplianceError,
    MemberExistsError,
)
from flask_dmmail.mailchimp import Audiences, SubscribeOutcome, map_error, subscriber_hash
from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.mailchimp_support import (
    SUPPLIERS,
    Fired,
    Instrument,
)
from tests.secrets_scan import register_secret

ADDRESS = "katherine.johnson@digital.gov.uk"
WRONG_KEY = "0123456789abcdef0123456789abcdef-us5"


@pytest.fixture(autouse=True)
def _secrets() -> None:
    register_secret(ADDRESS, kind="address")
    register_secret(WRONG_KEY, kind="api key")


def mailchimp(app: Flask) -> Audiences:
    audiences = app.extensions["dmmail"].mailchimp
    assert isinstance(audiences, Audiences)
    return audiences


# --------------------------------------------------------------------------- configuration


def test_without_a_key_outside_sandbox_mode_mailchimp_says_how_to_set_one(
    make_mc_app: Callable[..., Flask],
) -> None:
    app = make_mc_app(DM_MAILCHIMP_API_KEY=None, DM_MAILCHIMP_BASE_URL=None)
    with pytest.raises(ConfigurationError) as caught:
        _ = app.extensions["dmmail"].mailchimp
    assert caught.value.key == "DM_MAILCHIMP_API_KEY"
    assert "API keys" in caught.value.message and "DM_MAIL_SANDBOX" in caught.value.message
    with app.app_context(), pytest.raises(ConfigurationError):
        _ = DMMail().mailchimp


def test_the_data_centre_comes_from_the_key(make_mc_app: Callable[..., Flask]) -> None:
    app = make_mc_app(DM_MAILCHIMP_API_KEY="0123456789abcdef-us14", DM_MAILCHIMP_BASE_URL=None)
    assert mailchimp(app).base_url == "https://us14.api.mailchimp.com/3.0"


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("DM_MAILCHIMP_TIMEOUT", "0", "at least"),
        ("DM_MAILCHIMP_RETRIES", 1.5, "whole number"),
        ("DM_MAILCHIMP_RETRY_BACKOFF", "soon", "number"),
        ("DM_MAILCHIMP_WEBHOOK_TOKEN", "short", "16"),
        ("DM_MAILCHIMP_ALLOW_UNLISTED_AUDIENCES", "perhaps", "True or False"),
    ],
)
def test_bad_mailchimp_settings_name_the_key(
    make_mc_app: Callable[..., Flask], key: str, value: Any, match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match) as caught:
        make_mc_app(**{key: value})
    assert caught.value.key == key


def test_sandbox_mode_runs_mailchimp_on_the_sandbox_with_the_configured_audiences() -> None:
    app = Flask("mc_sandbox_mode")
    app.config.update(
        TESTING=True,
        DM_MAIL_SANDBOX=True,
        DM_MAILCHIMP_AUDIENCES={"suppliers": "abcabcabca", "dos7": "1234512345"},
    )
    DMMail(app)
    mailer = app.extensions["dmmail"]
    try:
        assert mailer.sandbox is not None
        state = mailer.sandbox.state.mailchimp
        assert {(x["id"], x["name"]) for x in state.lists()} == {
            ("abcabcabca", "suppliers"),
            ("1234512345", "dos7"),
        }
        assert mailer.mailchimp.base_url == f"{mailer.sandbox.url}/3.0"
        result = mailer.mailchimp.subscribe("dos7", ADDRESS)
        assert result.outcome is SubscribeOutcome.SUBSCRIBED
        assert state.member_count("1234512345") == 1
    finally:
        mailer.close()


def test_a_host_with_server_in_it_is_not_rewritten(
    notify_sandbox: Sandbox, mc_state: MailchimpState, make_mc_app: Callable[..., Flask]
) -> None:
    # The client replaces "server" anywhere in the URL with the key's data centre.
    front = DispatcherMiddleware(lambda e, s: [], {"/server": notify_sandbox.app})
    server = make_server("127.0.0.1", 0, front, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}/server/3.0"
        app = make_mc_app(DM_MAILCHIMP_BASE_URL=base)
        assert mailchimp(app).subscribe("suppliers", ADDRESS).on_list
        # the control: the client set up the usual way cannot reach that host
        naive = mailchimp_marketing.Client({"api_key": mc_state.api_key})
        naive.api_client.host = base
        with pytest.raises(ApiClientError):
            naive.lists.get_list(SUPPLIERS)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --------------------------------------------------------------------------- typed errors


def test_a_wrong_key_is_an_auth_error_that_never_shows_the_key(
    make_mc_app: Callable[..., Flask], fired: list[Fired]
) -> None:
    app = make_mc_app(DM_MAILCHIMP_API_KEY=WRONG_KEY)
    with pytest.raises(MailchimpAuthError) as caught:
        mailchimp(app).subscribe("suppliers", ADDRESS)
    error = caught.value
    assert (error.status, error.title) == (401, "API Key Invalid")
    assert "DM_MAILCHIMP_API_KEY" in error.message
    assert WRONG_KEY not in error.message and WRONG_KEY not in repr(error)
    assert not error.transient
    [event] = [e for e in fired if e.signal == "mailchimp_failed"]
    assert event.sender is app and event.kwargs["error"] is error


def test_an_error_with_an_empty_body_is_still_an_error(
    audiences: Audiences, instrument: Instrument
) -> None:
    # An empty body makes the client *return* the requests.Response, even for a 404.
    instrument.fail("GET", r"/members/", status=404, body=b"", content_type="")
    instrument.fail("PUT", r"/members/", status=404, body=b"", content_type="")
    with pytest.raises(MailchimpNotFoundError) as caught:
        audiences.subscribe("suppliers", ADDRESS)
    assert caught.value.status == 404


def test_a_5xx_with_an_empty_body_is_retried_then_unavailable(
    audiences: Audiences, instrument: Instrument
) -> None:
    instrument.fail("GET", r"/members/", status=503, body=b"")
    with pytest.raises(MailchimpUnavailableError) as caught:
        audiences.subscribe("suppliers", ADDRESS)
    assert caught.value.status == 503 and caught.value.transient
    assert len(instrument.paths("GET", "/members/")) == 4  # 1 + DM_MAILCHIMP_RETRIES


def test_a_proxy_error_page_is_unavailable_without_its_html(
    audiences: Audiences, instrument: Instrument
) -> None:
    page = b"<html><body>502 Bad Gateway: upstream " + ADDRESS.encode() + b"</body></html>"
    instrument.fail("GET", r"/members/", status=502, body=page, content_type="text/html")
    with pytest.raises(MailchimpUnavailableError) as caught:
        audiences.subscribe("suppliers", ADDRESS)
    assert "<html>" not in caught.value.message and ADDRESS not in caught.value.message


def test_transient_failures_are_retried_until_they_pass(
    audiences: Audiences, instrument: Instrument, caplog: pytest.LogCaptureFixture
) -> None:
    instrument.fail(
        "GET",
        r"/members/",
        status=500,
        body={"title": "Internal Server Error", "status": 500, "detail": "Oops"},
        times=2,
    )
    with caplog.at_level(logging.WARNING, logger="flask_dmmail"):
        result = audiences.subscribe("suppliers", ADDRESS)
    assert result.outcome is SubscribeOutcome.SUBSCRIBED
    assert len(instrument.paths("GET", "/members/")) == 3
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2 and all(r.attempt in (1, 2) for r in retries)  # type: ignore[attr-defined]


def test_client_errors_are_not_retried(audiences: Audiences, instrument: Instrument) -> None:
    instrument.fail(
        "GET", r"/members/", status=400, body={"title": "Bad Request", "status": 400, "detail": "x"}
    )
    with pytest.raises(MailchimpBadRequestError):
        audiences.subscribe("suppliers", ADDRESS)
    assert len(instrument.paths("GET", "/members/")) == 1


def test_sandbox_500s_become_unavailable(audiences: Audiences, notify_sandbox: Sandbox) -> None:
    notify_sandbox.state.set_faults(error_rate=1.0, paths=("/3.0/",))
    with pytest.raises(MailchimpUnavailableError) as caught:
        audiences.subscribe("suppliers", ADDRESS)
    assert caught.value.title == "Internal Server Error"


def test_a_dropped_connection_is_unavailable(audiences: Audiences, notify_sandbox: Sandbox) -> None:
    notify_sandbox.state.set_faults(drop_rate=1.0, paths=("/3.0/",))
    with pytest.raises(MailchimpUnavailableError, match="could not be reached") as caught:
        audiences.subscribe("suppliers", ADDRESS)
    assert caught.value.status is None


def test_a_timeout_is_unavailable(
    make_mc_app: Callable[..., Flask], notify_sandbox: Sandbox
) -> None:
    app = make_mc_app(DM_MAILCHIMP_TIMEOUT=0.3, DM_MAILCHIMP_RETRIES=1)
    # the stall outlasts any client, however late its timeout fires (clear_faults ends it)
    notify_sandbox.state.set_faults(stall_rate=1.0, stall_seconds=60, paths=("/3.0/",))
    try:
        with pytest.raises(MailchimpUnavailableError, match="did not answer in time") as caught:
            mailchimp(app).subscribe("suppliers", ADDRESS)
    finally:
        notify_sandbox.state.clear_faults()
    assert caught.value.status is None and caught.value.transient


def test_nothing_listening_is_unavailable(make_mc_app: Callable[..., Flask]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = make_mc_app(DM_MAILCHIMP_BASE_URL=f"http://127.0.0.1:{port}/3.0", DM_MAILCHIMP_RETRIES=0)
    with pytest.raises(MailchimpUnavailableError, match="ConnectionError"):
        mailchimp(app).ping()


def test_too_many_connections_is_a_transient_rate_limit(
    make_mc_app: Callable[..., Flask], mc_state: MailchimpState
) -> None:
    app = make_mc_app(DM_MAILCHIMP_RETRIES=1)
    mc_state.connection_limit = 0
    with pytest.raises(MailchimpRateLimitError) as caught:
        mailchimp(app).subscribe("suppliers", ADDRESS)
    assert caught.value.status == 429 and caught.value.transient
    assert "simultaneous connections" in caught.value.message


def test_every_problem_title_maps_to_its_class_without_the_address(
    notify_sandbox: Sandbox, mc_state: MailchimpState
) -> None:
    """Problems the public calls turn into outcomes, read raw from the sandbox."""
    auth = ("user", mc_state.api_key)
    members = f"{notify_sandbox.url}/3.0/lists/{SUPPLIERS}/members"

    def problem(method: str, url: str, body: dict[str, Any]) -> MailchimpError:
        response = requests.request(method, url, json=body, auth=auth, timeout=10)
        return map_error(response.status_code, response.json(), known=[ADDRESS])

    add = {"email_address": ADDRESS, "status": "subscribed"}
    requests.post(members, json=add, auth=auth, timeout=10).raise_for_status()
    exists = problem("POST", members, add)
    assert isinstance(exists, MemberExistsError) and exists.title == "Member Exists"
    mc_state.unsubscribe(SUPPLIERS, ADDRESS)
    compliance = problem("PATCH", f"{members}/{subscriber_hash(ADDRESS)}", {"status": "subscribed"})
    assert isinstance(compliance, MemberComplianceError)
    mc_state.delete_member_permanent(SUPPLIERS, ADDRESS)
    forgotten = problem("POST", members, add)
    assert isinstance(forgotten, ForgottenMemberError)
    bad = problem("POST", members, {"email_address": "nope", "status": "subscribed"})
    assert isinstance(bad, InvalidMemberAddressError)
    assert isinstance(bad, MailchimpValidationError)
    mc_state.set_fake_rule(True)
    fake = problem("POST", members, {"email_address": "x@example.com", "status": "subscribed"})
    assert isinstance(fake, InvalidMemberAddressError)
    invalid = problem("POST", members, {"email_address": ADDRESS, "status": "maybe"})
    assert type(invalid) is MailchimpValidationError and invalid.errors[0]["field"] == "status"
    for error in (exists, compliance, forgotten, bad, fake, invalid):
        assert ADDRESS not in error.message and ADDRESS not in (error.detail or "")
        assert "x@example.com" not in error.message
    assert "<address>" in exists.message
    odd = map_error(302, {})
    assert isinstance(odd, MailchimpProtocolError)
    assert isinstance(odd, DMMailError)


# --------------------------------------------------------------------------- connections


def max_in_flight(state: MailchimpState, key: str, stop: threading.Event) -> Iterator[int]:
    peak = 0
    while not stop.is_set():
        peak = max(peak, state.in_flight(key))
        time.sleep(0.001)
    yield peak


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll until ``condition()``; the generous cap only guards against a hung test."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.005)


def test_never_more_than_ten_requests_in_flight_per_key(
    make_mc_app: Callable[..., Flask], mc_state: MailchimpState, notify_sandbox: Sandbox
) -> None:
    # Two apps with the same key share one semaphore; retries are off, so a 429 would fail.
    # The sandbox holds every request until released: ten fill the key's slots however
    # slow the machine, and the other thirty must wait for a slot.
    first = make_mc_app(DM_MAILCHIMP_RETRIES=0, DM_MAILCHIMP_TIMEOUT=60)
    second = make_mc_app(DM_MAILCHIMP_RETRIES=0, DM_MAILCHIMP_TIMEOUT=60)
    notify_sandbox.state.set_faults(stall_rate=1.0, stall_seconds=60, paths=("/3.0/",))
    peak: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(
        target=lambda: peak.extend(max_in_flight(mc_state, mc_state.api_key, stop))
    )
    watcher.start()
    errors: list[BaseException] = []
    started: list[int] = []

    def subscribe(app: Flask, i: int) -> None:
        started.append(i)
        try:
            mailchimp(app).subscribe("suppliers", f"p{i}@digital.gov.uk")
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=subscribe, args=(first if i % 2 else second, i)) for i in range(40)
    ]
    try:
        for thread in threads:
            thread.start()
        wait_for(
            lambda: len(started) == 40 and mc_state.in_flight(mc_state.api_key) == 10,
            "ten requests in flight",
        )
    finally:
        notify_sandbox.state.clear_faults()
        for thread in threads:
            thread.join(60)
        stop.set()
        watcher.join(5)
    assert errors == []
    assert mc_state.member_count(SUPPLIERS) == 40
    assert peak[0] == 10

    # The control: the bare client in as many threads goes past the cap and gets 429s.
    statuses: list[int | None] = []

    def bare(i: int) -> None:
        client = mailchimp_marketing.Client({"api_key": mc_state.api_key, "server": "server"})
        client.api_client.host = f"{notify_sandbox.url}/3.0"
        try:
            client.lists.get_list(SUPPLIERS)
            statuses.append(200)
        except ApiClientError as error:
            statuses.append(error.status_code)

    notify_sandbox.state.set_faults(stall_rate=1.0, stall_seconds=60, paths=("/3.0/",))
    threads = [threading.Thread(target=bare, args=(i,)) for i in range(40)]
    try:
        for thread in threads:
            thread.start()
        wait_for(lambda: len(statuses) == 30, "thirty answers past the cap")
    finally:
        notify_sandbox.state.clear_faults()
        for thread in threads:
            thread.join(60)
    assert (statuses.count(200), statuses.count(429)) == (10, 30)


def test_mailchimp_signals_and_logs_hold_no_address(
    audiences: Audiences,
    production_audiences: Audiences,
    mc_state: MailchimpState,
    fired: list[Fired],
    caplog: pytest.LogCaptureFixture,
) -> None:
    mc_state.set_fake_rule(True, addresses=[ADDRESS])
    with caplog.at_level(logging.DEBUG, logger="flask_dmmail"):
        audiences.subscribe("suppliers", ADDRESS)
        audiences.subscribe_many("suppliers", [ADDRESS, "other@digital.gov.uk"])
        with pytest.raises(MailchimpError):
            production_audiences.subscribe("0000000000", ADDRESS)  # an audience it lacks
    text = "\n".join(
        [r.getMessage() + repr(vars(r)) for r in caplog.records if r.name == "flask_dmmail"]
    )
    assert text and ADDRESS not in text.lower()
    assert len(fired) == 4  # three subscribe results and one failure
    assert ADDRESS not in json.dumps([repr(e.kwargs) for e in fired])
