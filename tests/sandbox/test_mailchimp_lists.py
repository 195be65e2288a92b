"""Audiences (lists) and batch member writes in the sandbox's Mailchimp API."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from mailchimp_marketing.api_client import ApiClientError

from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.mailchimp import MailchimpProblem, MailchimpState, subscriber_hash
from tests.sandbox.mailchimp_helpers import MailchimpServer, problem

LIST_BODY: dict[str, Any] = {
    "name": "DOS suppliers",
    "contact": {
        "company": "Crown Commercial Service",
        "address1": "9th Floor, The Capital",
        "city": "Liverpool",
        "state": "",
        "zip": "L3 9PP",
        "country": "GB",
    },
    "permission_reminder": "You signed up on the Digital Marketplace.",
    "campaign_defaults": {
        "from_name": "Digital Marketplace",
        "from_email": "enquiries@digitalmarketplace.service.gov.uk",
        "subject": "",
        "language": "en",
    },
    "email_type_option": False,
}


def test_create_get_and_list(client: Any) -> None:
    created = client.lists.create_list(LIST_BODY)
    assert re.fullmatch(r"[0-9a-f]{10}", created["id"])
    assert created["name"] == "DOS suppliers"
    assert created["stats"]["member_count"] == 0
    assert created["contact"]["city"] == "Liverpool"
    got = client.lists.get_list(created["id"])
    assert got["id"] == created["id"]
    everything = client.lists.get_all_lists()
    assert everything["total_items"] == 1
    assert [x["id"] for x in everything["lists"]] == [created["id"]]
    assert everything["constraints"] == {
        "may_create": True,
        "max_instances": 3,  # the sandbox's default plan: a small one's
        "current_total_instances": 1,
    }


def _without(path: str) -> dict[str, Any]:
    body = copy.deepcopy(LIST_BODY)
    parent, _, leaf = path.rpartition(".")
    del (body[parent] if parent else body)[leaf]
    return body


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        pytest.param(
            _without("name"),
            [{"field": "", "message": "Required fields were not provided: name"}],
            id="no-name",
        ),
        pytest.param(
            {"name": "x"},
            [
                {
                    "field": "",
                    "message": "Required fields were not provided: contact, "
                    "permission_reminder, campaign_defaults, email_type_option",
                }
            ],
            id="only-name",
        ),
        pytest.param(
            _without("contact.city"),
            [{"field": "contact", "message": "Required fields were not provided: city"}],
            id="no-contact-city",
        ),
        pytest.param(
            _without("campaign_defaults.from_email"),
            [
                {
                    "field": "campaign_defaults",
                    "message": "Required fields were not provided: from_email",
                }
            ],
            id="no-from-email",
        ),
        pytest.param(
            {**LIST_BODY, "contact": {**LIST_BODY["contact"], "zip": 12345}},
            [{"field": "contact.zip", "message": "Schema describes string, integer found instead"}],
            id="zip-not-a-string",
        ),
        pytest.param(
            {**LIST_BODY, "email_type_option": "yes"},
            [
                {
                    "field": "email_type_option",
                    "message": "Schema describes boolean, string found instead",
                }
            ],
            id="email-type-option-not-bool",
        ),
    ],
)
def test_create_list_validation(client: Any, body: dict[str, Any], errors: list[Any]) -> None:
    with pytest.raises(ApiClientError) as exc:
        client.lists.create_list(body)
    assert exc.value.status_code == 400
    doc = problem(exc)
    assert doc["title"] == "Invalid Resource"
    assert doc["detail"] == (
        "The resource submitted could not be validated. "
        "For field-specific details, see the 'errors' array."
    )
    assert doc["errors"] == errors


def test_plan_cap_shows_in_constraints(client: Any, mc: MailchimpState) -> None:
    mc.max_lists = 1
    client.lists.create_list(LIST_BODY)
    assert client.lists.get_all_lists()["constraints"]["may_create"] is False
    with pytest.raises(ApiClientError) as exc:
        client.lists.create_list(LIST_BODY)
    assert exc.value.status_code == 403


def test_unknown_list_is_404(client: Any) -> None:
    with pytest.raises(ApiClientError) as exc:
        client.lists.get_list("abcdef0123")
    assert problem(exc)["title"] == "Resource Not Found"


def test_delete_list_then_404(client: Any, list_id: str) -> None:
    assert client.lists.delete_list(list_id).status_code == 204
    with pytest.raises(ApiClientError) as exc:
        client.lists.get_list(list_id)
    assert exc.value.status_code == 404


def test_lists_for_an_email(client: Any, mc: MailchimpState) -> None:
    a = mc.create_list("A")
    b = mc.create_list("B")
    mc.add_members(a, ["x@dm.org"])
    mc.add_members(b, ["y@dm.org"])
    found = client.lists.get_all_lists(email="x@dm.org", fields=["lists.id", "lists.name"])
    assert found == {"lists": [{"id": a, "name": "A"}]}


def test_caller_chosen_list_ids_and_seed(mc: MailchimpState, client: Any) -> None:
    assert mc.ensure_list("abc1234567", "Configured") == "abc1234567"
    assert mc.ensure_list("abc1234567", "Configured again") == "abc1234567"
    mc.seed(
        {
            "mailchimp": {
                "lists": [
                    {
                        "id": "0123456789",
                        "name": "Seeded",
                        "members": [
                            "a@dm.org",
                            {"email_address": "b@dm.org", "status": "unsubscribed"},
                        ],
                    }
                ]
            }
        }
    )
    seeded = client.lists.get_list("0123456789", include_total_contacts=True)
    assert seeded["name"] == "Seeded"
    assert seeded["stats"]["member_count"] == 1
    assert seeded["stats"]["total_contacts"] == 2
    with pytest.raises(ValueError):
        mc.create_list("Bad", list_id="myserver01")


@pytest.mark.parametrize(
    "seed",
    [
        pytest.param({"mailchimp": []}, id="not-a-mapping"),
        pytest.param({"mailchimp": {"audiences": []}}, id="unknown-key"),
        pytest.param({"mailchimp": {"lists": ["x"]}}, id="list-not-an-object"),
        pytest.param({"mailchimp": {"lists": [{"members": [{"status": "x"}]}]}}, id="no-email"),
    ],
)
def test_bad_seeds_are_value_errors(mc: MailchimpState, seed: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="seed: mailchimp"):
        mc.seed(seed)
    assert mc.lists() == []


def test_seeded_fake_rule(mc: MailchimpState) -> None:
    list_id = mc.create_list("L")
    mc.seed({"fake_rule": {"enabled": True, "domains": ["fake.org"]}})
    with pytest.raises(MailchimpProblem) as exc:
        mc.add_member(list_id, {"email_address": "a@fake.org", "status": "subscribed"}, "")
    assert exc.value.title == "Invalid Resource"


def test_sandbox_seed_and_reset_cover_mailchimp() -> None:
    seed = {
        "mailchimp": {"lists": [{"id": "feedface00", "name": "Seeded", "members": ["a@dm.org"]}]}
    }
    sandbox = Sandbox.start(seed=seed)
    try:
        mailchimp = sandbox.state.mailchimp
        assert mailchimp.member_count("feedface00") == 1
        mailchimp.add_members("feedface00", ["b@dm.org"])
        sandbox.state.reset()
        assert mailchimp.member_count("feedface00") == 1
    finally:
        sandbox.stop()


# --------------------------------------------------------------------------- batch


def test_batch_creates_updates_and_reports_errors(
    client: Any, list_id: str, mc: MailchimpState
) -> None:
    mc.add_members(list_id, ["old@dm.org"])
    mc.set_fake_rule(True)
    result = client.lists.batch_list_members(
        list_id,
        {
            "members": [
                {"email_address": "new@dm.org", "status": "subscribed", "tags": ["dos"]},
                {"email_address": "old@dm.org", "status": "subscribed"},
                {"email_address": "not-an-email", "status": "subscribed"},
                {"email_address": "foo@example.com", "status": "subscribed"},
            ]
        },
    )
    assert result["total_created"] == 1
    assert result["total_updated"] == 0
    assert result["error_count"] == 3
    assert [m["email_address"] for m in result["new_members"]] == ["new@dm.org"]
    assert result["new_members"][0]["tags"][0]["name"] == "dos"
    assert result["errors"][0] == {
        "email_address": "old@dm.org",
        "error": "old@dm.org is already a list member, do you want to update? please provide "
        "update_existing:true in the request body",
        "error_code": "ERROR_CONTACT_EXISTS",
        "field": "",
        "field_message": "",
    }
    assert [(e["email_address"], e["error"], e["error_code"]) for e in result["errors"][1:]] == [
        ("not-an-email", "Please provide a valid email address.", "ERROR_GENERIC"),
        (
            "foo@example.com",
            "foo@example.com looks fake or invalid, please enter a real email address.",
            "ERROR_GENERIC",
        ),
    ]


def test_batch_update_existing(client: Any, list_id: str, mc: MailchimpState) -> None:
    mc.add_members(list_id, ["old@dm.org"], status="pending")
    result = client.lists.batch_list_members(
        list_id,
        {
            "members": [{"email_address": "old@dm.org", "status": "subscribed"}],
            "update_existing": True,
        },
    )
    assert (result["total_created"], result["total_updated"], result["error_count"]) == (0, 1, 0)
    assert result["updated_members"][0]["status"] == "subscribed"


def test_batch_respects_forgotten_and_compliance(
    client: Any, list_id: str, mc: MailchimpState
) -> None:
    mc.add_members(list_id, ["gone@dm.org", "left@dm.org"])
    client.lists.delete_list_member_permanent(list_id, subscriber_hash("gone@dm.org"))
    mc.unsubscribe(list_id, "left@dm.org")
    result = client.lists.batch_list_members(
        list_id,
        {
            "members": [
                {"email_address": "gone@dm.org", "status": "subscribed"},
                {"email_address": "left@dm.org", "status": "subscribed"},
            ],
            "update_existing": True,
        },
    )
    assert result["error_count"] == 2
    assert "permanently deleted" in result["errors"][0]["error"]
    assert "compliance state" in result["errors"][1]["error"]


def test_batch_sync_tags_replaces(client: Any, list_id: str, mc: MailchimpState) -> None:
    mc.add_members(list_id, ["a@dm.org"], tags=["old"])
    body = {
        "members": [{"email_address": "a@dm.org", "status": "subscribed", "tags": ["new"]}],
        "update_existing": True,
    }
    merged = client.lists.batch_list_members(list_id, body)
    assert [t["name"] for t in merged["updated_members"][0]["tags"]] == ["old", "new"]
    synced = client.lists.batch_list_members(list_id, {**body, "sync_tags": True})
    assert [t["name"] for t in synced["updated_members"][0]["tags"]] == ["new"]


def test_batch_over_500_is_refused(client: Any, list_id: str) -> None:
    members = [{"email_address": f"p{i}@dm.org", "status": "subscribed"} for i in range(501)]
    with pytest.raises(ApiClientError) as exc:
        client.lists.batch_list_members(list_id, {"members": members})
    assert problem(exc)["title"] == "Invalid Resource"
    ok = client.lists.batch_list_members(list_id, {"members": members[:500]})
    assert ok["total_created"] == 500


def test_batch_on_unknown_list_is_404(client: Any) -> None:
    with pytest.raises(ApiClientError) as exc:
        client.lists.batch_list_members("0000000000", {"members": []})
    assert exc.value.status_code == 404


def test_webhook_on_unknown_list_and_bad_url(client: Any, list_id: str) -> None:
    with pytest.raises(ApiClientError) as exc:
        client.lists.create_list_webhook("0000000000", {"url": "https://dm.example/hook"})
    assert exc.value.status_code == 404
    with pytest.raises(ApiClientError) as exc:
        client.lists.create_list_webhook(list_id, {"url": "not a url"})
    assert problem(exc)["errors"][0]["field"] == "url"


def test_mc_server_fixture_is_the_sandbox(mc_server: MailchimpServer) -> None:
    assert mc_server.state is mc_server.sandbox.state.mailchimp
