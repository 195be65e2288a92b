"""The records the sandbox's Mailchimp account is made of, and the small value helpers they share.

The ``*Record`` dataclasses are the stores' own rows (an audience, a member, a campaign, a
batch); :class:`SentCampaign`, :class:`WebhookDelivery` and :class:`BatchOperation` are the
read-only values tests and the outbox see. :func:`subscriber_hash`, :func:`iso` and
:func:`parse_time` are the hashing and time formats every part of the API uses.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "MEMBER_STATUSES",
    "WRITABLE_STATUSES",
    "BatchDispatch",
    "BatchOperation",
    "BatchRecord",
    "CampaignRecord",
    "ListRecord",
    "MemberRecord",
    "MergeFieldRecord",
    "SentCampaign",
    "WebhookDelivery",
    "iso",
    "new_id",
    "new_web_id",
    "parse_time",
    "subscriber_hash",
]

WRITABLE_STATUSES: Final = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
MEMBER_STATUSES: Final = (*WRITABLE_STATUSES, "archived")


def subscriber_hash(email: str) -> str:
    """Mailchimp's subscriber hash: md5 of the lowercased address."""
    return hashlib.md5(email.lower().encode("utf-8"), usedforsecurity=False).hexdigest()


def iso(t: float | None) -> str:
    """``2022-02-23T19:31:49+00:00``, or ``""`` for no time (Mailchimp never sends null)."""
    if t is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))


def parse_time(value: str) -> float:
    """Parse an ISO 8601 time (naive means UTC) to epoch seconds; ValueError if it is not one."""
    parsed = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def new_id() -> str:
    """A new resource id."""
    # 10 hex digits: never contains "server", which the client rewrites in URLs.
    return secrets.token_hex(5)


def new_web_id() -> int:
    """A new ``web_id`` (the number Mailchimp's web app uses)."""
    return 100_000_000 + secrets.randbelow(900_000_000)


@dataclass(slots=True)
class MemberRecord:
    """One member of an audience, as the member stores keep it."""

    email: str
    hash: str
    seq: int
    status: str
    changed: float
    opt: float | None = None
    signup: float | None = None
    compliance: bool = False  # self-unsubscribed or bounced: cannot be set to subscribed
    email_type: str = "html"
    merge_fields: dict[str, Any] | None = None
    tags: list[str] | None = None
    language: str = ""
    vip: bool = False
    ip_signup: str = ""
    ip_opt: str = ""
    unsubscribe_reason: str = ""


@dataclass(slots=True)
class MergeFieldRecord:
    """One merge field of an audience (``/lists/{id}/merge-fields``)."""

    merge_id: int
    tag: str
    name: str
    type: str
    required: bool = False
    default_value: str = ""
    public: bool = False
    display_order: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    help_text: str = ""


@dataclass(slots=True)
class ListRecord:
    """An audience (the API's "list"): its settings, members (by subscriber hash), webhooks."""

    id: str
    web_id: int
    name: str
    created: float
    settings: dict[str, Any]
    members: dict[str, MemberRecord] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    views: dict[tuple[Any, ...], list[MemberRecord]] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    tag_ids: dict[str, int] = field(default_factory=dict)
    merge_fields: dict[str, MergeFieldRecord] = field(default_factory=dict)  # by tag
    merge_seq: int = 0  # the last merge_id handed out
    last_sub: float | None = None
    last_unsub: float | None = None
    campaign_count: int = 0
    campaign_last_sent: float | None = None


@dataclass(slots=True)
class CampaignRecord:
    """A campaign: its recipients, settings, content and sending state."""

    id: str
    web_id: int
    type: str
    created: float
    status: str = "save"
    list_id: str = ""
    segment_opts: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    tracking: dict[str, Any] = field(default_factory=dict)
    html: str = ""
    plain_text: str = ""
    has_content: bool = False
    send_time: float | None = None
    sending_until: float | None = None
    emails_sent: int = 0
    recipient_count: int | None = None  # frozen when sent


@dataclass(frozen=True, slots=True)
class SentCampaign:
    """A campaign the sandbox has sent, for the outbox page."""

    id: str
    title: str
    subject_line: str
    from_name: str
    reply_to: str
    list_id: str
    list_name: str
    html: str
    plain_text: str
    recipient_count: int
    send_time: str


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One form-encoded webhook POST the sandbox made (or tried to make)."""

    url: str
    type: str
    form: tuple[tuple[str, str], ...]
    status_code: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class BatchOperation:
    """One operation of a batch, as submitted (``path`` is relative to ``/3.0``)."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    operation_id: str | None = None


#: Runs one operation through the API as the batch's submitter; gives (status, body text).
BatchDispatch = Callable[[BatchOperation], tuple[int, str]]


@dataclass(slots=True)
class BatchRecord:
    """A submitted batch of operations, its progress and (when done) its results archive."""

    id: str
    operations: list[BatchOperation]
    dispatch: BatchDispatch
    root: str  # the sandbox's URL as the submitter saw it, for response_body_url
    submitted: float
    seconds: float
    claimed: bool = False  # the worker has started its operations
    finished: int = 0
    errored: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    archive: bytes | None = None  # the results tar.gz, once every operation has run
    done_at: float | None = None
    announced: bool = False  # batch webhooks queued (when it showed as finished)
