"""What Mailchimp refuses or ignores that the sandbox used to take (issue 10, Mailchimp item
5), through the official client: ``tags`` on PUT, bad ``email_type``/``vip``/``language``, the
plan's audience cap, and a client whose ``server`` names another data centre than its key.

Sources: mailchimp-api.md §2 (PUT takes no ``tags``: 3.0.76 spec; GET /lists ``constraints``,
"Plans cap the audience count (free: 1)"), §1 (the key's ``-us5`` ending is its data centre;
the client puts ``server`` into its host) and §3 (401 "API Key Invalid": "…or you've attempted
to access the wrong datacenter."); the member schema's ``email_type``/``vip``/``language``
types (the API reference).
"""

from __future__ import annotations

from typing import Any

import pytest
from mailchimp_marketing.api_client import ApiClientError

from flask_dmmail.sandbox.mailchimp import MailchimpState, member_address, subscriber_hash
from tests.sandbox.mailchimp_helpers import MailchimpServer, make_client, problem

EMAIL = member_address("ada")
HASH = subscriber_hash(EMAIL)
WRONG_DC = "Your API key may be invalid, or you've attempted to access the wrong datacenter."
LIST_BODY = {
    "name": "DOS suppliers",
    "contact": {"company": "CCS", "address1": "1 Street", "city": "Liverpool", "country": "GB"},
    "permission_reminder": "You signed up.",
    "campaign_defaults": {
        "from_name": "DM",
        "from_email": "enquiries@digitalmarketplace.service.gov.uk",
        "subject": "",
        "language": "en",
    },
    "email_type_option": False,
}


def test_put_ignores_tags_on_create_and_on_update(client: Any, list_id: str) -> None:
    body = {"email_address": EMAIL, "status_if_new": "subscribed", "tags": ["dos", "g-cloud"]}
    created = client.lists.set_list_member(list_id, HASH, body)
    assert (created["tags_count"], created["tags"]) == (0, [])
    client.lists.update_list_member_tags(list_id, HASH, {"tags": [{"name": "kept"}]})
    updated = client.lists.set_list_member(list_id, HASH, body)
    assert [t["name"] for t in updated["tags"]] == ["kept"]
    # POST still takes them
    other = member_address("grace")
    posted = client.lists.add_list_member(
        list_id, {"email_address": other, "status": "subscribed", "tags": ["dos"]}
    )
    assert posted["tags_count"] == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email_type", "pdf", "Data presented is not one of the accepted values: html, text."),
        ("email_type", None, "Data presented is not one of the accepted values: html, text."),
        ("vip", "yes", "Schema describes boolean, string found instead"),
        ("vip", 1, "Schema describes boolean, integer found instead"),
        ("language", 7, "Schema describes string, integer found instead"),
        ("language", "English", "This value is not a valid language."),
    ],
)
def test_bad_member_fields_are_refused_and_nothing_changes(
    client: Any, list_id: str, field: str, value: Any, message: str
) -> None:
    with pytest.raises(ApiClientError) as exc:
        client.lists.add_list_member(
            list_id, {"email_address": EMAIL, "status": "subscribed", field: value}
        )
    body = problem(exc)
    assert body["title"] == "Invalid Resource"
    assert body["errors"] == [{"field": field, "message": message}]
    assert client.lists.get_list_members_info(list_id)["total_items"] == 0
    client.lists.add_list_member(
        list_id, {"email_address": EMAIL, "status": "subscribed", "merge_fields": {"FNAME": "A"}}
    )
    with pytest.raises(ApiClientError):
        client.lists.update_list_member(
            list_id, HASH, {field: value, "merge_fields": {"FNAME": "B"}}
        )
    member = client.lists.get_list_member(list_id, HASH)
    assert (member["merge_fields"]["FNAME"], member["email_type"], member["vip"]) == (
        "A",
        "html",
        False,
    )


def test_good_member_fields_are_stored(client: Any, list_id: str) -> None:
    member = client.lists.add_list_member(
        list_id,
        {
            "email_address": EMAIL,
            "status": "subscribed",
            "email_type": "text",
            "vip": True,
            "language": "pt_PT",
        },
    )
    assert (member["email_type"], member["vip"], member["language"]) == ("text", True, "pt_PT")


def test_the_default_plan_allows_three_audiences(client: Any) -> None:
    for n in range(3):
        client.lists.create_list({**LIST_BODY, "name": f"Audience {n}"})
    constraints = client.lists.get_all_lists()["constraints"]
    assert constraints == {"may_create": False, "max_instances": 3, "current_total_instances": 3}
    with pytest.raises(ApiClientError) as exc:
        client.lists.create_list(LIST_BODY)
    assert exc.value.status_code == 403


def test_the_plan_is_seedable(client: Any, mc: MailchimpState) -> None:
    mc.seed({"mailchimp": {"max_lists": 1}})
    client.lists.create_list(LIST_BODY)
    with pytest.raises(ApiClientError) as exc:
        client.lists.create_list(LIST_BODY)
    assert exc.value.status_code == 403
    with pytest.raises(ValueError, match="max_lists"):
        mc.seed({"mailchimp": {"max_lists": "lots"}})
    mc.reset()
    assert client.lists.get_all_lists()["constraints"]["max_instances"] == 3


def test_a_client_on_another_data_centre_than_its_key_is_refused(
    mc_server: MailchimpServer, mc: MailchimpState
) -> None:
    assert mc.api_key.endswith("-us5") and mc.datacenter == "us5"
    wrong = make_client(mc_server.url, mc.api_key, server="us6")
    with pytest.raises(ApiClientError) as exc:
        wrong.ping.get()
    assert exc.value.status_code == 401
    assert (problem(exc)["title"], problem(exc)["detail"]) == ("API Key Invalid", WRONG_DC)
    right = make_client(mc_server.url, mc.api_key, server="us5")
    assert right.ping.get() == {"health_status": "Everything's Chimpy!"}
    # Without a server the client takes it from the key, as it does live.
    derived = make_client(mc_server.url, mc.api_key, server="invalid-server")
    derived.set_config({"api_key": mc.api_key})
    assert derived.ping.get()["health_status"]
    # A key of another data centre is refused at this one.
    other = mc.add_api_key("0123456789abcdef0123456789abcdef-us6")
    with pytest.raises(ApiClientError) as exc:
        make_client(mc_server.url, other, server="us5").ping.get()
    assert exc.value.status_code == 401
    assert make_client(mc_server.url, other, server="us6").ping.get()["health_status"]


def test_an_oauth_token_works_at_the_accounts_data_centre_only(
    mc_server: MailchimpServer, mc: MailchimpState
) -> None:
    token = mc.add_access_token()

    def ping(server: str) -> Any:
        client = make_client(mc_server.url, "unused-us5", server=server)
        client.set_config({"access_token": token, "server": server})
        return client.ping.get()

    assert ping("us5")["health_status"]
    with pytest.raises(ApiClientError) as exc:
        ping("us9")
    assert exc.value.status_code == 401
