"""The Mailchimp Marketing API v3 half of the sandbox (served under ``/3.0``).

:class:`MailchimpState` holds audiences, members, webhooks, campaigns and batches in memory;
:func:`mailchimp_blueprint` serves them to the official ``mailchimp_marketing`` client, and
:func:`mailchimp_downloads_blueprint` serves finished batches' results (not under ``/3.0``).
"""

from __future__ import annotations

from .api import (
    ConnectionLimit,
    mailchimp_blueprint,
    mailchimp_downloads_blueprint,
    mailchimp_error_body,
)
from .problems import MailchimpProblem
from .state import (
    BatchOperation,
    MailchimpState,
    SentCampaign,
    WebhookDelivery,
    subscriber_hash,
)

__all__ = [
    "BatchOperation",
    "ConnectionLimit",
    "MailchimpProblem",
    "MailchimpState",
    "SentCampaign",
    "WebhookDelivery",
    "mailchimp_blueprint",
    "mailchimp_downloads_blueprint",
    "mailchimp_error_body",
    "subscriber_hash",
]
