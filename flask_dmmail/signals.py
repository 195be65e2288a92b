"""blinker signals. The sender is always the real Flask app, never the ``current_app`` proxy.

Connect receivers as with Flask's own signals::

    from flask_dmmail import signals

    @signals.email_sent.connect_via(app)
    def audit(app, email, **extra):
        app.logger.info("sent %s", email.reference)

No signal carries an email address in the clear: ``to_hash`` is the keyed hash used in
logs. (``email_sent`` carries the :class:`~flask_dmmail.SentEmail`, whose ``to`` field
holds the address for the app's own use; it is left out of its ``repr``.)
"""

from __future__ import annotations

from blinker import Namespace

__all__ = [
    "audience_unsubscribed",
    "bulk_finished",
    "campaign_sent",
    "email_failed",
    "email_sent",
    "email_skipped",
    "email_status_changed",
    "mailchimp_failed",
    "mailchimp_subscribed",
]

_signals = Namespace()

email_sent = _signals.signal(
    "email-sent",
    doc="""Notify accepted an email. Keyword: ``email`` (a SentEmail).""",
)
email_failed = _signals.signal(
    "email-failed",
    doc="""An email could not be sent. Keywords: ``error`` (a DMMailError), ``template_id``,
    ``reference`` and ``to_hash`` (each None when the failure came before it was known).""",
)
email_skipped = _signals.signal(
    "email-skipped",
    doc="""``allow_resend=False`` found the email already sent. Keywords: ``reference``,
    ``template_id``, ``to_hash``.""",
)
email_status_changed = _signals.signal(
    "email-status-changed",
    doc="""Notify reported a delivery status (delivery receipts blueprint). Keywords:
    ``notification_id``, ``reference``, ``status``, ``to_hash``.""",
)
mailchimp_subscribed = _signals.signal(
    "mailchimp-subscribed",
    doc="""A subscribe finished (``subscribe``, and once per address in ``subscribe_many``),
    whatever the outcome. Keywords: ``audience`` (list id), ``result`` (a SubscribeResult:
    ``outcome``, Mailchimp's ``member_status``, ``to_hash``; no address), ``to_hash``.""",
)
campaign_sent = _signals.signal(
    "campaign-sent",
    doc="""A Mailchimp campaign was sent by ``send_campaign`` (not when it found one with the
    same title already sent). Keywords: ``audience`` (list id), ``campaign_id``, ``title``,
    ``result`` (a CampaignResult).""",
)
mailchimp_failed = _signals.signal(
    "mailchimp-failed",
    doc="""A Mailchimp call failed. Keywords: ``error`` (a MailchimpError), ``operation``
    (``"subscribe"``, ``"members"``, ``"send_campaign"``, ...), ``audience`` (list id or
    None) and ``to_hash`` (None when no one address was involved).""",
)
audience_unsubscribed = _signals.signal(
    "audience-unsubscribed",
    doc="""Mailchimp's webhook reported an unsubscribe or a cleaned address. Keywords:
    ``audience`` (list id), ``audience_name`` (its DM_MAILCHIMP_AUDIENCES name or None),
    ``event`` ("unsubscribe" or "cleaned"), ``reason`` (manual|abuse, hard|abuse),
    ``action`` (unsub|delete, None for cleaned), ``campaign_id`` (or None), ``fired_at``
    and ``to_hash``.""",
)
bulk_finished = _signals.signal(
    "bulk-finished",
    doc="""A bulk send ended, complete or not (not sent for dry runs). Keyword: ``report``
    (a :class:`~flask_dmmail.bulk.BulkReport`; ``report.complete`` says whether every
    recipient was dealt with).""",
)
