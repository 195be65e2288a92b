"""Verified sending domains and campaign readiness (issue 10, Mailchimp item 4), through the
official client.

Sources: mailchimp-api.md §3 ("Your Campaign is not ready to send.", an unverified
from-address one recorded cause); the ``/verified-domains`` endpoints and fields from the
client's ``verified_domains_api`` and docs.rs ``mailchimp_api::types::VerifiedDomains``
(``domain``, ``verified``, ``authenticated``, ``verification_email``, ``verification_sent``).
The checklist item's wording is the sandbox's own (docs/sandbox.md).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mailchimp_marketing.api_client import ApiClientError

from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.sandbox.mailchimp_helpers import problem

HTML = '<p>New opportunities</p><p><a href="*|UNSUB|*">Unsubscribe</a></p>'
SETTINGS = {
    "subject_line": "New opportunities",
    "title": "DOS alert",
    "from_name": "Digital Marketplace Team",
}
NOT_READY = "Your Campaign is not ready to send."


@pytest.fixture
def audience(mc: MailchimpState, list_id: str) -> str:
    mc.add_members(list_id, [f"s{i}@dm.org" for i in range(3)])
    return list_id


def _campaign(client: Any, list_id: str, reply_to: str) -> str:
    campaign = client.campaigns.create(
        {
            "type": "regular",
            "recipients": {"list_id": list_id},
            "settings": {**SETTINGS, "reply_to": reply_to},
        }
    )
    client.campaigns.set_content(campaign["id"], {"html": HTML})
    return str(campaign["id"])


def _domain_item(client: Any, campaign_id: str) -> dict[str, Any]:
    [item] = [
        i
        for i in client.campaigns.get_send_checklist(campaign_id)["items"]
        if i["heading"] == "Domain"
    ]
    return dict(item)


def test_the_account_starts_with_the_digital_marketplace_domain_verified(client: Any) -> None:
    domains = client.verifiedDomains.get_verified_domains_all()
    assert domains["total_items"] == 1
    [domain] = domains["domains"]
    assert domain["domain"] == "digitalmarketplace.service.gov.uk"
    assert domain["verified"] is True
    assert set(domain) >= {"authenticated", "verification_email", "verification_sent"}
    got = client.verifiedDomains.get_domain("digitalmarketplace.service.gov.uk")
    assert got["verified"] is True
    with pytest.raises(ApiClientError) as exc:
        client.verifiedDomains.get_domain("digital.gov.uk")
    assert exc.value.status_code == 404


def test_a_from_address_at_a_verified_domain_is_ready(client: Any, audience: str) -> None:
    campaign_id = _campaign(client, audience, "enquiries@digitalmarketplace.service.gov.uk")
    assert _domain_item(client, campaign_id)["type"] == "success"
    assert client.campaigns.get_send_checklist(campaign_id)["is_ready"] is True
    client.campaigns.send(campaign_id)
    assert client.campaigns.get(campaign_id)["status"] == "sent"


def test_a_from_address_at_an_unverified_domain_is_not_ready(
    client: Any, audience: str, mc: MailchimpState
) -> None:
    campaign_id = _campaign(client, audience, "dos@digital.gov.uk")
    checklist = client.campaigns.get_send_checklist(campaign_id)
    assert checklist["is_ready"] is False
    item = _domain_item(client, campaign_id)
    assert item["type"] == "error"
    assert "digital.gov.uk" in item["details"]
    with pytest.raises(ApiClientError) as exc:
        client.campaigns.send(campaign_id)
    assert exc.value.status_code == 400
    assert (problem(exc)["title"], problem(exc)["detail"]) == ("Bad Request", NOT_READY)
    when = (datetime.now(UTC) + timedelta(days=1)).replace(minute=15, second=0, microsecond=0)
    with pytest.raises(ApiClientError) as exc:
        client.campaigns.schedule(campaign_id, {"schedule_time": when.isoformat()})
    assert problem(exc)["detail"] == NOT_READY
    assert mc.sent_campaigns() == []


def test_adding_and_verifying_a_domain(client: Any, audience: str, mc: MailchimpState) -> None:
    campaign_id = _campaign(client, audience, "dos@digital.gov.uk")
    added = client.verifiedDomains.create_verified_domain(
        {"verification_email": "dos@digital.gov.uk"}
    )
    assert (added["domain"], added["verified"]) == ("digital.gov.uk", False)
    assert added["verification_email"] == "dos@digital.gov.uk"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", added["verification_sent"])
    assert client.campaigns.get_send_checklist(campaign_id)["is_ready"] is False
    with pytest.raises(ApiClientError) as exc:
        client.verifiedDomains.submit_domain_verification("digital.gov.uk", {"code": "nope"})
    assert problem(exc)["errors"][0]["field"] == "code"
    code = mc.domain_store.verification_code("digital.gov.uk")
    verified = client.verifiedDomains.submit_domain_verification("digital.gov.uk", {"code": code})
    assert verified["verified"] is True
    assert client.verifiedDomains.get_verified_domains_all()["total_items"] == 2
    client.campaigns.send(campaign_id)
    assert [c.reply_to for c in mc.sent_campaigns()] == ["dos@digital.gov.uk"]
    with pytest.raises(ApiClientError) as exc:
        client.verifiedDomains.create_verified_domain({"verification_email": "x@digital.gov.uk"})
    assert exc.value.status_code == 400


def test_deleting_a_domain_stops_sends_from_it(client: Any, audience: str) -> None:
    campaign_id = _campaign(client, audience, "enquiries@digitalmarketplace.service.gov.uk")
    client.verifiedDomains.delete_domain("digitalmarketplace.service.gov.uk")
    assert client.verifiedDomains.get_verified_domains_all()["total_items"] == 0
    with pytest.raises(ApiClientError) as exc:
        client.campaigns.send(campaign_id)
    assert problem(exc)["detail"] == NOT_READY


def test_seeded_verified_domains_replace_the_default(
    client: Any, audience: str, mc: MailchimpState
) -> None:
    mc.seed({"mailchimp": {"verified_domains": ["digital.gov.uk"]}})
    assert [d["domain"] for d in client.verifiedDomains.get_verified_domains_all()["domains"]] == [
        "digital.gov.uk"
    ]
    assert (
        client.campaigns.get_send_checklist(
            _campaign(client, audience, "enquiries@digitalmarketplace.service.gov.uk")
        )["is_ready"]
        is False
    )
    assert (
        client.campaigns.get_send_checklist(_campaign(client, audience, "dos@digital.gov.uk"))[
            "is_ready"
        ]
        is True
    )
    with pytest.raises(ValueError, match="verified_domains"):
        mc.seed({"mailchimp": {"verified_domains": ["not a domain"]}})
    mc.reset()
    assert [d["domain"] for d in client.verifiedDomains.get_verified_domains_all()["domains"]] == [
        "digitalmarketplace.service.gov.uk"
    ]
