"""POST /v2/notifications/email through the official client: the 201, key types, files,
and every 400 of the reference's section 4 that applies to email, in Notify's wording."""

from __future__ import annotations

import base64
import io
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import requests
from notifications_python_client.notifications import NotificationsAPIClient
from notifications_python_client.utils import prepare_upload

from flask_dmmail.sandbox import Sandbox, SandboxState
from flask_dmmail.sandbox.models import Notification
from tests.sandbox.notify_helpers import (
    ARCHIVED_ID,
    EMPTY_ID,
    FILE_ID,
    GUEST,
    PLAIN_ID,
    REPLY_TO_ID,
    SMS_ID,
    STRANGER,
    TEAM_MEMBER,
    UNKNOWN_ID,
    WELCOME_ID,
    auth_header,
    raises_http,
    v2_errors,
)

WELCOME = {"name": "Ada", "day": "Monday", "date": "1 May", "vip": "yes"}
B64_CSV = base64.b64encode(b"a,b\n1,2\n").decode()
TIME_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _file(**options: Any) -> dict[str, Any]:
    return {"file": B64_CSV, **options}


# ------------------------------------------------------------------ the happy path


def test_send_with_every_option_and_a_file(
    sbx: Sandbox, notify_client: NotificationsAPIClient
) -> None:
    upload = prepare_upload(
        io.BytesIO(b"a,b\n1,2\n"),
        filename="report.csv",
        confirm_email_before_download=False,
        retention_period="4 weeks",
    )
    response = notify_client.send_email_notification(
        " someone@example.com ",
        FILE_ID,
        personalisation={"doc": upload},
        reference="my-ref",
        email_reply_to_id=REPLY_TO_ID,
        one_click_unsubscribe_url="https://example.gov.uk/unsubscribe?x=1",
        sanitise_content_for=["nothing"],
    )
    notification_id = response["id"]
    url = response["content"]["body"].removeprefix("Download it: ")
    assert re.fullmatch(
        r"https://documents\.service\.gov\.uk/d/[\w-]{22}/[\w-]{22}\?key=[\w-]+", url
    )
    assert response == {
        "id": notification_id,
        "reference": "my-ref",
        "uri": f"{sbx.url}/v2/notifications/{notification_id}",
        "template": {
            "id": FILE_ID,
            "version": 1,
            "uri": f"{sbx.url}/services/{sbx.state.service_id}/templates/{FILE_ID}",
        },
        "scheduled_for": None,
        "content": {
            "from_email": "sandbox.service@notifications.service.gov.uk",
            "body": f"Download it: {url}",
            "subject": "Your file",
            "one_click_unsubscribe_url": "https://example.gov.uk/unsubscribe?x=1",
        },
        "sanitised_content": {},
    }
    stored = sbx.state.get(notification_id)
    assert stored is not None
    assert stored.email_address == "someone@example.com"
    assert stored.key_type == "test"
    assert stored.template_name == "File"
    assert stored.email_reply_to_id == REPLY_TO_ID
    assert stored.reply_to == "reply@example.gov.uk"
    assert stored.personalisation == {"doc": url}
    assert stored.files == [
        {
            "key": "doc",
            "filename": "report.csv",
            "url": url,
            "size_bytes": 8,
            "confirm_email_before_download": False,
            "retention_period": "4 weeks",
            "is_csv": None,
        }
    ]
    got = notify_client.get_notification_by_id(notification_id)
    assert got["one_click_unsubscribe_url"] == "https://example.gov.uk/unsubscribe?x=1"
    assert got["email_address"] == "someone@example.com"


def test_201_body_fills_body_and_typesets_subject(
    sbx: Sandbox, notify_client: NotificationsAPIClient
) -> None:
    response = notify_client.send_email_notification("a@example.com", WELCOME_ID, WELCOME)
    assert response["content"]["subject"] == "Hello Ada – it’s Monday"
    assert response["content"]["body"] == ("# Welcome Ada\n\nYour date is 1 May.\n\nYou are a VIP.")
    assert response["reference"] is None
    assert response["content"]["one_click_unsubscribe_url"] is None
    stored = sbx.state.get(response["id"])
    assert stored is not None and stored.subject == "Hello Ada – it’s Monday"


def test_file_defaults(sbx: Sandbox, notify_client: NotificationsAPIClient) -> None:
    response = notify_client.send_email_notification("a@example.com", FILE_ID, {"doc": _file()})
    stored = sbx.state.get(response["id"])
    assert stored is not None
    assert stored.files[0]["confirm_email_before_download"] is True
    assert stored.files[0]["retention_period"] == "26 weeks"
    assert stored.files[0]["filename"] is None


def test_sanitise_content_for(sbx: Sandbox, notify_client: NotificationsAPIClient) -> None:
    response = notify_client.send_email_notification(
        "a@example.com",
        WELCOME_ID,
        dict(WELCOME, name="*Ada* evil.com"),
        sanitise_content_for=["name"],
    )
    assert response["sanitised_content"] == {
        "name": {"unsanitised": "*Ada* evil.com", "sanitised": "\\*Ada\\* evil\\. com"}
    }
    assert response["content"]["body"].startswith("# Welcome \\*Ada\\* evil\\. com")


def test_scheduled_for_is_validated_then_ignored(notify_client: NotificationsAPIClient) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    response = notify_client.post(
        "/v2/notifications/email",
        {"email_address": "a@example.com", "template_id": PLAIN_ID, "scheduled_for": soon},
    )
    assert response["scheduled_for"] is None


def test_any_content_type_is_accepted(sbx: Sandbox, http: requests.Session) -> None:
    response = http.post(
        f"{sbx.url}/v2/notifications/email",
        data=f'{{"email_address": "a@example.com", "template_id": "{PLAIN_ID}"}}',
        headers={**auth_header(sbx.keys.test), "Content-Type": "text/plain"},
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "address",
    [
        "simulate-delivered@notifications.service.gov.uk",
        "simulate-delivered-2@notifications.service.gov.uk",
        "simulate-delivered-3@notifications.service.gov.uk",
    ],
)
@pytest.mark.parametrize("key_type", ["test", "team", "live"])
def test_smoke_test_addresses_answer_201_and_are_not_stored(
    sbx: Sandbox,
    make_notify_client: Callable[..., NotificationsAPIClient],
    address: str,
    key_type: str,
) -> None:
    sbx.state.set_service(restricted=True)
    client = make_notify_client(getattr(sbx.keys, key_type))
    response = client.send_email_notification(address, FILE_ID, {"doc": _file()})
    assert response["id"]
    assert sbx.state.outbox() == []
    error = raises_http(lambda: client.get_notification_by_id(response["id"]))
    assert (error.status_code, error.message) == (
        404,
        v2_errors("NoResultFound", "No result found"),
    )


# ------------------------------------------------------------------ key types


@pytest.mark.parametrize(
    ("key_type", "restricted", "recipient", "allowed"),
    [
        ("test", True, STRANGER, True),
        ("team", False, TEAM_MEMBER, True),
        ("team", False, " Member@Example.gov.uk ", True),
        ("team", False, GUEST, True),
        ("team", False, STRANGER, False),
        ("live", False, STRANGER, True),
        ("live", True, TEAM_MEMBER, True),
        ("live", True, GUEST, True),
        ("live", True, STRANGER, False),
    ],
    ids=[
        "test-anyone-even-trial",
        "team-member",
        "team-member-case-and-space",
        "team-guest",
        "team-stranger",
        "live-anyone",
        "trial-live-member",
        "trial-live-guest",
        "trial-live-stranger",
    ],
)
def test_key_types_and_trial_mode(
    sbx: Sandbox,
    make_notify_client: Callable[..., NotificationsAPIClient],
    key_type: str,
    restricted: bool,
    recipient: str,
    allowed: bool,
) -> None:
    sbx.state.set_service(restricted=restricted)
    client = make_notify_client(getattr(sbx.keys, key_type))
    if allowed:
        response = client.send_email_notification(recipient, PLAIN_ID)
        stored = sbx.state.get(response["id"])
        assert stored is not None
        assert stored.key_type == {"live": "normal"}.get(key_type, key_type)
        return
    error = raises_http(lambda: client.send_email_notification(recipient, PLAIN_ID))
    expected = (
        "Can’t send to this recipient using a team-only API key"
        if key_type == "team"
        else "Can’t send to this recipient when service is in trial mode – see "
        "https://www.notifications.service.gov.uk/trial-mode"
    )
    assert (error.status_code, error.message) == (400, v2_errors("BadRequestError", expected))
    assert sbx.state.outbox() == []


@pytest.mark.parametrize(
    ("address", "final"),
    [
        ("someone@example.com", "delivered"),
        ("temp-fail@simulator.notify", "temporary-failure"),
        ("perm-fail@simulator.notify", "permanent-failure"),
    ],
)
def test_statuses_end_as_the_simulator_says(
    sbx: Sandbox, notify_client: NotificationsAPIClient, address: str, final: str
) -> None:
    response = notify_client.send_email_notification(address, PLAIN_ID)
    got = notify_client.get_notification_by_id(response["id"])
    assert got["status"] == final
    assert TIME_FORMAT.match(got["sent_at"])
    assert TIME_FORMAT.match(got["completed_at"])


def test_status_listeners_fire_without_anyone_reading(
    sbx: Sandbox, notify_client: NotificationsAPIClient
) -> None:
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def listener(notification: Notification) -> None:
        seen.append((notification.id, notification.status))
        if notification.status == "delivered":
            done.set()

    sbx.state.set_service(delivery_delay=0.05)
    sbx.state.add_status_listener(listener)
    try:
        response = notify_client.send_email_notification("a@example.com", PLAIN_ID)
        assert done.wait(10)
    finally:
        sbx.state.remove_status_listener(listener)
    assert seen == [(response["id"], "sending"), (response["id"], "delivered")]


def test_delivery_delay_keeps_created_until_due_and_force_status(
    sbx: Sandbox, notify_client: NotificationsAPIClient, http: requests.Session
) -> None:
    sbx.state.set_service(delivery_delay=600)
    response = notify_client.send_email_notification("a@example.com", PLAIN_ID)
    got = notify_client.get_notification_by_id(response["id"])
    assert (got["status"], got["sent_at"], got["completed_at"]) == ("created", None, None)
    forced = http.post(
        f"{sbx.url}/_sandbox/notifications/{response['id']}/status",
        json={"status": "technical-failure"},
    )
    assert forced.json()["status"] == "technical-failure"
    got = notify_client.get_notification_by_id(response["id"])
    assert got["status"] == "technical-failure"
    assert got["completed_at"] is not None
    bad = http.post(
        f"{sbx.url}/_sandbox/notifications/{response['id']}/status", json={"status": "nope"}
    )
    assert bad.status_code == 400


def test_auto_templates_create_a_stand_in() -> None:
    with Sandbox.start(auto_templates=True) as sandbox:
        client = NotificationsAPIClient(sandbox.keys.test, base_url=sandbox.url)
        try:
            response = client.send_email_notification(
                "a@example.com", UNKNOWN_ID, {"first_name": "Ada", "code": 7}
            )
            assert response["content"]["subject"] == (
                f"Template {UNKNOWN_ID} is not in the sandbox"
            )
            assert response["content"]["body"] == "first_name: Ada\ncode: 7"
            template = client.get_template(UNKNOWN_ID)
            assert template["name"] == "Unknown template"
        finally:
            client.request_session.close()


# ------------------------------------------------------------------ every 400


def _long(n: int) -> str:
    return "x" * n


def _send_cases() -> list[Any]:
    """(kwargs for send_email_notification or a raw body, status, error class, messages)."""
    VE, BR = "ValidationError", "BadRequestError"
    ok = {"email_address": "a@example.com", "template_id": PLAIN_ID}
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    far = (datetime.now(UTC) + timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%S")
    big = base64.b64encode(b"a" * (2 * 1024 * 1024 + 1024 + 1)).decode()  # document-download's
    return [
        pytest.param({}, VE, ["email_address is a required property",
                              "template_id is a required property"], id="empty-object"),
        pytest.param([1], VE, ["[1] is not of type object"], id="not-an-object"),
        pytest.param({"template_id": PLAIN_ID}, VE, ["email_address is a required property"],
                     id="no-email"),
        pytest.param({"email_address": "a@example.com"}, VE,
                     ["template_id is a required property"], id="no-template"),
        pytest.param(dict(ok, email_address="not-an-address"), VE,
                     ["email_address Not a valid email address"], id="bad-email"),
        pytest.param(dict(ok, email_address="a@b..com"), VE,
                     ["email_address Not a valid email address"], id="double-dot"),
        pytest.param(dict(ok, email_address="a@localhost"), VE,
                     ["email_address Not a valid email address"], id="one-label-host"),
        pytest.param(dict(ok, email_address=None), VE,
                     ["email_address None is not of type string"], id="null-email"),
        pytest.param(dict(ok, template_id="abc"), VE, ["template_id is not a valid UUID"],
                     id="bad-template-id"),
        pytest.param(dict(ok, template_id=12), VE, ["template_id is not a valid UUID"],
                     id="template-id-wrong-type"),
        pytest.param(dict(ok, reference=_long(1001)), VE, [f"reference {_long(1001)} is too long"],
                     id="reference-too-long"),
        pytest.param(dict(ok, reference=None), VE, ["reference None is not of type string"],
                     id="reference-null"),
        pytest.param(dict(ok, personalisation="abc"), VE,
                     ["personalisation abc is not of type object"], id="personalisation-string"),
        pytest.param(dict(ok, one_click_unsubscribe_url="http://example.com"), VE,
                     ["one_click_unsubscribe_url is not a valid https url"], id="unsubscribe-http"),
        pytest.param(dict(ok, one_click_unsubscribe_url="https://exa mple.com"), VE,
                     ["one_click_unsubscribe_url is not a valid https url"], id="unsubscribe-bad"),
        pytest.param(dict(ok, email_reply_to_id="nope"), VE,
                     ["email_reply_to_id is not a valid UUID"], id="reply-to-not-uuid"),
        pytest.param(dict(ok, foo=1), VE,
                     ["Additional properties are not allowed (foo was unexpected)"],
                     id="extra-one"),
        pytest.param(dict(ok, foo=1, bar=2), VE,
                     ["Additional properties are not allowed (bar, foo were unexpected)"],
                     id="extra-two"),
        pytest.param(dict(ok, scheduled_for="tomorrow"), VE,
                     ["scheduled_for datetime format is invalid. It must be a valid ISO8601 date "
                      "time format, https://en.wikipedia.org/wiki/ISO_8601"], id="scheduled-bad"),
        pytest.param(dict(ok, scheduled_for=past), VE,
                     ["scheduled_for datetime can not be in the past"], id="scheduled-past"),
        pytest.param(dict(ok, scheduled_for=far), VE,
                     ["scheduled_for datetime can only be 24 hours in the future"],
                     id="scheduled-far"),
        pytest.param({"email_address": None, "template_id": "x", "personalisation": [],
                      "foo": 1}, VE,
                     ["email_address None is not of type string", "template_id is not a valid UUID",
                      "personalisation [] is not of type object",
                      "Additional properties are not allowed (foo was unexpected)"],
                     id="several-in-schema-order"),
        pytest.param({"foo": 1, "template_id": "x"}, VE,
                     ["template_id is not a valid UUID", "email_address is a required property",
                      "Additional properties are not allowed (foo was unexpected)"],
                     id="properties-then-required-then-additional"),
        # file personalisation
        pytest.param(dict(ok, template_id=FILE_ID,
                          personalisation={"doc": _file(retention_period="9999 weeks")}), VE,
                     ["retention_period Unsupported value for retention_period: 9999 weeks. "
                      "Supported periods are from 1 to 78 weeks."], id="file-retention"),
        pytest.param(dict(ok, template_id=FILE_ID,
                          personalisation={"doc": _file(confirm_email_before_download="potato")}),
                     VE, ["confirm_email_before_download Unsupported value for "
                          "confirm_email_before_download: potato. Use a boolean true or false "
                          "value."], id="file-confirm"),
        pytest.param(dict(ok, template_id=FILE_ID,
                          personalisation={"doc": _file(is_csv="potato")}), VE,
                     ["is_csv Unsupported value for is_csv: potato. Use a boolean true or false "
                      "value."], id="file-is-csv"),
        pytest.param(dict(ok, template_id=FILE_ID,
                          personalisation={"doc": _file(filename="report")}), VE,
                     ["filename `filename` must end with a file extension. For example, "
                      "filename.csv"], id="file-filename"),
        pytest.param(dict(ok, template_id=FILE_ID,
                          personalisation={"doc": _file(filename="a.csv", is_csv=True)}), VE,
                     ["Do not set a value for `is_csv` if `filename` is set."],
                     id="file-is-csv-and-filename"),
        pytest.param(dict(ok, template_id=FILE_ID, personalisation={"doc": {"file": False}}), VE,
                     ["file False is not of type string"], id="file-not-string"),
        pytest.param(dict(ok, template_id=FILE_ID, personalisation={"doc": _file(other=1)}), VE,
                     ["Additional properties are not allowed (other was unexpected)"],
                     id="file-extra-key"),
        pytest.param(dict(ok, template_id=FILE_ID, personalisation={"doc": {"file": big}}), BR,
                     ["Uploaded file exceeds file size limit"], id="file-too-big"),
        pytest.param(dict(ok, template_id=FILE_ID,
                          personalisation={"doc": _file(filename=_long(101) + ".csv")}), BR,
                     ["`filename` cannot be longer than 100 characters"], id="file-name-long"),
        # bad requests
        pytest.param(dict(ok, template_id=UNKNOWN_ID), BR, ["Template not found"],
                     id="template-not-found"),
        pytest.param(dict(ok, template_id=SMS_ID, personalisation={"name": "x"}), BR,
                     ["sms template is not suitable for email notification"], id="sms-template"),
        pytest.param(dict(ok, template_id=ARCHIVED_ID), BR, ["Template has been deleted"],
                     id="archived"),
        pytest.param(dict(ok, template_id=WELCOME_ID, personalisation={"vip": "no", "DAY": None}),
                     BR, ["Missing personalisation: name, day, date"], id="missing-subject-first"),
        pytest.param(dict(ok, template_id=EMPTY_ID, personalisation={"x": "  "}), BR,
                     ["Your message is empty."], id="empty-message"),
        pytest.param(dict(ok, email_reply_to_id=UNKNOWN_ID), BR,
                     [f"email_reply_to_id {UNKNOWN_ID} does not exist in database for service id "
                      "{service_id}"], id="unknown-reply-to"),
        pytest.param(dict(ok, template_id=EMPTY_ID, personalisation={"x": _long(2_000_001)}), BR,
                     ["Your message is too long. Emails cannot be longer than 2000000 bytes. "
                      "Your message is 2000001 bytes."], id="too-long"),
    ]  # fmt: skip


@pytest.mark.parametrize(("body", "error_class", "messages"), _send_cases())
def test_send_errors(
    sbx: Sandbox,
    notify_client: NotificationsAPIClient,
    body: Any,
    error_class: str,
    messages: list[str],
) -> None:
    expected = [m.replace("{service_id}", sbx.state.service_id) for m in messages]
    error = raises_http(lambda: notify_client.post("/v2/notifications/email", body))
    assert error.status_code == 400
    assert error.message == v2_errors(error_class, *expected)
    assert sbx.state.outbox() == []


def test_send_errors_through_send_email_notification(notify_client: NotificationsAPIClient) -> None:
    error = raises_http(lambda: notify_client.send_email_notification("a@example.com", UNKNOWN_ID))
    assert (error.status_code, error.message) == (
        400,
        v2_errors("BadRequestError", "Template not found"),
    )
    error = raises_http(
        lambda: notify_client.send_email_notification("a@example.com", WELCOME_ID, {"name": "x"})
    )
    assert error.message == v2_errors("BadRequestError", "Missing personalisation: day, date, vip")


@pytest.mark.parametrize(
    ("data", "error_class", "messages"),
    [
        ("{not json", "BadRequestError", ["Invalid JSON supplied in POST data"]),
        ("", "BadRequestError", ["Invalid JSON supplied in POST data"]),
        ("null", "ValidationError", ["email_address is a required property",
                                     "template_id is a required property"]),
    ],
    ids=["invalid-json", "empty-body", "null-body"],
)  # fmt: skip
def test_raw_bodies(
    sbx: Sandbox, http: requests.Session, data: str, error_class: str, messages: list[str]
) -> None:
    # notifications-api get_valid_json: get_json(force=True) (an empty body is not JSON),
    # then ``or {}`` (a null is an empty object). More cases in test_notify_fidelity.
    response = http.post(
        f"{sbx.url}/v2/notifications/email", data=data, headers=auth_header(sbx.keys.test)
    )
    assert response.status_code == 400
    assert response.json() == {"status_code": 400, "errors": v2_errors(error_class, *messages)}


def test_sms_and_letters_answer_as_a_service_without_permission(
    notify_client: NotificationsAPIClient,
) -> None:
    error = raises_http(lambda: notify_client.send_sms_notification("07700900123", SMS_ID))
    assert error.message == v2_errors(
        "BadRequestError", "Service is not allowed to send text messages"
    )
    error = raises_http(
        lambda: notify_client.send_letter_notification(
            PLAIN_ID, {"address_line_1": "A", "address_line_2": "B", "postcode": "SW1A 1AA"}
        )
    )
    assert error.message == v2_errors("BadRequestError", "Service is not allowed to send letters")
    error = raises_http(
        lambda: notify_client.send_precompiled_letter_notification("ref", io.BytesIO(b"%PDF-1.4"))
    )
    assert error.message == v2_errors("BadRequestError", "Service is not allowed to send letters")
    error = raises_http(
        lambda: notify_client.post("/v2/notifications/sms", {"template_id": SMS_ID})
    )
    assert error.message == v2_errors("ValidationError", "phone_number is a required property")


def test_check_order_template_before_reply_to_before_recipient(
    make_notify_client: Callable[..., NotificationsAPIClient], sbx: Sandbox
) -> None:
    team = make_notify_client(sbx.keys.team)
    error = raises_http(
        lambda: team.send_email_notification(STRANGER, UNKNOWN_ID, email_reply_to_id=UNKNOWN_ID)
    )
    assert error.message == v2_errors("BadRequestError", "Template not found")
    error = raises_http(
        lambda: team.send_email_notification(STRANGER, PLAIN_ID, email_reply_to_id=UNKNOWN_ID)
    )
    # A v2 error body: HTTPError.message is typed ``str | list[dict]``.
    assert "does not exist in database" in cast(list[dict[str, str]], error.message)[0]["message"]
    error = raises_http(
        lambda: team.send_email_notification(STRANGER, FILE_ID, {"doc": _file(is_csv="potato")})
    )
    assert error.message == v2_errors(
        "BadRequestError", "Can’t send to this recipient using a team-only API key"
    )


def test_files_need_a_contact_link(http: requests.Session) -> None:
    state = SandboxState(contact_link=None, seed={"templates": [
        {"id": FILE_ID, "name": "F", "subject": "S", "body": "((doc))"}]})  # fmt: skip
    with Sandbox.start(state=state) as sandbox:
        client = NotificationsAPIClient(sandbox.keys.test, base_url=sandbox.url)
        try:
            error = raises_http(
                lambda: client.send_email_notification("a@example.com", FILE_ID, {"doc": _file()})
            )
        finally:
            client.request_session.close()
    assert error.message == v2_errors(
        "BadRequestError",
        "Send files by email has not been set up - add contact details for your service at "
        f"https://www.notifications.service.gov.uk/services/{state.service_id}/service-settings/"
        "send-files-by-email",
    )


def test_prepare_upload_refuses_files_over_2mb() -> None:
    with pytest.raises(ValueError, match="File is larger than 2MB"):
        prepare_upload(io.BytesIO(b"a" * (2 * 1024 * 1024 + 1)))
