"""``/search-members`` (issue 10, Mailchimp item 7) through the official client's
``searchMembers.search``.

Sources: the client's ``search_members_api`` (``query``, ``list_id``, ``fields``,
``exclude_fields``; "Query should be a valid email, or a string representing a contact's first
or last name"); the answer's ``exact_matches`` and ``full_search``, each
``{members, total_items}`` (docs.rs ``mailchimp_api::types::MembersData``).
"""

from __future__ import annotations

from typing import Any

import pytest
from mailchimp_marketing.api_client import ApiClientError

from flask_dmmail.sandbox.mailchimp import MailchimpState, member_address
from tests.sandbox.mailchimp_helpers import problem

ADA = member_address("ada.lovelace")
GRACE = member_address("grace.hopper")


@pytest.fixture
def two_lists(mc: MailchimpState, list_id: str) -> tuple[str, str]:
    other = mc.create_list("Buyers")
    mc.add_members(list_id, [ADA], merge_fields={"FNAME": "Ada", "LNAME": "Lovelace"})
    mc.add_members(list_id, [GRACE], merge_fields={"FNAME": "Grace", "LNAME": "Hopper"})
    mc.add_members(other, [ADA], merge_fields={"FNAME": "Ada", "LNAME": "Lovelace"})
    mc.add_members(other, [member_address("gone")], status="archived")
    return list_id, other


def _emails(part: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["list_id"], m["email_address"]) for m in part["members"]]


def test_an_address_is_an_exact_match_in_every_audience(
    client: Any, two_lists: tuple[str, str]
) -> None:
    first, second = two_lists
    found = client.searchMembers.search(ADA.upper())
    assert _emails(found["exact_matches"]) == [(first, ADA), (second, ADA)]
    assert found["exact_matches"]["total_items"] == 2
    assert found["full_search"] == {"members": [], "total_items": 0}


def test_a_name_or_part_of_an_address_is_a_full_search_match(
    client: Any, two_lists: tuple[str, str]
) -> None:
    first, second = two_lists
    by_name = client.searchMembers.search("lovelace")
    assert by_name["exact_matches"]["total_items"] == 0
    assert _emails(by_name["full_search"]) == [(first, ADA), (second, ADA)]
    by_full_name = client.searchMembers.search("Grace Hopper", list_id=first)
    assert _emails(by_full_name["full_search"]) == [(first, GRACE)]
    assert client.searchMembers.search("nobody")["full_search"]["total_items"] == 0


def test_list_id_limits_the_search_and_archived_members_are_left_out(
    client: Any, two_lists: tuple[str, str]
) -> None:
    _first, second = two_lists
    assert _emails(client.searchMembers.search(ADA, list_id=second)["exact_matches"]) == [
        (second, ADA)
    ]
    assert client.searchMembers.search(member_address("gone"))["exact_matches"]["total_items"] == 0
    only = client.searchMembers.search(ADA, fields=["exact_matches.members.email_address"])
    assert only == {"exact_matches": {"members": [{"email_address": ADA}] * 2}}


def test_a_bad_search_is_refused(client: Any, two_lists: tuple[str, str]) -> None:
    with pytest.raises(ApiClientError) as exc:
        client.searchMembers.search("ada", list_id="0000000000")
    assert exc.value.status_code == 404
    with pytest.raises(ApiClientError) as exc:
        client.searchMembers.search(" ")
    assert problem(exc)["errors"][0]["field"] == "query"
