"""Helpers for the Mailchimp sandbox tests: a server on 127.0.0.1, the official client, errors."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import mailchimp_marketing
import pytest
import requests
from flask import Flask
from mailchimp_marketing.api_client import ApiClientError
from werkzeug.serving import BaseWSGIServer, make_server

from flask_dmmail.sandbox.mailchimp import ConnectionLimit, MailchimpState, mailchimp_blueprint


@dataclass
class MailchimpServer:
    url: str
    state: MailchimpState
    server: BaseWSGIServer
    thread: threading.Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_mailchimp_server(state: MailchimpState) -> MailchimpServer:
    app = Flask("mailchimp_sandbox_test")
    app.register_blueprint(mailchimp_blueprint(state))
    app.wsgi_app = ConnectionLimit(app.wsgi_app, state)  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    return MailchimpServer(f"http://127.0.0.1:{server.server_port}", state, server, thread)


def make_client(url: str, key: str) -> Any:
    """The official client, pointed at the sandbox as the reference describes."""
    client = mailchimp_marketing.Client()
    client.set_config({"api_key": key, "server": "us5"})
    client.api_client.host = f"{url}/3.0"
    return client


def problem(exc: pytest.ExceptionInfo[ApiClientError]) -> dict[str, Any]:
    """The problem document of a client error (``ApiClientError.text`` is raw JSON)."""
    text = exc.value.text
    return text if isinstance(text, dict) else json.loads(text)


def raw(
    server: MailchimpServer, method: str, path: str, key: str | None = None, **kwargs: Any
) -> requests.Response:
    """A request the official client cannot make (bad auth, odd routes, raw headers)."""
    auth = ("anyuser", key) if key is not None else None
    return requests.request(method, f"{server.url}/3.0{path}", auth=auth, timeout=10, **kwargs)
