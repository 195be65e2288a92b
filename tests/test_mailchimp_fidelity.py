"""What the library meets now that the sandbox refuses what Mailchimp refuses (issue 10,
Mailchimp items 1, 2, 4 and 5), through ``Audiences`` and the official client.

The sources of each behaviour are in the sandbox's tests of it (tests/sandbox/
test_mailchimp_addresses.py, _merge_fields.py, _domains.py, _strictness.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from flask_dmmail.errors import (
    CampaignError,
    ConfigurationError,
    MailchimpValidationError,
)
from flask_dmmail.mailchimp import Audiences, SubscribeOutcome
from flask_dmmail.sandbox.mailchimp import MailchimpState, member_address
from tests.mailchimp_support import SUPPLIERS, Instrument
from tests.secrets_scan import register_secret

ADDRESS = member_address("ada.lovelace")
HTML = "<p>New briefs.</p><p>*|UNSUB|*</p>"


@pytest.fixture(autouse=True)
def _secrets() -> None:
    register_secret(ADDRESS, kind="address")


def test_a_fake_looking_address_is_invalid_by_default(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    fake = "ada@example.gov.uk"
    register_secret(fake, kind="address")
    result = audiences.subscribe("suppliers", fake)
    assert result.outcome is SubscribeOutcome.INVALID_ADDRESS
    assert "looks fake or invalid" in (result.detail or "")
    assert fake not in (result.detail or "")
    bulk = audiences.subscribe_many("suppliers", [fake, ADDRESS])
    assert [item.outcome for item in bulk.items] == [
        SubscribeOutcome.INVALID_ADDRESS,
        SubscribeOutcome.SUBSCRIBED,
    ]
    assert mc_state.member_count(SUPPLIERS) == 1


def test_an_address_that_signed_up_to_a_lot_of_lists_is_refused(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.set_busy_addresses([ADDRESS])
    with pytest.raises(MailchimpValidationError) as exc:
        audiences.subscribe("suppliers", ADDRESS)
    assert "signed up to a lot of lists very recently" in str(exc.value)
    assert ADDRESS not in str(exc.value)
    assert mc_state.member_count(SUPPLIERS) == 0


def test_merge_fields_mailchimp_refuses_are_refused_naming_the_field(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    with pytest.raises(MailchimpValidationError) as exc:
        audiences.subscribe("suppliers", ADDRESS, merge_fields={"BIRTHDAY": "1815-12-10"})
    assert exc.value.detail == "Your merge fields were invalid."
    assert list(exc.value.errors) == [
        {"field": "BIRTHDAY", "message": "Please enter a month (01-12) and a day (01-31)"}
    ]
    assert "BIRTHDAY" in str(exc.value)
    assert mc_state.member_count(SUPPLIERS) == 0
    # what Mailchimp takes works, and a tag the audience lacks is dropped
    result = audiences.subscribe(
        "suppliers", ADDRESS, merge_fields={"BIRTHDAY": "12/10", "FNAME": "Ada", "ORG": "x"}
    )
    assert result.on_list
    [member] = mc_state.members(SUPPLIERS)
    assert member["merge_fields"]["BIRTHDAY"] == "12/10"
    assert "ORG" not in member["merge_fields"]


def test_a_required_merge_field_must_be_given(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.add_merge_field(SUPPLIERS, "ORG", name="Organisation", required=True)
    with pytest.raises(MailchimpValidationError) as exc:
        audiences.subscribe("suppliers", ADDRESS)
    assert list(exc.value.errors) == [{"field": "ORG", "message": "Please enter a value"}]
    assert audiences.subscribe("suppliers", ADDRESS, merge_fields={"ORG": "CCS"}).on_list


def test_a_campaign_from_an_unverified_domain_is_not_sent(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS])
    with pytest.raises(CampaignError) as exc:
        audiences.send_campaign(
            "suppliers", title="t", subject="s", html=HTML, reply_to="dos@digital.gov.uk"
        )
    assert "not ready to send" in str(exc.value)
    assert "digital.gov.uk, is not verified" in str(exc.value)
    assert mc_state.sent_campaigns() == []
    mc_state.verify_domain("digital.gov.uk")
    audiences.send_campaign(
        "suppliers", title="t2", subject="s", html=HTML, reply_to="dos@digital.gov.uk"
    )
    assert [c.reply_to for c in mc_state.sent_campaigns()] == ["dos@digital.gov.uk"]


def test_a_base_url_on_another_data_centre_than_the_key_is_a_configuration_error(
    make_mc_app: Callable[..., Flask], mc_state: MailchimpState, instrument: Instrument
) -> None:
    assert mc_state.api_key.endswith("-us5")
    app = make_mc_app(DM_MAILCHIMP_BASE_URL="https://us6.api.mailchimp.com/3.0")
    with pytest.raises(ConfigurationError) as exc:
        app.extensions["dmmail"].mailchimp  # noqa: B018 (built on first use)
    assert exc.value.key == "DM_MAILCHIMP_BASE_URL"
    assert "'us6'" in str(exc.value) and "'us5'" in str(exc.value)
    assert "https://us5.api.mailchimp.com/3.0" in str(exc.value)
    assert mc_state.api_key not in str(exc.value)
    assert instrument.requests == []


def test_a_base_url_on_the_keys_data_centre_or_another_host_is_accepted() -> None:
    key = "0123456789abcdef0123456789abcdef-us5"
    for base_url in ("https://us5.api.mailchimp.com/3.0", "http://127.0.0.1:9/3.0"):
        audiences = Audiences(api_key=key, base_url=base_url, retries=0)
        assert audiences.base_url == base_url
    with pytest.raises(ConfigurationError):
        Audiences(api_key=key, base_url="https://US7.api.mailchimp.com/3.0")
