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

How requests are made and retried, and the client's quirks: :mod:`flask_dmmail.mailchimp.transport`.

Nothing here logs or raises with an address in it: Mailchimp puts the address in its error
details, so details are scrubbed, and logs and signals carry the Mailer's keyed ``to_hash``.
"""

from __future__ import annotations

import logging
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from heapq import merge
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from ..config import DEFAULT_MAILCHIMP_BASE_URL
from ..errors import (
    ConfigurationError,
    InvalidEmailAddressError,
    InvalidInputError,
    MailchimpNotFoundError,
    MailchimpProtocolError,
    MailchimpUnavailableError,
)
from .campaigns import CampaignsMixin
from .checks import MEMBER_STATUSES as MEMBER_STATUSES
from .checks import (
    _address,
    _check_fields,
    _check_status,
    _iso,
    _text,
)
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
from .subscribing import BATCH_SIZE, SubscribingMixin
from .transport import (
    MAX_CONNECTIONS,
    PAGE_SIZE,
    scrub,
    subscriber_hash,
)
from .transport import (
    map_error as map_error,
)

if TYPE_CHECKING:
    from ..extension import Mailer

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

logger = logging.getLogger("flask_dmmail")

#: What :meth:`Audiences.members` asks for unless told otherwise.
DEFAULT_MEMBER_FIELDS: Final = ("email_address", "status", "timestamp_opt", "last_changed")
_OVERLAP = 16
_MAX_OVERLAP = 500  # below PAGE_SIZE, so every page moves the walk on


class _Fingerprints:
    """The members a walk has passed, as an exact set of 64-bit fingerprints: 8 bytes each in
    sorted ``array('Q')`` runs (merged like a binary counter up to 32,768 entries, so no merge
    copies much), plus a small buffer. 100,000 members take 0.8 MB.

    A fingerprint is Python's 64-bit hash of the lower-cased address: stable within this
    process, which is all one walk needs.
    """

    _BUFFER = 1024
    _MERGE_UP_TO = 32768

    def __init__(self) -> None:
        self._runs: list[array[int]] = []
        self._buffer: set[int] = set()

    @staticmethod
    def of(email: str) -> int:
        return hash(email.lower()) & 0xFFFF_FFFF_FFFF_FFFF

    def __contains__(self, fingerprint: int) -> bool:
        if fingerprint in self._buffer:
            return True
        for run in self._runs:
            i = bisect_left(run, fingerprint)
            if i < len(run) and run[i] == fingerprint:
                return True
        return False

    def add(self, fingerprint: int) -> None:
        self._buffer.add(fingerprint)
        if len(self._buffer) >= self._BUFFER:
            run = array("Q", sorted(self._buffer))
            self._buffer = set()
            runs = self._runs
            while runs and len(runs[-1]) <= len(run) and len(run) < self._MERGE_UP_TO:
                run = array("Q", merge(runs.pop(), run))
            runs.append(run)

    def __len__(self) -> int:
        return len(self._buffer) + sum(len(run) for run in self._runs)


# --------------------------------------------------------------------------- Audiences


class Audiences(SubscribingMixin, CampaignsMixin):
    """Mailchimp audiences and campaigns for one app (``app.extensions["dmmail"].mailchimp``).

    Safe to share between threads. Every method raises
    :class:`~flask_dmmail.errors.InvalidInputError` for bad arguments before any network call,
    and a :class:`~flask_dmmail.errors.MailchimpError` subclass when Mailchimp refuses or
    cannot be reached (after retries, for the transient ones).
    """

    @classmethod
    def from_mailer(cls, mailer: Mailer) -> Audiences:
        """The Audiences of a Mailer: its sandbox's Mailchimp in sandbox mode (where every
        audience of DM_MAILCHIMP_AUDIENCES is created under its list id), else Mailchimp
        with DM_MAILCHIMP_API_KEY."""
        settings = mailer.settings
        if mailer.sandbox is not None:
            state = mailer.sandbox.state.mailchimp
            for name, list_id in settings.audiences.items():
                try:
                    state.ensure_list(list_id, name)
                except ValueError:
                    raise ConfigurationError(
                        "DM_MAILCHIMP_AUDIENCES",
                        f"the sandbox cannot create the audience {name!r} under its list id "
                        "(an id must not contain 'server').",
                    ) from None
            api_key = state.api_key
            base_url = f"{mailer.sandbox.url}/3.0"
        else:
            if settings.mailchimp_api_key is None:
                raise ConfigurationError(
                    "DM_MAILCHIMP_API_KEY",
                    "is not set, so Mailchimp cannot be used. Create a key in Mailchimp "
                    "(Profile > Extras > API keys) and set DM_MAILCHIMP_API_KEY from the "
                    "environment (for example in a .env file, never committed); the key's "
                    "'-us5'-style ending picks the data centre. Or turn the local sandbox on "
                    "with DM_MAIL_SANDBOX = True.",
                )
            api_key = settings.mailchimp_api_key
            dc = api_key.rsplit("-", 1)[-1]
            base_url = settings.mailchimp_base_url or DEFAULT_MAILCHIMP_BASE_URL.format(dc=dc)
        return cls(
            api_key=api_key,
            base_url=base_url,
            audiences=settings.audiences,
            hasher=mailer.hasher,
            app=mailer.app,
            timeout=settings.mailchimp_timeout,
            retries=settings.mailchimp_retries,
            backoff=settings.mailchimp_retry_backoff,
            production=settings.production,
        )

    def __repr__(self) -> str:
        return f"<Audiences {self.base_url} audiences={sorted(self.audiences)!r}>"

    # ------------------------------------------------------------------ audiences

    def ping(self) -> bool:
        """True when Mailchimp answers with this key (raises MailchimpError otherwise)."""
        with self._reporting("ping"):
            data = self._json("ping", lambda c: c.ping.get())
        return bool(data.get("health_status"))

    def audience(self, audience: object) -> AudienceRef:
        """The id and name of one audience (MailchimpNotFoundError when it does not exist)."""
        list_id = self.list_id(audience)
        with self._reporting("audience", list_id):
            data = self._json(
                "audience", lambda c: c.lists.get_list(list_id, fields=["id", "name"])
            )
        return AudienceRef(str(data.get("id") or list_id), str(data.get("name") or ""))

    def all_audiences(self) -> list[AudienceRef]:
        """Every audience of the account on production; elsewhere only those of
        DM_MAILCHIMP_AUDIENCES that the account has."""
        with self._reporting("all_audiences"):
            return self._lists()

    def find_audience(self, name: str) -> str | None:
        """The list id of the first audience named exactly ``name`` (of :meth:`all_audiences`:
        outside production, only the listed ones), or None."""
        wanted = _text(name, "The audience name", limit=100)
        for ref in self.all_audiences():
            if ref.name == wanted:
                return ref.id
        return None

    def member_count(self, audience: object, status: str | None = "subscribed") -> int:
        """How many members ``audience`` has with ``status`` (None: all but archived)."""
        list_id = self.list_id(audience)
        query = {"status": _check_status(status)} if status is not None else {}
        with self._reporting("member_count", list_id):
            data = self._json(
                "member_count",
                lambda c: c.lists.get_list_members_info(
                    list_id, fields=["total_items"], count=1, **query
                ),
            )
        return int(data.get("total_items") or 0)

    def create_audience_like(self, source_audience: object, name: str) -> str:
        """Create an audience named ``name`` with the contact, permission reminder, campaign
        defaults and email options of ``source_audience`` (for a new DOS iteration, say);
        return its list id.

        If an audience with exactly that name exists already, its id is returned and nothing
        is created, so a script that failed half-way can simply run again. (The create is
        never retried blindly: an unanswered create is checked by name first.)

        Only on production (DM_ENVIRONMENT): elsewhere it raises UnlistedAudienceError
        before any request (see :meth:`check_may_create_audience`).
        """
        source = self.list_id(source_audience)
        title = _text(name, "The audience name", limit=100)
        self.check_may_create_audience()
        with self._reporting("create_audience", source):
            existing = self.find_audience(title)
            if existing is not None:
                logger.info(
                    "Mailchimp audience %s already exists; nothing created",
                    existing,
                    extra={"operation": "create_audience", "list_id": existing},
                )
                return existing
            data = self._json(
                "create_audience",
                lambda c: c.lists.get_list(
                    source,
                    fields=[
                        "contact",
                        "permission_reminder",
                        "campaign_defaults",
                        "email_type_option",
                        "use_archive_bar",
                        "double_optin",
                        "marketing_permissions",
                    ],
                ),
            )
            body: dict[str, Any] = {
                "name": title,
                "contact": data.get("contact") or {},
                "permission_reminder": data.get("permission_reminder") or "",
                "campaign_defaults": data.get("campaign_defaults") or {},
                "email_type_option": bool(data.get("email_type_option", False)),
            }
            for key in ("use_archive_bar", "double_optin", "marketing_permissions"):
                if isinstance(data.get(key), bool):
                    body[key] = data[key]
            try:
                created = self._json(
                    "create_audience", lambda c: c.lists.create_list(body), retry=False
                )
            except MailchimpUnavailableError:
                found = self.find_audience(title)  # it may have been created after all
                if found is None:
                    raise
                return found
            list_id = created.get("id")
            if not isinstance(list_id, str) or not list_id:
                raise MailchimpProtocolError("Mailchimp created an audience but sent no id.")
        logger.info(
            "Mailchimp audience %s created like %s",
            list_id,
            source,
            extra={"operation": "create_audience", "list_id": list_id, "source": source},
        )
        return list_id

    def add_webhook(self, audience: object, url: str) -> str:
        """Ask Mailchimp to POST unsubscribe and cleaned events of ``audience`` to ``url``
        (the app's ``/_dmmail/callbacks/mailchimp/<DM_MAILCHIMP_WEBHOOK_TOKEN>``), from
        people and admins but not from this API. Returns the webhook id."""
        list_id = self.list_id(audience)
        target = _text(url, "The webhook URL", limit=2000)
        if not target.startswith(("https://", "http://")):
            raise InvalidInputError("The webhook URL must be an absolute http(s) URL.")
        body = {
            "url": target,
            "events": {
                "subscribe": False,
                "unsubscribe": True,
                "profile": False,
                "cleaned": True,
                "upemail": False,
                "campaign": False,
            },
            "sources": {"user": True, "admin": True, "api": False},
        }
        with self._reporting("add_webhook", list_id):
            data = self._json(
                "add_webhook", lambda c: c.lists.create_list_webhook(list_id, body), retry=False
            )
        return str(data.get("id") or "")

    # ------------------------------------------------------------------ reading members

    def members(
        self,
        audience: object,
        *,
        status: str | None = "subscribed",
        since: datetime | date | str | None = None,
        fields: Sequence[str] = DEFAULT_MEMBER_FIELDS,
    ) -> Iterator[Member]:
        """Every member of ``audience`` with ``status`` (None: every status but archived)
        changed at or after ``since``, as a generator.

        It asks for 1,000 members a page and only for ``fields`` (plus ``email_address``,
        ``status`` and ``last_changed``, which it needs), so memory stays flat: one page,
        plus an 8-byte fingerprint per member yielded (0.8 MB for 100,000).

        **Guarantee while the audience changes during the walk.** Members are read in
        ``last_changed`` order with a cursor (``since_last_changed`` = the last second read,
        and an offset only inside that second), not by offset over the whole audience, so
        members leaving the audience never shift the pages that are still to come. Then:

        * a member that is in the audience from start to end is yielded exactly once (in
          the state it had when its page was read);
        * a member added or changed during the walk moves to the end of the order and is
          yielded once there, unless it had been yielded already (fingerprints are checked,
          so nobody is yielded twice);
        * a member removed (or no longer matching ``status``) during the walk is yielded at
          most once: if its page was read before it left.

        Inside one ``last_changed`` second, Mailchimp's order is fixed (the sandbox's is
        creation order). Each page re-reads the last few members of the second it starts
        in, and checks that the first of them is one already seen; if more members of that
        second left than it re-read, it reads the second again from its start. A member
        whose address changes counts as a new member.
        """
        list_id = self.list_id(audience)
        wanted_status = _check_status(status) if status is not None else None
        since_text = _iso(since, "since") if since is not None else None
        wanted = _check_fields(fields)
        return self._walk(list_id, wanted_status, since_text, wanted)

    def _walk(
        self, list_id: str, status: str | None, since: str | None, wanted: tuple[str, ...]
    ) -> Iterator[Member]:
        api_fields = ["members." + name for name in wanted]
        seen = _Fingerprints()
        cursor = since  # since_last_changed of the next request
        passed = 0  # members of the cursor's second that are behind us
        overlap = _OVERLAP

        def page(offset: int) -> list[dict[str, Any]]:
            query: dict[str, Any] = {
                "fields": api_fields,
                "count": PAGE_SIZE,
                "offset": offset,
                "sort_field": "last_changed",
                "sort_dir": "ASC",
            }
            if status is not None:
                query["status"] = status
            if cursor is not None:
                query["since_last_changed"] = cursor
            data = self._json("members", lambda c: c.lists.get_list_members_info(list_id, **query))
            members = data.get("members")
            if not isinstance(members, list):
                raise MailchimpProtocolError("Mailchimp answered a members page without members.")
            return members

        def anchored(members: list[dict[str, Any]]) -> bool:
            """The page starts with a member of the cursor's second already passed."""
            first = members[0] if members else None
            return (
                first is not None
                and first.get("last_changed") == cursor
                and _Fingerprints.of(str(first.get("email_address", ""))) in seen
            )

        with self._reporting("members", list_id):
            while True:
                back = overlap
                offset = max(0, passed - back)
                members = page(offset)
                if offset == 0 or anchored(members):
                    overlap = max(_OVERLAP, overlap // 2)
                else:
                    while offset > 0 and not anchored(members):
                        # More members of the cursor's second left than the page re-read: step
                        # further back (at worst to the second's start; nobody comes twice).
                        back *= 4
                        offset = max(0, passed - back)
                        members = page(offset)
                    overlap = min(back, _MAX_OVERLAP)
                for raw in members:
                    fingerprint = _Fingerprints.of(str(raw.get("email_address", "")))
                    if fingerprint in seen:
                        continue
                    seen.add(fingerprint)
                    yield _member(raw)
                if not members:
                    return
                last = str(members[-1].get("last_changed", ""))
                if last == cursor:
                    passed = offset + len(members)
                else:
                    passed = sum(1 for m in members if m.get("last_changed") == last)
                    cursor = last
                if len(members) < PAGE_SIZE:
                    return
                members = []  # let this page go before the next one arrives

    # ------------------------------------------------------------------ data retention

    def audiences_for(self, email: str) -> list[AudienceRef]:
        """The audiences ``email`` is a member of (any status, archived included); outside
        production only those of DM_MAILCHIMP_AUDIENCES."""
        address = _address(email)
        if not address:
            raise InvalidEmailAddressError("The address is empty.")
        with self._reporting("audiences_for", None, self._hash(address)):
            return self._lists(email=address)

    def forget(self, email: str, audience: object = None) -> ForgetResult:
        """Permanently delete ``email`` from ``audience`` (default: every audience it is in;
        outside production, every audience of DM_MAILCHIMP_AUDIENCES it is in): Mailchimp's
        delete-permanent, for data retention. A member Mailchimp does not have (404) counts as
        done. Afterwards Mailchimp refuses the address on every API write; the person can only
        come back through a signup form."""
        address = _address(email)
        if not address:
            raise InvalidEmailAddressError("The address is empty.")
        to_hash = self._hash(address)
        explicit = self.list_id(audience) if audience is not None else None
        member_id = subscriber_hash(address)
        deleted: list[str] = []
        missing: list[str] = []
        with self._reporting("forget", explicit, to_hash):
            targets = [explicit] if explicit else [a.id for a in self._lists(email=address)]
            for list_id in targets:

                def erase(client: Any, lid: str = list_id) -> Any:
                    return client.lists.delete_list_member_permanent(lid, member_id)

                try:
                    self._call("forget", erase, known=(address,))
                except MailchimpNotFoundError:
                    missing.append(list_id)
                else:
                    deleted.append(list_id)
        logger.info(
            "Mailchimp forget: deleted from %d audiences, %d had no such member",
            len(deleted),
            len(missing),
            extra={"operation": "forget", "to_hash": to_hash, "deleted": deleted},
        )
        return ForgetResult(tuple(deleted), tuple(missing))


def _member(raw: Mapping[str, Any]) -> Member:
    return Member(
        email_address=str(raw.get("email_address", "")),
        status=str(raw.get("status", "")),
        last_changed=str(raw.get("last_changed", "")),
        fields=MappingProxyType(raw),
    )
