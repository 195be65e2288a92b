"""The results of the Mailchimp calls: what became of a subscribe (:class:`SubscribeOutcome`,
:class:`SubscribeResult`, and per address of a batch :class:`BulkItem` and
:class:`BulkSubscribeResult`), a :class:`Member` of an audience, an :class:`AudienceRef`, a
:class:`CampaignResult` and a :class:`ForgetResult`. Frozen dataclasses; addresses stay out of
their ``repr``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AudienceRef",
    "BulkItem",
    "BulkSubscribeResult",
    "CampaignResult",
    "ForgetResult",
    "Member",
    "SubscribeOutcome",
    "SubscribeResult",
]


class SubscribeOutcome(enum.StrEnum):
    """What became of one address."""

    #: Now subscribed (it was new, archived or transactional).
    SUBSCRIBED = "subscribed"
    #: Was subscribed already, or pending (waiting for their double opt-in confirmation).
    ALREADY_SUBSCRIBED = "already subscribed"
    #: The person unsubscribed (or their address bounced: ``member_status == "cleaned"``).
    #: Mailchimp will not re-subscribe them through the API: send them to the signup form.
    UNSUBSCRIBED = "unsubscribed"
    #: The address was permanently deleted; only a signup form can bring it back.
    DELETED = "deleted"
    #: The address is not valid, or Mailchimp says it looks fake.
    INVALID_ADDRESS = "invalid address"
    #: Mailchimp refused this one address for another reason (``subscribe_many`` only;
    #: ``subscribe`` raises a MailchimpError instead).
    FAILED = "failed"


_ON_LIST = frozenset({SubscribeOutcome.SUBSCRIBED, SubscribeOutcome.ALREADY_SUBSCRIBED})


@dataclass(frozen=True)
class SubscribeResult:
    """The outcome of one subscribe. ``member_status`` is Mailchimp's own status of the
    member after the call (``subscribed``, ``pending``, ``unsubscribed``, ``cleaned``...;
    None when there is no member), never one made up here. ``detail`` says why, for the
    outcomes that are not a subscription, without the address."""

    #: What became of the address.
    outcome: SubscribeOutcome
    #: The audience's list id.
    list_id: str
    #: The Mailer's keyed hash of the address (safe to log; empty for a batch's look-ups).
    to_hash: str
    #: Mailchimp's status of the member after the call, or None.
    member_status: str | None
    #: Mailchimp's ``unique_email_id`` of the member, when it said.
    unique_email_id: str | None = None
    #: Why, for the outcomes that are not a subscription (without the address).
    detail: str | None = None

    @property
    def on_list(self) -> bool:
        """True for ``subscribed`` and ``already subscribed``."""
        return self.outcome in _ON_LIST


@dataclass(frozen=True)
class BulkItem:
    """One address of a :meth:`~flask_dmmail.mailchimp.Audiences.subscribe_many` call (the
    address stays out of ``repr``)."""

    #: The address, trimmed, as given.
    email: str = field(repr=False)
    #: What became of it.
    outcome: SubscribeOutcome
    #: Mailchimp's status of the member after the call, or None.
    member_status: str | None
    #: Why, for the outcomes that are not a subscription (without the address).
    detail: str | None = None


@dataclass(frozen=True)
class BulkSubscribeResult:
    """Every address's outcome, in input order (duplicates, compared case-insensitively,
    are reported once), and the counts per outcome."""

    #: The audience's list id.
    list_id: str
    #: One item per distinct address, in input order.
    items: tuple[BulkItem, ...] = field(repr=False)
    #: How many addresses had each outcome (every outcome is a key).
    counts: Mapping[SubscribeOutcome, int]

    @property
    def total(self) -> int:
        """How many distinct addresses the call had."""
        return len(self.items)

    @property
    def failed(self) -> int:
        """Addresses that were refused (``failed`` and ``invalid address``)."""
        return self.counts[SubscribeOutcome.FAILED] + self.counts[SubscribeOutcome.INVALID_ADDRESS]

    @property
    def ok(self) -> bool:
        """True when no address was refused (opt-outs and deletions are not refusals)."""
        return self.failed == 0

    def outcome_of(self, email: str) -> SubscribeOutcome:
        """The outcome for ``email`` (KeyError if it was not in the call)."""
        wanted = email.strip().lower()
        for item in self.items:
            if item.email.lower() == wanted:
                return item.outcome
        raise KeyError("that address was not part of this call")


@dataclass(frozen=True)
class Member:
    """One member of an audience. ``fields`` holds every field that was asked for, as
    Mailchimp returned it (dotted names like ``merge_fields.FNAME`` stay nested)."""

    #: The member's address.
    email_address: str = field(repr=False)
    #: Mailchimp's status of the member (``subscribed``, ``unsubscribed``...).
    status: str
    #: When Mailchimp last changed the member (ISO 8601).
    last_changed: str
    #: Every field that was asked for, as Mailchimp returned it.
    fields: Mapping[str, Any] = field(repr=False)

    def get(self, name: str, default: Any = None) -> Any:
        """A field by (dotted) name, e.g. ``member.get("merge_fields.FNAME")``."""
        value: Any = self.fields
        for part in name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return default
            value = value[part]
        return value


@dataclass(frozen=True)
class AudienceRef:
    """An audience: its list id and name."""

    #: The list id.
    id: str
    #: The audience's name in Mailchimp.
    name: str


@dataclass(frozen=True)
class CampaignResult:
    """A campaign :meth:`~flask_dmmail.mailchimp.Audiences.send_campaign` sent, or found
    already sent.

    ``already_sent`` is True when a campaign with the same title had already been sent (or
    scheduled, or was being sent by another process) to the audience: that one is
    described and nothing new was sent."""

    #: Mailchimp's id of the campaign.
    campaign_id: str
    #: The audience's list id.
    list_id: str
    #: The campaign's title (what identifies it).
    title: str
    #: Mailchimp's status of the campaign (``sent``, ``sending``, ``schedule``, ``save``...).
    status: str
    #: How many emails Mailchimp says it sent.
    emails_sent: int
    #: How many members the campaign was for.
    recipient_count: int
    #: True when nothing new was sent (see above).
    already_sent: bool
    #: The id of the campaign in Mailchimp's web app, when known.
    web_id: int | None = None
    #: The campaign's public archive page, when known.
    archive_url: str | None = None


@dataclass(frozen=True)
class ForgetResult:
    """The audiences (list ids) an address was permanently deleted from, and those where
    Mailchimp had no such member (a 404 counts as done)."""

    #: The list ids the member was deleted from.
    deleted: tuple[str, ...]
    #: The list ids that had no such member.
    not_found: tuple[str, ...]

    @property
    def audiences(self) -> tuple[str, ...]:
        """Every audience dealt with: ``deleted``, then ``not_found``."""
        return self.deleted + self.not_found
