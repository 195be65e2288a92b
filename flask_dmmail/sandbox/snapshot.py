"""A sandbox's data as JSON, and back: what the embedded sandbox keeps in an app's instance folder.

:func:`snapshot` gives a JSON-ready mapping of what a developer would miss after a restart: the
Notify service's id (its keys derive from it), every stored notification, and the Mailchimp
account's key, audiences (members, tags, webhooks), campaigns and sent campaigns. :func:`restore`
puts such a mapping back into a new :class:`~flask_dmmail.sandbox.SandboxState`.

Left out on purpose: templates and reply-to addresses (they come from the seed at every start,
so an edited seed wins), limits, faults, revoked keys, Mailchimp batches and webhook deliveries
(a run's passing state). Notifications older than 7 days are dropped on restore, as Notify
keeps them 7 days. The format has a version number; :func:`restore` raises ValueError for
anything it cannot read, and the caller starts empty instead.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .mailchimp.models import (
    CampaignRecord,
    ListRecord,
    MemberRecord,
    MergeFieldRecord,
    SentCampaign,
)
from .models import Notification, utcnow

if TYPE_CHECKING:
    from .mailchimp import MailchimpState
    from .state import SandboxState

__all__ = ["FORMAT", "RETENTION", "restore", "service_id", "snapshot"]

#: The version of the mapping :func:`snapshot` gives.
FORMAT = 1
#: How long a restored notification is kept, as on Notify.
RETENTION = timedelta(days=7)
_TIMES = ("created_at", "sent_at", "completed_at")


def snapshot(state: SandboxState) -> dict[str, Any]:
    """``state``'s data as a JSON-ready mapping (each service read under its own lock)."""
    notifications = [n.to_dict() for n in reversed(state.notify.notifications.outbox())]
    return {
        "format": FORMAT,
        "service_id": state.notify.service_id,
        "mailchimp_key": state.mailchimp.api_key,
        "notifications": notifications,
        "mailchimp": _mailchimp_snapshot(state.mailchimp),
    }


def service_id(data: Mapping[str, Any]) -> str | None:
    """The Notify service id of a snapshot, or None when it has none (or is not one)."""
    value = data.get("service_id") if data.get("format") == FORMAT else None
    return value if isinstance(value, str) else None


def restore(state: SandboxState, data: Mapping[str, Any], *, schedule: bool = True) -> None:
    """Put a :func:`snapshot` back into ``state`` (a new one, made with the snapshot's
    ``service_id``): its notifications, then its audiences and campaigns (an audience of the
    seed is replaced by the saved one of the same id).

    :param schedule: move notifications that were not in a final status on to it now; False
        for a read-only copy, which then starts no thread.
    :raises ValueError: when ``data`` is not a snapshot of this format.
    """
    if data.get("format") != FORMAT:
        raise ValueError(f"not a sandbox snapshot of format {FORMAT}")
    try:
        oldest = utcnow() - RETENTION
        kept = [_notification(item) for item in data.get("notifications", [])]
        state.notify.notifications.restore(
            [n for n in kept if n.created_at >= oldest], schedule=schedule
        )
        _mailchimp_restore(state.mailchimp, data.get("mailchimp") or {})
        key = data.get("mailchimp_key")
        if isinstance(key, str) and key:
            state.mailchimp.add_api_key(key)
            state.mailchimp.api_key = key
    except (TypeError, KeyError, AttributeError) as error:
        raise ValueError(f"the snapshot does not hold what it should ({error})") from None


def _notification(item: Mapping[str, Any]) -> Notification:
    names = {f.name for f in dataclasses.fields(Notification)}
    values = {k: v for k, v in item.items() if k in names}
    for key in _TIMES:
        if values.get(key) is not None:
            values[key] = datetime.fromisoformat(values[key])
    return Notification(**values)


# -- Mailchimp -------------------------------------------------------------------------------
# The stores keep their rows in private attributes; this module is the one place outside them
# that reads and writes those rows, and only here, for saving and loading.


def _row(record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if isinstance(value, set | frozenset):
            value = sorted(value)
        elif isinstance(value, Counter):
            value = {k: n for k, n in value.items() if n}
        out[f.name] = value
    return out


def _mailchimp_snapshot(mailchimp: MailchimpState) -> dict[str, Any]:
    with mailchimp.lock:
        lists = []
        for record in mailchimp.list_store._lists.values():
            row = _row(record)
            row.pop("views")  # a cache
            row["members"] = {h: _row(m) for h, m in record.members.items()}
            row["merge_fields"] = {t: _row(f) for t, f in record.merge_fields.items()}
            lists.append(row)
        members = mailchimp.member_store
        rules = mailchimp.address_rules
        return {
            "lists": lists,
            "campaigns": [_row(c) for c in mailchimp.campaign_store._campaigns.values()],
            "sent": [_row(c) for c in mailchimp.campaign_store._sent],
            "member_seq": members._seq,
            "tag_seq": members._tag_seq,
            "fake_rule": {
                "enabled": rules._fake_enabled,
                "domains": sorted(rules._fake_domains),
                "addresses": sorted(rules._fake_addresses),
            },
        }


def _list_record(row: Mapping[str, Any]) -> ListRecord:
    values = dict(row)
    values["members"] = {h: MemberRecord(**m) for h, m in values.get("members", {}).items()}
    values["merge_fields"] = {
        t: MergeFieldRecord(**f) for t, f in values.get("merge_fields", {}).items()
    }
    values["forgotten"] = set(values.get("forgotten", ()))
    values["counts"] = Counter(values.get("counts", {}))
    values["tag_ids"] = dict(values.get("tag_ids", {}))
    return ListRecord(**values)


def _mailchimp_restore(mailchimp: MailchimpState, data: Mapping[str, Any]) -> None:
    lists = [_list_record(row) for row in data.get("lists", [])]
    campaigns = [CampaignRecord(**row) for row in data.get("campaigns", [])]
    sent = [SentCampaign(**row) for row in data.get("sent", [])]
    fake = data.get("fake_rule") or {}
    with mailchimp.lock:
        for record in lists:
            mailchimp.list_store._lists[record.id] = record
        for campaign in campaigns:
            mailchimp.campaign_store._campaigns[campaign.id] = campaign
        mailchimp.campaign_store._sent.extend(sent)
        members = mailchimp.member_store
        members._seq = max(members._seq, int(data.get("member_seq", 0)))
        members._tag_seq = max(members._tag_seq, int(data.get("tag_seq", 0)))
        if fake:
            mailchimp.address_rules.set_fake_rule(
                bool(fake.get("enabled")),
                domains=fake.get("domains"),
                addresses=fake.get("addresses"),
            )
