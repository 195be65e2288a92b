"""Paging, filters, sorting and ``fields``/``exclude_fields`` of the members collection."""

from __future__ import annotations

import time
from typing import Any

import pytest
from mailchimp_marketing.api_client import ApiClientError

from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.sandbox.mailchimp_helpers import MailchimpServer, problem, raw

EMAILS = [f"supplier{i:04d}@dm.org" for i in range(2500)]


@pytest.fixture
def big_list(mc: MailchimpState, list_id: str) -> str:
    mc.add_members(list_id, EMAILS)
    return list_id


def test_default_page_is_10_with_total_items(client: Any, big_list: str) -> None:
    page = client.lists.get_list_members_info(big_list)
    assert len(page["members"]) == 10
    assert page["total_items"] == 2500
    assert page["list_id"] == big_list
    assert [m["email_address"] for m in page["members"]] == EMAILS[:10]


def test_walking_every_page_sees_every_member_once(client: Any, big_list: str) -> None:
    seen: list[str] = []
    offset = 0
    while True:
        page = client.lists.get_list_members_info(
            big_list,
            count=1000,
            offset=offset,
            fields=["members.email_address", "total_items"],
        )
        seen.extend(m["email_address"] for m in page["members"])
        offset += 1000
        if offset >= page["total_items"]:
            break
    assert seen == EMAILS
    assert set(page["members"][0]) == {"email_address"}


def test_count_over_1000_gives_at_most_1000(
    mc_server: MailchimpServer, mc: MailchimpState, big_list: str
) -> None:
    # Mailchimp returns at most 1,000 records a page (mailchimp-api.md §2, "max 1000"); only
    # the official client refuses a larger count, before sending it, so ask over raw HTTP.
    for count in (1001, 5000):
        response = raw(mc_server, "GET", f"/lists/{big_list}/members?count={count}", mc.api_key)
        assert response.status_code == 200
        body = response.json()
        assert len(body["members"]) == 1000
        assert body["total_items"] == len(EMAILS)


def test_status_filter_including_archived(client: Any, mc: MailchimpState, list_id: str) -> None:
    mc.add_members(list_id, ["a@dm.org", "b@dm.org"])
    mc.add_members(list_id, ["c@dm.org"], status="unsubscribed")
    mc.add_members(list_id, ["d@dm.org"], status="archived")

    def emails(**query: Any) -> list[str]:
        page = client.lists.get_list_members_info(list_id, **query)
        return [m["email_address"] for m in page["members"]]

    assert emails() == ["a@dm.org", "b@dm.org", "c@dm.org"]  # archived left out
    assert emails(status="subscribed") == ["a@dm.org", "b@dm.org"]
    assert emails(status="unsubscribed") == ["c@dm.org"]
    assert emails(status="archived") == ["d@dm.org"]


def test_bad_status_filter_is_400(client: Any, list_id: str) -> None:
    with pytest.raises(ApiClientError) as exc:
        client.lists.get_list_members_info(list_id, status="sleeping")
    assert problem(exc)["errors"][0]["field"] == "status"


def test_since_last_changed_and_sort(client: Any, list_id: str, mc_server: MailchimpServer) -> None:
    now = [1_700_000_000.0]
    state = mc_server.state
    state.clock = lambda: now[0]
    try:
        state.add_members(list_id, ["first@dm.org", "second@dm.org"])
        now[0] += 60
        state.add_members(list_id, ["third@dm.org"])
        now[0] += 60
        client.lists.update_list_member(list_id, "first@dm.org", {"merge_fields": {"FNAME": "F"}})
    finally:
        state.clock = time.time
    since = "2023-11-14T22:14:20+00:00"  # 1_700_000_060
    page = client.lists.get_list_members_info(
        list_id, since_last_changed=since, sort_field="last_changed", sort_dir="DESC"
    )
    assert [m["email_address"] for m in page["members"]] == ["first@dm.org", "third@dm.org"]
    assert page["total_items"] == 2
    ascending = client.lists.get_list_members_info(list_id, sort_field="last_changed")
    assert [m["email_address"] for m in ascending["members"]] == [
        "second@dm.org",
        "third@dm.org",
        "first@dm.org",
    ]


def test_the_view_follows_changes_between_pages(
    client: Any, mc: MailchimpState, big_list: str
) -> None:
    first = client.lists.get_list_members_info(big_list, count=5, status="subscribed")
    client.lists.update_list_member(big_list, EMAILS[0], {"status": "unsubscribed"})
    again = client.lists.get_list_members_info(big_list, count=5, status="subscribed")
    assert first["total_items"] == 2500
    assert again["total_items"] == 2499
    assert again["members"][0]["email_address"] == EMAILS[1]


@pytest.mark.parametrize(
    ("fields", "exclude", "expected"),
    [
        pytest.param(["total_items"], None, {"total_items": 3}, id="total-only"),
        pytest.param(
            ["members.email_address", "members.merge_fields.FNAME"],
            None,
            {
                "members": [
                    {"email_address": "a@dm.org", "merge_fields": {"FNAME": "A"}},
                    {"email_address": "b@dm.org", "merge_fields": {"FNAME": "A"}},
                    {"email_address": "c@dm.org", "merge_fields": {"FNAME": "A"}},
                ]
            },
            id="nested-dot-paths",
        ),
        pytest.param(
            ["members.status", "list_id"],
            ["members.status"],
            {"members": [{}, {}, {}], "list_id": None},
            id="include-then-exclude",
        ),
    ],
)
def test_fields_and_exclude_fields(
    client: Any,
    mc: MailchimpState,
    list_id: str,
    fields: list[str],
    exclude: list[str] | None,
    expected: dict[str, Any],
) -> None:
    mc.add_members(list_id, ["a@dm.org", "b@dm.org", "c@dm.org"], merge_fields={"FNAME": "A"})
    if "list_id" in expected:
        expected = {**expected, "list_id": list_id}
    query: dict[str, Any] = {"fields": fields}
    if exclude is not None:
        query["exclude_fields"] = exclude
    assert client.lists.get_list_members_info(list_id, **query) == expected


def test_exclude_fields_on_a_single_member(client: Any, mc: MailchimpState, list_id: str) -> None:
    mc.add_members(list_id, ["a@dm.org"])
    member = client.lists.get_list_member(
        list_id, "a@dm.org", exclude_fields=["_links", "merge_fields", "location.timezone"]
    )
    assert "_links" not in member and "merge_fields" not in member
    assert "timezone" not in member["location"]
    assert member["email_address"] == "a@dm.org"


def test_fields_matching_nothing_gives_the_raw_response(client: Any, list_id: str) -> None:
    # {} is falsy, so the official client hands back the requests.Response (reference §1).
    result = client.lists.get_list(list_id, fields=["no_such_field"])
    assert result.status_code == 200
    assert result.json() == {}


def test_bulk_seeding_is_idempotent_and_counts(mc: MailchimpState, list_id: str) -> None:
    assert mc.add_members(list_id, EMAILS[:100]) == 100
    assert mc.add_members(list_id, EMAILS[:150]) == 50
    assert mc.member_count(list_id) == 150
    assert mc.member_count(list_id, "subscribed") == 150
    with pytest.raises(ValueError):
        mc.add_members(list_id, ["x@dm.org"], status="sleeping")


def test_fields_on_members_give_the_same_values_as_the_full_object(
    client: Any, mc: MailchimpState, list_id: str
) -> None:
    mc.add_members(list_id, ["a@dm.org", "b@dm.org"], merge_fields={"FNAME": "A"}, tags=["t"])
    client.lists.update_list_member(list_id, "b@dm.org", {"status": "unsubscribed"})
    full = client.lists.get_list_members_info(list_id)
    keys = [k for m in full["members"] for k in m]
    assert "unsubscribe_reason" in keys
    chosen = client.lists.get_list_members_info(
        list_id, fields=[f"members.{k}" for k in dict.fromkeys(keys)]
    )
    assert chosen == {"members": full["members"]}
    one = client.lists.get_list_members_info(list_id, fields=["members.tags.name"])
    assert one == {"members": [{"tags": [{"name": "t"}]}, {"tags": [{"name": "t"}]}]}
