"""Notify's auth on the sandbox: every AuthError in Notify's check order, and revoked keys."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail.sandbox import Sandbox
from tests.sandbox.notify_helpers import (
    auth_header,
    key_parts,
    raises_http,
    v2_errors,
)

GENERAL = (
    "Invalid token: make sure your API token matches the example at "
    "https://docs.notifications.service.gov.uk/rest-api.html#authorisation-header"
)
CLOCK = "Error: Your system clock must be accurate to within 30 seconds"


def _header_cases() -> list[Any]:
    """(id, header builder(keys), status, message)."""

    def bearer(**kwargs: Any) -> Callable[[Sandbox], dict[str, str]]:
        return lambda sb: auth_header(sb.keys.live, **kwargs)

    now = int(time.time())
    return [
        pytest.param(lambda sb: {}, 401, "Unauthorized: authentication token must be provided",
                     id="no-header"),
        pytest.param(lambda sb: {"Authorization": ""}, 401,
                     "Unauthorized: authentication token must be provided", id="empty-header"),
        pytest.param(lambda sb: {"Authorization": "Basic abc"}, 401,
                     "Unauthorized: authentication bearer scheme must be used", id="basic-scheme"),
        pytest.param(lambda sb: {"Authorization": "Bearer not-a-jwt"}, 403, GENERAL,
                     id="undecodable"),
        pytest.param(lambda sb: {"Authorization": "bearer not-a-jwt"}, 403, GENERAL,
                     id="lowercase-bearer-accepted"),
        pytest.param(bearer(claims={"iss": None}), 403, "Invalid token: iss field not provided",
                     id="no-iss"),
        pytest.param(bearer(claims={"iss": "not-a-uuid"}), 403,
                     "Invalid token: service id is not the right data type", id="iss-not-uuid"),
        pytest.param(bearer(claims={"iss": str(uuid.uuid4())}), 403,
                     "Invalid token: service not found", id="unknown-service"),
        pytest.param(bearer(secret=str(uuid.uuid4())), 403, "Invalid token: API key not found",
                     id="wrong-secret"),
        pytest.param(bearer(claims={"iat": None}), 403, "Invalid token: API key not found",
                     id="no-iat"),
        pytest.param(bearer(claims={"iat": now - 3600}), 403, CLOCK, id="iat-an-hour-ago"),
        pytest.param(bearer(claims={"iat": now + 3600}), 403, CLOCK, id="iat-an-hour-ahead"),
        pytest.param(bearer(claims={"iat": "soon"}), 403, CLOCK, id="iat-not-a-number"),
        pytest.param(bearer(algorithm="HS512"), 403, "Invalid token: algorithm used is not HS256",
                     id="hs512"),
        pytest.param(bearer(claims={"exp": now - 10}), 403, GENERAL, id="expired-exp"),
        pytest.param(bearer(claims={"aud": "someone"}), 403, GENERAL, id="aud-claim"),
    ]  # fmt: skip


@pytest.mark.parametrize(("make_header", "status", "message"), _header_cases())
def test_auth_errors_in_notify_wording(
    sbx: Sandbox,
    http: requests.Session,
    make_header: Callable[[Sandbox], dict[str, str]],
    status: int,
    message: str,
) -> None:
    response = http.get(f"{sbx.url}/v2/notifications", headers=make_header(sbx))
    assert response.status_code == status
    assert response.json() == {"status_code": status, "errors": v2_errors("AuthError", message)}


@pytest.mark.parametrize("skew", [-25, 25])
def test_clock_within_30_seconds_is_accepted(
    sbx: Sandbox, http: requests.Session, skew: int
) -> None:
    headers = auth_header(sbx.keys.test, claims={"iat": int(time.time()) + skew})
    assert http.get(f"{sbx.url}/v2/notifications", headers=headers).status_code == 200


def test_auth_runs_before_validation_and_limits(sbx: Sandbox, http: requests.Session) -> None:
    sbx.state.set_limits(rate_limit=1)
    for _ in range(3):
        response = http.post(f"{sbx.url}/v2/notifications/email", data="not json")
        assert response.status_code == 401


@pytest.mark.parametrize("key_type", ["test", "team", "live"])
def test_revoked_key_is_refused_with_revoked_message(
    sbx: Sandbox, make_notify_client: Callable[..., NotificationsAPIClient], key_type: str
) -> None:
    key = getattr(sbx.keys, key_type)
    client = make_notify_client(key)
    assert client.get_all_notifications()["notifications"] == []
    sbx.state.revoke_key(key_type)
    error = raises_http(client.get_all_notifications)
    assert error.status_code == 403
    assert error.message == v2_errors("AuthError", "Invalid token: API key revoked")
    other = "team" if key_type != "team" else "test"
    assert (
        make_notify_client(getattr(sbx.keys, other)).get_all_notifications()["notifications"] == []
    )


def test_revoke_through_control_endpoint(
    sbx: Sandbox, http: requests.Session, notify_client: NotificationsAPIClient
) -> None:
    response = http.post(f"{sbx.url}/_sandbox/keys/test/revoke", json={})
    assert response.json() == {"key_type": "test", "revoked": True}
    assert raises_http(notify_client.get_all_notifications).message == v2_errors(
        "AuthError", "Invalid token: API key revoked"
    )
    http.post(f"{sbx.url}/_sandbox/keys/test/restore", json={})
    assert notify_client.get_all_notifications()["notifications"] == []


def test_client_with_a_key_of_another_secret_gets_key_not_found(
    sbx: Sandbox, make_notify_client: Callable[..., NotificationsAPIClient]
) -> None:
    service_id, _ = key_parts(sbx.keys.live)
    error = raises_http(make_notify_client(f"mine-{service_id}-{uuid.uuid4()}").get_all_templates)
    assert error.status_code == 403
    assert error.message == v2_errors("AuthError", "Invalid token: API key not found")


def test_client_of_another_service_gets_service_not_found(
    sbx: Sandbox, make_notify_client: Callable[..., NotificationsAPIClient]
) -> None:
    error = raises_http(make_notify_client(f"mine-{uuid.uuid4()}-{uuid.uuid4()}").get_all_templates)
    assert (error.status_code, error.message) == (
        403,
        v2_errors("AuthError", "Invalid token: service not found"),
    )


def test_every_key_type_authenticates(
    sbx: Sandbox, make_notify_client: Callable[..., NotificationsAPIClient]
) -> None:
    for key in (sbx.keys.test, sbx.keys.team, sbx.keys.live):
        assert "templates" in make_notify_client(key).get_all_templates()


def test_unknown_route_skips_auth_and_uses_the_generic_404(
    sbx: Sandbox, http: requests.Session, notify_client: NotificationsAPIClient
) -> None:
    response = http.get(f"{sbx.url}/v2/nothing-here")
    assert response.status_code == 404
    assert response.json() == {
        "result": "error",
        "message": "The requested URL was not found on the server. If you entered the URL "
        "manually please check your spelling and try again.",
    }
    error = raises_http(lambda: notify_client.get("/v2/nothing-here"))
    assert error.status_code == 404
    assert isinstance(error.message, str)


def test_wrong_method_is_a_405_in_the_generic_envelope(
    sbx: Sandbox, http: requests.Session
) -> None:
    response = http.delete(f"{sbx.url}/v2/notifications", headers=auth_header(sbx.keys.test))
    assert response.status_code == 405
    assert response.json()["result"] == "error"
    assert isinstance(response.json()["message"], str)


def test_fixed_service_id_gives_the_same_keys() -> None:
    from flask_dmmail.sandbox import SandboxState

    service_id = "0b6c7a52-8a1e-4c0f-9e37-2f1d5c4b3a29"
    first = SandboxState(service_id=service_id)
    second = SandboxState(service_id=service_id)
    assert first.keys == second.keys
    assert key_parts(first.keys.live)[0] == service_id
    assert len({first.keys.test, first.keys.team, first.keys.live}) == 3
    assert SandboxState().keys != SandboxState().keys
