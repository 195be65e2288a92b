"""An audience's merge fields and the checks of members' values (issue 10, Mailchimp item 2),
through the official client.

Sources: the default fields as recorded in grouparoo/grouparoo's fixtures
(``plugins/@grouparoo/mailchimp/__tests__/fixtures/mailchimp-export.js``); the error shape
and texts as recorded in ibericode/mailchimp-for-wordpress#545 and #662, MailChimp.Net#631,
mailchimp/mc-magento2#987 ("Your merge fields were invalid.", "Please enter a value", "Please
enter a complete address", "Please enter the date", "Please enter a month (01-12) and a day
(01-31)"), and VingtCinq/python-mailchimp#146 (a boolean: "Data did not match any of the
schemas described in anyOf."); the endpoints and ``skip_merge_validation`` from the client's
``lists_api``.
"""

from __future__ import annotations

from typing import Any

import pytest
from mailchimp_marketing.api_client import ApiClientError

from flask_dmmail.sandbox.mailchimp import MailchimpState, member_address, subscriber_hash
from tests.sandbox.mailchimp_helpers import problem

EMAIL = member_address("ada")
INVALID = "Your merge fields were invalid."
GENERIC = (
    "The resource submitted could not be validated. "
    "For field-specific details, see the 'errors' array."
)
ADDRESS = {"addr1": "1 Main St", "city": "Leeds", "state": "Yorks", "zip": "LS1 1AA"}


def _add(client: Any, list_id: str, merge: Any, **kwargs: Any) -> Any:
    body = {"email_address": EMAIL, "status": "subscribed", "merge_fields": merge}
    return client.lists.add_list_member(list_id, body, **kwargs)


def _errors(exc: pytest.ExceptionInfo[ApiClientError], detail: str = INVALID) -> list[Any]:
    assert exc.value.status_code == 400
    body = problem(exc)
    assert (body["title"], body["detail"]) == ("Invalid Resource", detail)
    return [(e["field"], e["message"]) for e in body["errors"]]


def test_a_new_audience_has_the_five_default_fields(client: Any, list_id: str) -> None:
    page = client.lists.get_list_merge_fields(list_id)
    assert page["list_id"] == list_id
    assert page["total_items"] == 5
    fields = {f["tag"]: f for f in page["merge_fields"]}
    assert [f["tag"] for f in page["merge_fields"]] == sorted(fields)  # by tag, as recorded
    assert {tag: (f["merge_id"], f["type"], f["options"]) for tag, f in fields.items()} == {
        "FNAME": (1, "text", {"size": 25}),
        "LNAME": (2, "text", {"size": 25}),
        "ADDRESS": (3, "address", {"default_country": 164}),
        "PHONE": (4, "phone", {"phone_format": "none"}),
        "BIRTHDAY": (5, "birthday", {"date_format": "MM/DD"}),
    }
    assert not any(f["required"] for f in fields.values())
    assert fields["FNAME"]["name"] == "First Name"
    assert set(fields["FNAME"]) >= {
        "default_value",
        "public",
        "display_order",
        "help_text",
        "list_id",
        "_links",
    }
    assert client.lists.get_list_merge_field(list_id, "3")["tag"] == "ADDRESS"
    with pytest.raises(ApiClientError) as exc:
        client.lists.get_list_merge_field(list_id, "99")
    assert exc.value.status_code == 404
    assert client.lists.get_list(list_id)["stats"]["merge_field_count"] == 5


def test_the_collection_filters_and_pages(client: Any, list_id: str) -> None:
    client.lists.add_list_merge_field(
        list_id, {"name": "Org", "type": "text", "tag": "ORG", "required": True}
    )
    assert [
        f["tag"] for f in client.lists.get_list_merge_fields(list_id, type="text")["merge_fields"]
    ] == ["FNAME", "LNAME", "ORG"]
    required = client.lists.get_list_merge_fields(list_id, required=True)
    assert [f["tag"] for f in required["merge_fields"]] == ["ORG"]
    page = client.lists.get_list_merge_fields(list_id, count=2, offset=2)
    assert [f["tag"] for f in page["merge_fields"]] == ["FNAME", "LNAME"]
    assert page["total_items"] == 6


def test_a_required_field_must_be_given_unless_validation_is_skipped(
    client: Any, list_id: str
) -> None:
    made = client.lists.add_list_merge_field(
        list_id, {"name": "Organisation", "type": "text", "tag": "org", "required": True}
    )
    assert (made["tag"], made["merge_id"], made["required"]) == ("ORG", 6, True)
    for merge in ({"FNAME": "Ada"}, {"ORG": ""}):
        with pytest.raises(ApiClientError) as exc:
            _add(client, list_id, merge)
        assert _errors(exc) == [("ORG", "Please enter a value")]
    member = _add(client, list_id, {"FNAME": "Ada"}, skip_merge_validation=True)
    assert member["merge_fields"]["ORG"] == ""
    # An update need not repeat it, but may not empty it.
    client.lists.update_list_member(list_id, subscriber_hash(EMAIL), {"vip": True})
    with pytest.raises(ApiClientError) as exc:
        client.lists.update_list_member(
            list_id, subscriber_hash(EMAIL), {"merge_fields": {"ORG": ""}}
        )
    assert _errors(exc) == [("ORG", "Please enter a value")]


def test_wrong_types_are_refused_naming_each_field(client: Any, list_id: str) -> None:
    with pytest.raises(ApiClientError) as exc:
        _add(client, list_id, {"FNAME": 123, "ADDRESS": "1 Main St", "BIRTHDAY": "not a date"})
    assert _errors(exc) == [
        ("FNAME", "This value should be of type string."),
        ("ADDRESS", "Please enter a complete address"),
        ("BIRTHDAY", "Please enter a month (01-12) and a day (01-31)"),
    ]
    assert client.lists.get_list_members_info(list_id)["total_items"] == 0


@pytest.mark.parametrize(
    ("kind", "options", "bad", "message", "good"),
    [
        (
            "date",
            {"date_format": "MM/DD/YYYY"},
            "31/12/2024",
            "Please enter the date",
            "12/31/2024",
        ),
        (
            "date",
            {"date_format": "DD/MM/YYYY"},
            "12/31/2024",
            "Please enter the date",
            "31/12/2024",
        ),
        ("number", {}, "lots", "Please enter a number", 42),
        ("zip", {}, "LS1", "Please enter a valid zip code", "30312"),
        ("url", {}, "not a url", "Please enter a valid URL", "https://www.gov.uk"),
        (
            "phone",
            {"phone_format": "US"},
            "12",
            "Please enter a valid phone number",
            "404-555-0100",
        ),
        ("dropdown", {"choices": ["a", "b"]}, "c", "Please choose one of the options", "b"),
        ("address", {}, {"addr1": "1 Main St"}, "Please enter a complete address", ADDRESS),
    ],
)
def test_each_type_is_checked(
    client: Any,
    list_id: str,
    kind: str,
    options: dict[str, Any],
    bad: Any,
    message: str,
    good: Any,
) -> None:
    client.lists.add_list_merge_field(
        list_id, {"name": "X", "type": kind, "tag": "X", "options": options}
    )
    with pytest.raises(ApiClientError) as exc:
        _add(client, list_id, {"X": bad})
    assert _errors(exc) == [("X", message)]
    assert _add(client, list_id, {"X": good})["merge_fields"]["X"] == good


def test_a_value_of_no_schema_type_is_a_schema_error(client: Any, list_id: str) -> None:
    with pytest.raises(ApiClientError) as exc:
        _add(client, list_id, {"FNAME": True, "LNAME": ["x"]})
    assert _errors(exc, GENERIC) == [
        ("merge_fields.FNAME", "Data did not match any of the schemas described in anyOf."),
        ("merge_fields.LNAME", "Data did not match any of the schemas described in anyOf."),
    ]


def test_unknown_tags_are_dropped_and_good_values_read_back(client: Any, list_id: str) -> None:
    member = _add(
        client,
        list_id,
        {"FNAME": "Ada", "NICKNAME": "Countess", "ADDRESS": ADDRESS, "BIRTHDAY": "12/10"},
    )
    merge = member["merge_fields"]
    assert "NICKNAME" not in merge
    assert merge["FNAME"] == "Ada"
    assert merge["ADDRESS"] == ADDRESS
    assert merge["BIRTHDAY"] == "12/10"
    assert merge["PHONE"] == ""
    again = client.lists.get_list_member(list_id, subscriber_hash(EMAIL))
    assert "NICKNAME" not in again["merge_fields"]


def test_updating_and_deleting_a_field(client: Any, list_id: str) -> None:
    _add(client, list_id, {"FNAME": "Ada", "PHONE": "0113 496 0000"})
    changed = client.lists.update_list_merge_field(
        list_id, "1", {"name": "Given name", "required": True, "help_text": "As on your ID"}
    )
    assert (changed["name"], changed["required"], changed["type"]) == ("Given name", True, "text")
    client.lists.delete_list_merge_field(list_id, "4")  # PHONE
    member = client.lists.get_list_member(list_id, subscriber_hash(EMAIL))
    assert "PHONE" not in member["merge_fields"]
    assert [f["tag"] for f in client.lists.get_list_merge_fields(list_id)["merge_fields"]] == [
        "ADDRESS",
        "BIRTHDAY",
        "FNAME",
        "LNAME",
    ]
    # a new PHONE does not bring the old value back
    client.lists.add_list_merge_field(list_id, {"name": "Phone", "type": "phone", "tag": "PHONE"})
    member = client.lists.get_list_member(list_id, subscriber_hash(EMAIL))
    assert member["merge_fields"]["PHONE"] == ""


def test_creating_a_field_is_checked(client: Any, list_id: str) -> None:
    with pytest.raises(ApiClientError) as exc:
        client.lists.add_list_merge_field(list_id, {"tag": "ORG"})
    assert problem(exc)["errors"][0]["message"] == "Required fields were not provided: name, type"
    with pytest.raises(ApiClientError) as exc:
        client.lists.add_list_merge_field(list_id, {"name": "Org", "type": "colour"})
    assert problem(exc)["errors"][0]["field"] == "type"
    with pytest.raises(ApiClientError) as exc:
        client.lists.add_list_merge_field(list_id, {"name": "Dup", "type": "text", "tag": "FNAME"})
    assert exc.value.status_code == 400
    made = client.lists.add_list_merge_field(list_id, {"name": "Untagged", "type": "number"})
    assert made["tag"] == "MMERGE6"


def test_the_batch_endpoint_names_the_field(client: Any, list_id: str) -> None:
    result = client.lists.batch_list_members(
        list_id,
        {
            "members": [
                {"email_address": EMAIL, "status": "subscribed", "merge_fields": {"FNAME": 1}},
                {"email_address": member_address("b"), "status": "subscribed"},
            ]
        },
    )
    assert result["total_created"] == 1
    [error] = result["errors"]
    assert (error["error"], error["field"], error["field_message"]) == (
        INVALID,
        "FNAME",
        "This value should be of type string.",
    )


def test_seeded_merge_fields(mc: MailchimpState, client: Any) -> None:
    mc.seed(
        {
            "mailchimp": {
                "lists": [
                    {
                        "id": "feedface01",
                        "name": "Seeded",
                        "merge_fields": [
                            {"tag": "FNAME", "required": True},
                            {"tag": "ORGID", "type": "number", "name": "Organisation id"},
                        ],
                    }
                ]
            }
        }
    )
    fields = {f["tag"]: f for f in client.lists.get_list_merge_fields("feedface01")["merge_fields"]}
    assert fields["FNAME"]["required"] is True
    assert (fields["ORGID"]["type"], fields["ORGID"]["merge_id"]) == ("number", 6)
    with pytest.raises(ApiClientError) as exc:
        _add(client, "feedface01", {"ORGID": 7})
    assert _errors(exc) == [("FNAME", "Please enter a value")]
    with pytest.raises(ValueError, match="merge field"):
        mc.seed({"lists": [{"id": "feedface01", "merge_fields": [{"tag": "X", "type": "odd"}]}]})
