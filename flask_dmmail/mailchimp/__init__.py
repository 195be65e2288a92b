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

This package only re-exports; the parts, a module each (import from here, not from them):

* ``audiences.py``: :class:`Audiences`, its construction and the calls about audiences
  (listing, look-up, creating, webhooks);
* ``subscribing.py``: subscribe one address or many;
* ``members.py``: walk an audience's members, forget an address;
* ``campaigns.py``: send a campaign once, find one;
* ``base.py``: the settings, the stage guard, failure reporting;
* ``transport.py``: the client per thread, the connection cap, retries, error mapping and
  scrubbing (and the client's quirks);
* ``results.py``: the result types;
* ``checks.py``: the checks of arguments before any request.
"""

from __future__ import annotations

from typing import Final

from . import members, subscribing, transport
from .audiences import Audiences
from .checks import MEMBER_STATUSES as MEMBER_STATUSES  # importable here, not in __all__
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
from .transport import map_error as map_error  # importable here, not in __all__
from .transport import scrub, subscriber_hash

# The limits are bound here too, so that the API reference shows them (with these comments)
# under this module, where users import them.
#: Requests one API key may have in flight (Mailchimp answers 429 past it).
MAX_CONNECTIONS: Final = transport.MAX_CONNECTIONS
#: Members per page when walking an audience (Mailchimp's maximum).
PAGE_SIZE: Final = transport.PAGE_SIZE
#: Members per call of the batch member endpoint (Mailchimp's maximum).
BATCH_SIZE: Final = subscribing.BATCH_SIZE
#: What :meth:`Audiences.members` asks for unless told otherwise.
DEFAULT_MEMBER_FIELDS: Final = members.DEFAULT_MEMBER_FIELDS

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
