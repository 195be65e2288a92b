"""Auth, error format and routing of the sandbox's Mailchimp API, through real HTTP."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests
from mailchimp_marketing.api_client import ApiClientError

from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.sandbox.mailchimp_helpers import MailchimpServer, make_client, problem, raw

PROBLEM_TYPE = "application/problem+json; charset=utf-8"
MISSING = ("API Key Missing", "Your request did not include an API key.")
INVALID = (
    "API Key Invalid",
    "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
)


def test_ping_with_the_official_client(client: Any) -> None:
    assert client.ping.get() == {"health_status": "Everything's Chimpy!"}


def test_the_key_looks_like_a_mailchimp_key(mc: MailchimpState) -> None:
    secret, _, dc = mc.api_key.partition("-")
    assert dc == "us5"
    assert len(secret) == 32
    int(secret, 16)


def test_any_basic_username_is_accepted(mc_server: MailchimpServer, mc: MailchimpState) -> None:
    for user in ("user", "anystring", ""):
        response = requests.get(f"{mc_server.url}/3.0/ping", auth=(user, mc.api_key), timeout=5)
        assert response.status_code == 200, user
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert response.headers["X-Request-Id"]


def test_bearer_token_with_the_official_client(
    mc_server: MailchimpServer, mc: MailchimpState
) -> None:
    token = mc.add_access_token()
    client = make_client(mc_server.url, "unused-us5")
    client.set_config({"access_token": token, "server": "us5"})
    client.api_client.host = f"{mc_server.url}/3.0"
    assert client.ping.get()["health_status"] == "Everything's Chimpy!"


def test_a_wrong_key_through_the_client_is_api_key_invalid(
    mc_server: MailchimpServer, mc: MailchimpState
) -> None:
    client = make_client(mc_server.url, "0" * 32 + "-us5")
    with pytest.raises(ApiClientError) as exc:
        client.ping.get()
    assert exc.value.status_code == 401
    body = problem(exc)
    assert (body["title"], body["detail"], body["status"]) == (*INVALID, 401)


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        pytest.param(None, MISSING, id="no-header"),
        pytest.param(_basic("user:"), MISSING, id="basic-empty-password"),
        pytest.param("Basic", MISSING, id="basic-no-credentials"),
        pytest.param("Token abc", MISSING, id="unknown-scheme"),
        pytest.param(_basic("user:not-the-key-us5"), INVALID, id="basic-wrong-key"),
        pytest.param("Basic %%%", INVALID, id="basic-not-base64"),
        pytest.param("Bearer not-a-token", INVALID, id="bearer-wrong-token"),
    ],
)
def test_auth_failures_are_exact_problems(
    mc_server: MailchimpServer,
    mc: MailchimpState,
    authorization: str | None,
    expected: tuple[str, str],
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = requests.get(f"{mc_server.url}/3.0/lists", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == PROBLEM_TYPE
    body = response.json()
    assert body == {
        "type": "https://mailchimp.com/developer/marketing/docs/errors/",
        "title": expected[0],
        "status": 401,
        "detail": expected[1],
        "instance": response.headers["X-Request-Id"],
    }
    assert 'rel="describedBy"' in response.headers["Link"]


def test_a_revoked_key_stops_working(mc_server: MailchimpServer, mc: MailchimpState) -> None:
    extra = mc.add_api_key()
    assert raw(mc_server, "GET", "/ping", extra).status_code == 200
    mc.revoke_api_key(extra)
    assert raw(mc_server, "GET", "/ping", extra).json()["title"] == "API Key Invalid"


def test_unknown_route_is_resource_not_found(
    mc_server: MailchimpServer, mc: MailchimpState
) -> None:
    response = raw(mc_server, "GET", "/no/such/thing", mc.api_key)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == PROBLEM_TYPE
    body = response.json()
    assert body["title"] == "Resource Not Found"
    assert body["detail"] == "The requested resource could not be found."
    assert body["instance"] == response.headers["X-Request-Id"]


def test_auth_comes_before_routing(mc_server: MailchimpServer, mc: MailchimpState) -> None:
    assert raw(mc_server, "GET", "/no/such/thing").json()["title"] == "API Key Missing"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        pytest.param("PUT", "/lists", "GET, POST", id="put-lists"),
        pytest.param("DELETE", "/ping", "GET", id="delete-ping"),
        pytest.param("GET", "/campaigns/abc/actions/send", "POST", id="get-send"),
        pytest.param("POST", "/lists/abc/members/x", "GET, PUT, PATCH, DELETE", id="post-member"),
    ],
)
def test_wrong_method_is_405_with_allow(
    mc_server: MailchimpServer, mc: MailchimpState, method: str, path: str, allow: str
) -> None:
    response = raw(mc_server, method, path, mc.api_key, data="{}")
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert response.json()["title"] == "Method Not Allowed"


def test_unparsable_json_is_a_parse_exception(
    mc_server: MailchimpServer, mc: MailchimpState
) -> None:
    response = raw(mc_server, "POST", "/lists", mc.api_key, data="{nope")
    assert response.status_code == 400
    assert response.json()["title"] == "JSON Parse Exception"


def test_body_less_client_call_sends_null_and_gets_an_empty_204(
    client: Any, mc: MailchimpState, list_id: str
) -> None:
    # delete_list sends no body; the client hands back the raw requests.Response for a 204.
    result = client.lists.delete_list(list_id)
    assert isinstance(result, requests.Response)
    assert result.status_code == 204
    assert result.content == b""
    assert mc.lists() == []


def test_a_null_body_where_an_object_is_required(
    mc_server: MailchimpServer, mc: MailchimpState
) -> None:
    response = raw(mc_server, "POST", "/lists", mc.api_key, data="null")
    assert response.status_code == 400
    body = response.json()
    assert body["title"] == "Invalid Resource"
    assert body["errors"] == [
        {"field": "", "message": "Schema describes object, NULL found instead"}
    ]


def test_problem_text_is_raw_json_in_the_client_error(client: Any) -> None:
    with pytest.raises(ApiClientError) as exc:
        client.lists.get_list("0000000000")
    assert isinstance(exc.value.text, str)
    assert json.loads(exc.value.text)["status"] == 404
