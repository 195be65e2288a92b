"""How audiences and members look in the API's JSON.

:func:`list_json` and :func:`member_json` turn the stores' records into the objects Mailchimp
sends (field for field, in Mailchimp's order); :func:`member_json` can build only some top-level
keys, the fast path for a members page asked for with ``fields``.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Any, Final

from .models import ListRecord, MemberRecord, iso

__all__ = [
    "collection_links",
    "list_json",
    "member_json",
    "unique_email_id",
]

#: A member's ``stats`` (the API reference's member sample: no ecommerce activity).
_STATS: Final = {
    "avg_open_rate": 0,
    "avg_click_rate": 0,
    "ecommerce_data": {"total_revenue": 0, "number_of_orders": 0, "currency_code": "USD"},
}
#: A member's ``location`` when Mailchimp knows none.
_LOCATION: Final = {
    "latitude": 0,
    "longitude": 0,
    "gmtoff": 0,
    "dstoff": 0,
    "country_code": "",
    "timezone": "",
    "region": "",
}
#: A member's ``last_note`` when it has none.
_NO_NOTE: Final = {"note_id": 0, "created_at": "", "created_by": "", "note": ""}


def list_json(lst: ListRecord, base: str, *, include_total: bool) -> dict[str, Any]:
    """The audience as the API shows it; ``stats.total_contacts`` only if ``include_total``."""
    counts = lst.counts
    stats: dict[str, Any] = {
        "member_count": counts["subscribed"],
        "unsubscribe_count": counts["unsubscribed"],
        "cleaned_count": counts["cleaned"],
        "member_count_since_send": counts["subscribed"],
        "unsubscribe_count_since_send": 0,
        "cleaned_count_since_send": 0,
        "campaign_count": lst.campaign_count,
        "campaign_last_sent": iso(lst.campaign_last_sent),
        "merge_field_count": len(lst.merge_fields),
        "avg_sub_rate": 0,
        "avg_unsub_rate": 0,
        "target_sub_rate": 0,
        "open_rate": 0,
        "click_rate": 0,
        "last_sub_date": iso(lst.last_sub),
        "last_unsub_date": iso(lst.last_unsub),
    }
    if include_total:
        stats["total_contacts"] = len(lst.members)
    s = lst.settings
    href = f"{base}/lists/{lst.id}"
    return {
        "id": lst.id,
        "web_id": lst.web_id,
        "name": lst.name,
        "contact": dict(s["contact"]),
        "permission_reminder": s["permission_reminder"],
        "use_archive_bar": s["use_archive_bar"],
        "campaign_defaults": dict(s["campaign_defaults"]),
        "notify_on_subscribe": s["notify_on_subscribe"],
        "notify_on_unsubscribe": s["notify_on_unsubscribe"],
        "date_created": iso(lst.created),
        "list_rating": 0,
        "email_type_option": s["email_type_option"],
        "subscribe_url_short": f"http://eepurl.com/{lst.id[:6]}",
        "subscribe_url_long": f"https://sandbox.us5.list-manage.com/subscribe?id={lst.id}",
        "beamer_address": f"us5-{lst.id}@inbound.mailchimp.com",
        "visibility": s["visibility"],
        "double_optin": s["double_optin"],
        "has_welcome": False,
        "marketing_permissions": s["marketing_permissions"],
        "modules": [],
        "stats": stats,
        "_links": [
            {"rel": "self", "href": href, "method": "GET"},
            {"rel": "parent", "href": f"{base}/lists", "method": "GET"},
            {"rel": "update", "href": href, "method": "PATCH"},
            {"rel": "batch-sub-unsub-members", "href": href, "method": "POST"},
            {"rel": "delete", "href": href, "method": "DELETE"},
            {"rel": "members", "href": f"{href}/members", "method": "GET"},
            {"rel": "merge-fields", "href": f"{href}/merge-fields", "method": "GET"},
            {"rel": "webhooks", "href": f"{href}/webhooks", "method": "GET"},
        ],
    }


def unique_email_id(lst: ListRecord, m: MemberRecord) -> str:
    """The member's ``unique_email_id``: fixed for an address in an audience."""
    return hashlib.md5(f"{lst.id}:{m.hash}".encode(), usedforsecurity=False).hexdigest()[:10]


def member_json(
    lst: ListRecord, m: MemberRecord, base: str, keys: frozenset[str] | None = None
) -> dict[str, Any]:
    """The member as the API shows it; only the top-level ``keys`` when given (fast path
    for ``fields=members.x``: the full object costs most of a 1,000-member page)."""
    if keys is not None:
        return {
            name: make(lst, m, base)
            for name, make in _MEMBER_PARTS.items()
            if name in keys
            and (
                name != "unsubscribe_reason"
                or (m.status == "unsubscribed" and m.unsubscribe_reason)
            )
        }
    return {
        name: make(lst, m, base)
        for name, make in _MEMBER_PARTS.items()
        if name != "unsubscribe_reason" or (m.status == "unsubscribed" and m.unsubscribe_reason)
    }


def _merge(lst: ListRecord, m: MemberRecord) -> dict[str, Any]:
    """The member's value of each of the audience's merge fields (``""`` when it has none)."""
    stored = m.merge_fields or {}
    fields = sorted(lst.merge_fields.values(), key=lambda f: (f.display_order, f.merge_id))
    return {
        f.tag: dict(value) if isinstance(value := stored.get(f.tag, ""), dict) else value
        for f in fields
    }


def _full_name(m: MemberRecord) -> str:
    stored = m.merge_fields or {}
    return " ".join(str(p) for p in (stored.get("FNAME", ""), stored.get("LNAME", "")) if p)


def _tags(lst: ListRecord, m: MemberRecord) -> list[dict[str, Any]]:
    return [{"id": lst.tag_ids[name], "name": name} for name in m.tags] if m.tags else []


MemberRecordPart = Callable[[ListRecord, MemberRecord, str], Any]

#: Each top-level key of the member object, in Mailchimp's order (the API reference's member
#: sample), for the full object and for ``fields``.
_MEMBER_PARTS: dict[str, MemberRecordPart] = {
    "id": lambda lst, m, base: m.hash,
    "email_address": lambda lst, m, base: m.email,
    "unique_email_id": lambda lst, m, base: unique_email_id(lst, m),
    "contact_id": lambda lst, m, base: hashlib.md5(
        f"contact:{m.hash}".encode(), usedforsecurity=False
    ).hexdigest(),
    "full_name": lambda lst, m, base: _full_name(m),
    "web_id": lambda lst, m, base: 100_000_000 + m.seq,
    "email_type": lambda lst, m, base: m.email_type,
    "status": lambda lst, m, base: m.status,
    "unsubscribe_reason": lambda lst, m, base: m.unsubscribe_reason,
    "consents_to_one_to_one_messaging": lambda lst, m, base: True,
    "merge_fields": lambda lst, m, base: _merge(lst, m),
    "interests": lambda lst, m, base: {},
    "stats": lambda lst, m, base: copy.deepcopy(_STATS),
    "ip_signup": lambda lst, m, base: m.ip_signup,
    "timestamp_signup": lambda lst, m, base: iso(m.signup),
    "ip_opt": lambda lst, m, base: m.ip_opt,
    "timestamp_opt": lambda lst, m, base: iso(m.opt),
    "member_rating": lambda lst, m, base: 2,
    "last_changed": lambda lst, m, base: iso(m.changed),
    "language": lambda lst, m, base: m.language,
    "vip": lambda lst, m, base: m.vip,
    "email_client": lambda lst, m, base: "",
    "location": lambda lst, m, base: dict(_LOCATION),
    "marketing_permissions": lambda lst, m, base: [],
    "last_note": lambda lst, m, base: dict(_NO_NOTE),
    "source": lambda lst, m, base: "API - Generic",
    "tags_count": lambda lst, m, base: len(m.tags or ()),
    "tags": lambda lst, m, base: _tags(lst, m),
    "list_id": lambda lst, m, base: lst.id,
    "_links": lambda lst, m, base: _member_links(lst, m, base),
}


def _member_links(lst: ListRecord, m: MemberRecord, base: str) -> list[dict[str, str]]:
    href = f"{base}/lists/{lst.id}/members/{m.hash}"
    return [
        {"rel": "self", "href": href, "method": "GET"},
        {"rel": "parent", "href": f"{base}/lists/{lst.id}/members", "method": "GET"},
        {"rel": "update", "href": href, "method": "PATCH"},
        {"rel": "upsert", "href": href, "method": "PUT"},
        {"rel": "delete", "href": href, "method": "DELETE"},
    ]


def collection_links(href: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": href, "method": "GET"}]
