"""``subscribe`` and ``subscribe_many`` against the sandbox, through the official client."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_dmmail import DMMail
from flask_dmmail.errors import (
    InvalidEmailAddressError,
    InvalidInputError,
    MailchimpNotFoundError,
    UnknownAudienceError,
)
from flask_dmmail.mailchimp import Audiences, SubscribeOutcome, subscriber_hash
from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.mailchimp_support import (
    BUYERS,
    SUPPLIERS,
    Fired,
    Instrument,
)
from tests.secrets_scan import register_secret

ADDRESS = "ada.lovelace@digital.gov.uk"


def member(state: MailchimpState, email: str, list_id: str = SUPPLIERS) -> dict[str, Any]:
    return state.get_member(list_id, subscriber_hash(email), "")


@pytest.fixture(autouse=True)
def _secrets() -> None:
    register_secret(ADDRESS, kind="address")


def test_a_new_address_is_subscribed(
    audiences: Audiences, mc_state: MailchimpState, mc_app: Flask, fired: list[Fired]
) -> None:
    result = audiences.subscribe(
        "suppliers", ADDRESS, merge_fields={"FNAME": "Ada"}, tags=["dos7", "supplier"]
    )
    assert result.outcome is SubscribeOutcome.SUBSCRIBED
    assert result.on_list
    assert result.member_status == "subscribed"
    assert result.list_id == SUPPLIERS
    assert result.unique_email_id
    stored = member(mc_state, ADDRESS)
    assert stored["status"] == "subscribed"
    assert stored["merge_fields"]["FNAME"] == "Ada"
    assert {t["name"] for t in stored["tags"]} == {"dos7", "supplier"}
    hasher = mc_app.extensions["dmmail"].hasher
    assert result.to_hash == hasher.hash_address(ADDRESS)
    assert ADDRESS not in repr(result)
    [event] = [e for e in fired if e.signal == "mailchimp_subscribed"]
    assert event.sender is mc_app
    assert event.kwargs["audience"] == SUPPLIERS
    assert event.kwargs["result"] is result
    assert event.kwargs["to_hash"] == result.to_hash
    assert ADDRESS not in repr(event.kwargs)


def test_the_list_id_works_as_well_as_the_name(audiences: Audiences) -> None:
    assert audiences.subscribe(BUYERS, ADDRESS).outcome is SubscribeOutcome.SUBSCRIBED
    assert audiences.subscribe("buyers", ADDRESS).outcome is SubscribeOutcome.ALREADY_SUBSCRIBED


def test_already_subscribed_keeps_the_status_and_updates_merge_fields(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS], merge_fields={"FNAME": "A"})
    result = audiences.subscribe("suppliers", ADDRESS, merge_fields={"LNAME": "Lovelace"})
    assert result.outcome is SubscribeOutcome.ALREADY_SUBSCRIBED
    assert result.member_status == "subscribed"
    stored = member(mc_state, ADDRESS)
    assert stored["merge_fields"]["FNAME"] == "A"
    assert stored["merge_fields"]["LNAME"] == "Lovelace"


def test_pending_counts_as_already_subscribed_with_mailchimps_status(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS], status="pending")
    result = audiences.subscribe("suppliers", ADDRESS)
    assert result.outcome is SubscribeOutcome.ALREADY_SUBSCRIBED
    assert result.member_status == "pending"
    assert member(mc_state, ADDRESS)["status"] == "pending"


def test_someone_who_unsubscribed_is_not_resubscribed(
    audiences: Audiences, mc_state: MailchimpState, instrument: Instrument
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS])
    mc_state.unsubscribe(SUPPLIERS, ADDRESS)
    before = member(mc_state, ADDRESS)
    result = audiences.subscribe("suppliers", ADDRESS, merge_fields={"FNAME": "Changed"})
    assert result.outcome is SubscribeOutcome.UNSUBSCRIBED
    assert not result.on_list
    assert result.member_status == "unsubscribed"  # Mailchimp's status, not "success"
    assert "signup form" in (result.detail or "")
    after = member(mc_state, ADDRESS)
    assert after == before  # nothing was written
    assert instrument.paths("PUT") == [] and instrument.paths("PATCH") == []


def test_a_bounced_address_is_reported_with_its_cleaned_status(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS])
    mc_state.bounce(SUPPLIERS, ADDRESS)
    result = audiences.subscribe("suppliers", ADDRESS)
    assert result.outcome is SubscribeOutcome.UNSUBSCRIBED
    assert result.member_status == "cleaned"
    assert member(mc_state, ADDRESS)["status"] == "cleaned"


def test_an_archived_member_is_subscribed_again(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS])
    mc_state.archive_member(SUPPLIERS, ADDRESS)
    result = audiences.subscribe("suppliers", ADDRESS)
    assert result.outcome is SubscribeOutcome.SUBSCRIBED
    assert member(mc_state, ADDRESS)["status"] == "subscribed"


def test_an_archived_member_who_had_unsubscribed_stays_out(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS], status="unsubscribed")
    mc_state.archive_member(SUPPLIERS, ADDRESS)
    result = audiences.subscribe("suppliers", ADDRESS)
    assert result.outcome is SubscribeOutcome.UNSUBSCRIBED  # Member In Compliance State
    assert result.member_status == "archived"
    assert "<address>" in (result.detail or "") and ADDRESS not in (result.detail or "")
    assert member(mc_state, ADDRESS)["status"] == "archived"


def test_a_transactional_contact_who_asks_is_subscribed(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS], status="transactional")
    result = audiences.subscribe("suppliers", ADDRESS)
    assert result.outcome is SubscribeOutcome.SUBSCRIBED
    assert member(mc_state, ADDRESS)["status"] == "subscribed"


def test_a_permanently_deleted_address_is_reported_deleted(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS])
    mc_state.delete_member_permanent(SUPPLIERS, ADDRESS)
    result = audiences.subscribe("suppliers", ADDRESS)
    assert result.outcome is SubscribeOutcome.DELETED
    assert result.member_status is None
    assert "re-subscribe" in (result.detail or "")
    assert ADDRESS not in (result.detail or "")


def test_an_address_mailchimp_thinks_fake_is_invalid(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    fake = "someone@example.com"
    result = audiences.subscribe("suppliers", fake)
    assert result.outcome is SubscribeOutcome.INVALID_ADDRESS
    assert "looks fake or invalid" in (result.detail or "")
    assert fake not in (result.detail or "")
    assert mc_state.member_count(SUPPLIERS) == 0


def test_a_malformed_address_is_invalid_without_any_request(
    audiences: Audiences, instrument: Instrument, fired: list[Fired]
) -> None:
    result = audiences.subscribe("suppliers", "not an address")
    assert result.outcome is SubscribeOutcome.INVALID_ADDRESS
    assert instrument.requests == []
    assert [e.signal for e in fired] == ["mailchimp_subscribed"]


def test_bad_arguments_are_refused_before_any_request(
    audiences: Audiences, instrument: Instrument
) -> None:
    with pytest.raises(UnknownAudienceError, match="suppliers"):
        audiences.subscribe("supplier", ADDRESS)
    with pytest.raises(InvalidEmailAddressError):
        audiences.subscribe("suppliers", 42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="merge_fields"):
        audiences.subscribe("suppliers", ADDRESS, merge_fields={"FNAME": object()})
    with pytest.raises(InvalidInputError, match="tags"):
        audiences.subscribe("suppliers", ADDRESS, tags="dos7")
    assert instrument.requests == []


def test_an_address_passed_as_the_audience_is_not_repeated_in_the_error(
    audiences: Audiences, instrument: Instrument
) -> None:
    # subscribe() takes (audience, email) but forget() takes (email, audience): swapped
    # arguments must not put the address in the error (or the CLI's output).
    with pytest.raises(UnknownAudienceError) as raised:
        audiences.subscribe(ADDRESS, "suppliers")
    assert ADDRESS not in str(raised.value)
    assert "suppliers" in str(raised.value)
    assert instrument.requests == []


def test_an_audience_mailchimp_does_not_have_raises_not_found(
    production_audiences: Audiences, fired: list[Fired], production_app: Flask
) -> None:
    mc_app = production_app  # elsewhere an unlisted list id is refused before any request
    with pytest.raises(MailchimpNotFoundError) as caught:
        production_audiences.subscribe("ffffffffff", ADDRESS)
    assert caught.value.status == 404
    assert ADDRESS not in caught.value.message
    [event] = [e for e in fired if e.signal == "mailchimp_failed"]
    assert event.sender is mc_app
    assert event.kwargs["operation"] == "subscribe"
    assert event.kwargs["error"] is caught.value
    assert event.kwargs["to_hash"] == mc_app.extensions["dmmail"].hasher.hash_address(ADDRESS)


def test_dmmail_mailchimp_acts_on_current_app(mc_app: Flask, mc_state: MailchimpState) -> None:
    dmmail = DMMail()
    with mc_app.app_context():
        assert dmmail.mailchimp is mc_app.extensions["dmmail"].mailchimp
        dmmail.mailchimp.subscribe("suppliers", ADDRESS)
    assert member(mc_state, ADDRESS)["status"] == "subscribed"


# --------------------------------------------------------------------------- subscribe_many


def test_subscribe_many_reports_every_outcome(
    audiences: Audiences, mc_state: MailchimpState, instrument: Instrument, fired: list[Fired]
) -> None:
    new = [f"new{i}@digital.gov.uk" for i in range(3)]
    already, pending = "already@digital.gov.uk", "pending@digital.gov.uk"
    unsubscribed, cleaned = "unsub@digital.gov.uk", "cleaned@digital.gov.uk"
    archived, archived_unsub = "archived@digital.gov.uk", "archived-unsub@digital.gov.uk"
    transactional, forgotten = "txn@digital.gov.uk", "forgotten@digital.gov.uk"
    fake, malformed = "someone@example.com", "no-at-sign"
    mc_state.add_members(SUPPLIERS, [already, archived, forgotten])
    mc_state.add_members(SUPPLIERS, [pending], status="pending")
    mc_state.add_members(SUPPLIERS, [unsubscribed, archived_unsub], status="unsubscribed")
    mc_state.add_members(SUPPLIERS, [cleaned], status="cleaned")
    mc_state.add_members(SUPPLIERS, [transactional], status="transactional")
    mc_state.archive_member(SUPPLIERS, archived)
    mc_state.archive_member(SUPPLIERS, archived_unsub)
    mc_state.delete_member_permanent(SUPPLIERS, forgotten)
    given = [
        *new,
        already,
        pending,
        unsubscribed,
        cleaned,
        archived,
        archived_unsub,
        transactional,
        forgotten,
        fake,
        malformed,
        new[0].upper(),  # a duplicate, compared case-insensitively
    ]
    register_secret(*[address for address in given if "@" in address], kind="address")
    progress: list[int] = []
    result = audiences.subscribe_many("suppliers", given, progress=progress.append)

    expected = {
        new[0]: (SubscribeOutcome.SUBSCRIBED, "subscribed"),
        new[1]: (SubscribeOutcome.SUBSCRIBED, "subscribed"),
        new[2]: (SubscribeOutcome.SUBSCRIBED, "subscribed"),
        already: (SubscribeOutcome.ALREADY_SUBSCRIBED, "subscribed"),
        pending: (SubscribeOutcome.ALREADY_SUBSCRIBED, "pending"),
        unsubscribed: (SubscribeOutcome.UNSUBSCRIBED, "unsubscribed"),
        cleaned: (SubscribeOutcome.UNSUBSCRIBED, "cleaned"),
        archived: (SubscribeOutcome.SUBSCRIBED, "subscribed"),
        archived_unsub: (SubscribeOutcome.UNSUBSCRIBED, None),
        transactional: (SubscribeOutcome.SUBSCRIBED, "subscribed"),
        forgotten: (SubscribeOutcome.DELETED, None),
        fake: (SubscribeOutcome.INVALID_ADDRESS, None),
        malformed: (SubscribeOutcome.INVALID_ADDRESS, None),
    }
    assert [item.email for item in result.items] == list(expected)
    for item in result.items:
        assert (item.outcome, item.member_status) == expected[item.email], item.email
    assert result.outcome_of(new[0].upper()) is SubscribeOutcome.SUBSCRIBED
    assert dict(result.counts) == {
        SubscribeOutcome.SUBSCRIBED: 5,
        SubscribeOutcome.ALREADY_SUBSCRIBED: 2,
        SubscribeOutcome.UNSUBSCRIBED: 3,
        SubscribeOutcome.DELETED: 1,
        SubscribeOutcome.INVALID_ADDRESS: 2,
        SubscribeOutcome.FAILED: 0,
    }
    assert result.total == 13 and result.failed == 2 and not result.ok
    assert sum(progress) == 13
    # Mailchimp's batch endpoint did the writing, and nobody's status was overwritten.
    assert len(instrument.paths("POST", f"/3.0/lists/{SUPPLIERS}")) == 1
    assert mc_state.get_member(SUPPLIERS, subscriber_hash(unsubscribed), "")["status"] == (
        "unsubscribed"
    )
    assert mc_state.get_member(SUPPLIERS, subscriber_hash(cleaned), "")["status"] == "cleaned"
    assert mc_state.member_count(SUPPLIERS, "subscribed") == 6
    signalled = [e for e in fired if e.signal == "mailchimp_subscribed"]
    assert len(signalled) == 13
    assert all(e.kwargs["result"].to_hash for e in signalled)
    assert not any(address in repr(e.kwargs) for e in signalled for address in given)


def test_subscribe_many_sends_at_most_500_a_call(
    audiences: Audiences, mc_state: MailchimpState, instrument: Instrument
) -> None:
    given = [f"person{i}@digital.gov.uk" for i in range(1203)]
    progress: list[int] = []
    result = audiences.subscribe_many("suppliers", iter(given), progress=progress.append)
    assert result.counts[SubscribeOutcome.SUBSCRIBED] == 1203 and result.ok
    batches = instrument.paths("POST", f"/3.0/lists/{SUPPLIERS}")
    assert len(batches) == 3
    assert progress == [500, 500, 203]
    assert mc_state.member_count(SUPPLIERS, "subscribed") == 1203


def test_subscribe_many_twice_reports_already_subscribed(audiences: Audiences) -> None:
    given = [f"p{i}@digital.gov.uk" for i in range(20)]
    audiences.subscribe_many("suppliers", given)
    again = audiences.subscribe_many("suppliers", given)
    assert again.counts[SubscribeOutcome.ALREADY_SUBSCRIBED] == 20
    assert again.ok


def test_subscribe_many_refuses_one_string(audiences: Audiences) -> None:
    with pytest.raises(InvalidInputError, match="not one string"):
        audiences.subscribe_many("suppliers", ADDRESS)


def test_subscribe_many_reports_other_refusals_as_failed_without_the_address(
    audiences: Audiences, mc_state: MailchimpState, instrument: Instrument
) -> None:
    busy, updated, unreported = (
        "busy@digital.gov.uk",
        "updated@digital.gov.uk",
        "unreported@digital.gov.uk",
    )
    register_secret(busy, updated, unreported, kind="address")
    mc_state.add_members(SUPPLIERS, [updated], status="pending")
    # Mailchimp's answer when an address signed up to many lists recently (the sandbox has no
    # such rule, so the batch call is answered by the instrument, in Mailchimp's shape).
    instrument.fail(
        "POST",
        rf"^/3\.0/lists/{SUPPLIERS}$",
        status=200,
        content_type="application/json; charset=utf-8",
        body={
            "new_members": [],
            "updated_members": [{"email_address": updated, "status": "pending"}],
            "errors": [
                {
                    "email_address": busy,
                    "error": f"{busy} has signed up to a lot of lists very recently; "
                    "we're not allowing more signups for now",
                    "error_code": "ERROR_GENERIC",
                }
            ],
            "total_created": 0,
            "total_updated": 1,
            "error_count": 1,
        },
        times=1,
    )
    result = audiences.subscribe_many("suppliers", [busy, updated, unreported])
    outcomes = {item.email: (item.outcome, item.member_status) for item in result.items}
    assert outcomes == {
        busy: (SubscribeOutcome.FAILED, None),
        updated: (SubscribeOutcome.ALREADY_SUBSCRIBED, "pending"),  # looked up
        unreported: (SubscribeOutcome.SUBSCRIBED, "subscribed"),  # looked up, then subscribed
    }
    [failed] = [item for item in result.items if item.outcome is SubscribeOutcome.FAILED]
    assert "signed up to a lot of lists" in (failed.detail or "")
    assert busy not in (failed.detail or "")
    assert result.failed == 1 and not result.ok
