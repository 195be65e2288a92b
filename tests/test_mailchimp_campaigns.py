"""``send_campaign``: one call, typed failures, no drafts left behind, never twice per title;
``create_audience_like``; ``audiences_for`` and ``forget``."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from flask import Flask

from flask_dmmail.errors import (
    CampaignError,
    InvalidEmailAddressError,
    InvalidInputError,
    MailchimpForbiddenError,
    MailchimpNotFoundError,
    MailchimpValidationError,
    UnknownAudienceError,
    UnlistedAudienceError,
)
from flask_dmmail.mailchimp import AudienceRef, Audiences, SubscribeOutcome
from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.mailchimp_support import (
    BUYERS,
    SUPPLIERS,
    Fired,
    Instrument,
)
from tests.secrets_scan import register_secret

HTML = "<h1>New opportunities</h1><p>Three new briefs.</p><p>*|UNSUB|*</p>"
ADDRESS = "grace.hopper@digital.gov.uk"


@pytest.fixture(autouse=True)
def _secrets() -> None:
    register_secret(ADDRESS, kind="address")


@pytest.fixture
def subscribers(mc_state: MailchimpState) -> list[str]:
    people = [f"supplier{i}@digital.gov.uk" for i in range(25)]
    mc_state.add_members(SUPPLIERS, people)
    return people


def test_a_campaign_is_created_filled_and_sent_in_one_call(
    audiences: Audiences,
    mc_state: MailchimpState,
    subscribers: list[str],
    fired: list[Fired],
    mc_app: Flask,
) -> None:
    result = audiences.send_campaign(
        "suppliers", title="DOS7 alert 2024-05-01", subject="New opportunities", html=HTML
    )
    assert not result.already_sent
    assert result.status == "sent"
    assert result.list_id == SUPPLIERS
    assert result.recipient_count == 25 and result.emails_sent == 25
    [sent] = mc_state.sent_campaigns()
    assert sent.id == result.campaign_id
    assert sent.title == "DOS7 alert 2024-05-01"
    assert sent.subject_line == "New opportunities"
    assert sent.html == HTML
    # from name and reply-to come from the audience's campaign defaults
    assert sent.from_name == "Digital Marketplace"
    assert sent.reply_to == "enquiries@digitalmarketplace.service.gov.uk"
    [event] = [e for e in fired if e.signal == "campaign_sent"]
    assert event.sender is mc_app
    assert event.kwargs == {
        "audience": SUPPLIERS,
        "campaign_id": result.campaign_id,
        "title": "DOS7 alert 2024-05-01",
        "result": result,
    }


def test_from_name_and_reply_to_can_be_given(
    audiences: Audiences, mc_state: MailchimpState, subscribers: list[str]
) -> None:
    mc_state.verify_domain("digital.gov.uk")  # Mailchimp sends only from verified domains
    audiences.send_campaign(
        "suppliers",
        title="t",
        subject="s",
        html=HTML,
        from_name="DOS team",
        reply_to="dos@digital.gov.uk",
    )
    [sent] = mc_state.sent_campaigns()
    assert (sent.from_name, sent.reply_to) == ("DOS team", "dos@digital.gov.uk")


def test_the_same_title_is_never_sent_twice(
    audiences: Audiences, mc_state: MailchimpState, subscribers: list[str], fired: list[Fired]
) -> None:
    first = audiences.send_campaign("suppliers", title="weekly", subject="s", html=HTML)
    second = audiences.send_campaign("suppliers", title="weekly", subject="other", html=HTML)
    assert second.already_sent
    assert second.campaign_id == first.campaign_id
    assert second.status == "sent"
    assert len(mc_state.sent_campaigns()) == 1
    assert len(mc_state.campaigns()) == 1
    assert [e.signal for e in fired].count("campaign_sent") == 1
    # ...but the same title may go to another audience
    mc_state.add_members(BUYERS, ["buyer@digital.gov.uk"])
    other = audiences.send_campaign("buyers", title="weekly", subject="s", html=HTML)
    assert not other.already_sent
    assert audiences.find_campaign("suppliers", "weekly") == second


def test_a_draft_left_by_an_interrupted_run_is_reused(
    audiences: Audiences, mc_state: MailchimpState, subscribers: list[str]
) -> None:
    draft = mc_state.create_campaign(
        {"type": "regular", "recipients": {"list_id": SUPPLIERS}, "settings": {"title": "x"}}, ""
    )
    result = audiences.send_campaign("suppliers", title="x", subject="s", html=HTML)
    assert result.campaign_id == draft["id"]
    assert not result.already_sent
    assert [c["id"] for c in mc_state.campaigns()] == [draft["id"]]
    assert mc_state.sent_campaigns()[0].html == HTML


def test_a_campaign_mailchimp_will_not_send_raises_and_its_draft_is_deleted(
    audiences: Audiences, mc_state: MailchimpState, subscribers: list[str], fired: list[Fired]
) -> None:
    with pytest.raises(CampaignError) as caught:
        audiences.send_campaign("suppliers", title="t", subject="s", html="<p>no unsubscribe</p>")
    error = caught.value
    assert error.step == "send"
    assert error.status == 400 and error.title == "Bad Request"
    assert error.draft_deleted
    assert error.campaign_id is not None
    assert any("*|UNSUB|*" in item for item in error.checklist)
    assert "The draft was deleted." in error.message
    assert mc_state.campaigns() == [] and mc_state.sent_campaigns() == []
    [event] = [e for e in fired if e.signal == "mailchimp_failed"]
    assert event.kwargs["operation"] == "send_campaign" and event.kwargs["error"] is error


def test_an_empty_audience_cannot_be_sent_to(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    with pytest.raises(CampaignError) as caught:
        audiences.send_campaign("suppliers", title="t", subject="s", html=HTML)
    assert any("empty" in item for item in caught.value.checklist)
    assert mc_state.campaigns() == []


def test_a_failure_setting_the_content_deletes_the_draft(
    audiences: Audiences, mc_state: MailchimpState, subscribers: list[str], instrument: Instrument
) -> None:
    instrument.fail(
        "PUT",
        r"/content$",
        status=400,
        body={"title": "Invalid Resource", "status": 400, "detail": "The HTML is broken."},
    )
    with pytest.raises(CampaignError) as caught:
        audiences.send_campaign("suppliers", title="t", subject="s", html=HTML)
    assert caught.value.step == "content"
    assert isinstance(caught.value.__cause__, MailchimpValidationError)
    assert caught.value.draft_deleted
    assert mc_state.campaigns() == []


def test_a_draft_that_cannot_be_deleted_is_named_in_the_error(
    audiences: Audiences, mc_state: MailchimpState, subscribers: list[str], instrument: Instrument
) -> None:
    instrument.fail("PUT", r"/content$", status=500)
    instrument.fail("DELETE", r"/campaigns/", status=500)
    with pytest.raises(CampaignError) as caught:
        audiences.send_campaign("suppliers", title="t", subject="s", html=HTML)
    error = caught.value
    assert error.step == "content" and error.transient
    assert not error.draft_deleted
    assert f"The draft {error.campaign_id} could not be deleted" in error.message
    assert [c["id"] for c in mc_state.campaigns()] == [error.campaign_id]


def test_a_create_mailchimp_refuses_raises_at_the_create_step(
    make_mc_app: Callable[..., Flask], mc_state: MailchimpState
) -> None:
    app = make_mc_app(DM_ENVIRONMENT="production")
    with pytest.raises(CampaignError) as caught:
        app.extensions["dmmail"].mailchimp.send_campaign(
            "abcdefabcd", title="t", subject="s", html=HTML, from_name="x", reply_to=ADDRESS
        )
    assert caught.value.step == "create"
    assert caught.value.campaign_id is None
    assert isinstance(caught.value.__cause__, MailchimpValidationError)
    assert caught.value.__cause__.errors[0]["field"] == "recipients.list_id"


def test_a_send_whose_answer_is_lost_is_not_a_failure(
    audiences: Audiences, mc_state: MailchimpState, subscribers: list[str], instrument: Instrument
) -> None:
    instrument.drop_after("POST", r"/actions/send$")
    result = audiences.send_campaign("suppliers", title="t", subject="s", html=HTML)
    assert result.status == "sent" and not result.already_sent
    assert len(mc_state.sent_campaigns()) == 1
    assert len(instrument.paths("POST", "/actions/send")) == 1  # never sent twice


def test_an_unanswered_create_is_looked_up_before_anything_else(
    audiences: Audiences, mc_state: MailchimpState, subscribers: list[str], instrument: Instrument
) -> None:
    instrument.drop_after("POST", r"^/3\.0/campaigns$")
    result = audiences.send_campaign("suppliers", title="t", subject="s", html=HTML)
    assert result.status == "sent"
    assert len(mc_state.campaigns()) == 1
    assert len(instrument.paths("POST", "/3.0/campaigns")) == 2  # the create, then the send


def test_concurrent_runs_send_one_campaign(
    audiences: Audiences, mc_state: MailchimpState, subscribers: list[str]
) -> None:
    results = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        try:
            results.append(audiences.send_campaign("suppliers", title="t", subject="s", html=HTML))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(mc_state.sent_campaigns()) == 1
    assert len(mc_state.campaigns()) == 1  # losers deleted their drafts
    assert {r.campaign_id for r in results} == {mc_state.sent_campaigns()[0].id}


def test_outside_production_only_listed_audiences_get_campaigns(
    audiences: Audiences, mc_state: MailchimpState, instrument: Instrument
) -> None:
    unlisted = mc_state.create_list("Real suppliers (production)")
    mc_state.add_members(unlisted, [ADDRESS])
    with pytest.raises(UnlistedAudienceError, match="DM_ENVIRONMENT"):
        audiences.send_campaign(unlisted, title="t", subject="s", html=HTML)
    assert instrument.requests == []
    assert mc_state.sent_campaigns() == []


def test_production_may_send_to_any_audience(
    make_mc_app: Callable[..., Flask], mc_state: MailchimpState
) -> None:
    app = make_mc_app(DM_ENVIRONMENT="production")
    unlisted = mc_state.create_list("Real suppliers (production)")
    mc_state.add_members(unlisted, [ADDRESS])
    app.extensions["dmmail"].mailchimp.send_campaign(unlisted, title="t", subject="s", html=HTML)
    assert [c.list_id for c in mc_state.sent_campaigns()] == [unlisted]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"title": " "}, "title"),
        ({"subject": ""}, "subject"),
        ({"html": ""}, "HTML"),
        ({"reply_to": "not-an-address"}, "reply_to"),
        ({"title": "x" * 101}, "100"),
    ],
)
def test_bad_campaign_arguments_are_refused_before_any_request(
    audiences: Audiences, instrument: Instrument, kwargs: dict[str, str], match: str
) -> None:
    arguments = {"title": "t", "subject": "s", "html": HTML, **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        audiences.send_campaign("suppliers", **arguments)
    assert instrument.requests == []


# --------------------------------------------------------------------------- audiences


def test_create_audience_like_copies_the_settings(
    production_audiences: Audiences, mc_state: MailchimpState
) -> None:
    audiences = production_audiences
    source = mc_state.create_list(
        "DOS 6",
        contact={"company": "CCS", "address1": "9th Floor", "city": "Liverpool", "country": "GB"},
        permission_reminder="You asked to hear about DOS.",
        campaign_defaults={"from_name": "DOS", "from_email": "dos@digital.gov.uk"},
    )
    new_id = audiences.create_audience_like(source, "DOS 7")
    [copied] = [x for x in mc_state.lists() if x["id"] == new_id]
    [original] = [x for x in mc_state.lists() if x["id"] == source]
    assert copied["name"] == "DOS 7"
    for key in ("contact", "permission_reminder", "campaign_defaults", "email_type_option"):
        assert copied[key] == original[key], key
    assert copied["stats"]["member_count"] == 0
    # running it again finds the audience instead of making a second one
    assert audiences.create_audience_like(source, "DOS 7") == new_id
    assert sum(1 for x in mc_state.lists() if x["name"] == "DOS 7") == 1
    assert audiences.find_audience("DOS 7") == new_id
    assert audiences.find_audience("DOS 9") is None


def test_create_audience_like_beyond_the_plan_is_forbidden(
    production_audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.max_lists = 2
    with pytest.raises(MailchimpForbiddenError) as caught:
        production_audiences.create_audience_like("suppliers", "DOS 8")
    assert caught.value.status == 403 and caught.value.title == "User Action Not Allowed"


def test_create_audience_like_needs_a_source_that_exists(
    production_audiences: Audiences,
) -> None:
    audiences = production_audiences
    with pytest.raises(MailchimpNotFoundError):
        audiences.create_audience_like("abcdef0123", "DOS 8")
    with pytest.raises(UnknownAudienceError):
        audiences.create_audience_like("dos6", "DOS 8")
    with pytest.raises(InvalidInputError):
        audiences.create_audience_like("suppliers", "  ")


def test_audience_and_all_audiences(audiences: Audiences) -> None:
    assert audiences.audience("suppliers") == AudienceRef(SUPPLIERS, "Suppliers")
    assert set(audiences.all_audiences()) == {
        AudienceRef(SUPPLIERS, "Suppliers"),
        AudienceRef(BUYERS, "Buyers"),
    }
    assert audiences.ping()


# --------------------------------------------------------------------------- retention


def test_audiences_for_and_forget_erase_everywhere(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS])
    mc_state.add_members(BUYERS, [ADDRESS], status="unsubscribed")
    assert set(audiences.audiences_for(ADDRESS)) == {
        AudienceRef(SUPPLIERS, "Suppliers"),
        AudienceRef(BUYERS, "Buyers"),
    }
    result = audiences.forget(ADDRESS.upper())
    assert set(result.deleted) == {SUPPLIERS, BUYERS} and result.not_found == ()
    assert audiences.audiences_for(ADDRESS) == []
    assert mc_state.member_count(SUPPLIERS, None) == 0
    # afterwards only a signup form can bring them back
    assert audiences.subscribe("suppliers", ADDRESS).outcome is SubscribeOutcome.DELETED
    # running it again is harmless
    assert audiences.forget(ADDRESS).audiences == ()


def test_forget_in_one_audience_counts_a_missing_member_as_done(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.add_members(BUYERS, [ADDRESS])
    result = audiences.forget(ADDRESS, "suppliers")
    assert result.deleted == () and result.not_found == (SUPPLIERS,)
    assert audiences.forget(ADDRESS, "buyers").deleted == (BUYERS,)
    assert mc_state.member_count(BUYERS, None) == 0


def test_forget_needs_an_address(audiences: Audiences) -> None:
    with pytest.raises(InvalidEmailAddressError):
        audiences.forget("  ")
    with pytest.raises(InvalidEmailAddressError):
        audiences.audiences_for(None)  # type: ignore[arg-type]


def test_forget_reports_other_failures(
    audiences: Audiences, mc_state: MailchimpState, notify_sandbox: Sandbox
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS])
    notify_sandbox.state.set_faults(error_rate=1.0, paths=("/3.0/lists/",))
    with pytest.raises(Exception) as caught:
        audiences.forget(ADDRESS, "suppliers")
    assert caught.value.__class__.__name__ == "MailchimpUnavailableError"
    assert ADDRESS not in str(caught.value)
