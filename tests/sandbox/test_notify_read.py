"""Reading: GET notification(s) with every filter and paging, templates, the control JSON."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail.sandbox import Sandbox
from tests.sandbox.notify_helpers import (
    ARCHIVED_ID,
    EMPTY_ID,
    FILE_ID,
    PLAIN_ID,
    SMS_ID,
    UNKNOWN_ID,
    WELCOME_ID,
    auth_header,
    raises_http,
    v2_errors,
)

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
NOTIFICATION_FIELDS = {
    "id", "reference", "email_address", "phone_number", "line_1", "line_2", "line_3",
    "line_4", "line_5", "line_6", "postcode", "type", "status", "template", "body", "subject",
    "created_at", "created_by_name", "sent_at", "completed_at", "scheduled_for", "postage",
    "one_click_unsubscribe_url", "is_cost_data_ready", "cost_in_pounds", "cost_details",
}  # fmt: skip
TEMPLATE_FIELDS = {
    "id", "type", "created_at", "updated_at", "created_by", "version", "body", "subject",
    "name", "personalisation", "postage", "letter_contact_block",
}  # fmt: skip


def _send(client: NotificationsAPIClient, n: int, **kwargs: Any) -> list[str]:
    return [
        client.send_email_notification("a@example.com", PLAIN_ID, **kwargs)["id"] for _ in range(n)
    ]


def test_get_notification_field_for_field(
    sbx: Sandbox, notify_client: NotificationsAPIClient
) -> None:
    sent = notify_client.send_email_notification(
        "someone@example.com",
        WELCOME_ID,
        {"name": "Ada", "day": "Friday", "date": "2 May", "vip": "no"},
        reference="r-1",
        one_click_unsubscribe_url="https://example.gov.uk/u",
    )
    got = notify_client.get_notification_by_id(sent["id"])
    assert set(got) == NOTIFICATION_FIELDS
    assert {k: got[k] for k in ("created_at", "sent_at", "completed_at")} == {
        "created_at": got["created_at"],
        "sent_at": got["sent_at"],
        "completed_at": got["completed_at"],
    }
    for field in ("created_at", "sent_at", "completed_at"):
        assert TIME.match(got[field]), field
    del got["created_at"], got["sent_at"], got["completed_at"]
    assert got == {
        "id": sent["id"],
        "reference": "r-1",
        "email_address": "someone@example.com",
        "phone_number": None,
        "line_1": None,
        "line_2": None,
        "line_3": None,
        "line_4": None,
        "line_5": None,
        "line_6": None,
        "postcode": None,
        "type": "email",
        "status": "delivered",
        "template": {
            "id": WELCOME_ID,
            "version": 1,
            "uri": f"{sbx.url}/v2/template/{WELCOME_ID}/version/1",
        },
        "body": "# Welcome Ada\n\nYour date is 2 May.",
        "subject": "Hello Ada – it’s Friday",
        "created_by_name": None,
        "scheduled_for": None,
        "postage": None,
        "one_click_unsubscribe_url": "https://example.gov.uk/u",
        "is_cost_data_ready": True,
        "cost_in_pounds": 0.0,
        "cost_details": {},
    }


def test_get_notification_is_not_scoped_by_key_type(
    sbx: Sandbox, make_notify_client: Callable[..., NotificationsAPIClient]
) -> None:
    sent = _send(make_notify_client(sbx.keys.live), 1)[0]
    assert make_notify_client(sbx.keys.test).get_notification_by_id(sent)["id"] == sent


@pytest.mark.parametrize(
    ("path", "status", "error_class", "message"),
    [
        ("/v2/notifications/not-a-uuid", 400, "ValidationError",
         "notification_id is not a valid UUID"),
        (f"/v2/notifications/{UNKNOWN_ID}", 404, "NoResultFound", "No result found"),
        ("/v2/template/not-a-uuid", 400, "ValidationError", "id is not a valid UUID"),
        (f"/v2/template/{UNKNOWN_ID}", 404, "NoResultFound", "No result found"),
        (f"/v2/template/{PLAIN_ID}/version/2", 404, "NoResultFound", "No result found"),
        ("/v2/templates?type=X", 400, "ValidationError",
         "type X is not one of [sms, email, letter]"),
        ("/v2/notifications?status=elephant", 400, "ValidationError",
         "status elephant is not one of [cancelled, created, sending, sent, delivered, pending, "
         "failed, technical-failure, temporary-failure, permanent-failure, pending-virus-check, "
         "validation-failed, virus-scan-failed, returned-letter, accepted, received]"),
        ("/v2/notifications?template_type=orange", 400, "ValidationError",
         "template_type orange is not one of [sms, email, letter]"),
        ("/v2/notifications?older_than=nope", 400, "ValidationError",
         "older_than is not a valid UUID"),
        ("/v2/notifications?include_jobs=yes", 400, "ValidationError",
         "include_jobs yes is not one of [true, True]"),
        ("/v2/notifications?foo=1", 400, "ValidationError",
         "Additional properties are not allowed (foo was unexpected)"),
    ],
    ids=[
        "bad-notification-id", "unknown-notification", "bad-template-id", "unknown-template",
        "unknown-version", "bad-template-type", "bad-status", "bad-template-type-filter",
        "bad-older-than", "bad-include-jobs", "unknown-filter",
    ],
)  # fmt: skip
def test_read_errors(
    notify_client: NotificationsAPIClient, path: str, status: int, error_class: str, message: str
) -> None:
    error = raises_http(lambda: notify_client.get(path))
    assert (error.status_code, error.message) == (status, v2_errors(error_class, message))


def test_list_is_scoped_to_the_callers_key_type(
    sbx: Sandbox, make_notify_client: Callable[..., NotificationsAPIClient]
) -> None:
    test_ids = _send(make_notify_client(sbx.keys.test), 2)
    live_ids = _send(make_notify_client(sbx.keys.live), 3)
    for key, ids in ((sbx.keys.test, test_ids), (sbx.keys.live, live_ids), (sbx.keys.team, [])):
        listed = make_notify_client(key).get_all_notifications()["notifications"]
        assert [n["id"] for n in listed] == list(reversed(ids)), key[:10]
    assert {n.id for n in sbx.state.outbox()} == set(test_ids) | set(live_ids)


def test_team_key_sends_to_team_member_are_listed_to_team_only(
    sbx: Sandbox, make_notify_client: Callable[..., NotificationsAPIClient]
) -> None:
    team = make_notify_client(sbx.keys.team)
    sent = team.send_email_notification("member@example.gov.uk", PLAIN_ID)["id"]
    assert [n["id"] for n in team.get_all_notifications()["notifications"]] == [sent]
    assert make_notify_client(sbx.keys.live).get_all_notifications()["notifications"] == []


def test_list_filters(sbx: Sandbox, notify_client: NotificationsAPIClient) -> None:
    a = notify_client.send_email_notification("a@example.com", PLAIN_ID, reference="A")["id"]
    b = notify_client.send_email_notification(
        "temp-fail@simulator.notify", PLAIN_ID, reference="B"
    )["id"]
    c = notify_client.send_email_notification(
        "perm-fail@simulator.notify", PLAIN_ID, reference="A"
    )["id"]

    def ids(**filters: Any) -> list[str]:
        return [n["id"] for n in notify_client.get_all_notifications(**filters)["notifications"]]

    assert ids(reference="A") == [c, a]
    assert ids(status="delivered") == [a]
    assert ids(status=["delivered", "temporary-failure"]) == [b, a]
    assert ids(status="failed") == [c, b]
    assert ids(status="sending") == []
    assert ids(template_type="email") == [c, b, a]
    assert ids(template_type="sms") == []
    assert ids(older_than=c) == [b, a]
    assert ids(older_than=a) == []
    assert ids(older_than=UNKNOWN_ID) == []
    assert ids(include_jobs="true") == [c, b, a]
    assert ids(reference="A", status="failed") == [c]


def test_links_current_and_next_as_notify_builds_them(
    sbx: Sandbox, notify_client: NotificationsAPIClient
) -> None:
    first, second = _send(notify_client, 2)
    page = notify_client.get_all_notifications(status=["delivered", "sending"], reference="x")
    assert page == {
        "notifications": [],
        "links": {
            "current": f"{sbx.url}/v2/notifications?status=delivered&status=sending&reference=x"
        },
    }
    page = notify_client.get_all_notifications(status="delivered")
    links = page["links"]
    assert links["current"] == f"{sbx.url}/v2/notifications?status=delivered"
    assert urlsplit(links["next"]).path == "/v2/notifications"
    assert parse_qs(urlsplit(links["next"]).query) == {
        "status": ["delivered"],
        "older_than": [first],
    }
    assert [n["id"] for n in page["notifications"]] == [second, first]


def test_pages_of_250_and_the_iterator_walks_them_all(
    sbx: Sandbox, notify_client: NotificationsAPIClient
) -> None:
    sbx.state.set_limits(rate_limit=100_000)
    ids = _send(notify_client, 260)
    first = notify_client.get_all_notifications()
    assert len(first["notifications"]) == 250
    assert first["notifications"][0]["id"] == ids[-1]
    assert first["links"]["next"].endswith(f"older_than={ids[10]}")
    second = notify_client.get_all_notifications(older_than=ids[10])
    assert [n["id"] for n in second["notifications"]] == list(reversed(ids[:10]))
    walked = [n["id"] for n in notify_client.get_all_notifications_iterator()]
    assert walked == list(reversed(ids))


# ------------------------------------------------------------------ templates


def test_get_template_and_versions(sbx: Sandbox, notify_client: NotificationsAPIClient) -> None:
    template = notify_client.get_template(WELCOME_ID)
    assert set(template) == TEMPLATE_FIELDS
    assert TIME.match(template["created_at"])
    assert {k: v for k, v in template.items() if k != "created_at"} == {
        "id": WELCOME_ID,
        "type": "email",
        "updated_at": None,
        "created_by": "sandbox-user@example.gov.uk",
        "version": 1,
        "body": "# Welcome ((name))\n\nYour date is ((date)).\n\n((vip??You are a VIP.))",
        "subject": "Hello ((name)) - it's ((day))",
        "name": "Welcome",
        "personalisation": {
            "name": {"required": True},
            "day": {"required": True},
            "date": {"required": True},
            "vip": {"required": True},
        },
        "postage": None,
        "letter_contact_block": None,
    }
    sbx.state.seed(
        {"templates": [{"id": WELCOME_ID, "name": "Welcome", "subject": "New", "body": "New"}]}
    )
    latest = notify_client.get_template(WELCOME_ID)
    assert (latest["version"], latest["subject"]) == (2, "New")
    assert TIME.match(latest["updated_at"])
    assert latest["personalisation"] == {}
    old = notify_client.get_template_version(WELCOME_ID, 1)
    assert (old["version"], old["subject"], old["updated_at"]) == (
        1,
        "Hello ((name)) - it's ((day))",
        None,
    )
    sent = notify_client.send_email_notification("a@example.com", WELCOME_ID)
    assert sent["template"]["version"] == 2


def test_archived_templates_are_returned_by_id_but_not_listed(
    notify_client: NotificationsAPIClient,
) -> None:
    assert notify_client.get_template(ARCHIVED_ID)["name"] == "Old"
    names = [t["name"] for t in notify_client.get_all_templates()["templates"]]
    assert names == ["Empty", "File", "Plain", "Text", "Welcome"]
    email_ids = [t["id"] for t in notify_client.get_all_templates("email")["templates"]]
    assert email_ids == [EMPTY_ID, FILE_ID, PLAIN_ID, WELCOME_ID]
    sms = notify_client.get_all_templates("sms")["templates"]
    assert [(t["id"], t["subject"]) for t in sms] == [(SMS_ID, None)]


def test_preview(notify_client: NotificationsAPIClient) -> None:
    preview = notify_client.post_template_preview(
        WELCOME_ID, {"name": "Ada", "day": "Monday", "date": "1 May", "vip": "no"}
    )
    assert preview == {
        "id": WELCOME_ID,
        "type": "email",
        "version": 1,
        "body": "# Welcome Ada\n\nYour date is 1 May.",  # stripped, as Notify's
        "subject": "Hello Ada – it’s Monday",
        "html": preview["html"],
        "postage": None,
    }
    assert "<h2" in preview["html"] and "Welcome Ada" in preview["html"]


@pytest.mark.parametrize(
    ("template_id", "personalisation", "status", "error_class", "message"),
    [
        (WELCOME_ID, None, 400, "ValidationError", "personalisation None is not of type object"),
        (WELCOME_ID, {"name": "x"}, 400, "BadRequestError",
         "Missing personalisation: day, date, vip"),
        (UNKNOWN_ID, {}, 404, "NoResultFound", "No result found"),
        ("nope", {}, 400, "ValidationError", "id is not a valid UUID"),
    ],
    ids=["personalisation-none", "missing", "unknown", "bad-id"],
)  # fmt: skip
def test_preview_errors(
    notify_client: NotificationsAPIClient,
    template_id: str,
    personalisation: Any,
    status: int,
    error_class: str,
    message: str,
) -> None:
    error = raises_http(lambda: notify_client.post_template_preview(template_id, personalisation))
    assert (error.status_code, error.message) == (status, v2_errors(error_class, message))


def test_preview_accepts_an_empty_body(sbx: Sandbox, http: requests.Session) -> None:
    response = http.post(
        f"{sbx.url}/v2/template/{PLAIN_ID}/preview", headers=auth_header(sbx.keys.test)
    )
    assert response.status_code == 200
    assert response.json()["body"] == "Plain body"


def test_received_text_messages_is_empty(notify_client: NotificationsAPIClient) -> None:
    assert list(notify_client.get_received_texts_iterator()) == []


# ------------------------------------------------------------------ control JSON


def test_control_outbox_state_seed_and_reset(
    sbx: Sandbox, make_notify_client: Callable[..., NotificationsAPIClient], http: requests.Session
) -> None:
    test_id = _send(make_notify_client(sbx.keys.test), 1, reference="t")[0]
    live_id = _send(make_notify_client(sbx.keys.live), 1, reference="l")[0]
    outbox = http.get(f"{sbx.url}/_sandbox/outbox").json()["notifications"]
    assert [(n["id"], n["key_type"], n["status"]) for n in outbox] == [
        (live_id, "normal", "delivered"),
        (test_id, "test", "delivered"),
    ]
    assert outbox[0]["email_address"] == "a@example.com"
    assert outbox[0]["template_name"] == "Plain"
    assert http.get(f"{sbx.url}/_sandbox/outbox/{test_id}").json()["reference"] == "t"
    assert http.get(f"{sbx.url}/_sandbox/outbox/{UNKNOWN_ID}").status_code == 404

    state = http.get(f"{sbx.url}/_sandbox/state").json()
    assert state["service_id"] == sbx.state.service_id
    assert state["keys"] == {"test": sbx.keys.test, "team": sbx.keys.team, "live": sbx.keys.live}

    new_id = str(uuid.uuid4())
    seeded = http.post(
        f"{sbx.url}/_sandbox/seed",
        json={"templates": [{"id": new_id, "name": "New", "subject": "S", "body": "B"}]},
    )
    assert (seeded.status_code, seeded.json()) == (201, {"templates": [new_id]})
    assert make_notify_client().get_template(new_id)["name"] == "New"
    bad = http.post(f"{sbx.url}/_sandbox/seed", json={"templates": [{"id": "x", "body": "b"}]})
    assert bad.status_code == 400
    assert http.post(f"{sbx.url}/_sandbox/seed", json={"nonsense": []}).status_code == 400

    assert http.post(f"{sbx.url}/_sandbox/reset", json={}).json() == {"result": "reset"}
    assert http.get(f"{sbx.url}/_sandbox/outbox").json() == {"notifications": []}
    error = raises_http(lambda: make_notify_client().get_template(new_id))
    assert error.status_code == 404
    assert make_notify_client().get_template(PLAIN_ID)["name"] == "Plain"


def test_archive_through_control_endpoint(
    sbx: Sandbox, notify_client: NotificationsAPIClient, http: requests.Session
) -> None:
    http.post(f"{sbx.url}/_sandbox/templates/{PLAIN_ID}/archive", json={"archived": True})
    error = raises_http(lambda: notify_client.send_email_notification("a@example.com", PLAIN_ID))
    assert error.message == v2_errors("BadRequestError", "Template has been deleted")
    assert (
        http.post(f"{sbx.url}/_sandbox/templates/{UNKNOWN_ID}/archive", json={}).status_code == 404
    )
