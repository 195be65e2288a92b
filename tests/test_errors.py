"""Every answer of Notify maps to one typed error. The answers are real responses from the
sandbox, raised as the official client raises them."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
import requests
from notifications_python_client.errors import HTTPError, InvalidResponse

from flask_dmmail import Mailer
from flask_dmmail.errors import (
    ApiKeyNotFoundError,
    ApiKeyRevokedError,
    ClockSkewError,
    DailyLimitError,
    DMMailError,
    MissingPersonalisationError,
    NotificationNotFoundError,
    NotifyAuthError,
    NotifyBadRequestError,
    NotifyError,
    NotifyForbiddenError,
    NotifyProtocolError,
    NotifyUnavailableError,
    NotifyValidationError,
    RateLimitError,
    RecipientNotAllowedError,
    TemplateNotFoundError,
)
from flask_dmmail.notify import map_error
from flask_dmmail.sandbox import Sandbox

from .conftest import WELCOME_ID
from .mailchimp_support import Instrument

EMAIL = "/v2/notifications/email"


def token(sandbox: Sandbox, *, secret: str | None = None, iat: float | None = None) -> str:
    key = sandbox.keys.test
    claims = {"iss": key[-73:-37], "iat": int(iat if iat is not None else time.time())}
    return jwt.encode(claims, secret or key[-36:], algorithm="HS256")


def call(
    sandbox: Sandbox,
    method: str = "POST",
    path: str = EMAIL,
    body: Any = None,
    auth: str | None = None,
) -> requests.Response:
    headers = {"Authorization": auth if auth is not None else f"Bearer {token(sandbox)}"}
    return requests.request(method, sandbox.url + path, json=body, headers=headers, timeout=5)


def raised(response: requests.Response, **kwargs: Any) -> NotifyError:
    """What flask-dmmail raises for ``response``, given as the official client raises it."""
    try:
        response.raise_for_status()
    except requests.RequestException as exc:
        return map_error(HTTPError.create(exc), **kwargs)
    raise AssertionError("the sandbox answered 2xx")


GOOD = {"email_address": "a@example.gov.uk", "template_id": WELCOME_ID}


@pytest.mark.parametrize(
    ("case", "error", "status", "error_class"),
    [
        ("validation", NotifyValidationError, 400, "ValidationError"),
        ("template-missing", TemplateNotFoundError, 400, "BadRequestError"),
        ("missing-personalisation", MissingPersonalisationError, 400, "BadRequestError"),
        ("bad-reply-to", NotifyBadRequestError, 400, "BadRequestError"),
        ("team-only", RecipientNotAllowedError, 400, "BadRequestError"),
        ("no-token", NotifyAuthError, 401, "AuthError"),
        ("clock", ClockSkewError, 403, "AuthError"),
        ("wrong-secret", ApiKeyNotFoundError, 403, "AuthError"),
        ("revoked", ApiKeyRevokedError, 403, "AuthError"),
        ("sms", NotifyBadRequestError, 400, "BadRequestError"),
        ("notification-404", NotificationNotFoundError, 404, "NoResultFound"),
        ("template-404", TemplateNotFoundError, 404, "NoResultFound"),
        ("rate", RateLimitError, 429, "RateLimitError"),
        ("daily", DailyLimitError, 429, "TooManyRequestsError"),
        ("500", NotifyUnavailableError, 500, "InternalServerError"),
    ],
)
def test_each_notify_answer_maps_to_its_type(
    sandbox: Sandbox, case: str, error: type[NotifyError], status: int, error_class: str | None
) -> None:
    state = sandbox.state
    template = False
    if case == "validation":
        response = call(sandbox, body={"template_id": "x"})
    elif case == "template-missing":
        response = call(
            sandbox, body={**GOOD, "template_id": "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f"}
        )
    elif case == "missing-personalisation":
        response = call(sandbox, body=GOOD)
    elif case == "bad-reply-to":
        body = {**GOOD, "personalisation": {"name": "a", "framework": "b"}}
        response = call(sandbox, body={**body, "email_reply_to_id": WELCOME_ID})
    elif case == "team-only":
        team = sandbox.keys.team
        response = call(
            sandbox,
            body={**GOOD, "personalisation": {"name": 1, "framework": 2}},
            auth="Bearer "
            + jwt.encode(
                {"iss": team[-73:-37], "iat": int(time.time())}, team[-36:], algorithm="HS256"
            ),
        )
    elif case == "no-token":
        response = call(sandbox, body=GOOD, auth="")
    elif case == "clock":
        response = call(sandbox, body=GOOD, auth=f"Bearer {token(sandbox, iat=time.time() - 120)}")
    elif case == "wrong-secret":
        secret = "3d844edf-8d35-48ac-975b-e847b4f122b0"
        response = call(sandbox, body=GOOD, auth=f"Bearer {token(sandbox, secret=secret)}")
    elif case == "revoked":
        state.revoke_key("test")
        response = call(sandbox, body=GOOD)
    elif case == "sms":
        response = call(
            sandbox,
            path="/v2/notifications/sms",
            body={"phone_number": "07700900000", "template_id": WELCOME_ID},
        )
    elif case == "notification-404":
        response = call(sandbox, "GET", "/v2/notifications/0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f")
    elif case == "template-404":
        template = True
        response = call(sandbox, "GET", "/v2/template/0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f")
    elif case == "rate":
        state.set_limits(rate_limit=3)
        for _ in range(5):
            response = call(sandbox, body={})
    elif case == "daily":
        state.set_limits(daily_limit=0)
        live = sandbox.keys.live
        response = call(
            sandbox,
            body={**GOOD, "personalisation": {"name": 1, "framework": 2}},
            auth="Bearer "
            + jwt.encode(
                {"iss": live[-73:-37], "iat": int(time.time())}, live[-36:], algorithm="HS256"
            ),
        )
    else:
        state.set_faults(error_rate=1.0)
        response = call(sandbox, body=GOOD)
        state.clear_faults()
    assert response.status_code == status
    mapped = raised(response, template=template)
    assert type(mapped) is error
    assert mapped.status_code == status
    assert mapped.error_class == error_class
    assert isinstance(mapped, DMMailError)
    assert mapped.transient is (error in (RateLimitError, NotifyUnavailableError))


def test_no_answer_at_all_is_unavailable(mailer: Mailer, sandbox: Sandbox) -> None:
    try:
        requests.get("http://127.0.0.1:9/", timeout=0.5)
    except requests.RequestException as exc:
        mapped = map_error(HTTPError.create(exc))
    assert type(mapped) is NotifyUnavailableError
    assert mapped.status_code == 503
    assert "no answer" in str(mapped)


def test_a_body_that_is_not_json_is_a_protocol_error(sandbox: Sandbox) -> None:
    page = requests.get(sandbox.url + "/", timeout=5)  # the outbox page: 200, HTML
    assert page.status_code == 200
    mapped = map_error(InvalidResponse(page, message="No JSON response object could be decoded"))
    assert type(mapped) is NotifyProtocolError


def test_a_json_answer_without_an_id_is_a_protocol_error(
    mailer: Mailer, instrument: Instrument
) -> None:
    # DM_NOTIFY_BASE_URL pointing at some other JSON API: a typed error, not a KeyError.
    instrument.fail(
        "POST",
        r"^/v2/notifications/email$",
        status=201,
        body={"result": "ok"},
        content_type="application/json",
    )
    with pytest.raises(NotifyProtocolError, match="DM_NOTIFY_BASE_URL"):
        mailer.send("a@example.gov.uk", "welcome", {"name": "N", "framework": "F"})


def test_a_403_bad_request_is_forbidden() -> None:
    response = requests.Response()
    response.status_code = 403
    response._content = json.dumps(
        {
            "status_code": 403,
            "errors": [
                {"error": "BadRequestError", "message": "Cannot send letters with a team api key"}
            ],
        }
    ).encode()
    mapped = map_error(HTTPError(response))
    assert type(mapped) is NotifyForbiddenError


def test_values_are_scrubbed_from_notify_messages_whatever_their_case() -> None:
    response = requests.Response()
    response.status_code = 400
    response._content = json.dumps(
        {
            "status_code": 400,
            "errors": [{"error": "BadRequestError", "message": "No such person: ADA@EXAMPLE.COM"}],
        }
    ).encode()
    mapped = map_error(HTTPError(response), secrets=["ada@example.com"])
    assert "ADA@EXAMPLE.COM" not in str(mapped)
    assert "[redacted]" in str(mapped)
