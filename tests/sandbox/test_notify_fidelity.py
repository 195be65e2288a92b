"""Issue 10, Notify half: six places where the sandbox answered otherwise than Notify.

Each test names its source: the project's ``notify-api.md`` reference and Notify's public
code (alphagov/notifications-api, notifications-utils, document-download-api). Every test
talks HTTP to a running sandbox, through the official ``NotificationsAPIClient`` where it
can send the shape and raw ``requests`` where it cannot (an empty body, a JSON ``null``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail.ratelimit import TokenBucket
from flask_dmmail.sandbox import Sandbox
from tests.sandbox.notify_helpers import (
    FILE_ID,
    PLAIN_ID,
    TEAM_MEMBER,
    WELCOME_ID,
    auth_header,
    raises_http,
    v2_errors,
)

# ----------------------------------------------------------- 1. the token bucket
#
# notifications-utils' ``tally-bucket-rate-limit`` Lua script (RedisClient) adds whole
# tokens, caps at bucket_max, then takes one token *first* (never below bucket_min = 0)
# and returns what is left; notifications-api's ``token_bucket_rate_limit_exceeded``
# refuses when ``remaining < 1``. So a full bucket of 1000 lets 999 through, and a refused
# request still spends a token when it finds one.


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_of_1000_lets_999_through() -> None:
    clock = FakeClock()
    bucket = TokenBucket(3000, clock=clock)  # Notify's default: 1000 tokens, 50 a second
    taken = [bucket.try_take() for _ in range(1000)]
    assert taken == [True] * 999 + [False]


def test_a_refused_request_spends_the_token_it_finds() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, size=3, clock=clock)  # one token back a second
    assert [bucket.try_take() for _ in range(3)] == [True, True, False]
    # A client that retries each second takes every token as it comes back, and is refused.
    for _ in range(5):
        clock.now += 1.0
        assert not bucket.try_take()
    # Two tokens back before the next request: one is spent, one is left over, it passes.
    clock.now += 2.0
    assert bucket.try_take()
    assert not bucket.try_take()


def test_part_of_a_token_is_not_lost_at_the_bottom_of_the_bucket() -> None:
    # Notify moves ``last_replenished`` on only by the whole tokens it added, so half a
    # token's time before a refused request still counts towards the next token.
    clock = FakeClock()
    bucket = TokenBucket(60, size=2, clock=clock)
    assert [bucket.try_take(), bucket.try_take()] == [True, False]
    clock.now += 0.5
    assert not bucket.try_take()  # nothing whole to add, nothing to spend
    clock.now += 1.5  # two whole tokens since the bucket emptied
    assert bucket.try_take()


def test_the_sandbox_refuses_the_last_token_of_the_bucket(
    sbx: Sandbox, make_notify_client: Callable[..., NotificationsAPIClient]
) -> None:
    # 1 a minute: no token comes back during the test, however slow the machine.
    sbx.state.set_limits(rate_limit=1, burst=3)
    client = make_notify_client(sbx.keys.test)
    for _ in range(2):
        client.send_email_notification(TEAM_MEMBER, PLAIN_ID)
    error = raises_http(lambda: client.send_email_notification(TEAM_MEMBER, PLAIN_ID))
    assert (error.status_code, error.message) == (
        429,
        v2_errors(
            "RateLimitError", "Exceeded rate limit for key type TEST of 1 requests per 60 seconds"
        ),
    )
    assert len(sbx.state.outbox()) == 2


def test_a_bucket_of_one_token_is_refused(sbx: Sandbox, http: requests.Session) -> None:
    # It would let nothing through; Notify's smallest bucket (rate 1) holds 2.
    with pytest.raises(ValueError, match="burst must be at least 2"):
        sbx.state.set_limits(burst=1)
    answer = http.post(f"{sbx.url}/_sandbox/limits", json={"burst": 1})
    assert answer.status_code == 400
    assert "burst must be at least 2" in answer.json()["error"]


# ----------------------------------------------------------- 2. empty and falsy bodies
#
# notifications-api ``app/v2/utils.get_valid_json``: ``request.get_json(force=True)``,
# any BadRequest (an empty body included) is 400 BadRequestError "Invalid JSON supplied in
# POST data", and the result is ``request_json or {}``: a JSON null, [], 0, false or "" is
# an empty object. Preview (``post_template_preview``) takes an empty body as ``{}``.

REQUIRED = ["email_address is a required property", "template_id is a required property"]


@pytest.mark.parametrize("path", ["email", "sms", "letter"])
def test_an_empty_body_is_invalid_json(sbx: Sandbox, http: requests.Session, path: str) -> None:
    response = http.post(
        f"{sbx.url}/v2/notifications/{path}", data=b"", headers=auth_header(sbx.keys.test)
    )
    assert (response.status_code, response.json()) == (
        400,
        {
            "status_code": 400,
            "errors": v2_errors("BadRequestError", "Invalid JSON supplied in POST data"),
        },
    )


@pytest.mark.parametrize("data", ["null", "[]", "0", "false", '""', "{}"])
def test_a_falsy_json_body_is_an_empty_object(
    sbx: Sandbox, http: requests.Session, data: str
) -> None:
    response = http.post(
        f"{sbx.url}/v2/notifications/email", data=data, headers=auth_header(sbx.keys.test)
    )
    assert (response.status_code, response.json()) == (
        400,
        {"status_code": 400, "errors": v2_errors("ValidationError", *REQUIRED)},
    )


def test_a_truthy_body_that_is_not_an_object_is_still_refused(
    notify_client: NotificationsAPIClient,
) -> None:
    error = raises_http(lambda: notify_client.post("/v2/notifications/email", [1]))
    assert error.message == v2_errors("ValidationError", "[1] is not of type object")


@pytest.mark.parametrize("data", ["", "null", "[]"])
def test_preview_takes_an_empty_or_falsy_body_as_no_personalisation(
    sbx: Sandbox, http: requests.Session, data: str
) -> None:
    response = http.post(
        f"{sbx.url}/v2/template/{PLAIN_ID}/preview", data=data, headers=auth_header(sbx.keys.test)
    )
    assert response.status_code == 200
    assert response.json()["body"] == "Plain body"


# ----------------------------------------------------------- 3. files
#
# document-download-api: ``MAX_DECODED_FILE_SIZE = (2 * 1024 * 1024) + 1024`` and
# ``b64decode(data["document"])`` (not strict: characters outside the alphabet are
# dropped, bad padding is "Document is not base64 encoded"); notifications-api passes the
# base64 through untouched and turns a 400/413 into a 400 BadRequestError with its text.
# (The client's ``prepare_upload`` refuses more than 2 MiB itself, so these bodies are
# built by hand and posted through the client.)

LIMIT = 2 * 1024 * 1024 + 1024


def _send_file(client: NotificationsAPIClient, file: str) -> Any:
    return client.post(
        "/v2/notifications/email",
        {
            "email_address": TEAM_MEMBER,
            "template_id": FILE_ID,
            "personalisation": {"doc": {"file": file, "filename": "data.txt"}},
        },
    )


def test_a_file_of_2_mib_and_1024_bytes_is_accepted(
    sbx: Sandbox, notify_client: NotificationsAPIClient
) -> None:
    _send_file(notify_client, base64.b64encode(b"a" * LIMIT).decode())
    (sent,) = sbx.state.outbox()
    assert sent.files[0]["size_bytes"] == LIMIT
    error = raises_http(
        lambda: _send_file(notify_client, base64.b64encode(b"a" * (LIMIT + 1)).decode())
    )
    assert (error.status_code, error.message) == (
        400,
        v2_errors("BadRequestError", "Uploaded file exceeds file size limit"),
    )


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda raw: base64.encodebytes(raw).decode(), id="mime-line-breaks"),
        pytest.param(lambda raw: "!" + base64.b64encode(raw).decode(), id="stray-character"),
        pytest.param(lambda raw: " ".join(base64.b64encode(raw).decode()), id="spaces-everywhere"),
    ],
)
def test_base64_is_decoded_as_notify_decodes_it(
    sbx: Sandbox, notify_client: NotificationsAPIClient, encode: Callable[[bytes], str]
) -> None:
    raw = b"one,two\n" * 40
    _send_file(notify_client, encode(raw))
    (sent,) = sbx.state.outbox()
    assert sent.files[0]["size_bytes"] == len(raw)


@pytest.mark.parametrize("file", ["abc", "abcde===", "é"])
def test_base64_that_cannot_be_decoded_is_refused(
    notify_client: NotificationsAPIClient, file: str
) -> None:
    error = raises_http(lambda: _send_file(notify_client, file))
    assert error.message == v2_errors("BadRequestError", "Document is not base64 encoded")


# ----------------------------------------------------------- 4. template version 0
#
# notifications-api ``get_template_by_id``: ``if version: _data["version"] = version``, so
# /version/0 asks for no version in particular and answers the current one.


def test_template_version_0_is_the_current_version(
    sbx: Sandbox, notify_client: NotificationsAPIClient
) -> None:
    sbx.state.add_template(id=PLAIN_ID, name="Plain", subject="Newer", body="Newer body")
    current = notify_client.get_template_version(PLAIN_ID, 0)
    assert current == notify_client.get_template(PLAIN_ID)
    assert (current["version"], current["subject"]) == (2, "Newer")
    assert notify_client.get_template_version(PLAIN_ID, 1)["subject"] == "Plain subject"


# ----------------------------------------------------------- 5. preview HTML and body
#
# notifications-utils ``NotifyEmailMarkdownRenderer``: inset text is a ``<blockquote>``
# inside a ``<div style="Margin: 0 0 20px 0;">`` wrapper; the list item and blockquote
# styles join two declarations without a space (``19px;line-height``, ``#B1B4B6;padding``),
# as its tests expect byte for byte. The preview's ``body`` is the template's
# ``content_with_placeholders_filled_in``, which is ``.strip()``-ped.

P = '<p style="Margin: 0 0 20px 0; font-size: 19px; line-height: 25px; color: #0B0C0C;">'
LI = (
    '<li style="Margin: 5px 0 5px; padding: 0 0 0 5px; font-size: 19px;'
    'line-height: 25px; color: #0B0C0C;">'
)


@pytest.mark.parametrize(
    ("body", "html"),
    [
        pytest.param(
            "^ inset text",
            '<div style="Margin: 0 0 20px 0;"><blockquote style="Margin: 0; border-left: 10px '
            'solid #B1B4B6;padding: 15px 0 0.1px 15px; font-size: 19px; line-height: 25px;">'
            f"{P}inset text</p></blockquote></div>",
            id="inset-text",
        ),
        pytest.param(
            "1. one\n2. two",
            '<table role="presentation" style="padding: 0 0 20px 0;"><tr><td style="font-family: '
            'Helvetica, Arial, sans-serif;"><ol style="Margin: 0 0 0 20px; padding: 0; '
            f'list-style-type: decimal;">{LI}one</li>{LI}two</li></ol></td></tr></table>',
            id="ordered-list",
        ),
        pytest.param(
            "* one",
            '<table role="presentation" style="padding: 0 0 20px 0;"><tr><td style="font-family: '
            'Helvetica, Arial, sans-serif;"><ul style="Margin: 0 0 0 20px; padding: 0; '
            f'list-style-type: disc;">{LI}one</li></ul></td></tr></table>',
            id="unordered-list",
        ),
    ],
)
def test_preview_html_is_notifys(
    sbx: Sandbox, notify_client: NotificationsAPIClient, body: str, html: str
) -> None:
    template = sbx.state.add_template(name="Markdown", subject="S", body=body)
    assert notify_client.post_template_preview(template.id, {})["html"] == html


def test_preview_body_is_stripped(sbx: Sandbox, notify_client: NotificationsAPIClient) -> None:
    template = sbx.state.add_template(name="Spaced", subject="S", body="Hello ((name))\n\n  \n")
    preview = notify_client.post_template_preview(template.id, {"name": "Ada"})
    assert preview["body"] == "Hello Ada"
    assert preview["html"] == f"{P}Hello Ada</p>"


# ----------------------------------------------------------- 6. JSON bodies
#
# Notify answers through Flask's ``jsonify`` (with ``sort_keys`` on, compact outside
# debug): keys sorted at every level and a trailing newline, for successes and for every
# error envelope. Mailchimp's side keeps its own field order.


def _is_notifys_json(response: requests.Response) -> bool:
    body = response.json()
    expected = json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n"
    return response.headers["Content-Type"] == "application/json" and response.text == expected


def test_every_notify_answer_is_sorted_json_with_a_newline(
    sbx: Sandbox, http: requests.Session, notify_client: NotificationsAPIClient
) -> None:
    headers = auth_header(sbx.keys.test)
    v2 = f"{sbx.url}/v2"
    sent = http.post(
        f"{v2}/notifications/email",
        json={"email_address": TEAM_MEMBER, "template_id": WELCOME_ID, "personalisation": {
            "name": "Ada", "day": "Monday", "date": "1 May", "vip": "yes"}},
        headers=headers,
    )  # fmt: skip
    assert sent.status_code == 201
    notification_id = sent.json()["id"]
    answers = [
        sent,
        http.get(f"{v2}/notifications/{notification_id}", headers=headers),
        http.get(f"{v2}/notifications", headers=headers),
        http.get(f"{v2}/template/{WELCOME_ID}", headers=headers),
        http.get(f"{v2}/templates", headers=headers),
        http.post(f"{v2}/template/{PLAIN_ID}/preview", headers=headers),
        http.post(f"{v2}/notifications/email", json={"foo": 1}, headers=headers),  # 400
        http.get(f"{v2}/notifications/{PLAIN_ID}", headers=headers),  # 404 NoResultFound
        http.get(f"{v2}/notifications"),  # 401
        http.get(f"{sbx.url}/no/such/route"),  # 404 envelope
        http.delete(f"{v2}/templates", headers=headers),  # 405
    ]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [201, 200, 200, 200, 200, 200, 400, 404, 401, 404, 405]
    assert [answer.url for answer in answers if not _is_notifys_json(answer)] == []


def test_rate_limit_and_injected_errors_are_sorted_json_too(
    sbx: Sandbox, http: requests.Session
) -> None:
    sbx.state.set_limits(rate_limit=1, burst=2)
    url = f"{sbx.url}/v2/notifications/email"
    for _ in range(2):
        http.post(url, json={}, headers=auth_header(sbx.keys.test))
    limited = http.post(url, json={}, headers=auth_header(sbx.keys.test))
    assert limited.status_code == 429 and _is_notifys_json(limited)
    sbx.state.set_faults(error_rate=1.0)
    injected = http.get(f"{sbx.url}/v2/templates", headers=auth_header(sbx.keys.test))
    assert injected.status_code == 500 and _is_notifys_json(injected)
