"""Campaigns: drafts, their content, the send checklist, sending and scheduling, and the
record of what was sent.

A campaign's status moves on when it is read: a scheduled one whose time has come is sent, and
a sending one becomes ``sent`` after the state's ``send_seconds``. Each send is recorded as a
:class:`~.models.SentCampaign` for the outbox page.
"""

from __future__ import annotations

import html as html_lib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from . import problems
from .campaign_content import (
    camp_settings,
    camp_tracking,
    campaign_json,
    checklist,
    content_json,
    html_to_text,
)
from .models import CampaignRecord, SentCampaign, iso, new_id, new_web_id, parse_time
from .problems import MailchimpProblem
from .serialise import collection_links

if TYPE_CHECKING:
    from .state import MailchimpState

__all__ = ["CAMPAIGN_STATUSES", "CAMPAIGN_TYPES", "CampaignStore"]

CAMPAIGN_TYPES: Final = ("regular", "plaintext", "absplit", "rss", "variate")
CAMPAIGN_STATUSES: Final = (
    "save",
    "paused",
    "schedule",
    "sending",
    "sent",
    "canceled",
    "canceling",
    "archived",
)


class CampaignStore:
    """The account's campaigns and the campaigns it has sent; shares the state's lock.

    :param state: the :class:`~flask_dmmail.sandbox.mailchimp.MailchimpState` it belongs to
        (its lock, clock, ``send_seconds`` and the audiences).
    """

    def __init__(self, state: MailchimpState) -> None:
        self._state = state
        self._lock = state.lock
        self.reset()

    def reset(self) -> None:
        """No campaigns, none sent."""
        with self._lock:
            self._campaigns: dict[str, CampaignRecord] = {}
            self._sent: list[SentCampaign] = []

    def create_campaign(self, body: Any, base: str) -> dict[str, Any]:
        """POST /campaigns: a draft (``save``)."""
        body = problems.require_object(body)
        if "type" not in body:
            raise problems.required_fields("type")
        if body["type"] not in CAMPAIGN_TYPES:
            message = (
                "Data presented is not one of the accepted values: "
                + ", ".join(CAMPAIGN_TYPES)
                + "."
            )
            raise problems.invalid_resource(errors=[{"field": "type", "message": message}])
        with self._lock:
            campaign = CampaignRecord(
                id=self._unused_campaign_id(),
                web_id=new_web_id(),
                type=body["type"],
                created=self._state.clock(),
            )
            self._apply_campaign(campaign, body)
            self._campaigns[campaign.id] = campaign
            return self._campaign_json(campaign, base)

    def _unused_campaign_id(self) -> str:
        while True:
            candidate = new_id()
            if candidate not in self._campaigns:
                return candidate

    def _apply_campaign(self, campaign: CampaignRecord, body: Mapping[str, Any]) -> None:
        recipients = body.get("recipients")
        if recipients is not None:
            if not isinstance(recipients, dict):
                raise problems.schema_mismatch(
                    "recipients", "object", problems.type_name(recipients)
                )
            if "list_id" not in recipients:
                raise problems.invalid_resource(
                    errors=[
                        {
                            "field": "recipients",
                            "message": "Required fields were not provided: list_id",
                        }
                    ]
                )
            if self._state.list_store.find(recipients["list_id"]) is None:
                raise problems.invalid_resource(
                    errors=[
                        {
                            "field": "recipients.list_id",
                            "message": "The requested list_id does not exist.",
                        }
                    ]
                )
            campaign.list_id = recipients["list_id"]
            if isinstance(recipients.get("segment_opts"), dict):
                campaign.segment_opts = dict(recipients["segment_opts"])
        for name in ("settings", "tracking"):
            given = body.get(name)
            if given is None:
                continue
            if not isinstance(given, dict):
                raise problems.schema_mismatch(name, "object", problems.type_name(given))
            for key, value in given.items():
                if key in ("subject_line", "title", "from_name", "reply_to", "preview_text") and (
                    not isinstance(value, str)
                ):
                    raise problems.schema_mismatch(
                        f"{name}.{key}", "string", problems.type_name(value)
                    )
        campaign.settings = camp_settings({**campaign.settings, **(body.get("settings") or {})})
        campaign.tracking = camp_tracking({**campaign.tracking, **(body.get("tracking") or {})})

    def _campaign(self, campaign_id: str) -> CampaignRecord:
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            raise problems.not_found()
        self._advance(campaign)
        return campaign

    def _advance(self, campaign: CampaignRecord) -> None:
        now = self._state.clock()
        when = campaign.send_time
        if campaign.status == "schedule" and when is not None and when <= now:
            self._start_sending(campaign, when)
        if campaign.status == "sending" and (campaign.sending_until or 0.0) <= now:
            campaign.status = "sent"

    def _recipient_count(self, campaign: CampaignRecord) -> int:
        if campaign.recipient_count is not None:
            return campaign.recipient_count
        lst = self._state.list_store.find(campaign.list_id)
        return lst.counts["subscribed"] if lst is not None else 0

    def _start_sending(self, campaign: CampaignRecord, when: float) -> None:
        lst = self._state.list_store.find(campaign.list_id)
        count = self._recipient_count(campaign)
        campaign.recipient_count = count
        campaign.emails_sent = count
        campaign.send_time = when
        campaign.status = "sending"
        campaign.sending_until = when + self._state.send_seconds
        if lst is not None:
            lst.campaign_count += 1
            lst.campaign_last_sent = when
        settings = campaign.settings
        self._sent.append(
            SentCampaign(
                id=campaign.id,
                title=str(settings.get("title", "")),
                subject_line=str(settings.get("subject_line", "")),
                from_name=str(settings.get("from_name", "")),
                reply_to=str(settings.get("reply_to", "")),
                list_id=campaign.list_id,
                list_name=lst.name if lst is not None else "",
                html=campaign.html,
                plain_text=campaign.plain_text,
                recipient_count=count,
                send_time=iso(when),
            )
        )

    def get_campaign(self, campaign_id: str, base: str) -> dict[str, Any]:
        """GET /campaigns/{id}."""
        with self._lock:
            return self._campaign_json(self._campaign(campaign_id), base)

    def list_campaigns(
        self,
        base: str,
        *,
        count: int = 10,
        offset: int = 0,
        status: str | None = None,
        list_id: str | None = None,
        type_: str | None = None,
        sort_field: str | None = None,
        sort_dir: str = "ASC",
    ) -> dict[str, Any]:
        """GET /campaigns: a page, filtered and sorted."""
        with self._lock:
            campaigns = list(self._campaigns.values())
            for campaign in campaigns:
                self._advance(campaign)
            if status is not None:
                campaigns = [c for c in campaigns if c.status == status]
            if list_id is not None:
                campaigns = [c for c in campaigns if c.list_id == list_id]
            if type_ is not None:
                campaigns = [c for c in campaigns if c.type == type_]
            if sort_field == "send_time":
                campaigns.sort(key=lambda c: c.send_time or 0.0)
            elif sort_field == "create_time":
                campaigns.sort(key=lambda c: c.created)
            if sort_dir.upper() == "DESC":
                campaigns.reverse()
            page = campaigns[offset : offset + count]
            return {
                "campaigns": [self._campaign_json(c, base) for c in page],
                "total_items": len(campaigns),
                "_links": collection_links(f"{base}/campaigns"),
            }

    def update_campaign(self, campaign_id: str, body: Any, base: str) -> dict[str, Any]:
        """PATCH /campaigns/{id}: recipients, settings, tracking (drafts only)."""
        body = problems.require_object(body)
        with self._lock:
            campaign = self._campaign(campaign_id)
            self._require_editable(campaign)
            self._apply_campaign(campaign, body)
            return self._campaign_json(campaign, base)

    @staticmethod
    def _require_editable(campaign: CampaignRecord) -> None:
        if campaign.status in ("sending", "sent", "canceling", "canceled"):
            raise MailchimpProblem(
                400, "Bad Request", "This campaign cannot be updated because it has been sent."
            )
        if campaign.status == "schedule":
            raise MailchimpProblem(
                400,
                "Bad Request",
                "This campaign is scheduled. Unschedule it before making changes.",
            )

    def delete_campaign(self, campaign_id: str) -> None:
        """DELETE /campaigns/{id}."""
        with self._lock:
            self._campaign(campaign_id)
            del self._campaigns[campaign_id]

    def set_content(self, campaign_id: str, body: Any, base: str) -> dict[str, Any]:
        """PUT /campaigns/{id}/content: HTML, plain text, a template's sections or a URL."""
        body = problems.require_object(body)
        with self._lock:
            campaign = self._campaign(campaign_id)
            self._require_editable(campaign)
            html = body.get("html")
            plain = body.get("plain_text")
            template = body.get("template")
            if html is not None and not isinstance(html, str):
                raise problems.schema_mismatch("html", "string", problems.type_name(html))
            if plain is not None and not isinstance(plain, str):
                raise problems.schema_mismatch("plain_text", "string", problems.type_name(plain))
            if isinstance(template, dict):
                sections = template.get("sections") or {}
                html = "".join(
                    f'<div mc:edit="{html_lib.escape(str(k))}">{v}</div>'
                    for k, v in sections.items()
                )
            elif html is None and plain is None and body.get("url") is None:
                raise problems.required_fields("html")
            if html is not None:
                campaign.html = html
                campaign.plain_text = plain if plain is not None else html_to_text(html)
            elif plain is not None:
                campaign.plain_text = plain
                if campaign.type == "plaintext":
                    campaign.html = ""
            elif isinstance(body.get("url"), str):
                campaign.html = f"<!-- imported from {html_lib.escape(body['url'])} -->"
                campaign.plain_text = ""
            campaign.has_content = True
            return content_json(campaign, base)

    def get_content(self, campaign_id: str, base: str) -> dict[str, Any]:
        """GET /campaigns/{id}/content."""
        with self._lock:
            return content_json(self._campaign(campaign_id), base)

    def _checklist(self, campaign: CampaignRecord) -> list[dict[str, Any]]:
        lst = self._state.list_store.find(campaign.list_id)
        return checklist(
            campaign,
            lst,
            self._recipient_count(campaign),
            self._state.domain_store.is_verified,
        )

    def send_checklist(self, campaign_id: str, base: str) -> dict[str, Any]:
        """GET /campaigns/{id}/send-checklist."""
        with self._lock:
            campaign = self._campaign(campaign_id)
            items = self._checklist(campaign)
            return {
                "is_ready": all(i["type"] != "error" for i in items),
                "items": items,
                "_links": [
                    {
                        "rel": "parent",
                        "href": f"{base}/campaigns/{campaign.id}",
                        "method": "GET",
                    }
                ],
            }

    def _require_ready(self, campaign: CampaignRecord) -> None:
        if any(i["type"] == "error" for i in self._checklist(campaign)):
            raise MailchimpProblem(400, "Bad Request", "Your Campaign is not ready to send.")

    def send_campaign(self, campaign_id: str) -> None:
        """POST …/actions/send: ``sending`` now, ``sent`` after ``send_seconds``."""
        with self._lock:
            campaign = self._campaign(campaign_id)
            if campaign.status == "schedule":
                raise MailchimpProblem(
                    400,
                    "Bad Request",
                    "This campaign is scheduled. Unschedule it before sending it now.",
                )
            self._require_ready(campaign)
            self._start_sending(campaign, self._state.clock())
            self._advance(campaign)

    def schedule_campaign(self, campaign_id: str, body: Any) -> None:
        """POST …/actions/schedule: on a quarter-hour in the future, if ready."""
        body = problems.require_object(body)
        if "schedule_time" not in body:
            raise problems.required_fields("schedule_time")
        value = body["schedule_time"]
        if not isinstance(value, str):
            raise problems.schema_mismatch("schedule_time", "string", problems.type_name(value))
        try:
            when = parse_time(value)
        except ValueError:
            raise problems.invalid_resource(
                errors=[
                    {
                        "field": "schedule_time",
                        "message": "This value should be a valid ISO 8601 date and time.",
                    }
                ]
            ) from None
        with self._lock:
            campaign = self._campaign(campaign_id)
            if campaign.status not in ("save", "paused"):
                raise MailchimpProblem(
                    400, "Bad Request", "This campaign cannot be scheduled in its current state."
                )
            moment = time.gmtime(when)
            if moment.tm_min % 15 or moment.tm_sec or when != int(when):
                raise problems.invalid_resource(
                    "Schedule time must be on the quarter-hour (:00, :15, :30, :45)."
                )
            if when <= self._state.clock():
                raise problems.invalid_resource("Schedule time must be in the future.")
            self._require_ready(campaign)
            campaign.status = "schedule"
            campaign.send_time = when

    def unschedule_campaign(self, campaign_id: str) -> None:
        """POST …/actions/unschedule: back to a draft."""
        with self._lock:
            campaign = self._campaign(campaign_id)
            if campaign.status != "schedule":
                raise MailchimpProblem(
                    400, "Bad Request", "Cannot unschedule a campaign that is not scheduled."
                )
            campaign.status = "save"
            campaign.send_time = None

    def _campaign_json(self, campaign: CampaignRecord, base: str) -> dict[str, Any]:
        lst = self._state.list_store.find(campaign.list_id)
        return campaign_json(campaign, lst, self._recipient_count(campaign), base)

    # ----------------------------------------------------------------- reads (the outbox)

    def campaigns(self) -> list[dict[str, Any]]:
        """Every campaign as the API shows it."""
        with self._lock:
            for campaign in self._campaigns.values():
                self._advance(campaign)
            return [self._campaign_json(c, "") for c in self._campaigns.values()]

    def sent_campaigns(self) -> list[SentCampaign]:
        """Campaigns sent (or whose schedule has passed), oldest first."""
        with self._lock:
            for campaign in self._campaigns.values():
                self._advance(campaign)
            return list(self._sent)
