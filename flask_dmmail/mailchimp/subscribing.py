"""Subscribing: :meth:`~flask_dmmail.mailchimp.Audiences.subscribe` one address without
overriding what Mailchimp knows (an opt-out stays an opt-out), and
:meth:`~flask_dmmail.mailchimp.Audiences.subscribe_many` through the batch member endpoint
with the same outcome per address. A part of :class:`~flask_dmmail.mailchimp.Audiences`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any, Final

from .. import signals
from ..errors import (
    ForgottenMemberError,
    InvalidEmailAddressError,
    InvalidInputError,
    InvalidMemberAddressError,
    MailchimpNotFoundError,
    MemberComplianceError,
)
from ..validation import is_unicode
from .base import AudiencesBase
from .checks import _address, _merge_fields, _tags, _valid
from .results import BulkItem, BulkSubscribeResult, SubscribeOutcome, SubscribeResult
from .transport import scrub, subscriber_hash

logger = logging.getLogger("flask_dmmail")

#: Members per call of the batch member endpoint (Mailchimp's maximum).
BATCH_SIZE: Final = 500
_BATCH_TIMEOUT = 120.0
_LOOKUP_THREADS = 8


def _outcome_for_status(status: str | None) -> SubscribeOutcome:
    if status in ("subscribed", "pending"):
        return SubscribeOutcome.ALREADY_SUBSCRIBED
    if status in ("unsubscribed", "cleaned"):
        return SubscribeOutcome.UNSUBSCRIBED
    return SubscribeOutcome.FAILED


_UNSUBSCRIBED_DETAIL = (
    "The person unsubscribed (or their address bounced): Mailchimp will not subscribe them "
    "again through the API. They can re-subscribe with the audience's signup form."
)
_DELETED_DETAIL = (
    "The address was permanently deleted from this audience: the person must re-subscribe "
    "with the audience's signup form."
)


class SubscribingMixin(AudiencesBase):
    """The subscribe methods of :class:`~flask_dmmail.mailchimp.Audiences`."""

    def subscribe(
        self,
        audience: object,
        email: str,
        *,
        merge_fields: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> SubscribeResult:
        """Subscribe ``email`` to ``audience`` without overriding what Mailchimp knows.
        ``merge_fields`` maps merge tags (such as ``"FNAME"``) to values and ``tags`` lists
        tag names to add to the member.

        The member is read first, then:

        * no member (or an archived one): an upsert ``PUT .../members/<md5>`` with
          ``status_if_new: subscribed`` → ``subscribed``; if Mailchimp refuses it,
          "Forgotten Email Not Subscribed" → ``deleted``, "Member In Compliance State" →
          ``unsubscribed``, "looks fake or invalid" → ``invalid address``;
        * subscribed or pending: ``already subscribed`` (merge fields and tags, if given,
          are updated; the status is not touched);
        * unsubscribed or cleaned: ``unsubscribed``, and nothing is written: a person who
          opted out is never silently re-subscribed;
        * transactional (never opted in to marketing): set to ``subscribed``.

        An address that fails the syntax check gives ``invalid address`` without a network
        call. ``result.member_status`` is Mailchimp's own status. Fires
        ``mailchimp_subscribed``; other Mailchimp refusals raise a MailchimpError (and fire
        ``mailchimp_failed``).
        """
        list_id = self.list_id(audience)
        address = _address(email)
        merge = _merge_fields(merge_fields)
        tag_list = _tags(tags)
        to_hash = self._hash(address)
        with self._reporting("subscribe", list_id, to_hash):
            if not _valid(address):
                result = SubscribeResult(
                    SubscribeOutcome.INVALID_ADDRESS,
                    list_id,
                    to_hash,
                    None,
                    detail="Not a valid email address.",
                )
            else:
                result = self._subscribe_one(list_id, address, to_hash, merge, tag_list)
        self._subscribed(result)
        return result

    def _subscribed(self, result: SubscribeResult) -> None:
        logger.info(
            "Mailchimp subscribe to %s: %s",
            result.list_id,
            result.outcome.value,
            extra={
                "operation": "subscribe",
                "list_id": result.list_id,
                "to_hash": result.to_hash,
                "outcome": result.outcome.value,
                "member_status": result.member_status,
            },
        )
        signals.mailchimp_subscribed.send(
            self._sender(), audience=result.list_id, result=result, to_hash=result.to_hash
        )

    def _subscribe_one(
        self,
        list_id: str,
        address: str,
        to_hash: str,
        merge: dict[str, Any] | None,
        tags: list[str] | None,
    ) -> SubscribeResult:
        member_id = subscriber_hash(address)
        known = (address,)
        try:
            current: dict[str, Any] | None = self._json(
                "subscribe",
                lambda c: c.lists.get_list_member(
                    list_id, member_id, fields=["status", "unique_email_id"]
                ),
                known=known,
            )
        except MailchimpNotFoundError:
            current = None  # new (or forgotten; or no such audience: the PUT will say)
        status = current.get("status") if current else None

        def result(
            outcome: SubscribeOutcome, data: Mapping[str, Any] | None, detail: str | None = None
        ) -> SubscribeResult:
            return SubscribeResult(
                outcome,
                list_id,
                to_hash,
                (data or {}).get("status"),
                (data or {}).get("unique_email_id") or None,
                detail,
            )

        if status in ("unsubscribed", "cleaned"):
            return result(SubscribeOutcome.UNSUBSCRIBED, current, _UNSUBSCRIBED_DETAIL)
        if status in ("subscribed", "pending"):
            data = current
            if merge:
                data = self._put_member(list_id, member_id, address, merge, None, known)
            if tags:
                self._add_tags(list_id, member_id, tags, known)
            return result(SubscribeOutcome.ALREADY_SUBSCRIBED, data)
        # new, archived or transactional
        force = "subscribed" if status in ("archived", "transactional") else None
        try:
            data = self._put_member(list_id, member_id, address, merge, force, known)
        except ForgottenMemberError as error:
            return result(SubscribeOutcome.DELETED, None, error.detail or _DELETED_DETAIL)
        except MemberComplianceError as error:
            return result(
                SubscribeOutcome.UNSUBSCRIBED, current, error.detail or _UNSUBSCRIBED_DETAIL
            )
        except InvalidMemberAddressError as error:
            return result(SubscribeOutcome.INVALID_ADDRESS, None, error.detail)
        new_status = data.get("status")
        if new_status == "subscribed":
            if tags:
                self._add_tags(list_id, member_id, tags, known)
            return result(SubscribeOutcome.SUBSCRIBED, data)
        # Someone else wrote the member between the read and the upsert: report what it is.
        outcome = _outcome_for_status(new_status)
        return result(
            outcome,
            data,
            _UNSUBSCRIBED_DETAIL if outcome is SubscribeOutcome.UNSUBSCRIBED else None,
        )

    def _put_member(
        self,
        list_id: str,
        member_id: str,
        address: str,
        merge: dict[str, Any] | None,
        status: str | None,
        known: Iterable[str],
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"email_address": address, "status_if_new": "subscribed"}
        if status is not None:
            body["status"] = status
        if merge:
            body["merge_fields"] = merge
        return self._json(
            "subscribe",
            lambda c: c.lists.set_list_member(list_id, member_id, body),
            known=known,
        )

    def _add_tags(
        self, list_id: str, member_id: str, tags: list[str], known: Iterable[str]
    ) -> None:
        body = {"tags": [{"name": tag, "status": "active"} for tag in tags]}
        self._call(
            "subscribe",
            lambda c: c.lists.update_list_member_tags(list_id, member_id, body),
            known=known,
        )

    def subscribe_many(
        self,
        audience: object,
        emails: Iterable[str],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> BulkSubscribeResult:
        """Subscribe many addresses with Mailchimp's batch member endpoint (``POST
        /lists/{id}``, 500 per call, ``update_existing: false`` so nobody's status is
        overwritten).

        Each address gets the outcome
        :meth:`~flask_dmmail.mailchimp.Audiences.subscribe` would give it: addresses Mailchimp
        reports as existing members are looked up (and transactional or archived ones
        subscribed) to tell ``already subscribed`` from ``unsubscribed``. Addresses are
        compared case-insensitively and each is reported once. ``progress(n)`` is called
        after every ``n`` addresses dealt with. Fires ``mailchimp_subscribed`` per address.
        A failure of a whole call (auth, no such audience, Mailchimp down after retries)
        raises; the batches before it stay done and running again is safe.
        """
        list_id = self.list_id(audience)
        if isinstance(emails, str):
            raise InvalidInputError(
                "emails must be a list (or iterable) of addresses, not one string."
            )
        items: dict[str, BulkItem] = {}
        chunk: list[str] = []
        pending = 0
        with self._reporting("subscribe_many", list_id):
            for raw in emails:
                if not isinstance(raw, str):
                    raise InvalidEmailAddressError(
                        f"Every address must be a string, not {type(raw).__name__}."
                    )
                address = raw.strip()  # one that is not text is an invalid address below
                key = address.lower()
                if key in items:  # every key of the chunk is in items already
                    continue
                if not is_unicode(address) or not _valid(address):
                    items[key] = BulkItem(
                        address,
                        SubscribeOutcome.INVALID_ADDRESS,
                        None,
                        "Not a valid email address.",
                    )
                    pending += 1
                    continue
                items[key] = BulkItem(address, SubscribeOutcome.FAILED, None)  # placeholder
                chunk.append(key)
                if len(chunk) == BATCH_SIZE:
                    self._batch(list_id, [items[k].email for k in chunk], items)
                    if progress is not None:
                        progress(len(chunk) + pending)
                    chunk, pending = [], 0
            if chunk:
                self._batch(list_id, [items[k].email for k in chunk], items)
            if progress is not None and (chunk or pending):
                progress(len(chunk) + pending)
        counts = dict.fromkeys(SubscribeOutcome, 0)
        for item in items.values():
            counts[item.outcome] += 1
            self._subscribed(
                SubscribeResult(
                    item.outcome,
                    list_id,
                    self._hash(item.email),
                    item.member_status,
                    None,
                    item.detail,
                )
            )
        return BulkSubscribeResult(list_id, tuple(items.values()), MappingProxyType(counts))

    def _batch(self, list_id: str, addresses: list[str], items: dict[str, BulkItem]) -> None:
        body = {
            "members": [{"email_address": a, "status": "subscribed"} for a in addresses],
            "update_existing": False,
        }
        data = self._json(
            "subscribe_many",
            lambda c: c.lists.batch_list_members(list_id, body),
            known=addresses,
            timeout=max(self.timeout, _BATCH_TIMEOUT),
        )
        by_key = {a.lower(): a for a in addresses}
        done: set[str] = set()
        for member in data.get("new_members") or []:
            key = str(member.get("email_address", "")).lower()
            if key in by_key:
                status = member.get("status")
                outcome = (
                    SubscribeOutcome.SUBSCRIBED
                    if status == "subscribed"
                    else _outcome_for_status(status)
                )
                items[key] = BulkItem(by_key[key], outcome, status)
                done.add(key)
        lookups: list[str] = []
        for error in data.get("errors") or []:
            key = str(error.get("email_address", "")).lower()
            if key not in by_key:
                continue
            done.add(key)
            text = str(error.get("error") or "")
            lowered = text.lower()
            code = error.get("error_code")
            address = by_key[key]
            if code == "ERROR_CONTACT_EXISTS" or "already a list member" in lowered:
                lookups.append(address)
            elif "permanently deleted" in lowered or "must re-subscribe" in lowered:
                items[key] = BulkItem(address, SubscribeOutcome.DELETED, None, _DELETED_DETAIL)
            elif "compliance state" in lowered:
                items[key] = BulkItem(
                    address, SubscribeOutcome.UNSUBSCRIBED, None, _UNSUBSCRIBED_DETAIL
                )
            elif "looks fake or invalid" in lowered or "valid email address" in lowered:
                items[key] = BulkItem(
                    address, SubscribeOutcome.INVALID_ADDRESS, None, scrub(text, [address])
                )
            else:
                items[key] = BulkItem(
                    address, SubscribeOutcome.FAILED, None, scrub(text, [address])
                )
        for member in data.get("updated_members") or []:
            key = str(member.get("email_address", "")).lower()
            if key in by_key and key not in done:
                lookups.append(by_key[key])
                done.add(key)
        lookups.extend(by_key[k] for k in by_key if k not in done)  # not reported at all
        if lookups:
            with ThreadPoolExecutor(max_workers=min(_LOOKUP_THREADS, len(lookups))) as pool:
                for address, single in zip(
                    lookups,
                    pool.map(lambda a: self._subscribe_one(list_id, a, "", None, None), lookups),
                    strict=True,
                ):
                    items[address.lower()] = BulkItem(
                        address, single.outcome, single.member_status, single.detail
                    )
