"""WSGI parts of the Mailchimp sandbox: the per-key connection cap as middleware
(:class:`ConnectionLimit`), which also takes the data centre out of a ``/us5/3.0/...`` path,
Mailchimp's 500 body for the fault layer, and the markers a request's environ carries past the
middleware.

Mailchimp's host names the data centre (``us5.api.mailchimp.com``) and the official client
puts its ``server`` setting there, replacing ``server`` in its host. Pointed at
``<sandbox>/server/3.0``, the client sends ``/us5/3.0/...``: the sandbox serves that as
``/3.0/...`` and answers 401 when the key's ending names another data centre, as Mailchimp
does. Plain ``/3.0/...`` (no data centre) is served too, unchecked.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Response
from werkzeug.wsgi import ClosingIterator

from . import problems
from .problems import MailchimpProblem
from .web import PROBLEM_TYPE, environ_credentials

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .state import MailchimpState

__all__ = [
    "BATCH_OPERATION",
    "COUNTED",
    "DATACENTER",
    "ConnectionLimit",
    "mailchimp_error_body",
    "split_datacenter",
    "too_many",
]

#: Set by :class:`ConnectionLimit` on a request it counted (to the key), so the blueprint
#: does not count it again.
COUNTED = "dmmail.mailchimp.in_flight"
#: Set on a batch operation's request, which takes none of the key's connection slots.
BATCH_OPERATION = "dmmail.mailchimp.batch_operation"
#: Set to the data centre (``us5``) of a request that came as ``/us5/3.0/...``.
DATACENTER = "dmmail.mailchimp.datacenter"
_DC_PATH = re.compile(r"^/([a-z]+[0-9]+)(/3\.0(?:/.*)?)$")


def split_datacenter(environ: WSGIEnvironment) -> None:
    """Serve ``/us5/3.0/...`` as ``/3.0/...``, noting ``us5`` under :data:`DATACENTER`."""
    match = _DC_PATH.match(str(environ.get("PATH_INFO", "")))
    if match is not None:
        environ[DATACENTER] = match.group(1)
        environ["PATH_INFO"] = match.group(2)


def mailchimp_error_body() -> tuple[str, bytes]:
    """Mailchimp's 500 problem body, for the sandbox's fault layer (``/3.0`` prefix)."""
    text = json.dumps(problems.internal_error().body(str(uuid.uuid4())), separators=(",", ":"))
    return PROBLEM_TYPE, text.encode()


class ConnectionLimit:
    """WSGI middleware that counts ``/3.0`` requests in flight per key; 429 past the limit.

    Wrap it outermost (around the fault layer) so injected latency and stalls hold a
    connection open, as a slow Mailchimp does. Without it the blueprint counts by itself,
    from routing to teardown.
    """

    def __init__(self, app: WSGIApplication, state: MailchimpState, prefix: str = "/3.0") -> None:
        self.app = app
        self.state = state
        self.prefix = prefix

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        split_datacenter(environ)
        path = str(environ.get("PATH_INFO", ""))
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            return self.app(environ, start_response)
        key, bearer = environ_credentials(environ)
        if not key or not self.state.key_store.key_is_valid(key, bearer=bearer):
            return self.app(environ, start_response)  # the blueprint answers 401
        if not self.state.key_store.enter_request(key):
            problem = too_many(self.state)
            instance = str(uuid.uuid4())
            response = Response(
                json.dumps(problem.body(instance), separators=(",", ":")),
                status=429,
                content_type=PROBLEM_TYPE,
                headers={"X-Request-Id": instance},
            )
            return response(environ, start_response)
        environ[COUNTED] = key
        try:
            result = self.app(environ, start_response)
        except BaseException:
            self.state.key_store.leave_request(key)
            raise
        return ClosingIterator(result, [lambda: self.state.key_store.leave_request(key)])


def too_many(state: MailchimpState) -> MailchimpProblem:
    """Mailchimp's 429 problem for a key past the state's ``connection_limit``."""
    return MailchimpProblem(
        429,
        "Too Many Requests",
        f"You have exceeded the limit of {state.connection_limit} simultaneous connections.",
    )
