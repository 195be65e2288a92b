"""Creating an audience's webhook (issue 10, Mailchimp item 3): Mailchimp checks the URL with a
GET and refuses one that does not answer 200, and refuses a second webhook at the same URL,
through the official client.

Sources: mailchimp-api.md §7 (the GET, its User-Agent "MailChimp.com WebHook Validator");
"We couldn't verify the URL is working. Please double check and try again. HTTP Code: 403" as
reported in veda-consulting-company/uk.co.vedaconsulting.mailchimp#101 and
PipedreamHQ/pipedream#1289; the same URL with other query arguments refused:
mailchimp/mailchimp-client-lib-codegen#11.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from mailchimp_marketing.api_client import ApiClientError

from tests.sandbox.mailchimp_helpers import problem

UNVERIFIED = "We couldn't verify the URL is working. Please double check and try again."


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 that answers GETs with ``status`` and notes them."""

    status = 200
    seen: list[tuple[str, str, str]]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_GET(self) -> None:
        self.server.seen.append(("GET", self.path, self.headers.get("User-Agent", "")))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), _Handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _hook(client: Any, list_id: str, url: str) -> Any:
    return client.lists.create_list_webhook(
        list_id, {"url": url, "events": {"unsubscribe": True}, "sources": {"api": False}}
    )


def test_the_url_is_checked_with_a_get(client: Any, list_id: str, receiver: Receiver) -> None:
    hook = _hook(client, list_id, f"{receiver.url}/hooks/mailchimp/secret")
    assert hook["url"] == f"{receiver.url}/hooks/mailchimp/secret"
    assert receiver.seen == [("GET", "/hooks/mailchimp/secret", "MailChimp.com WebHook Validator")]


@pytest.mark.parametrize("status", [404, 403, 500, 302])
def test_a_url_that_does_not_answer_200_is_refused(
    client: Any, list_id: str, receiver: Receiver, status: int
) -> None:
    receiver.status = status
    with pytest.raises(ApiClientError) as exc:
        _hook(client, list_id, f"{receiver.url}/hook")
    assert exc.value.status_code == 400
    body = problem(exc)
    assert (body["title"], body["detail"]) == (
        "Invalid Resource",
        f"{UNVERIFIED} HTTP Code: {status}",
    )
    assert client.lists.get_list_webhooks(list_id)["total_items"] == 0


def test_a_url_where_nothing_listens_is_refused(client: Any, list_id: str) -> None:
    with pytest.raises(ApiClientError) as exc:
        _hook(client, list_id, f"http://127.0.0.1:{_closed_port()}/hook")
    assert problem(exc)["detail"] == f"{UNVERIFIED} HTTP Code: 0"
    assert client.lists.get_list_webhooks(list_id)["total_items"] == 0


def test_the_same_url_twice_is_refused_even_with_other_query_arguments(
    client: Any, list_id: str, receiver: Receiver
) -> None:
    _hook(client, list_id, f"{receiver.url}/hook?token=a")
    for again in (f"{receiver.url}/hook?token=a", f"{receiver.url}/hook?token=b"):
        with pytest.raises(ApiClientError) as exc:
            _hook(client, list_id, again)
        body = problem(exc)
        assert body["title"] == "Invalid Resource"
        assert body["errors"][0]["field"] == "url"
    assert client.lists.get_list_webhooks(list_id)["total_items"] == 1
    # another path is another webhook
    _hook(client, list_id, f"{receiver.url}/other")
    assert client.lists.get_list_webhooks(list_id)["total_items"] == 2


def test_the_check_comes_after_the_audience_and_url_checks(
    client: Any, list_id: str, receiver: Receiver
) -> None:
    with pytest.raises(ApiClientError) as exc:
        _hook(client, "0000000000", f"{receiver.url}/hook")
    assert exc.value.status_code == 404
    with pytest.raises(ApiClientError) as exc:
        _hook(client, list_id, "not a url")
    assert problem(exc)["errors"][0]["field"] == "url"
    assert receiver.seen == []
