"""Rate limit (token bucket per key type) and daily limit, with Notify's 429 texts.

Notify takes a request's token first and refuses when fewer than one is left
(notifications-utils' ``tally-bucket-rate-limit``, notifications-api's
``token_bucket_rate_limit_exceeded``), so a bucket of N tokens lets N - 1 requests through.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
import requests
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail.sandbox import Sandbox
from tests.sandbox.notify_helpers import PLAIN_ID, TEAM_MEMBER, auth_header, raises_http, v2_errors


def _rate_error(label: str, limit: int) -> list[dict[str, str]]:
    return v2_errors(
        "RateLimitError",
        f"Exceeded rate limit for key type {label} of {limit} requests per 60 seconds",
    )


@pytest.mark.parametrize(
    ("key_type", "label"), [("test", "TEST"), ("team", "TEAM"), ("live", "LIVE")]
)
def test_rate_limit_per_key_type(
    sbx: Sandbox,
    make_notify_client: Callable[..., NotificationsAPIClient],
    key_type: str,
    label: str,
) -> None:
    # 1 per 60 s: a bucket of ceil(1/3)+1 = 2 tokens, so 1 request, and no token back for
    # a minute.
    sbx.state.set_limits(rate_limit=1)
    client = make_notify_client(getattr(sbx.keys, key_type))
    client.send_email_notification(TEAM_MEMBER, PLAIN_ID)
    error = raises_http(lambda: client.send_email_notification(TEAM_MEMBER, PLAIN_ID))
    assert (error.status_code, error.message) == (429, _rate_error(label, 1))
    # other key types have their own bucket; GETs are never limited
    other = sbx.keys.test if key_type != "test" else sbx.keys.live
    make_notify_client(other).send_email_notification(TEAM_MEMBER, PLAIN_ID)
    assert client.get_all_notifications()["notifications"]


def test_rate_limit_is_checked_before_the_body_is_parsed(
    sbx: Sandbox, http: requests.Session
) -> None:
    sbx.state.set_limits(rate_limit=1)  # a bucket of 2 (1 request), none back for a minute
    url = f"{sbx.url}/v2/notifications/email"
    statuses = [
        http.post(url, data="{broken", headers=auth_header(sbx.keys.test)).status_code
        for _ in range(3)
    ]
    assert statuses == [400, 429, 429]
    response = http.post(url, data="{broken", headers=auth_header(sbx.keys.test))
    assert response.json() == {"status_code": 429, "errors": _rate_error("TEST", 1)}
    # only POST /v2/notifications/* is limited
    preview = http.post(
        f"{sbx.url}/v2/template/{PLAIN_ID}/preview", headers=auth_header(sbx.keys.test)
    )
    assert preview.status_code == 200
    sms = http.post(f"{sbx.url}/v2/notifications/sms", json={}, headers=auth_header(sbx.keys.test))
    assert sms.status_code == 429


def test_daily_limit_team_and_live_share_a_counter_test_is_free(
    sbx: Sandbox, make_notify_client: Callable[..., NotificationsAPIClient]
) -> None:
    sbx.state.set_limits(daily_limit=2)
    live = make_notify_client(sbx.keys.live)
    team = make_notify_client(sbx.keys.team)
    test = make_notify_client(sbx.keys.test)
    live.send_email_notification("a@example.com", PLAIN_ID)
    team.send_email_notification(TEAM_MEMBER, PLAIN_ID)
    for client in (live, team):
        error = raises_http(partial(client.send_email_notification, TEAM_MEMBER, PLAIN_ID))
        assert (error.status_code, error.message) == (
            429,
            v2_errors("TooManyRequestsError", "Exceeded send limits (email: 2) for today"),
        )
    for _ in range(3):
        test.send_email_notification("a@example.com", PLAIN_ID)
    assert len(sbx.state.outbox()) == 5


def test_daily_limit_counts_only_stored_sends(
    sbx: Sandbox, make_notify_client: Callable[..., NotificationsAPIClient]
) -> None:
    sbx.state.set_limits(daily_limit=1)
    live = make_notify_client(sbx.keys.live)
    for _ in range(2):
        live.send_email_notification("simulate-delivered@notifications.service.gov.uk", PLAIN_ID)
        raises_http(lambda: live.send_email_notification("not an address", PLAIN_ID))
    live.send_email_notification("a@example.com", PLAIN_ID)
    error = raises_http(lambda: live.send_email_notification("a@example.com", PLAIN_ID))
    assert error.status_code == 429


def test_limits_through_the_control_endpoint(
    sbx: Sandbox, http: requests.Session, notify_client: NotificationsAPIClient
) -> None:
    # 1 per 60 s: a bucket of 2 (1 request), and no token back for a minute
    response = http.post(f"{sbx.url}/_sandbox/limits", json={"rate_limit": 1, "daily_limit": 9})
    assert response.json() == {"rate_limit": 1, "burst": 2, "daily_limit": 9}
    assert http.post(f"{sbx.url}/_sandbox/limits", json={"rate_limit": "x"}).status_code == 400
    assert http.post(f"{sbx.url}/_sandbox/limits", json={"other": 1}).status_code == 400
    notify_client.send_email_notification("a@example.com", PLAIN_ID)
    assert (
        raises_http(
            lambda: notify_client.send_email_notification("a@example.com", PLAIN_ID)
        ).status_code
        == 429
    )
    sbx.state.reset()
    notify_client.send_email_notification("a@example.com", PLAIN_ID)


def test_defaults_are_notifys() -> None:
    from flask_dmmail.ratelimit import TokenBucket
    from flask_dmmail.sandbox import SandboxState

    state = SandboxState()
    limits = state.notify.limits
    assert (limits.rate_limit, limits.daily_limit) == (3000, 250_000)
    # 3000 per minute: a bucket of 1000 tokens, refilled at 50 a second; the first
    # request of a burst finds 1000 and leaves 999 (counting 999 through would depend on
    # the machine's speed: the exact count is in test_notify_fidelity, on a fake clock)
    bucket = TokenBucket(3000)
    assert (bucket.capacity, bucket.refill_per_second) == (1000, 50)
    assert limits.bucket_size == 1000
    assert limits.take_rate_token("normal")


def test_the_bucket_size_can_be_set_apart_from_the_rate(
    sbx: Sandbox, make_notify_client: Callable[..., NotificationsAPIClient], http: requests.Session
) -> None:
    # 1 per 60 s would give Notify's bucket of ceil(1/3)+1 = 2 tokens; burst=4 holds 4,
    # so 3 requests go through. One token comes back a minute after the first send, so
    # however slow the machine, the fourth send finds too few.
    sbx.state.set_limits(rate_limit=1, burst=4)
    client = make_notify_client(sbx.keys.test)
    for _ in range(3):
        client.send_email_notification(TEAM_MEMBER, PLAIN_ID)
    error = raises_http(lambda: client.send_email_notification(TEAM_MEMBER, PLAIN_ID))
    assert (error.status_code, error.message) == (429, _rate_error("TEST", 1))
    answer = http.post(f"{sbx.url}/_sandbox/limits", json={"burst": 7}).json()
    assert answer["burst"] == 7 and answer["rate_limit"] == 1
    sbx.state.reset()
    assert http.get(f"{sbx.url}/_sandbox/state").json()["burst"] == 1000
