"""Reading requests and writing answers as Mailchimp does: the credentials, the JSON body, the
query arguments (with Mailchimp's errors for bad ones), JSON answers cut by ``fields``, and
problem documents.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import TYPE_CHECKING, Any

from flask import Response, g, request

from . import problems
from .fields import project
from .models import parse_time
from .problems import MailchimpProblem

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "JSON_TYPE",
    "MAX_COUNT",
    "PROBLEM_TYPE",
    "api_base",
    "bool_arg",
    "choice_arg",
    "credentials",
    "environ_credentials",
    "int_arg",
    "json_response",
    "method_not_allowed",
    "no_content",
    "problem_response",
    "request_body",
    "time_arg",
]

JSON_TYPE = "application/json; charset=utf-8"
PROBLEM_TYPE = "application/problem+json; charset=utf-8"
MAX_COUNT = 1000


# --------------------------------------------------------------------------- requests


def credentials() -> tuple[str | None, bool]:
    """The key (or OAuth token) the request carries, and whether it came as Bearer."""
    return environ_credentials(request.environ)


def environ_credentials(environ: WSGIEnvironment) -> tuple[str | None, bool]:
    """The key (or OAuth token) a WSGI environ carries (Basic, Bearer/OAuth or apikey), and
    whether it came as Bearer; ``""`` for an undecodable Basic header."""
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    scheme = scheme.lower()
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return "", False
        return (decoded.partition(":")[2] or None), False
    if scheme in ("bearer", "oauth") and value:
        return value, True
    if scheme == "apikey" and value:
        return value, False
    return None, False


def request_body() -> Any:
    """The request's JSON body (None when empty); Mailchimp's parse error otherwise."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MailchimpProblem(
            400, "JSON Parse Exception", "We encountered an unspecified JSON parsing error."
        ) from None


def _arg_problem(name: str, message: str) -> MailchimpProblem:
    return problems.invalid_resource(errors=[{"field": name, "message": message}])


def int_arg(name: str, default: int, *, maximum: int | None = None) -> int:
    """The query argument ``name`` as a count or offset (0 or more); a value over ``maximum``
    gives ``maximum``, as Mailchimp returns at most 1,000 records a page instead of refusing a
    larger ``count`` (only the official client refuses one, before sending it)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _arg_problem(name, "This value should be of type integer.") from None
    if value < 0:
        raise _arg_problem(name, "This value should be greater than or equal to 0.")
    return value if maximum is None else min(value, maximum)


def bool_arg(name: str) -> bool:
    """Whether the query argument ``name`` is true (``true``, ``1`` or ``yes``)."""
    return request.args.get(name, "").strip().lower() in ("true", "1", "yes")


def time_arg(name: str) -> float | None:
    """The query argument ``name`` as an ISO 8601 time (epoch seconds), or None."""
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise _arg_problem(name, "This value should be a valid ISO 8601 date and time.") from None


def choice_arg(name: str, choices: tuple[str, ...]) -> str | None:
    """The query argument ``name`` if it is one of ``choices``, or None when absent."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        message = "Data presented is not one of the accepted values: " + ", ".join(choices) + "."
        raise _arg_problem(name, message)
    return raw


def api_base() -> str:
    """The API's root URL as the client called it (``…/3.0``), for ``_links``."""
    return request.url_root.rstrip("/") + "/3.0"


# --------------------------------------------------------------------------- responses


def json_response(data: dict[str, Any], status: int = 200) -> Response:
    """``data`` as a JSON answer, cut by the request's ``fields``/``exclude_fields``."""
    body = project(data, request.args.get("fields"), request.args.get("exclude_fields"))
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status=status, content_type=JSON_TYPE)


def no_content() -> Response:
    """The empty 204 answer."""
    return Response(b"", status=204, content_type=JSON_TYPE)


def problem_response(problem: MailchimpProblem) -> Response:
    """``problem`` as an ``application/problem+json`` answer."""
    instance = g.get("mc_request_id") or str(uuid.uuid4())
    text = json.dumps(problem.body(instance), ensure_ascii=False, separators=(",", ":"))
    response = Response(text, status=problem.status, content_type=PROBLEM_TYPE)
    response.headers["Link"] = (
        f"<{request.url_root.rstrip('/')}/schema/3.0/Definitions/ProblemDetailDocument.json>; "
        'rel="describedBy"'
    )
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def method_not_allowed(allowed: list[str]) -> MailchimpProblem:
    """Mailchimp's 405 problem, with the ``Allow`` header."""
    return MailchimpProblem(
        405,
        "Method Not Allowed",
        "The requested method and resource are not compatible. See the Allow header for this "
        "resource's available methods.",
        headers={"Allow": ", ".join(allowed)},
    )
