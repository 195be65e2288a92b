"""Campaigns: :meth:`~flask_dmmail.mailchimp.Audiences.send_campaign` creates, fills and sends
a campaign to an audience as one idempotent call (its title identifies it), and
:meth:`~flask_dmmail.mailchimp.Audiences.find_campaign` finds one by title. A part of
:class:`~flask_dmmail.mailchimp.Audiences`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .. import signals
from ..errors import (
    CampaignError,
    InvalidEmailAddressError,
    InvalidInputError,
    MailchimpError,
    MailchimpNotFoundError,
    MailchimpProtocolError,
    MailchimpUnavailableError,
)
from ..validation import check_email_address, is_unicode
from .base import AudiencesBase
from .checks import _NOT_TEXT, _text
from .results import CampaignResult
from .transport import PAGE_SIZE, scrub

logger = logging.getLogger("flask_dmmail")

_SENT_STATUSES = frozenset({"sending", "sent", "schedule"})
_DRAFT_STATUSES = frozenset({"save", "paused"})


class CampaignsMixin(AudiencesBase):
    """The campaign methods of :class:`~flask_dmmail.mailchimp.Audiences`."""

    def send_campaign(
        self,
        audience: object,
        *,
        title: str,
        subject: str,
        html: str,
        from_name: str | None = None,
        reply_to: str | None = None,
    ) -> CampaignResult:
        """Create a regular campaign for ``audience``, set its HTML and send it, as one call.

        ``title`` identifies it: when a campaign with this title was already sent (or
        scheduled) to the audience, nothing is sent and that campaign is returned with
        ``already_sent=True``; a draft with the title left by an interrupted run is reused.
        ``subject`` is the subject line and ``html`` the body, which needs Mailchimp's
        ``*|UNSUB|*`` merge tag. ``from_name`` and ``reply_to`` default to the audience's
        campaign defaults.

        On failure it raises :class:`~flask_dmmail.errors.CampaignError` (``step``,
        ``campaign_id``, ``checklist``) and deletes the draft it made. A send that got no
        answer is checked before anything is deleted: if Mailchimp is sending it, that is a
        success. Outside production (DM_ENVIRONMENT) only the audiences in
        DM_MAILCHIMP_AUDIENCES may get campaigns: others raise UnlistedAudienceError before any
        network call (as for every method, see
        :meth:`~flask_dmmail.mailchimp.Audiences.list_id`). Fires ``campaign_sent``.
        """
        list_id = self.list_id(audience)
        title = _text(title, "The campaign title", limit=100)
        subject = _text(subject, "The subject line", limit=150)
        if not isinstance(html, str) or not html.strip():
            raise InvalidInputError("The campaign HTML must be a non-empty string.")
        if not is_unicode(html):
            raise InvalidInputError(f"The campaign HTML {_NOT_TEXT}")
        if from_name is not None:
            from_name = _text(from_name, "from_name", limit=100)
        if reply_to is not None:
            try:
                reply_to = check_email_address(reply_to)
            except InvalidEmailAddressError:
                raise InvalidInputError("reply_to must be a valid email address.") from None
        with self._reporting("send_campaign", list_id):
            result = self._send_campaign(list_id, title, subject, html, from_name, reply_to)
        if not result.already_sent:
            logger.info(
                "Mailchimp campaign %s sent to %s",
                result.campaign_id,
                list_id,
                extra={
                    "operation": "send_campaign",
                    "list_id": list_id,
                    "campaign_id": result.campaign_id,
                    "recipient_count": result.recipient_count,
                },
            )
            signals.campaign_sent.send(
                self._sender(),
                audience=list_id,
                campaign_id=result.campaign_id,
                title=title,
                result=result,
            )
        return result

    def find_campaign(self, audience: object, title: str) -> CampaignResult | None:
        """The first (oldest) campaign titled ``title`` for ``audience``, or None;
        ``already_sent`` is False when it is still a draft."""
        list_id = self.list_id(audience)
        wanted = _text(title, "The campaign title", limit=100)
        with self._reporting("find_campaign", list_id):
            found = self._campaigns_titled(list_id, wanted)
        if not found:
            return None
        sent = found[0].get("status") not in _DRAFT_STATUSES
        return _campaign_result(found[0], list_id, wanted, already_sent=sent)

    def _campaigns_titled(self, list_id: str, title: str) -> list[dict[str, Any]]:
        def fetch(client: Any, offset: int) -> Any:
            return client.campaigns.list(
                list_id=list_id,
                count=PAGE_SIZE,
                offset=offset,
                sort_field="create_time",
                sort_dir="ASC",
                fields=[
                    "campaigns.id",
                    "campaigns.status",
                    "campaigns.create_time",
                    "campaigns.settings.title",
                    "campaigns.emails_sent",
                    "campaigns.recipients.recipient_count",
                    "campaigns.recipients.list_id",
                    "campaigns.web_id",
                    "campaigns.archive_url",
                    "total_items",
                ],
            )

        found = [
            campaign
            for campaign in self._paged("send_campaign", "campaigns", fetch)
            if (campaign.get("settings") or {}).get("title") == title
            and (campaign.get("recipients") or {}).get("list_id", list_id) == list_id
        ]
        # Oldest first. Mailchimp's own order (create_time ASC) is kept inside one second:
        # ids are random, so sorting by them would not give the creation order.
        found.sort(key=lambda c: str(c.get("create_time", "")))
        return found

    def _send_campaign(
        self,
        list_id: str,
        title: str,
        subject: str,
        html: str,
        from_name: str | None,
        reply_to: str | None,
    ) -> CampaignResult:
        existing = self._campaigns_titled(list_id, title)
        first = existing[0] if existing else None
        if first is not None and first.get("status") not in _DRAFT_STATUSES:
            return _campaign_result(first, list_id, title, already_sent=True)
        if from_name is None or reply_to is None:
            defaults = (
                self._json(
                    "send_campaign",
                    lambda c: c.lists.get_list(list_id, fields=["campaign_defaults"]),
                ).get("campaign_defaults")
                or {}
            )
            from_name = from_name or str(defaults.get("from_name") or "")
            reply_to = reply_to or str(defaults.get("from_email") or "")
        body = {
            "type": "regular",
            "recipients": {"list_id": list_id},
            "settings": {
                "title": title,
                "subject_line": subject,
                "from_name": from_name,
                "reply_to": reply_to,
            },
        }
        made_here = False
        campaign_id: str | None = None
        step = "create"
        try:
            if first is not None:
                campaign_id = str(first["id"])  # a draft an interrupted run left: reuse it
                self._json("send_campaign", lambda c: c.campaigns.update(campaign_id, body))
            else:
                try:
                    created = self._json(
                        "send_campaign", lambda c: c.campaigns.create(body), retry=False
                    )
                except MailchimpUnavailableError:
                    # The create may have happened without an answer: look before failing.
                    again = self._campaigns_titled(list_id, title)
                    if not again:
                        raise
                    created = again[0]
                campaign_id = created.get("id")
                if not isinstance(campaign_id, str) or not campaign_id:
                    raise MailchimpProtocolError("Mailchimp created a campaign but sent no id.")
                made_here = True
                # Another process may have created one with this title at the same time:
                # the oldest wins, the others delete their drafts.
                oldest = self._campaigns_titled(list_id, title)
                if oldest and oldest[0].get("id") != campaign_id:
                    self._delete_draft(campaign_id)
                    return _campaign_result(oldest[0], list_id, title, already_sent=True)
            step = "content"
            self._json(
                "send_campaign", lambda c: c.campaigns.set_content(campaign_id, {"html": html})
            )
            step = "send"
            self._call("send_campaign", lambda c: c.campaigns.send(campaign_id), retry=False)
        except MailchimpError as error:
            if step == "send" and campaign_id is not None and self._is_sending(campaign_id):
                pass  # the send went through; only its answer was lost or refused late
            else:
                raise self._campaign_failed(error, step, campaign_id, made_here) from error
        assert campaign_id is not None
        data = self._json(
            "send_campaign",
            lambda c: c.campaigns.get(
                campaign_id,
                fields=[
                    "id",
                    "status",
                    "emails_sent",
                    "recipients.recipient_count",
                    "web_id",
                    "archive_url",
                ],
            ),
        )
        return _campaign_result({**data, "id": campaign_id}, list_id, title, already_sent=False)

    def _is_sending(self, campaign_id: str) -> bool:
        try:
            data = self._json(
                "send_campaign", lambda c: c.campaigns.get(campaign_id, fields=["status"])
            )
        except MailchimpError:
            return False
        return data.get("status") in _SENT_STATUSES

    def _delete_draft(self, campaign_id: str) -> bool:
        try:
            self._call("send_campaign", lambda c: c.campaigns.remove(campaign_id))
        except MailchimpNotFoundError:
            return True
        except MailchimpError as error:
            logger.error(
                "Mailchimp draft campaign %s could not be deleted (%s); delete it by hand",
                campaign_id,
                type(error).__name__,
                extra={"operation": "send_campaign", "campaign_id": campaign_id},
            )
            return False
        return True

    def _campaign_failed(
        self, error: MailchimpError, step: str, campaign_id: str | None, made_here: bool
    ) -> CampaignError:
        checklist: list[str] = []
        if step == "send" and campaign_id is not None:
            try:
                data = self._json(
                    "send_campaign", lambda c: c.campaigns.get_send_checklist(campaign_id)
                )
            except MailchimpError:
                data = {}
            for item in data.get("items") or []:
                if item.get("type") == "error":
                    checklist.append(scrub(f"{item.get('heading', '')}: {item.get('details', '')}"))
        deleted = self._delete_draft(campaign_id) if made_here and campaign_id else False
        what = {"create": "create", "content": "set the content of", "send": "send"}[step]
        message = f"Mailchimp would not {what} the campaign: {error.message}"
        if checklist:
            message += " Unmet: " + "; ".join(item.rstrip(". ") for item in checklist) + "."
        if campaign_id is not None and made_here:
            message += (
                " The draft was deleted."
                if deleted
                else f" The draft {campaign_id} could not be deleted: delete it by hand."
            )
        return CampaignError(
            message,
            step=step,
            campaign_id=campaign_id,
            draft_deleted=deleted,
            checklist=checklist,
            status=error.status,
            title=error.title,
            detail=error.detail,
            transient=error.transient,
        )


def _campaign_result(
    data: Mapping[str, Any], list_id: str, title: str, *, already_sent: bool
) -> CampaignResult:
    recipients = data.get("recipients") or {}
    web_id = data.get("web_id")
    return CampaignResult(
        campaign_id=str(data.get("id", "")),
        list_id=list_id,
        title=title,
        status=str(data.get("status", "")),
        emails_sent=int(data.get("emails_sent") or 0),
        recipient_count=int(recipients.get("recipient_count") or 0),
        already_sent=already_sent,
        web_id=int(web_id) if isinstance(web_id, int) else None,
        archive_url=data.get("archive_url") or None,
    )
