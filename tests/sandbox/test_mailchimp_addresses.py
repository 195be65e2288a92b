"""Addresses Mailchimp refuses though they are well formed (issue 10, Mailchimp item 1): the
"looks fake or invalid" rule, on by default and wider than example.com, and "signed up to a lot
of lists very recently", through the official client.

Source: mailchimp-api.md §3 (the details; foo@example.com refused live). Which addresses
Mailchimp calls fake is not published: the sandbox's rule is documented in docs/sandbox.md.
"""

from __future__ import annotations

from typing import Any

import pytest
from mailchimp_marketing.api_client import ApiClientError

from flask_dmmail.sandbox.mailchimp import MEMBER_DOMAIN, MailchimpState, member_address
from tests.sandbox.mailchimp_helpers import problem


def _looks_fake(email: str) -> str:
    return f"{email} looks fake or invalid, please enter a real email address."


def _busy(email: str) -> str:
    return (
        f"{email} has signed up to a lot of lists very recently; "
        "we're not allowing more signups for now"
    )


def _refused(exc: pytest.ExceptionInfo[ApiClientError], detail: str) -> None:
    assert exc.value.status_code == 400
    body = problem(exc)
    assert (body["title"], body["detail"]) == ("Invalid Resource", detail)


@pytest.mark.parametrize(
    "email",
    [
        "someone@example.com",
        "someone@example.gov.uk",  # example under any public suffix
        "someone@dm.example.gov.uk",  # and its subdomains
        "someone@test.co.uk",
        "someone@test.org",
        "someone@host.invalid",
        "someone@mail.internal",
    ],
)
def test_fake_looking_addresses_are_refused_by_default(
    client: Any, list_id: str, email: str
) -> None:
    with pytest.raises(ApiClientError) as post:
        client.lists.add_list_member(list_id, {"email_address": email, "status": "subscribed"})
    _refused(post, _looks_fake(email))
    with pytest.raises(ApiClientError) as put:
        client.lists.set_list_member(
            list_id, email.lower(), {"email_address": email, "status_if_new": "subscribed"}
        )
    _refused(put, _looks_fake(email))
    assert client.lists.get_list_members_info(list_id)["total_items"] == 0


@pytest.mark.parametrize(
    "email",
    [member_address("ada"), "ada@notexample.com", "ada@example-supplier.co.uk", "ada@dm.org"],
)
def test_real_looking_addresses_are_accepted(client: Any, list_id: str, email: str) -> None:
    added = client.lists.add_list_member(list_id, {"email_address": email, "status": "subscribed"})
    assert added["status"] == "subscribed"


def test_member_address_is_at_the_documented_domain() -> None:
    assert member_address("grace") == f"grace@{MEMBER_DOMAIN}"
    assert member_address().endswith("@digitalmarketplace.service.gov.uk")


def test_changing_an_address_to_a_fake_one_is_refused(client: Any, list_id: str) -> None:
    email = member_address("ada")
    client.lists.add_list_member(list_id, {"email_address": email, "status": "subscribed"})
    with pytest.raises(ApiClientError) as exc:
        client.lists.update_list_member(
            list_id, email.lower(), {"email_address": "ada@example.gov.uk"}
        )
    _refused(exc, _looks_fake("ada@example.gov.uk"))


def test_the_batch_endpoint_reports_fake_addresses_per_member(client: Any, list_id: str) -> None:
    result = client.lists.batch_list_members(
        list_id,
        {
            "members": [
                {"email_address": member_address("ok"), "status": "subscribed"},
                {"email_address": "no@example.gov.uk", "status": "subscribed"},
            ]
        },
    )
    assert result["total_created"] == 1
    assert [(e["email_address"], e["error"]) for e in result["errors"]] == [
        ("no@example.gov.uk", _looks_fake("no@example.gov.uk"))
    ]


def test_the_rule_can_be_switched_off_and_reset_switches_it_on(
    client: Any, list_id: str, mc: MailchimpState
) -> None:
    mc.set_fake_rule(False)
    client.lists.add_list_member(
        list_id, {"email_address": "a@example.com", "status": "subscribed"}
    )
    mc.reset()
    other = mc.create_list("Suppliers")
    with pytest.raises(ApiClientError):
        client.lists.add_list_member(
            other, {"email_address": "a@example.com", "status": "subscribed"}
        )


def test_a_seeded_busy_address_cannot_sign_up(
    client: Any, list_id: str, mc: MailchimpState
) -> None:
    busy = member_address("everywhere")
    mc.seed({"mailchimp": {"busy_addresses": [busy]}})
    with pytest.raises(ApiClientError) as exc:
        client.lists.add_list_member(list_id, {"email_address": busy, "status": "pending"})
    _refused(exc, _busy(busy))
    # Not a signup: an unsubscribed contact may still be recorded.
    added = client.lists.add_list_member(list_id, {"email_address": busy, "status": "unsubscribed"})
    assert added["status"] == "unsubscribed"


def test_signing_up_to_more_audiences_than_the_limit_within_the_window(
    client: Any, mc: MailchimpState
) -> None:
    now = [1_700_000_000.0]
    mc.clock = lambda: now[0]
    mc.signup_limit = 2
    mc.signup_window = 3600
    lists = [mc.create_list(f"Audience {n}") for n in range(4)]
    email = member_address("keen")
    for list_id in lists[:2]:
        client.lists.add_list_member(list_id, {"email_address": email, "status": "subscribed"})
    with pytest.raises(ApiClientError) as exc:
        client.lists.add_list_member(lists[2], {"email_address": email, "status": "subscribed"})
    _refused(exc, _busy(email))
    # another address is not held back, and the same one may sign up once the window passed
    other = member_address("calm")
    client.lists.add_list_member(lists[2], {"email_address": other, "status": "subscribed"})
    now[0] += 3601
    added = client.lists.add_list_member(lists[2], {"email_address": email, "status": "subscribed"})
    assert added["status"] == "subscribed"


def test_signups_are_counted_per_address_across_the_account(
    client: Any, mc: MailchimpState
) -> None:
    mc.signup_limit = 1
    first, second = mc.create_list("One"), mc.create_list("Two")
    email = member_address("twice")
    client.lists.set_list_member(
        first, email, {"email_address": email, "status_if_new": "subscribed"}
    )
    result = client.lists.batch_list_members(
        second, {"members": [{"email_address": email, "status": "subscribed"}]}
    )
    assert [e["error"] for e in result["errors"]] == [_busy(email)]
