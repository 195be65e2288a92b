"""Fixtures for the Mailchimp tests (a pytest plugin of the suite, see tests/conftest.py):
apps wired to the session sandbox's ``/3.0`` with the real
``mailchimp-marketing`` client, a signal recorder, and WSGI instruments on the sandbox server.

The instruments wrap the sandbox app on the server side (real HTTP all the way): they record
the requests the client makes, or answer some of them with a failure, so error paths that the
sandbox cannot produce by itself (a 500 with an empty body, a connection dropped after the
send) are still driven through the official client.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import pytest
from flask import Flask

from flask_dmmail import signals
from flask_dmmail.mailchimp import Audiences
from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.faults import FaultMiddleware
from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.secrets_scan import register_secret

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

SUPPLIERS = "a1b2c3d4e5"
BUYERS = "0f0e0d0c0b"
AUDIENCES = {"suppliers": SUPPLIERS, "buyers": BUYERS}
MAILCHIMP_SIGNALS = ("mailchimp_subscribed", "campaign_sent", "mailchimp_failed")


@pytest.fixture
def mc_state(notify_sandbox: Sandbox) -> Iterator[MailchimpState]:
    """The session sandbox's Mailchimp state, emptied, with the two configured audiences, on a
    plan that allows 5 audiences (the sandbox's default is a smaller plan's 3)."""
    state = notify_sandbox.state.mailchimp
    state.max_lists = 5
    register_secret(state.api_key, kind="mailchimp api key")
    state.ensure_list(SUPPLIERS, "Suppliers")
    state.ensure_list(BUYERS, "Buyers")
    yield state
    notify_sandbox.state.clear_faults()
    state.reset()


@pytest.fixture
def make_mc_app(
    make_app: Callable[..., Flask], notify_sandbox: Sandbox, mc_state: MailchimpState
) -> Callable[..., Flask]:
    """Build an app (the suite's ``make_app``) that talks to the sandbox's Mailchimp as it
    would to Mailchimp. Its stage is staging (so only DM_MAILCHIMP_AUDIENCES may be used)
    unless a test names another."""

    def factory(**config: Any) -> Flask:
        settings: dict[str, Any] = {
            "SECRET_KEY": "mailchimp-tests",
            "DM_MAILCHIMP_API_KEY": mc_state.api_key,
            "DM_MAILCHIMP_BASE_URL": f"{notify_sandbox.url}/3.0",
            "DM_MAILCHIMP_AUDIENCES": AUDIENCES,
            "DM_MAILCHIMP_RETRY_BACKOFF": 0.001,
            "DM_MAILCHIMP_TIMEOUT": 5,
            "DM_ENVIRONMENT": "staging",
            "DM_NOTIFY_ALLOWED_RECIPIENTS": ["example.gov.uk", "digital.gov.uk", "example.com"],
        }
        settings.update(config)
        return make_app(**settings)

    return factory


@pytest.fixture
def mc_app(make_mc_app: Callable[..., Flask]) -> Flask:
    return make_mc_app()


@pytest.fixture
def audiences(mc_app: Flask) -> Audiences:
    mailchimp = mc_app.extensions["dmmail"].mailchimp
    assert isinstance(mailchimp, Audiences)
    return mailchimp


@pytest.fixture
def production_app(make_mc_app: Callable[..., Flask]) -> Flask:
    """An app on the production stage: the one stage that may use any audience."""
    return make_mc_app(DM_ENVIRONMENT="production")


@pytest.fixture
def production_audiences(production_app: Flask) -> Audiences:
    mailchimp = production_app.extensions["dmmail"].mailchimp
    assert isinstance(mailchimp, Audiences) and mailchimp.production
    return mailchimp


@dataclass
class Fired:
    signal: str
    sender: Any
    kwargs: dict[str, Any]


@pytest.fixture
def fired() -> Iterator[list[Fired]]:
    """Every Mailchimp signal sent during the test, in order."""
    events: list[Fired] = []
    lock = threading.Lock()
    receivers = []
    for name in (*MAILCHIMP_SIGNALS, "audience_unsubscribed"):
        signal = getattr(signals, name)

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            with lock:
                events.append(Fired(_name, sender, kwargs))

        signal.connect(receiver, weak=False)
        receivers.append((signal, receiver))
    try:
        yield events
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)


@dataclass
class Rule:
    method: str
    path: re.Pattern[str]
    action: str  # "status" or "drop"
    status: int = 500
    body: bytes = b""
    content_type: str = "application/problem+json; charset=utf-8"
    times: int = 1_000_000
    hits: int = 0


@dataclass
class Seen:
    method: str
    path: str
    args: dict[str, list[str]]


@dataclass
class Instrument:
    """Server-side WSGI wrapper: records every request; applies the failure rules."""

    inner: WSGIApplication
    requests: list[Seen] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(
        self,
        method: str,
        path: str,
        *,
        status: int = 500,
        body: bytes | dict[str, Any] = b"",
        content_type: str = "application/problem+json; charset=utf-8",
        times: int = 1_000_000,
    ) -> Rule:
        """Answer ``method`` requests whose path matches the ``path`` regex with ``status``
        (without running the sandbox) at most ``times`` times."""
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        rule = Rule(method, re.compile(path), "status", status, raw, content_type, times)
        self.rules.append(rule)
        return rule

    def drop_after(self, method: str, path: str, *, times: int = 1) -> Rule:
        """Run matching requests in the sandbox, then reset the connection unanswered."""
        rule = Rule(method, re.compile(path), "drop", times=times)
        self.rules.append(rule)
        return rule

    def paths(self, method: str | None = None, contains: str = "") -> list[Seen]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and contains in r.path
            ]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", ""))
        path = str(environ.get("PATH_INFO", ""))
        args = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
        rule = None
        with self.lock:
            self.requests.append(Seen(method, path, args))
            for candidate in self.rules:
                if (
                    candidate.method == method
                    and candidate.path.search(path)
                    and candidate.hits < candidate.times
                ):
                    candidate.hits += 1
                    rule = candidate
                    break
        if rule is None:
            return self.inner(environ, start_response)
        if rule.action == "status":
            headers = [("Content-Length", str(len(rule.body)))]
            if rule.content_type:
                headers.append(("Content-Type", rule.content_type))
            start_response(f"{rule.status} FAILED", headers)
            return [rule.body]
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = status
            return lambda data: None

        result = self.inner(environ, capture)
        try:
            list(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        FaultMiddleware._drop(environ)  # raises ConnectionResetError
        raise AssertionError("unreachable")


@pytest.fixture
def instrument(notify_sandbox: Sandbox) -> Iterator[Instrument]:
    app = notify_sandbox.app
    original = app.wsgi_app
    wrapper = Instrument(original)
    app.wsgi_app = wrapper  # type: ignore[method-assign]
    try:
        yield wrapper
    finally:
        app.wsgi_app = original  # type: ignore[method-assign]
