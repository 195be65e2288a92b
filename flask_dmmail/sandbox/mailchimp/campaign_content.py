"""What a campaign is made of, apart from where it is kept: the default settings and tracking,
its content (the content object, and the plain text Mailchimp derives from HTML), and the send
checklist that says whether it is ready to send.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from .models import CampaignRecord, ListRecord, iso

__all__ = [
    "UNSUB_TAG",
    "camp_settings",
    "camp_tracking",
    "campaign_json",
    "checklist",
    "content_json",
    "html_to_text",
]

#: The merge tag every campaign's content must hold (the unsubscribe link).
UNSUB_TAG: Final = "*|UNSUB|*"


def camp_settings(given: Mapping[str, Any] | None) -> dict[str, Any]:
    """A campaign's ``settings``: Mailchimp's defaults, updated with ``given``."""
    settings: dict[str, Any] = {
        "subject_line": "",
        "preview_text": "",
        "title": "",
        "from_name": "",
        "reply_to": "",
        "use_conversation": False,
        "to_name": "",
        "folder_id": "",
        "authenticate": True,
        "auto_footer": False,
        "inline_css": False,
        "auto_tweet": False,
        "auto_fb_post": [],
        "fb_comments": True,
        "timewarp": False,
        "template_id": 0,
        "drag_and_drop": False,
    }
    if given:
        settings.update(given)
    return settings


def camp_tracking(given: Mapping[str, Any] | None) -> dict[str, Any]:
    """A campaign's ``tracking``: Mailchimp's defaults, updated with ``given``."""
    tracking: dict[str, Any] = {
        "opens": True,
        "html_clicks": True,
        "text_clicks": False,
        "goal_tracking": False,
        "ecomm360": False,
        "google_analytics": "",
        "clicktale": "",
        "salesforce": {"campaign": False, "notes": False},
        "capsule": {"notes": False},
    }
    if given:
        tracking.update(given)
    return tracking


def html_to_text(html: str) -> str:
    """A rough plain-text rendering of campaign HTML, as Mailchimp generates one."""
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", "", html)
    text = re.sub(r'(?is)<a\b[^>]*href="([^"]*)"[^>]*>(.*?)</a>', r"\2 (\1)", text)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</h[1-6]>|</li>|</tr>|</div>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = html_lib.unescape(text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def content_json(campaign: CampaignRecord, base: str) -> dict[str, Any]:
    """The campaign's content object (``html`` and ``archive_html`` unless it is plain text)."""
    data: dict[str, Any] = {"plain_text": campaign.plain_text}
    if campaign.type != "plaintext":
        data["html"] = campaign.html
        data["archive_html"] = campaign.html
    data["_links"] = [
        {
            "rel": "self",
            "href": f"{base}/campaigns/{campaign.id}/content",
            "method": "GET",
        }
    ]
    return data


def checklist(
    campaign: CampaignRecord,
    lst: ListRecord | None,
    recipient_count: int,
    domain_verified: Callable[[str], bool] = lambda domain: True,
) -> list[dict[str, Any]]:
    """The send checklist's items for ``campaign``, sent to ``lst`` (None: no audience) with
    ``recipient_count`` recipients, whose from-address (``reply_to``) must be at a domain for
    which ``domain_verified`` is true; any item of type ``error`` means it is not ready."""
    items: list[tuple[str, str, str]] = []
    settings = campaign.settings
    if campaign.status in ("sent", "sending"):
        items.append(("error", "Campaign", "This campaign has already been sent."))
    if lst is None:
        items.append(("error", "Audience", "You need to choose an audience to send to."))
    elif recipient_count == 0:
        items.append(("error", "Audience", f'Your segment of list "{lst.name}" is empty.'))
    else:
        items.append(("success", "Audience", f"{recipient_count} recipients in {lst.name}."))
    for key, heading in (
        ("subject_line", "Subject line"),
        ("from_name", "From name"),
        ("reply_to", "From email address"),
    ):
        if str(settings.get(key) or "").strip():
            items.append(("success", heading, f"The {heading.lower()} is set."))
        else:
            items.append(("error", heading, f"You need to add a {heading.lower()}."))
    reply_to = str(settings.get("reply_to") or "").strip()
    if reply_to:
        domain = reply_to.rpartition("@")[2].lower()
        if domain_verified(domain):
            items.append(("success", "Domain", f"{domain} is a verified domain."))
        else:
            # The checklist's wording is the sandbox's own (docs/sandbox.md).
            items.append(
                (
                    "error",
                    "Domain",
                    f"The from email address's domain, {domain}, is not verified. Verify it "
                    "or use an address at a verified domain.",
                )
            )
    content = campaign.plain_text if campaign.type == "plaintext" else campaign.html
    if not campaign.has_content or not content.strip():
        items.append(("error", "Content", "You need to add content to your campaign."))
    elif UNSUB_TAG not in content:
        items.append(
            (
                "error",
                "Unsubscribe link",
                f"Your campaign content must include the {UNSUB_TAG} merge tag.",
            )
        )
    else:
        items.append(("success", "Content", "Your campaign has content."))
    return [
        {"type": kind, "id": number, "heading": heading, "details": details}
        for number, (kind, heading, details) in enumerate(items, start=1)
    ]


def campaign_json(
    campaign: CampaignRecord, lst: ListRecord | None, recipient_count: int, base: str
) -> dict[str, Any]:
    """The campaign as the API shows it, sent to ``lst`` (None: no such audience) with
    ``recipient_count`` recipients: the fields of the API reference's campaign sample
    (``parent_campaign_id``, ``report_summary`` once sent, every ``delivery_status`` key)."""
    recipients: dict[str, Any] = {
        "list_id": campaign.list_id,
        "list_is_active": lst is not None,
        "list_name": lst.name if lst is not None else "",
        "segment_text": "",
        "recipient_count": recipient_count,
    }
    if campaign.segment_opts is not None:
        recipients["segment_opts"] = dict(campaign.segment_opts)
    href = f"{base}/campaigns/{campaign.id}"
    sent = campaign.status in ("sending", "sent")
    data: dict[str, Any] = {
        "id": campaign.id,
        "web_id": campaign.web_id,
        "parent_campaign_id": "",
        "type": campaign.type,
        "create_time": iso(campaign.created),
        "archive_url": f"http://eepurl.com/{campaign.id[:6]}",
        "long_archive_url": f"https://us5.campaign-archive.com/?id={campaign.id}",
        "status": campaign.status,
        "emails_sent": campaign.emails_sent,
        "send_time": iso(campaign.send_time),
        "content_type": "html" if campaign.type != "plaintext" else "plaintext",
        "needs_block_refresh": False,
        "resendable": False,
        "recipients": recipients,
        "settings": dict(campaign.settings),
        "tracking": dict(campaign.tracking),
    }
    if sent:
        data["report_summary"] = {
            "opens": 0,
            "unique_opens": 0,
            "open_rate": 0,
            "clicks": 0,
            "subscriber_clicks": 0,
            "click_rate": 0,
            "ecommerce": {"total_orders": 0, "total_spent": 0, "total_revenue": 0},
        }
    data["delivery_status"] = {
        "enabled": False,
        "can_cancel": False,
        "status": "delivered" if campaign.status == "sent" else "",
        "emails_sent": campaign.emails_sent,
        "emails_canceled": 0,
    }
    data["_links"] = [
        {"rel": "self", "href": href, "method": "GET"},
        {"rel": "parent", "href": f"{base}/campaigns", "method": "GET"},
        {"rel": "update", "href": href, "method": "PATCH"},
        {"rel": "delete", "href": href, "method": "DELETE"},
        {"rel": "content", "href": f"{href}/content", "method": "GET"},
        {"rel": "send_checklist", "href": f"{href}/send-checklist", "method": "GET"},
    ]
    return data
