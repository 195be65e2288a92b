"""Helpers for the Mailchimp sandbox tests: a server on 127.0.0.1, the official client, errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import mailchimp_marketing
import pytest
import requests
from mailchimp_marketing.api_client import ApiClientError

from flask_dmmail.sandbox import Sandbox, SandboxState
from flask_dmmail.sandbox.mailchimp import MailchimpState


@dataclass
class MailchimpServer:
    """The running sandbox, seen from its Mailchimp half."""

    sandbox: Sandbox

    @property
    def url(self) -> str:
        return self.sandbox.url

    @property
    def state(self) -> MailchimpState:
        return self.sandbox.state.mailchimp

    @property
    def sandbox_state(self) -> SandboxState:
        return self.sandbox.state


def make_client(url: str, key: str, server: str = "us5") -> Any:
    """The official client, pointed at the sandbox as docs/sandbox.md describes: the host keeps
    the client's ``server`` (the data centre) in it, as Mailchimp's host does, so the sandbox
    sees ``/us5/3.0/...`` and can check it against the key's ending."""
    client = mailchimp_marketing.Client()
    client.set_config({"api_key": key, "server": server})
    client.api_client.host = f"{url}/server/3.0"
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
