"""The Mailchimp Marketing API v3 half of the sandbox (served under ``/3.0``).

:class:`MailchimpState` holds audiences, members, webhooks, campaigns and batches in memory, in
stores that share one lock (``state.py`` has the map of modules);
:func:`mailchimp_blueprint` serves them to the official ``mailchimp_marketing`` client, and
:func:`mailchimp_downloads_blueprint` serves finished batches' results (not under ``/3.0``).
"""

from __future__ import annotations

from .address_rules import MEMBER_DOMAIN, member_address
from .api import mailchimp_blueprint
from .batch_api import mailchimp_downloads_blueprint
from .models import BatchOperation, SentCampaign, WebhookDelivery, subscriber_hash
from .problems import MailchimpProblem
from .state import MailchimpState
from .wsgi import ConnectionLimit, mailchimp_error_body

__all__ = [
    "MEMBER_DOMAIN",
    "BatchOperation",
    "ConnectionLimit",
    "MailchimpProblem",
    "MailchimpState",
    "SentCampaign",
    "WebhookDelivery",
    "mailchimp_blueprint",
    "mailchimp_downloads_blueprint",
    "mailchimp_error_body",
    "member_address",
    "subscriber_hash",
]
