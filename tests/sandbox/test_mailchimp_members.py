"""Audience members in the sandbox's Mailchimp API: statuses, transitions and exact errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from mailchimp_marketing.api_client import ApiClientError

from flask_dmmail.sandbox.mailchimp import MailchimpState, subscriber_hash
from tests.sandbox.mailchimp_helpers import MailchimpServer, problem, raw

EMAIL = "Boop@Jones.com"
HASH = "267a97babeaa2810f2c99246ee580d0e"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")


def test_subscriber_hash_is_md5_of_the_lowercased_address() -> None:
    assert subscriber_hash(EMAIL) == HASH


def test_add_member_returns_the_full_member_object(client: Any, list_id: str) -> None:
    member = client.lists.add_list_member(
        list_id,
        {
            "email_address": EMAIL,
            "status": "subscribed",
            "merge_fields": {"FNAME": "Boop", "LNAME": "Jones"},
            "tags": ["suppliers", "dos"],
        },
    )
    assert member["id"] == HASH
    assert member["email_address"] == EMAIL
    assert re.fullmatch(r"[0-9a-f]{10}", member["unique_email_id"])
    assert re.fullmatch(r"[0-9a-f]{32}", member["contact_id"])
    assert isinstance(member["web_id"], int)
    assert member["full_name"] == "Boop Jones"
    assert member["email_type"] == "html"
    assert member["status"] == "subscribed"
    assert member["merge_fields"]["FNAME"] == "Boop"
    assert member["merge_fields"]["PHONE"] == ""
    assert member["timestamp_signup"] == ""
    assert member["ip_signup"] == ""
    assert TIME.match(member["timestamp_opt"])
    assert TIME.match(member["last_changed"])
    assert member["source"] == "API - Generic"
    assert member["list_id"] == list_id
    assert member["tags_count"] == 2
    assert [t["name"] for t in member["tags"]] == ["suppliers", "dos"]
    assert all(isinstance(t["id"], int) for t in member["tags"])
    assert member["stats"]["avg_open_rate"] == member["stats"]["avg_click_rate"] == 0
    rels = {link["rel"] for link in member["_links"]}
    assert {"self", "parent", "update", "upsert", "delete"} <= rels
    assert None not in member.values()


def test_get_member_by_hash_or_by_raw_email(client: Any, list_id: str) -> None:
    client.lists.add_list_member(list_id, {"email_address": EMAIL, "status": "pending"})
    assert client.lists.get_list_member(list_id, HASH)["status"] == "pending"
    assert client.lists.get_list_member(list_id, EMAIL.lower())["id"] == HASH


@pytest.mark.parametrize(
    "status", ["subscribed", "unsubscribed", "cleaned", "pending", "transactional"]
)
def test_every_writable_status_can_be_added(client: Any, list_id: str, status: str) -> None:
    member = client.lists.add_list_member(list_id, {"email_address": EMAIL, "status": status})
    assert member["status"] == status
    assert client.lists.get_list_member(list_id, HASH)["status"] == status


def _expect(
    exc: pytest.ExceptionInfo[ApiClientError], status: int, title: str, detail: str
) -> None:
    assert exc.value.status_code == status
    body = problem(exc)
    assert (body["status"], body["title"], body["detail"]) == (status, title, detail)
    assert body["instance"]


MEMBER_EXISTS = f"{EMAIL} is already a list member. Use PUT to insert or update list members."
FORGOTTEN = (
    f"{EMAIL} was permanently deleted and cannot be re-imported. "
    "The contact must re-subscribe to get back on the list."
)
COMPLIANCE = (
    f"{EMAIL} is in a compliance state due to unsubscribe, bounce, or compliance review "
    "and cannot be subscribed."
)
GENERIC = (
    "The resource submitted could not be validated. "
    "For field-specific details, see the 'errors' array."
)


def _add(client: Any, list_id: str, status: str = "subscribed", email: str = EMAIL) -> Any:
    return client.lists.add_list_member(list_id, {"email_address": email, "status": status})


def _forget(client: Any, list_id: str, mc: MailchimpState) -> None:
    _add(client, list_id)
    client.lists.delete_list_member_permanent(list_id, HASH)


def _self_unsubscribe(client: Any, list_id: str, mc: MailchimpState) -> None:
    _add(client, list_id)
    mc.unsubscribe(list_id, EMAIL)


def _bounce(client: Any, list_id: str, mc: MailchimpState) -> None:
    _add(client, list_id)
    mc.bounce(list_id, EMAIL)


@pytest.mark.parametrize(
    ("setup", "call", "status", "title", "detail"),
    [
        pytest.param(
            lambda c, lid, mc: _add(c, lid),
            lambda c, lid: _add(c, lid),
            400,
            "Member Exists",
            MEMBER_EXISTS,
            id="post-existing",
        ),
        pytest.param(
            lambda c, lid, mc: _add(c, lid, "unsubscribed"),
            lambda c, lid: _add(c, lid, "pending"),
            400,
            "Member Exists",
            MEMBER_EXISTS,
            id="post-existing-unsubscribed",
        ),
        pytest.param(
            _forget,
            lambda c, lid: _add(c, lid),
            400,
            "Forgotten Email Not Subscribed",
            FORGOTTEN,
            id="post-forgotten",
        ),
        pytest.param(
            _forget,
            lambda c, lid: c.lists.set_list_member(
                lid, HASH, {"email_address": EMAIL, "status_if_new": "subscribed"}
            ),
            400,
            "Forgotten Email Not Subscribed",
            FORGOTTEN,
            id="put-forgotten",
        ),
        pytest.param(
            _forget,
            lambda c, lid: c.lists.get_list_member(lid, HASH),
            404,
            "Resource Not Found",
            "The requested resource could not be found.",
            id="get-forgotten",
        ),
        pytest.param(
            _self_unsubscribe,
            lambda c, lid: c.lists.update_list_member(lid, HASH, {"status": "subscribed"}),
            400,
            "Member In Compliance State",
            COMPLIANCE,
            id="patch-self-unsubscribed",
        ),
        pytest.param(
            _self_unsubscribe,
            lambda c, lid: c.lists.set_list_member(
                lid,
                HASH,
                {"email_address": EMAIL, "status_if_new": "subscribed", "status": "subscribed"},
            ),
            400,
            "Member In Compliance State",
            COMPLIANCE,
            id="put-self-unsubscribed",
        ),
        pytest.param(
            _bounce,
            lambda c, lid: c.lists.update_list_member(lid, HASH, {"status": "subscribed"}),
            400,
            "Member In Compliance State",
            COMPLIANCE,
            id="patch-cleaned",
        ),
        pytest.param(
            lambda c, lid, mc: None,
            lambda c, lid: c.lists.update_list_member(lid, HASH, {"status": "subscribed"}),
            404,
            "Resource Not Found",
            "The requested resource could not be found.",
            id="patch-missing",
        ),
        pytest.param(
            lambda c, lid, mc: None,
            lambda c, lid: c.lists.delete_list_member(lid, HASH),
            404,
            "Resource Not Found",
            "The requested resource could not be found.",
            id="archive-missing",
        ),
        pytest.param(
            lambda c, lid, mc: None,
            lambda c, lid: c.lists.delete_list_member_permanent(lid, HASH),
            404,
            "Resource Not Found",
            "The requested resource could not be found.",
            id="delete-permanent-missing",
        ),
        pytest.param(
            lambda c, lid, mc: None,
            lambda c, lid: _add(c, lid, email="not an email"),
            400,
            "Invalid Resource",
            "Please provide a valid email address.",
            id="bad-syntax",
        ),
        pytest.param(
            lambda c, lid, mc: None,
            lambda c, lid: _add(c, lid, email="a@b@example.org"),
            400,
            "Invalid Resource",
            "Please provide a valid email address.",
            id="two-ats",
        ),
        pytest.param(
            lambda c, lid, mc: None,
            lambda c, lid: c.lists.add_list_member(lid, {"email_address": EMAIL}),
            400,
            "Invalid Resource",
            GENERIC,
            id="missing-status",
        ),
        pytest.param(
            lambda c, lid, mc: None,
            lambda c, lid: _add(c, lid, "archived"),
            400,
            "Invalid Resource",
            GENERIC,
            id="archived-is-read-only",
        ),
        pytest.param(
            lambda c, lid, mc: None,
            lambda c, lid: c.lists.set_list_member(lid, HASH, {"email_address": EMAIL}),
            400,
            "Invalid Resource",
            GENERIC,
            id="put-without-status-if-new",
        ),
        pytest.param(
            lambda c, lid, mc: _add(c, lid),
            lambda c, lid: c.lists.update_list_member(lid, HASH, {"status": "transactional"}),
            400,
            "Invalid Resource",
            GENERIC,
            id="patch-transactional",
        ),
        pytest.param(
            lambda c, lid, mc: None,
            lambda c, lid: c.lists.add_list_member("0000000000", {"email_address": EMAIL}),
            404,
            "Resource Not Found",
            "The requested resource could not be found.",
            id="unknown-list",
        ),
    ],
)
def test_member_errors(
    client: Any,
    list_id: str,
    mc: MailchimpState,
    setup: Any,
    call: Any,
    status: int,
    title: str,
    detail: str,
) -> None:
    setup(client, list_id, mc)
    with pytest.raises(ApiClientError) as exc:
        call(client, list_id)
    _expect(exc, status, title, detail)


def test_member_exists_has_no_type(client: Any, list_id: str) -> None:
    _add(client, list_id)
    with pytest.raises(ApiClientError) as exc:
        _add(client, list_id)
    assert "type" not in problem(exc)


def test_required_fields_are_named(client: Any, list_id: str) -> None:
    with pytest.raises(ApiClientError) as exc:
        client.lists.add_list_member(list_id, {"merge_fields": {}})
    assert problem(exc)["errors"] == [
        {"field": "", "message": "Required fields were not provided: email_address, status"}
    ]


def test_bad_status_names_the_accepted_values(client: Any, list_id: str) -> None:
    with pytest.raises(ApiClientError) as exc:
        _add(client, list_id, "nope")
    assert problem(exc)["errors"] == [
        {
            "field": "status",
            "message": "Data presented is not one of the accepted values: subscribed, "
            "unsubscribed, cleaned, pending, transactional.",
        }
    ]


def test_archive_then_get_is_200_archived_and_post_re_adds(client: Any, list_id: str) -> None:
    _add(client, list_id)
    result = client.lists.delete_list_member(list_id, HASH)
    assert isinstance(result, requests.Response) and result.status_code == 204
    assert client.lists.get_list_member(list_id, HASH)["status"] == "archived"
    again = _add(client, list_id, "pending")
    assert again["status"] == "pending"
    assert again["id"] == HASH


@pytest.mark.parametrize("status", ["pending", "cleaned"])
def test_archiving_pending_or_cleaned_is_405(
    client: Any, list_id: str, mc_server: MailchimpServer, mc: MailchimpState, status: str
) -> None:
    _add(client, list_id, status)
    response = raw(mc_server, "DELETE", f"/lists/{list_id}/members/{HASH}", mc.api_key)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, PUT"
    assert response.json()["detail"] == (
        "This list member cannot be removed. "
        "Can not archive a contact that is bounced, pending or archived"
    )


def test_archiving_twice_is_405(client: Any, list_id: str) -> None:
    _add(client, list_id)
    client.lists.delete_list_member(list_id, HASH)
    with pytest.raises(ApiClientError) as exc:
        client.lists.delete_list_member(list_id, HASH)
    assert exc.value.status_code == 405
    assert problem(exc)["title"] == "Method Not Allowed"


def test_put_creates_with_status_if_new_then_updates_with_status(client: Any, list_id: str) -> None:
    body = {"email_address": EMAIL, "status_if_new": "pending"}
    assert client.lists.set_list_member(list_id, HASH, body)["status"] == "pending"
    # status_if_new does not touch an existing member
    again = client.lists.set_list_member(list_id, HASH, {**body, "status_if_new": "subscribed"})
    assert again["status"] == "pending"
    updated = client.lists.set_list_member(list_id, HASH, {**body, "status": "subscribed"})
    assert updated["status"] == "subscribed"


def test_put_unarchives(client: Any, list_id: str) -> None:
    _add(client, list_id)
    client.lists.delete_list_member(list_id, HASH)
    member = client.lists.set_list_member(
        list_id, HASH, {"email_address": EMAIL, "status_if_new": "subscribed"}
    )
    assert member["status"] == "subscribed"


def test_admin_unsubscribe_can_be_resubscribed_but_self_unsubscribe_cannot(
    client: Any, list_id: str, mc: MailchimpState
) -> None:
    _add(client, list_id)
    client.lists.update_list_member(list_id, HASH, {"status": "unsubscribed"})
    assert client.lists.update_list_member(list_id, HASH, {"status": "subscribed"})["status"] == (
        "subscribed"
    )
    mc.unsubscribe(list_id, EMAIL)
    with pytest.raises(ApiClientError):
        client.lists.update_list_member(list_id, HASH, {"status": "subscribed"})
    # the usual workaround: pending (a confirmation email), then the person confirms
    assert client.lists.update_list_member(list_id, HASH, {"status": "pending"})["status"] == (
        "pending"
    )
    mc.confirm(list_id, EMAIL)
    assert client.lists.get_list_member(list_id, HASH)["status"] == "subscribed"


def test_patch_updates_merge_fields_and_last_changed(client: Any, list_id: str) -> None:
    _add(client, list_id)
    member = client.lists.update_list_member(list_id, HASH, {"merge_fields": {"FNAME": "Ada"}})
    assert member["merge_fields"]["FNAME"] == "Ada"
    assert member["full_name"] == "Ada"


def test_delete_permanent_is_204_then_gone_forever(client: Any, list_id: str) -> None:
    _add(client, list_id)
    result = client.lists.delete_list_member_permanent(list_id, HASH)
    assert isinstance(result, requests.Response) and result.status_code == 204
    for _ in range(2):
        with pytest.raises(ApiClientError) as exc:
            _add(client, list_id)
        assert problem(exc)["title"] == "Forgotten Email Not Subscribed"


class TestFakeRule:
    def test_on_by_default(self, client: Any, list_id: str) -> None:
        # Mailchimp refused foo@example.com live (mailchimp-api.md §3).
        with pytest.raises(ApiClientError) as exc:
            _add(client, list_id, email="foo@example.com")
        assert "looks fake or invalid" in problem(exc)["detail"]

    @pytest.mark.parametrize(
        "email",
        [
            "foo@example.com",
            "someone@test.com",
            "x@mail.example",
            "y@host.test",
            "z@dm.example.gov.uk",
            "w@test.co.uk",
            "v@printer.local",
        ],
    )
    def test_when_on_refuses_fake_looking_addresses(
        self, client: Any, list_id: str, mc: MailchimpState, email: str
    ) -> None:
        mc.set_fake_rule(True)
        with pytest.raises(ApiClientError) as exc:
            _add(client, list_id, email=email)
        _expect(
            exc,
            400,
            "Invalid Resource",
            f"{email} looks fake or invalid, please enter a real email address.",
        )

    def test_configurable_domains_and_addresses(
        self, client: Any, list_id: str, mc: MailchimpState
    ) -> None:
        mc.set_fake_rule(True, domains=["fake.org"], addresses=["me@real.org"])
        assert _add(client, list_id, email="foo@example.com")["status"] == "subscribed"
        for email in ("a@fake.org", "me@real.org"):
            with pytest.raises(ApiClientError) as exc:
                _add(client, list_id, email=email)
            assert "looks fake or invalid" in problem(exc)["detail"]

    def test_switches_off_again(self, client: Any, list_id: str, mc: MailchimpState) -> None:
        mc.set_fake_rule(True)
        mc.set_fake_rule(False)
        assert _add(client, list_id, email="foo@example.com")["status"] == "subscribed"


def test_tags_endpoint_adds_and_removes(client: Any, list_id: str) -> None:
    _add(client, list_id)
    result = client.lists.update_list_member_tags(
        list_id,
        HASH,
        {"tags": [{"name": "a", "status": "active"}, {"name": "b", "status": "active"}]},
    )
    assert isinstance(result, requests.Response) and result.status_code == 204
    client.lists.update_list_member_tags(
        list_id, HASH, {"tags": [{"name": "a", "status": "inactive"}]}
    )
    assert [t["name"] for t in client.lists.get_list_member(list_id, HASH)["tags"]] == ["b"]


def test_member_count_counts_subscribed_only(client: Any, list_id: str) -> None:
    _add(client, list_id, "subscribed", "a@x.org")
    _add(client, list_id, "subscribed", "b@x.org")
    _add(client, list_id, "unsubscribed", "c@x.org")
    _add(client, list_id, "pending", "d@x.org")
    client.lists.delete_list_member(list_id, subscriber_hash("b@x.org"))
    stats = client.lists.get_list(list_id, include_total_contacts=True)["stats"]
    assert stats["member_count"] == 1
    assert stats["unsubscribe_count"] == 1
    assert stats["total_contacts"] == 4
    assert "total_contacts" not in client.lists.get_list(list_id)["stats"]


def test_unsubscribe_webhook_is_posted_as_a_form(
    client: Any, list_id: str, mc: MailchimpState, mc_server: MailchimpServer
) -> None:
    # The sandbox itself is a convenient receiver: any URL that answers a GET with 200 will
    # do (its outbox page).
    hook = client.lists.create_list_webhook(
        list_id,
        {
            "url": f"{mc_server.url}/",
            "events": {"unsubscribe": True, "cleaned": True},
            "sources": {"user": True, "admin": True, "api": False},
        },
    )
    assert hook["list_id"] == list_id
    assert hook["events"]["unsubscribe"] is True
    assert client.lists.get_list_webhooks(list_id)["total_items"] == 1
    _add(client, list_id)
    client.lists.update_list_member(list_id, HASH, {"status": "unsubscribed"})  # api: not sent
    client.lists.update_list_member(list_id, HASH, {"status": "subscribed"})
    mc.unsubscribe(list_id, EMAIL, reason="abuse")
    deliveries = mc.wait_for_webhooks()
    assert len(deliveries) == 1
    form = dict(deliveries[0].form)
    assert form["type"] == "unsubscribe"
    assert form["data[email]"] == EMAIL
    assert form["data[list_id]"] == list_id
    assert form["data[reason]"] == "abuse"
    assert form["data[action]"] == "unsub"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", form["fired_at"])
    assert deliveries[0].status_code == 405  # the outbox page takes no POST; it answered
