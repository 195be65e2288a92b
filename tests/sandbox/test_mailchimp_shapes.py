"""Response fields code may read (issue 10, Mailchimp item 6): a member's and a campaign's keys
as the API reference's samples have them, through the official client.

Sources: the API reference's member and campaign response samples (the member's
``interests``, ``stats.ecommerce_data``, ``location.region``, ``marketing_permissions``,
``last_note``; the campaign's ``parent_campaign_id``, ``report_summary``, ``delivery_status``),
as copied in public code built from them; mailchimp-api.md §3 for "Member Exists" without a
``type`` (recorded, and kept: docs/sandbox.md).
"""

from __future__ import annotations

from typing import Any

import pytest
from mailchimp_marketing.api_client import ApiClientError

from flask_dmmail.sandbox.mailchimp import MailchimpState, member_address
from tests.sandbox.mailchimp_helpers import problem

EMAIL = member_address("ada")
MEMBER_KEYS = [
    "id",
    "email_address",
    "unique_email_id",
    "contact_id",
    "full_name",
    "web_id",
    "email_type",
    "status",
    "consents_to_one_to_one_messaging",
    "merge_fields",
    "interests",
    "stats",
    "ip_signup",
    "timestamp_signup",
    "ip_opt",
    "timestamp_opt",
    "member_rating",
    "last_changed",
    "language",
    "vip",
    "email_client",
    "location",
    "marketing_permissions",
    "last_note",
    "source",
    "tags_count",
    "tags",
    "list_id",
    "_links",
]
HTML = '<p>Hello</p><p><a href="*|UNSUB|*">Unsubscribe</a></p>'


def test_a_member_has_every_key_in_mailchimps_order(client: Any, list_id: str) -> None:
    member = client.lists.add_list_member(list_id, {"email_address": EMAIL, "status": "subscribed"})
    assert list(member) == MEMBER_KEYS
    assert member["interests"] == {}
    assert member["marketing_permissions"] == []
    assert member["stats"]["ecommerce_data"] == {
        "total_revenue": 0,
        "number_of_orders": 0,
        "currency_code": "USD",
    }
    assert member["location"]["region"] == ""
    assert set(member["last_note"]) == {"note_id", "created_at", "created_by", "note"}
    page = client.lists.get_list_members_info(list_id)
    assert list(page["members"][0]) == MEMBER_KEYS
    only = client.lists.get_list_members_info(list_id, fields=["members.last_note"])
    assert list(only["members"][0]) == ["last_note"]


def test_an_unsubscribed_members_reason_comes_after_its_status(
    client: Any, list_id: str, mc: MailchimpState
) -> None:
    client.lists.add_list_member(list_id, {"email_address": EMAIL, "status": "subscribed"})
    client.lists.update_list_member(list_id, EMAIL.lower(), {"status": "unsubscribed"})
    member = client.lists.get_list_member(list_id, EMAIL.lower())
    keys = list(member)
    assert keys[keys.index("status") + 1] == "unsubscribe_reason"


def test_a_campaign_has_the_samples_keys(client: Any, list_id: str, mc: MailchimpState) -> None:
    mc.add_members(list_id, [EMAIL])
    campaign = client.campaigns.create(
        {
            "type": "regular",
            "recipients": {"list_id": list_id},
            "settings": {
                "subject_line": "s",
                "title": "t",
                "from_name": "DM",
                "reply_to": "enquiries@digitalmarketplace.service.gov.uk",
            },
        }
    )
    assert campaign["parent_campaign_id"] == ""
    assert set(campaign["delivery_status"]) == {
        "enabled",
        "can_cancel",
        "status",
        "emails_sent",
        "emails_canceled",
    }
    assert "report_summary" not in campaign  # a draft has no report yet
    assert campaign["settings"]["auto_fb_post"] == []
    assert set(campaign["tracking"]) >= {"salesforce", "capsule"}
    client.campaigns.set_content(campaign["id"], {"html": HTML})
    client.campaigns.send(campaign["id"])
    sent = client.campaigns.get(campaign["id"])
    assert set(sent["report_summary"]) == {
        "opens",
        "unique_opens",
        "open_rate",
        "clicks",
        "subscriber_clicks",
        "click_rate",
        "ecommerce",
    }
    assert sent["delivery_status"]["emails_sent"] == 1
    assert sent["delivery_status"]["status"] == "delivered"
    listed = client.campaigns.list()["campaigns"][0]
    assert "report_summary" in listed and "parent_campaign_id" in listed


def test_member_exists_has_no_type_as_recorded(client: Any, list_id: str) -> None:
    client.lists.add_list_member(list_id, {"email_address": EMAIL, "status": "subscribed"})
    with pytest.raises(ApiClientError) as exc:
        client.lists.add_list_member(list_id, {"email_address": EMAIL, "status": "subscribed"})
    body = problem(exc)
    assert body["title"] == "Member Exists"
    assert "type" not in body
    assert set(body) == {"title", "status", "detail", "instance"}
