"""Seed data and helpers for the Notify half of the sandbox tests.

The fixtures built on them (``notify_server``, ``sbx``, ``make_notify_client``,
``notify_client``, ``http``) are in ``tests/sandbox/conftest.py``: each test module gets
its own running :class:`~flask_dmmail.sandbox.Sandbox` on 127.0.0.1, seeded with
:data:`SEED` and reset before and after every test. Raw requests use ``requests`` with
JWTs made by PyJWT (:func:`token_for`, :func:`auth_header`), for the cases the official
client cannot produce.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning
from notifications_python_client.errors import HTTPError

WELCOME_ID = "6d5a4b3c-2e1f-4a0b-9c8d-7e6f5a4b3c2d"
PLAIN_ID = "1a2b3c4d-5e6f-4071-8293-a4b5c6d7e8f9"
FILE_ID = "2b3c4d5e-6f70-4182-93a4-b5c6d7e8f90a"
SMS_ID = "3c4d5e6f-7081-4293-a4b5-c6d7e8f90a1b"
ARCHIVED_ID = "4d5e6f70-8192-43a4-b5c6-d7e8f90a1b2c"
EMPTY_ID = "5e6f7081-92a3-44b5-c6d7-e8f90a1b2c3d"
REPLY_TO_ID = "6f708192-a3b4-45c6-d7e8-f90a1b2c3d4e"
UNKNOWN_ID = "7081a2b3-c4d5-46e7-f809-1a2b3c4d5e6f"
TEAM_MEMBER = "member@example.gov.uk"
GUEST = "guest@example.com"
STRANGER = "stranger@example.com"

SEED: dict[str, Any] = {
    "templates": [
        {
            "id": WELCOME_ID,
            "name": "Welcome",
            "type": "email",
            "subject": "Hello ((name)) - it's ((day))",
            "body": "# Welcome ((name))\n\nYour date is ((date)).\n\n((vip??You are a VIP.))",
        },
        {
            "id": PLAIN_ID,
            "name": "Plain",
            "type": "email",
            "subject": "Plain subject",
            "body": "Plain body",
        },
        {
            "id": FILE_ID,
            "name": "File",
            "type": "email",
            "subject": "Your file",
            "body": "Download it: ((doc))",
        },
        {"id": SMS_ID, "name": "Text", "type": "sms", "body": "Hi ((name))"},
        {
            "id": ARCHIVED_ID,
            "name": "Old",
            "type": "email",
            "subject": "Old",
            "body": "Old",
            "archived": True,
        },
        {"id": EMPTY_ID, "name": "Empty", "type": "email", "subject": "Empty", "body": "((x))"},
    ],
    "reply_to_addresses": [{"id": REPLY_TO_ID, "email_address": "reply@example.gov.uk"}],
    "team_members": [TEAM_MEMBER],
    "guest_list": [GUEST],
}


def key_parts(key: str) -> tuple[str, str]:
    """(service id, secret) of a full key string."""
    return key[-73:-37], key[-36:]


def token_for(
    key: str,
    *,
    claims: dict[str, Any] | None = None,
    algorithm: str = "HS256",
    secret: str | None = None,
) -> str:
    """A JWT for ``key``: ``{"iss": service_id, "iat": now}`` updated with ``claims``
    (a claim set to None is removed)."""
    service_id, key_secret = key_parts(key)
    payload: dict[str, Any] = {"iss": service_id, "iat": int(time.time())}
    for name, value in (claims or {}).items():
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # HS512 with a short key
        return jwt.encode(payload, secret or key_secret, algorithm=algorithm)


def auth_header(key: str, **kwargs: Any) -> dict[str, str]:
    """An Authorization header as the client builds it."""
    return {"Authorization": f"Bearer {token_for(key, **kwargs)}"}


def raises_http(call: Callable[[], Any]) -> HTTPError:
    """Run ``call`` and return the HTTPError the official client raised."""
    with pytest.raises(HTTPError) as info:
        call()
    return info.value


def v2_errors(error: str, *messages: str) -> list[dict[str, str]]:
    """The ``errors`` list of a v2 error body."""
    return [{"error": error, "message": m} for m in messages]
