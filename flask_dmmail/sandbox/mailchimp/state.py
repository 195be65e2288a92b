"""The Mailchimp half of the sandbox's state: one account, kept in stores that share one lock.

:class:`MailchimpState` owns the lock, the settings (clock, connection cap, plan cap, timings)
and the stores, each in a module of its own in this package:

- ``key_store`` (``auth.py``): API keys, access tokens, the connection cap;
- ``list_store`` (``lists.py``): audiences and their settings;
- ``member_store`` (``members.py``): one member at a time;
- ``collection_store`` (``member_collection.py``): many members at a time (batch subscribe,
  bulk load, pages);
- ``webhook_store`` (``webhooks.py``): audience and batch webhooks, and their deliveries;
- ``campaign_store`` (``campaigns.py``, with ``campaign_content.py``): campaigns, sending,
  scheduling;
- ``batch_store`` (``batches.py``): batch operations and their results.
- ``address_rules`` (``address_rules.py``): the addresses Mailchimp refuses though well formed;
- ``merge_field_store`` (``merge_fields.py``, with ``merge_values.py``): audiences' merge
  fields and the checks of members' values (``member_fields.py`` checks a write's fields);
- ``domain_store`` (``domains.py``): the verified sending domains a campaign needs.

``search.py`` answers ``/search-members``; ``wsgi.py`` takes the data centre out of a
``/us5/3.0`` path.

The records they keep are in ``models.py``, their JSON in ``serialise.py``. Business rules
(statuses, compliance, forgotten addresses, the send checklist) live in the stores, so tests and
benchmarks can drive the state without HTTP; ``api.py`` only parses requests and renders
answers, calling the stores. The few methods here are what the rest of the sandbox, tests and
benchmarks call: seeding, resetting, and shortcuts to the stores.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from . import seeding
from .address_rules import DEFAULT_FAKE_DOMAINS, AddressRules
from .auth import KeyStore
from .batches import BATCH_METHODS, BATCH_STATUSES, BatchStore
from .campaigns import CampaignStore
from .domains import DEFAULT_VERIFIED_DOMAINS, VerifiedDomainStore
from .lists import ListStore
from .member_collection import MemberCollectionStore
from .members import MemberStore
from .merge_fields import MergeFieldStore
from .models import (
    MEMBER_STATUSES,
    WRITABLE_STATUSES,
    BatchDispatch,
    BatchOperation,
    SentCampaign,
    WebhookDelivery,
    iso,
    parse_time,
    subscriber_hash,
)
from .webhooks import WebhookStore

__all__ = [
    "BATCH_METHODS",
    "BATCH_STATUSES",
    "DEFAULT_FAKE_DOMAINS",
    "DEFAULT_VERIFIED_DOMAINS",
    "MEMBER_STATUSES",
    "WRITABLE_STATUSES",
    "BatchDispatch",
    "BatchOperation",
    "MailchimpState",
    "SentCampaign",
    "WebhookDelivery",
    "iso",
    "parse_time",
    "subscriber_hash",
]


class MailchimpState:
    """The in-memory Mailchimp account the sandbox serves under ``/3.0``.

    Thread-safe: every store takes the state's one lock (:attr:`lock`).

    :param api_key: the account's key (``<32 hex>-us5``; generated when not given);
        :meth:`add_api_key` and :meth:`add_access_token` accept more.
    :param connection_limit: how many requests one key may have in flight before the API
        answers 429.
    :param clock: gives epoch seconds (tests may pass or assign their own).
    :param max_lists: the plan's cap on audiences created through the API (default 3, a small
        paid plan's; Mailchimp's free plan allows 1).
    :param send_seconds: how long a sent campaign stays ``sending``.
    :param batch_seconds: how long a batch takes from ``pending`` to ``finished`` (each of the
        four steps a quarter of it; 0: as fast as its operations run).
    :param batch_file_size: how many operation results go in each JSON file of a finished
        batch's archive.
    :param deliver_webhooks: whether webhook events are POSTed to their receivers.
    :param signup_limit: how many other audiences of the account an address may have been
        signed up to within ``signup_window`` seconds before the next signup is refused as
        "signed up to a lot of lists very recently" (None: no limit).
    :param signup_window: the window of ``signup_limit``, in seconds.

    Each setting is also an attribute of the same name that may be changed at any time;
    :meth:`reset` puts them back.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        connection_limit: int = 10,
        clock: Callable[[], float] = time.time,
        max_lists: int = 3,
        send_seconds: float = 0.0,
        batch_seconds: float = 0.0,
        batch_file_size: int = 1000,
        deliver_webhooks: bool = True,
        signup_limit: int | None = 5,
        signup_window: float = 86400.0,
    ) -> None:
        #: The one lock every store takes (re-entrant).
        self.lock = threading.RLock()
        self._initial: dict[str, Any] = {
            "clock": clock,
            "connection_limit": connection_limit,
            "max_lists": max_lists,
            "send_seconds": send_seconds,
            "batch_seconds": batch_seconds,
            "batch_file_size": batch_file_size,
            "deliver_webhooks": deliver_webhooks,
            "signup_limit": signup_limit,
            "signup_window": signup_window,
        }
        #: The account's own API key.
        self.api_key: str = api_key or f"{secrets.token_hex(16)}-us5"
        #: API keys, access tokens and the per-key connection count.
        self.key_store = KeyStore(self)
        #: The audiences.
        self.list_store = ListStore(self)
        #: The rules that refuse well-formed addresses ("looks fake", too many signups).
        self.address_rules = AddressRules(self)
        #: Members one at a time (lifecycle, tags, forgetting).
        self.member_store = MemberStore(self)
        #: Members many at a time (batch subscribe, bulk load, pages).
        self.collection_store = MemberCollectionStore(self)
        #: The audiences' merge fields.
        self.merge_field_store = MergeFieldStore(self)
        #: The account's verified sending domains.
        self.domain_store = VerifiedDomainStore(self)
        #: Audience and batch webhooks, and their deliveries.
        self.webhook_store = WebhookStore(self)
        #: Campaigns and the campaigns sent.
        self.campaign_store = CampaignStore(self)
        #: Batch operations and the worker that runs them.
        self.batch_store = BatchStore(self)
        self.reset()

    # ----------------------------------------------------------------- lifecycle

    def reset(self) -> None:
        """Back to the state at construction: no audiences, members, campaigns, batches or
        webhooks, the address rules on with their defaults, the constructor's settings. Keys
        stay the same."""
        with self.lock:
            self.clock: Callable[[], float] = self._initial["clock"]
            self.connection_limit: int = self._initial["connection_limit"]
            self.max_lists: int = self._initial["max_lists"]
            self.send_seconds: float = self._initial["send_seconds"]
            self.batch_seconds: float = self._initial["batch_seconds"]
            self.batch_file_size: int = self._initial["batch_file_size"]
            self.deliver_webhooks: bool = self._initial["deliver_webhooks"]
            self.signup_limit: int | None = self._initial["signup_limit"]
            self.signup_window: float = self._initial["signup_window"]
            self.address_rules.reset()
            self.domain_store.reset()
            self.list_store.reset()
            self.campaign_store.reset()
            self.batch_store.reset()
            self.webhook_store.reset()
            self.member_store.reset()

    def seed(self, mapping: Mapping[str, Any]) -> None:
        """Load audiences (and their members) from a mapping.

        Accepts ``{"mailchimp": {...}}`` or the inner part: ``{"lists": [{"id", "name",
        "members": ["a@x.org" | {"email_address", "status", "merge_fields", "tags"}]}],
        "fake_rule": bool | {"enabled", "domains", "addresses"}}``; a ValueError names what is
        wrong with it.
        """
        seeding.seed(self, mapping)

    def close(self) -> None:
        """Stop the batch worker (no batch runs afterwards)."""
        self.batch_store.close()

    @property
    def datacenter(self) -> str:
        """The account's datacentre: its key's ``-us5``-style ending (``us5``)."""
        return self.api_key.rpartition("-")[2]

    # ----------------------------------------------------------------- shortcuts: keys

    def add_api_key(self, key: str | None = None) -> str:
        """Accept another API key (Basic auth); returns it. Generates one if not given."""
        return self.key_store.add_api_key(key)

    def revoke_api_key(self, key: str) -> None:
        """Stop accepting ``key``."""
        self.key_store.revoke_api_key(key)

    def add_access_token(self, token: str | None = None) -> str:
        """Accept an OAuth access token (Bearer auth); returns it."""
        return self.key_store.add_access_token(token)

    def in_flight(self, key: str) -> int:
        """How many of ``key``'s requests are in flight."""
        return self.key_store.in_flight(key)

    # ----------------------------------------------------------------- shortcuts: audiences

    def create_list(self, name: str, *, list_id: str | None = None, **fields: Any) -> str:
        """Create an audience without HTTP (no plan cap); returns its id.

        ``list_id`` may be chosen by the caller; it must not contain "server", which the
        official client rewrites. ``fields`` are the audience's settings (``contact``,
        ``permission_reminder``, ``campaign_defaults``, ``email_type_option``, ...).
        """
        return self.list_store.create_list(name, list_id=list_id, **fields)

    def ensure_list(self, list_id: str | None, name: str, **fields: Any) -> str:
        """Create the audience ``list_id`` unless it exists; returns its id."""
        return self.list_store.ensure_list(list_id, name, **fields)

    def lists(self) -> list[dict[str, Any]]:
        """Every audience as the API shows it (with ``stats.total_contacts``)."""
        return self.list_store.lists()

    # ----------------------------------------------------------------- shortcuts: members

    def set_fake_rule(
        self,
        enabled: bool = True,
        *,
        domains: Iterable[str] | None = None,
        addresses: Iterable[str] | None = None,
    ) -> None:
        """Switch the "looks fake or invalid" rule (on by default).

        When on, addresses at ``domains`` or their subdomains (default
        :data:`~.address_rules.DEFAULT_FAKE_DOMAINS`: example.com, test.com and the like; a
        list given replaces it), at the reserved ``.test``/``.example``/``.invalid``/
        ``.localhost``/``.local``/``.internal`` TLDs, and the exact ``addresses`` are refused
        with Mailchimp's "looks fake or invalid" detail.
        """
        self.address_rules.set_fake_rule(enabled, domains=domains, addresses=addresses)

    def set_busy_addresses(self, addresses: Iterable[str]) -> None:
        """Addresses that "signed up to a lot of lists very recently": each new signup of one
        (subscribed or pending) is refused with that detail."""
        self.address_rules.set_busy_addresses(addresses)

    def add_members(
        self,
        list_id: str,
        emails: Iterable[str],
        *,
        status: str = "subscribed",
        merge_fields: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        compliance: bool | None = None,
    ) -> int:
        """Bulk-load members without HTTP or validation; returns how many were new.

        Existing members are left alone. ``compliance`` marks the members as having
        unsubscribed themselves (default: True for ``unsubscribed`` and ``cleaned``), so
        subscribing them through the API gives "Member In Compliance State".
        """
        return self.collection_store.add_members(
            list_id,
            emails,
            status=status,
            merge_fields=merge_fields,
            tags=tags,
            compliance=compliance,
        )

    def members(
        self, list_id: str, *, status: str | None = None, offset: int = 0, count: int | None = None
    ) -> list[dict[str, Any]]:
        """Members of an audience as the API shows them; all statuses unless ``status``."""
        return self.collection_store.members(list_id, status=status, offset=offset, count=count)

    def member_count(self, list_id: str, status: str | None = None) -> int:
        """How many members an audience has (of ``status``, when given)."""
        return self.collection_store.member_count(list_id, status)

    def add_member(self, list_id: str, body: Any, base: str) -> dict[str, Any]:
        """As ``POST /lists/{id}/members``."""
        return self.member_store.add_member(list_id, body, base)

    def get_member(self, list_id: str, key: str, base: str) -> dict[str, Any]:
        """As ``GET /lists/{id}/members/{hash}`` (``key``: a hash or an address)."""
        return self.member_store.get_member(list_id, key, base)

    def update_member(self, list_id: str, key: str, body: Any, base: str) -> dict[str, Any]:
        """As ``PATCH /lists/{id}/members/{hash}``."""
        return self.member_store.update_member(list_id, key, body, base)

    def archive_member(self, list_id: str, key: str) -> None:
        """As ``DELETE /lists/{id}/members/{hash}`` (archive)."""
        self.member_store.archive_member(list_id, key)

    def delete_member_permanent(self, list_id: str, key: str) -> None:
        """As ``POST …/actions/delete-permanent`` (forget)."""
        self.member_store.delete_member_permanent(list_id, key)

    def unsubscribe(
        self, list_id: str, email: str, *, reason: str = "manual", campaign_id: str = ""
    ) -> None:
        """The person clicked "unsubscribe": status unsubscribed, compliance state, webhook."""
        self.member_store.unsubscribe(list_id, email, reason=reason, campaign_id=campaign_id)

    def bounce(
        self, list_id: str, email: str, *, reason: str = "hard", campaign_id: str = ""
    ) -> None:
        """The address bounced: status cleaned (compliance state), ``cleaned`` webhook."""
        self.member_store.bounce(list_id, email, reason=reason, campaign_id=campaign_id)

    def confirm(self, list_id: str, email: str) -> None:
        """The person confirmed a double opt-in: pending becomes subscribed, compliance cleared."""
        self.member_store.confirm(list_id, email)

    def add_merge_field(self, list_id: str, tag: str, type_: str = "text", **settings: Any) -> None:
        """Add a merge field to an audience without HTTP (``settings``: ``name``,
        ``required``, ``default_value``, ``public``, ``options``, ...)."""
        self.merge_field_store.seed_fields(list_id, [{"tag": tag, "type": type_, **settings}])

    # ----------------------------------------------------------------- shortcuts: domains

    def set_verified_domains(self, domains: Iterable[str]) -> None:
        """The account's verified sending domains become exactly ``domains`` (default:
        :data:`~.domains.DEFAULT_VERIFIED_DOMAINS`)."""
        self.domain_store.set_verified(domains)

    def verify_domain(self, domain: str) -> None:
        """Verify a sending domain, as the person with the emailed code would."""
        self.domain_store.verify(domain)

    # ----------------------------------------------------------------- shortcuts: webhooks

    def get_webhooks(self, list_id: str, base: str) -> dict[str, Any]:
        """As ``GET /lists/{id}/webhooks``."""
        return self.webhook_store.get_webhooks(list_id, base)

    def wait_for_webhooks(self, timeout: float = 10.0) -> list[WebhookDelivery]:
        """Wait for webhook deliveries in progress; returns every delivery so far."""
        return self.webhook_store.wait_for_webhooks(timeout)

    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook delivery so far (finished or failed)."""
        return self.webhook_store.webhook_deliveries()

    # ----------------------------------------------------------------- shortcuts: campaigns

    def create_campaign(self, body: Any, base: str) -> dict[str, Any]:
        """As ``POST /campaigns``."""
        return self.campaign_store.create_campaign(body, base)

    def get_campaign(self, campaign_id: str, base: str) -> dict[str, Any]:
        """As ``GET /campaigns/{id}``."""
        return self.campaign_store.get_campaign(campaign_id, base)

    def set_content(self, campaign_id: str, body: Any, base: str) -> dict[str, Any]:
        """As ``PUT /campaigns/{id}/content``."""
        return self.campaign_store.set_content(campaign_id, body, base)

    def schedule_campaign(self, campaign_id: str, body: Any) -> None:
        """As ``POST /campaigns/{id}/actions/schedule``."""
        self.campaign_store.schedule_campaign(campaign_id, body)

    def campaigns(self) -> list[dict[str, Any]]:
        """Every campaign as the API shows it."""
        return self.campaign_store.campaigns()

    def sent_campaigns(self) -> list[SentCampaign]:
        """Campaigns sent (or whose schedule has passed), oldest first."""
        return self.campaign_store.sent_campaigns()
