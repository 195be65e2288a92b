"""Mailchimp audiences and campaigns, through the official ``mailchimp-marketing`` client.

``app.extensions["dmmail"].mailchimp`` (or ``DMMail.mailchimp`` on ``current_app``) is an
:class:`Audiences`. An *audience* argument is a name from ``DM_MAILCHIMP_AUDIENCES`` or a
Mailchimp list id (10 hex digits, or any id the config lists)::

    mc = app.extensions["dmmail"].mailchimp
    result = mc.subscribe("open_framework_notifications", address)
    if result.outcome is SubscribeOutcome.UNSUBSCRIBED:
        ...  # they opted out: point them to the signup form

Outside production (``DM_ENVIRONMENT``) only the audiences of ``DM_MAILCHIMP_AUDIENCES`` can be
used at all: any other list id raises ``UnlistedAudienceError`` before any request (see
:meth:`Audiences.list_id`), listings leave the others out, and no audience is created.

Nothing here logs or raises with an address in it: Mailchimp puts the address in its error
details, so details are scrubbed, and logs and signals carry the Mailer's keyed ``to_hash``.

This package only re-exports; the parts, a module each:

* :mod:`~flask_dmmail.mailchimp.audiences`: :class:`Audiences`, its construction and the calls
  about audiences (listing, look-up, creating, webhooks);
* :mod:`~flask_dmmail.mailchimp.subscribing`: subscribe one address or many;
* :mod:`~flask_dmmail.mailchimp.members`: walk an audience's members, forget an address;
* :mod:`~flask_dmmail.mailchimp.campaigns`: send a campaign once, find one;
* :mod:`~flask_dmmail.mailchimp.base`: the settings, the stage guard, failure reporting;
* :mod:`~flask_dmmail.mailchimp.transport`: the client per thread, the connection cap,
  retries, error mapping and scrubbing (and the client's quirks);
* :mod:`~flask_dmmail.mailchimp.results`: the result types;
* :mod:`~flask_dmmail.mailchimp.checks`: the checks of arguments before any request.
"""

from __future__ import annotations

from .audiences import Audiences
from .checks import MEMBER_STATUSES as MEMBER_STATUSES  # importable here, not in __all__
from .members import DEFAULT_MEMBER_FIELDS
from .results import (
    AudienceRef,
    BulkItem,
    BulkSubscribeResult,
    CampaignResult,
    ForgetResult,
    Member,
    SubscribeOutcome,
    SubscribeResult,
)
from .subscribing import BATCH_SIZE
from .transport import MAX_CONNECTIONS, PAGE_SIZE, scrub, subscriber_hash
from .transport import map_error as map_error  # importable here, not in __all__

__all__ = [
    "BATCH_SIZE",
    "DEFAULT_MEMBER_FIELDS",
    "MAX_CONNECTIONS",
    "PAGE_SIZE",
    "AudienceRef",
    "Audiences",
    "BulkItem",
    "BulkSubscribeResult",
    "CampaignResult",
    "ForgetResult",
    "Member",
    "SubscribeOutcome",
    "SubscribeResult",
    "scrub",
    "subscriber_hash",
]
