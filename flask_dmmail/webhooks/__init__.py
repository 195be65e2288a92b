"""Webhooks: GOV.UK Notify's delivery receipts and Mailchimp's audience events.

Each endpoint has its own module: ``flask_dmmail.webhooks.notify`` answers Notify's
delivery receipts (:func:`notify_callbacks_blueprint`, mounted by ``init_app`` when
``DM_NOTIFY_CALLBACK_TOKEN`` is set) and ``flask_dmmail.webhooks.mailchimp`` Mailchimp's
unsubscribe and cleaned events (:func:`mailchimp_webhooks_blueprint`, mounted when
``DM_MAILCHIMP_WEBHOOK_TOKEN`` is set). What both share, the one constant-time comparison of
the request's secret and the capped body reader, is in ``flask_dmmail.webhooks.common``.
Every public name can be imported from this package.
"""

from __future__ import annotations

from ..errors import InvalidReceiptError
from .mailchimp import (
    MAILCHIMP_WEBHOOKS_BLUEPRINT,
    MAILCHIMP_WEBHOOKS_PATH,
    mailchimp_webhooks_blueprint,
)
from .notify import (
    NOTIFY_CALLBACKS_BLUEPRINT,
    NOTIFY_CALLBACKS_PATH,
    DeliveryReceipt,
    notify_callbacks_blueprint,
    parse_delivery_receipt,
)

__all__ = [
    "MAILCHIMP_WEBHOOKS_BLUEPRINT",
    "MAILCHIMP_WEBHOOKS_PATH",
    "NOTIFY_CALLBACKS_BLUEPRINT",
    "NOTIFY_CALLBACKS_PATH",
    "DeliveryReceipt",
    "InvalidReceipt",
    "mailchimp_webhooks_blueprint",
    "notify_callbacks_blueprint",
    "parse_delivery_receipt",
]

#: The name :class:`~flask_dmmail.errors.InvalidReceiptError` had before it moved to
#: ``errors.py`` (it is a ``ValueError`` as it was, and now a ``DMMailError`` too).
InvalidReceipt = InvalidReceiptError
