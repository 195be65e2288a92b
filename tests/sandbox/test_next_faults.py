"""Next-N faults: ``/_sandbox/faults/next`` makes the next N sends fail (500, 429 or a timeout)
without processing them, whatever the fault rates say; then requests go through again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from mailchimp_marketing.api_client import ApiClientError
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.sandbox.mailchimp_helpers import MailchimpServer, problem
from tests.sandbox.notify_helpers import PLAIN_ID, raises_http, v2_errors

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def next_url(sbx: Sandbox) -> Iterator[str]:
    url = f"{sbx.url}/_sandbox/faults/next"
    yield url
    requests.delete(f"{sbx.url}/_sandbox/faults", headers=JSON, timeout=10)


def _send(client: NotificationsAPIClient) -> str:
    return str(client.send_email_notification("a@example.com", PLAIN_ID)["id"])


def test_the_next_sends_answer_500_unprocessed_then_sends_go_through(
    sbx: Sandbox, notify_client: NotificationsAPIClient, next_url: str
) -> None:
    queued = requests.post(next_url, json={"kind": "error", "count": 2}, timeout=10)
    assert queued.status_code == 201
    assert queued.json()["next"] == [
        {
            "kind": "error",
            "count": 2,
            "paths": ["/v2/notifications/"],
            "methods": ["POST"],
            "hold_seconds": 60.0,
        }
    ]
    for _ in range(2):
        error = raises_http(lambda: _send(notify_client))
        assert (error.status_code, error.message) == (
            500,
            v2_errors("InternalServerError", "Internal server error"),
        )
    assert sbx.state.outbox() == []
    assert requests.get(next_url, timeout=10).json() == {"next": []}
    sent = _send(notify_client)
    assert [n.id for n in sbx.state.outbox()] == [sent]


def test_look_ups_are_not_counted(
    sbx: Sandbox, notify_client: NotificationsAPIClient, next_url: str
) -> None:
    requests.post(next_url, json={"kind": "rate_limit"}, timeout=10)
    assert notify_client.get_all_notifications()["notifications"] == []  # a GET goes through
    error = raises_http(lambda: _send(notify_client))
    assert error.status_code == 429
    assert error.message == v2_errors(
        "RateLimitError", "Exceeded rate limit for key type TEST of 3000 requests per 60 seconds"
    )
    assert sbx.state.outbox() == []


def test_a_timeout_holds_the_send_until_the_client_gives_up(
    sbx: Sandbox, make_notify_client: Any, next_url: str
) -> None:
    requests.post(next_url, json={"kind": "timeout", "hold_seconds": 30}, timeout=10)
    client = make_notify_client(timeout=0.5)
    error = raises_http(lambda: _send(client))  # the client reports its timeout as a 503
    assert isinstance(error.__cause__, requests.exceptions.ReadTimeout)
    assert sbx.state.outbox() == []
    # Clearing answers the held request at once; the next send goes through.
    assert requests.delete(f"{sbx.url}/_sandbox/faults", headers=JSON, timeout=10).ok
    assert requests.get(next_url, timeout=10).json() == {"next": []}
    _send(make_notify_client())


def test_reset_forgets_them(sbx: Sandbox, next_url: str) -> None:
    requests.post(next_url, json={"kind": "error", "count": 5}, timeout=10)
    assert len(requests.get(next_url, timeout=10).json()["next"]) == 1
    assert requests.post(f"{sbx.url}/_sandbox/reset", headers=JSON, timeout=10).ok
    assert requests.get(next_url, timeout=10).json() == {"next": []}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "kind is required"),
        ({"kind": "slow"}, "kind must be one of error, rate_limit, timeout"),
        ({"kind": "error", "count": 0}, "count must be a whole number of at least 1"),
        ({"kind": "error", "count": "2"}, "count must be a whole number of at least 1"),
        ({"kind": "error", "paths": "/v2/"}, "paths must be a list of path prefixes"),
        ({"kind": "error", "methods": []}, "methods must be a list of HTTP methods"),
        ({"kind": "timeout", "hold_seconds": -1}, "hold_seconds must be between 0 and 3600"),
        ({"kind": "error", "rate": 1}, "unknown fault options: rate"),
    ],
)
def test_bad_options_are_refused(next_url: str, body: dict[str, Any], message: str) -> None:
    refused = requests.post(next_url, json=body, timeout=10)
    assert refused.status_code == 400
    assert message in refused.json()["error"]
    assert requests.get(next_url, timeout=10).json() == {"next": []}


def test_mailchimp_calls_get_mailchimps_own_429(
    mc_server: MailchimpServer, mc: MailchimpState, client: Any
) -> None:
    faults = mc_server.sandbox.app.extensions["dmmail_sandbox_faults"].next
    faults.add("rate_limit", 1, paths=["/3.0/"], methods=["GET"])
    try:
        with pytest.raises(ApiClientError) as raised:
            client.lists.get_all_lists()
        assert raised.value.status_code == 429
        assert problem(raised)["title"] == "Too Many Requests"
        assert client.lists.get_all_lists()["lists"] == []
    finally:
        faults.clear()


def test_serving_is_false_once_stopped() -> None:
    sandbox = Sandbox.start()
    assert sandbox.serving
    sandbox.stop()
    assert not sandbox.serving
