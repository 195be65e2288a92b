"""The connection cap (429) and the shared fault layer on the sandbox's Mailchimp API."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from mailchimp_marketing.api_client import ApiClientError

from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.sandbox.mailchimp_helpers import MailchimpServer, make_client, problem, raw


def _wait_for(condition: Any, what: str) -> None:
    """Poll until ``condition()``; a generous cap only guards against a hung test."""
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


class Held:
    """Requests held open in the sandbox by a stall fault until ``release()``."""

    def __init__(self, server: MailchimpServer, key: str, n: int) -> None:
        self.server = server
        self.results: list[Any] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._ping, args=(make_client(server.url, key),))
            for _ in range(n)
        ]
        for thread in self.threads:
            thread.start()

    def _ping(self, client: Any) -> None:
        try:
            result: Any = client.ping.get()
        except ApiClientError as exc:
            result = exc
        with self.lock:
            self.results.append(result)

    def release(self) -> list[Any]:
        self.server.sandbox_state.clear_faults()
        for thread in self.threads:
            thread.join(timeout=20)
        return self.results


@pytest.fixture
def stall(mc_server: MailchimpServer, mc: MailchimpState) -> Iterator[None]:
    mc_server.sandbox_state.set_faults(stall_rate=1.0, stall_seconds=30, paths=["/3.0/"])
    yield
    mc_server.sandbox_state.clear_faults()


def test_the_eleventh_connection_is_429(
    mc_server: MailchimpServer, mc: MailchimpState, client: Any, stall: None
) -> None:
    held = Held(mc_server, mc.api_key, 10)
    try:
        _wait_for(lambda: mc.in_flight(mc.api_key) == 10, "10 requests in flight")
        with pytest.raises(ApiClientError) as exc:
            client.lists.get_all_lists()
        assert exc.value.status_code == 429
        body = problem(exc)
        assert (body["title"], body["detail"]) == (
            "Too Many Requests",
            "You have exceeded the limit of 10 simultaneous connections.",
        )
        # another key has its own count: its request gets in (and is held too)
        other_key = mc.add_api_key()
        other = Held(mc_server, other_key, 1)
        _wait_for(lambda: mc.in_flight(other_key) == 1, "the other key's request in flight")
    finally:
        results = held.release()
    assert other.release() == [{"health_status": "Everything's Chimpy!"}]
    assert results == [{"health_status": "Everything's Chimpy!"}] * 10
    _wait_for(lambda: mc.in_flight(mc.api_key) == 0, "the count to drop back to 0")
    assert client.ping.get()["health_status"] == "Everything's Chimpy!"


def test_the_limit_is_configurable(
    mc_server: MailchimpServer, mc: MailchimpState, client: Any, stall: None
) -> None:
    mc.connection_limit = 2
    held = Held(mc_server, mc.api_key, 2)
    try:
        _wait_for(lambda: mc.in_flight(mc.api_key) == 2, "2 requests in flight")
        response = raw(mc_server, "GET", "/ping", mc.api_key)
        assert response.status_code == 429
        assert response.headers["Content-Type"] == "application/problem+json; charset=utf-8"
        assert response.json()["instance"] == response.headers["X-Request-Id"]
        assert response.json()["detail"] == (
            "You have exceeded the limit of 2 simultaneous connections."
        )
    finally:
        held.release()


def test_errors_release_their_connection(
    mc_server: MailchimpServer, mc: MailchimpState, client: Any
) -> None:
    mc.connection_limit = 1
    for _ in range(3):
        with pytest.raises(ApiClientError):
            client.lists.get_list("0000000000")
        with pytest.raises(ApiClientError):
            client.lists.create_list({"name": "incomplete"})
    assert mc.in_flight(mc.api_key) == 0
    assert client.ping.get()["health_status"] == "Everything's Chimpy!"


def test_injected_500_is_a_mailchimp_problem(
    mc_server: MailchimpServer, mc: MailchimpState, client: Any, list_id: str
) -> None:
    mc_server.sandbox_state.set_faults(error_rate=1.0, paths=["/3.0/"])
    with pytest.raises(ApiClientError) as exc:
        client.lists.add_list_member(list_id, {"email_address": "a@dm.org", "status": "subscribed"})
    assert exc.value.status_code == 500
    assert isinstance(exc.value.text, str)  # problem+json is not parsed by the client
    body = problem(exc)
    assert body["title"] == "Internal Server Error"
    assert body["status"] == 500
    assert mc.member_count(list_id) == 0  # answered without being processed
    mc_server.sandbox_state.clear_faults()
    assert client.lists.get_list(list_id)["id"] == list_id


def test_dropped_connection_after_storing(
    mc_server: MailchimpServer, mc: MailchimpState, client: Any, list_id: str
) -> None:
    mc_server.sandbox_state.set_faults(drop_rate=1.0, paths=["/3.0/"])
    with pytest.raises(ApiClientError) as exc:
        client.lists.add_list_member(list_id, {"email_address": "a@dm.org", "status": "subscribed"})
    assert exc.value.status_code is None  # the client wraps the connection error
    mc_server.sandbox_state.clear_faults()
    # It was stored: a naive retry meets Member Exists.
    with pytest.raises(ApiClientError) as again:
        client.lists.add_list_member(list_id, {"email_address": "a@dm.org", "status": "subscribed"})
    assert problem(again)["title"] == "Member Exists"
    _wait_for(lambda: mc.in_flight(mc.api_key) == 0, "the dropped request to be released")


def test_faults_on_notify_paths_leave_mailchimp_alone(
    mc_server: MailchimpServer, mc: MailchimpState, client: Any
) -> None:
    mc_server.sandbox_state.set_faults(error_rate=1.0, paths=["/v2/"])
    assert client.ping.get()["health_status"] == "Everything's Chimpy!"
