"""Campaigns in the sandbox's Mailchimp API: create, content, checklist, send, schedule."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from mailchimp_marketing.api_client import ApiClientError

from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.sandbox.mailchimp_helpers import problem

HTML = '<p>New opportunities</p><p><a href="*|UNSUB|*">Unsubscribe</a></p>'
SETTINGS = {
    "subject_line": "New opportunities for Digital outcomes",
    "title": "DOS Suppliers: Digital outcomes [2024-05-01]",
    "from_name": "Digital Marketplace Team",
    "reply_to": "do-not-reply@digitalmarketplace.service.gov.uk",
}


@pytest.fixture
def audience(mc: MailchimpState, list_id: str) -> str:
    mc.add_members(list_id, [f"s{i}@dm.org" for i in range(3)])
    mc.add_members(list_id, ["gone@dm.org"], status="unsubscribed")
    return list_id


def _create(client: Any, list_id: str, **settings: Any) -> dict[str, Any]:
    campaign: dict[str, Any] = client.campaigns.create(
        {
            "type": "regular",
            "recipients": {"list_id": list_id},
            "settings": {**SETTINGS, **settings},
            "tracking": {"opens": False, "html_clicks": False, "text_clicks": False},
        }
    )
    return campaign


def _ready(client: Any, list_id: str, html: str = HTML, **settings: Any) -> str:
    campaign = _create(client, list_id, **settings)
    client.campaigns.set_content(campaign["id"], {"html": html})
    return str(campaign["id"])


def test_create_returns_a_draft(client: Any, audience: str) -> None:
    campaign = _create(client, audience)
    assert re.fullmatch(r"[0-9a-f]{10}", campaign["id"])
    assert campaign["status"] == "save"
    assert campaign["type"] == "regular"
    assert campaign["emails_sent"] == 0
    assert campaign["send_time"] == ""
    assert campaign["recipients"]["list_id"] == audience
    assert campaign["recipients"]["recipient_count"] == 3
    assert campaign["settings"]["title"] == SETTINGS["title"]
    assert campaign["tracking"]["opens"] is False
    assert client.campaigns.get(campaign["id"])["id"] == campaign["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"recipients": {"list_id": "x"}}, "", id="no-type"),
        pytest.param({"type": "carrier-pigeon"}, "type", id="bad-type"),
        pytest.param(
            {"type": "regular", "recipients": {"list_id": "0000000000"}},
            "recipients.list_id",
            id="unknown-list",
        ),
        pytest.param({"type": "regular", "recipients": {}}, "recipients", id="no-list-id"),
        pytest.param(
            {"type": "regular", "settings": {"subject_line": 3}},
            "settings.subject_line",
            id="subject-not-a-string",
        ),
    ],
)
def test_create_validation(client: Any, body: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiClientError) as exc:
        client.campaigns.create(body)
    assert exc.value.status_code == 400
    doc = problem(exc)
    assert doc["title"] == "Invalid Resource"
    assert doc["errors"][0]["field"] == field


def test_content_generates_plain_text_and_archive_html(client: Any, audience: str) -> None:
    campaign = _create(client, audience)
    content = client.campaigns.set_content(campaign["id"], {"html": HTML})
    assert content["html"] == HTML
    assert content["archive_html"] == HTML
    assert "New opportunities" in content["plain_text"]
    assert "<p>" not in content["plain_text"]
    assert "Unsubscribe (*|UNSUB|*)" in content["plain_text"]
    assert client.campaigns.get_content(campaign["id"])["html"] == HTML


@pytest.mark.parametrize(
    ("settings", "html", "heading"),
    [
        pytest.param({}, "<p>No way out</p>", "Unsubscribe link", id="no-unsub-tag"),
        pytest.param({"reply_to": ""}, HTML, "From email address", id="no-reply-to"),
        pytest.param({"from_name": ""}, HTML, "From name", id="no-from-name"),
        pytest.param({"subject_line": ""}, HTML, "Subject line", id="no-subject"),
        pytest.param({}, None, "Content", id="no-content"),
    ],
)
def test_not_ready_campaigns(
    client: Any,
    mc: MailchimpState,
    audience: str,
    settings: dict[str, Any],
    html: str | None,
    heading: str,
) -> None:
    campaign = _create(client, audience, **settings)
    if html is not None:
        client.campaigns.set_content(campaign["id"], {"html": html})
    checklist = client.campaigns.get_send_checklist(campaign["id"])
    assert checklist["is_ready"] is False
    errors = [i["heading"] for i in checklist["items"] if i["type"] == "error"]
    assert errors == [heading]
    with pytest.raises(ApiClientError) as exc:
        client.campaigns.send(campaign["id"])
    assert exc.value.status_code == 400
    doc = problem(exc)
    assert (doc["title"], doc["detail"]) == ("Bad Request", "Your Campaign is not ready to send.")
    assert client.campaigns.get(campaign["id"])["status"] == "save"
    assert mc.sent_campaigns() == []


def test_an_empty_audience_is_not_ready(client: Any, list_id: str) -> None:
    checklist = client.campaigns.get_send_checklist(_ready(client, list_id))
    assert checklist["is_ready"] is False
    assert [i["heading"] for i in checklist["items"] if i["type"] == "error"] == ["Audience"]


def test_send_is_204_then_sent_and_recorded(client: Any, mc: MailchimpState, audience: str) -> None:
    campaign_id = _ready(client, audience)
    assert client.campaigns.get_send_checklist(campaign_id)["is_ready"] is True
    result = client.campaigns.send(campaign_id)
    assert isinstance(result, requests.Response) and result.status_code == 204
    sent = client.campaigns.get(campaign_id)
    assert sent["status"] == "sent"
    assert sent["emails_sent"] == 3
    assert sent["send_time"]
    [record] = mc.sent_campaigns()
    assert record.id == campaign_id
    assert record.html == HTML
    assert record.recipient_count == 3
    assert record.title == SETTINGS["title"]
    assert record.list_id == audience
    with pytest.raises(ApiClientError) as exc:
        client.campaigns.send(campaign_id)
    assert problem(exc)["detail"] == "Your Campaign is not ready to send."
    assert client.lists.get_list(audience)["stats"]["campaign_count"] == 1


def test_send_passes_through_sending(client: Any, mc: MailchimpState, audience: str) -> None:
    mc.send_seconds = 3600
    campaign_id = _ready(client, audience)
    client.campaigns.send(campaign_id)
    assert client.campaigns.get(campaign_id)["status"] == "sending"
    mc.send_seconds = 0
    assert len(mc.sent_campaigns()) == 1


def test_list_filters_and_find_by_title(client: Any, mc: MailchimpState, audience: str) -> None:
    other = mc.create_list("Other")
    mc.add_members(other, ["o@dm.org"])
    sent_id = _ready(client, audience)
    client.campaigns.send(sent_id)
    draft_id = _create(client, other, title="Draft one")["id"]
    assert client.campaigns.list()["total_items"] == 2
    assert [c["id"] for c in client.campaigns.list(status="sent")["campaigns"]] == [sent_id]
    assert [c["id"] for c in client.campaigns.list(list_id=other)["campaigns"]] == [draft_id]
    titles = client.campaigns.list(fields=["campaigns.id", "campaigns.settings.title"])
    assert titles == {
        "campaigns": [
            {"id": sent_id, "settings": {"title": SETTINGS["title"]}},
            {"id": draft_id, "settings": {"title": "Draft one"}},
        ]
    }


def test_update_and_remove(client: Any, audience: str) -> None:
    campaign_id = _create(client, audience)["id"]
    updated = client.campaigns.update(campaign_id, {"settings": {"subject_line": "Changed"}})
    assert updated["settings"]["subject_line"] == "Changed"
    assert updated["settings"]["from_name"] == SETTINGS["from_name"]
    result = client.campaigns.remove(campaign_id)
    assert isinstance(result, requests.Response) and result.status_code == 204
    with pytest.raises(ApiClientError) as exc:
        client.campaigns.get(campaign_id)
    assert problem(exc)["title"] == "Resource Not Found"


def test_a_sent_campaign_cannot_be_updated(client: Any, audience: str) -> None:
    campaign_id = _ready(client, audience)
    client.campaigns.send(campaign_id)
    with pytest.raises(ApiClientError) as exc:
        client.campaigns.update(campaign_id, {"settings": {"subject_line": "Changed"}})
    assert exc.value.status_code == 400
    with pytest.raises(ApiClientError):
        client.campaigns.set_content(campaign_id, {"html": HTML})


def _quarter_hour_ahead(hours: int = 2) -> datetime:
    soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=hours)
    return soon.replace(minute=(soon.minute // 15) * 15)


def test_schedule_and_unschedule(client: Any, mc: MailchimpState, audience: str) -> None:
    campaign_id = _ready(client, audience)
    when = _quarter_hour_ahead()
    result = client.campaigns.schedule(campaign_id, {"schedule_time": when.isoformat()})
    assert isinstance(result, requests.Response) and result.status_code == 204
    scheduled = client.campaigns.get(campaign_id)
    assert scheduled["status"] == "schedule"
    assert scheduled["send_time"] == when.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    assert client.campaigns.unschedule(campaign_id).status_code == 204
    assert client.campaigns.get(campaign_id)["status"] == "save"
    with pytest.raises(ApiClientError) as exc:
        client.campaigns.unschedule(campaign_id)
    assert exc.value.status_code == 400
    assert mc.sent_campaigns() == []


@pytest.mark.parametrize(
    "when",
    [
        pytest.param(lambda: _quarter_hour_ahead() + timedelta(minutes=7), id="off-quarter"),
        pytest.param(lambda: _quarter_hour_ahead() + timedelta(seconds=30), id="seconds"),
        pytest.param(lambda: _quarter_hour_ahead(hours=-3), id="past"),
    ],
)
def test_bad_schedule_times(client: Any, audience: str, when: Any) -> None:
    campaign_id = _ready(client, audience)
    with pytest.raises(ApiClientError) as exc:
        client.campaigns.schedule(campaign_id, {"schedule_time": when().isoformat()})
    assert exc.value.status_code == 400
    assert problem(exc)["title"] == "Invalid Resource"
    assert client.campaigns.get(campaign_id)["status"] == "save"


def test_a_scheduled_campaign_is_sent_when_its_time_comes() -> None:
    now = [datetime(2030, 1, 1, 9, 0, tzinfo=UTC).timestamp()]
    state = MailchimpState(clock=lambda: now[0])
    list_id = state.create_list("Timed")
    state.add_members(list_id, ["a@dm.org"])
    campaign = state.create_campaign(
        {"type": "regular", "recipients": {"list_id": list_id}, "settings": SETTINGS}, ""
    )
    state.set_content(campaign["id"], {"html": HTML}, "")
    state.schedule_campaign(campaign["id"], {"schedule_time": "2030-01-01T09:15:00+00:00"})
    assert state.get_campaign(campaign["id"], "")["status"] == "schedule"
    now[0] += 15 * 60
    assert state.get_campaign(campaign["id"], "")["status"] == "sent"
    assert [c.send_time for c in state.sent_campaigns()] == ["2030-01-01T09:15:00+00:00"]
