"""Members: :meth:`~flask_dmmail.mailchimp.Audiences.members` walks an audience page by page
with a guarantee that holds while the audience changes (nobody is yielded twice, see
``_Fingerprints``), and, for data retention,
:meth:`~flask_dmmail.mailchimp.Audiences.audiences_for` finds the audiences an address is in
and :meth:`~flask_dmmail.mailchimp.Audiences.forget` deletes it from them permanently. A part
of :class:`~flask_dmmail.mailchimp.Audiences`.
"""

from __future__ import annotations

import logging
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from heapq import merge
from types import MappingProxyType
from typing import Any, Final

from ..errors import InvalidEmailAddressError, MailchimpNotFoundError, MailchimpProtocolError
from .base import AudiencesBase
from .checks import _address, _check_fields, _check_status, _iso
from .results import AudienceRef, ForgetResult, Member
from .transport import PAGE_SIZE, subscriber_hash

logger = logging.getLogger("flask_dmmail")

#: What :meth:`~flask_dmmail.mailchimp.Audiences.members` asks for unless told otherwise.
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


class MembersMixin(AudiencesBase):
    """The member reading and data retention methods of
    :class:`~flask_dmmail.mailchimp.Audiences`."""

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
