"""One member of an audience at a time: add, upsert, update, archive, forget, tags, and what a
person does themselves (unsubscribe, bounce, confirm).

:class:`MemberStore` keeps every status change consistent (counts, times, the compliance flag
that stops a self-unsubscribed address being re-subscribed) and queues the webhook events a
change fires. It also checks addresses (their syntax, and the rules of ``address_rules.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import problems
from .member_fields import apply_fields, check_fields
from .models import WRITABLE_STATUSES, ListRecord, MemberRecord, iso, subscriber_hash
from .problems import MailchimpProblem
from .serialise import member_json

if TYPE_CHECKING:
    from .state import MailchimpState

__all__ = ["MemberStore"]

_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def _valid_email(email: str) -> bool:
    return len(email) <= 254 and _EMAIL_RE.match(email) is not None and ".." not in email


class MemberStore:
    """Single members of the account's audiences; shares the state's lock.

    :param state: the :class:`~flask_dmmail.sandbox.mailchimp.MailchimpState` it belongs to
        (its lock, clock and the other stores).
    """

    def __init__(self, state: MailchimpState) -> None:
        self._state = state
        self._lock = state.lock
        self.reset()

    def reset(self) -> None:
        """No sequence numbers or tag ids handed out."""
        with self._lock:
            self._seq = 0
            self._tag_seq = 1000

    def _list(self, list_id: str) -> ListRecord:
        return self._state.list_store.record(list_id)

    def next_seq(self) -> int:
        """The next member sequence number (a member's ``web_id`` is built from it)."""
        self._seq += 1
        return self._seq

    # ----------------------------------------------------------------- record helpers
    # (the public ones are shared with the collection store)

    def _member_key(self, key: str) -> str:
        """The subscriber hash for a path segment: an md5 hash or a raw address."""
        lowered = key.lower()
        return lowered if _HEX32.match(lowered) else subscriber_hash(key)

    def _member(self, lst: ListRecord, key: str) -> MemberRecord:
        member = lst.members.get(self._member_key(key))
        if member is None:
            raise problems.not_found()
        return member

    def changed(self, lst: ListRecord) -> None:
        """Drop ``lst``'s cached member views (call after any change to its members)."""
        lst.views.clear()

    def _set_status(
        self, lst: ListRecord, m: MemberRecord, status: str, *, source: str = "api"
    ) -> None:
        """Move ``m`` to ``status``, keeping counts, times and compliance flags right."""
        old = m.status
        now = self._state.clock()
        if old != status:
            lst.counts[old] -= 1
            lst.counts[status] += 1
            m.status = status
        if status == "subscribed" and (old != "subscribed" or m.opt is None):
            m.opt = now
            lst.last_sub = now
        if status == "cleaned":
            m.compliance = True
        if status == "unsubscribed" and old != "unsubscribed":
            lst.last_unsub = now
            m.unsubscribe_reason = "N/A (Unsubscribed by an admin)" if source != "user" else ""
        m.changed = now
        if old != status and status in ("unsubscribed", "cleaned"):
            self._state.webhook_store.queue_webhook(
                lst, m, "unsubscribe" if status == "unsubscribed" else "cleaned", source
            )

    def check_email(self, email: Any, field_name: str = "email_address") -> str:
        """The address if it is a string, valid, and not refused by the fake rule."""
        if not isinstance(email, str):
            raise problems.schema_mismatch(field_name, "string", problems.type_name(email))
        if not _valid_email(email):
            raise problems.invalid_email()
        if self._state.address_rules.looks_fake(email):
            raise problems.looks_fake(email)
        return email

    @staticmethod
    def check_status(value: Any, field_name: str) -> str:
        """The status if it is one a member may be given; Mailchimp's problem otherwise."""
        if value not in WRITABLE_STATUSES:
            message = (
                "Data presented is not one of the accepted values: "
                + ", ".join(WRITABLE_STATUSES)
                + "."
            )
            raise problems.invalid_resource(errors=[{"field": field_name, "message": message}])
        return str(value)

    def _new_member(self, lst: ListRecord, email: str, key: str, status: str) -> MemberRecord:
        self._seq += 1
        now = self._state.clock()
        member = MemberRecord(email=email, hash=key, seq=self._seq, status=status, changed=now)
        lst.members[key] = member
        lst.counts[status] += 1
        if status == "subscribed":
            member.opt = now
            lst.last_sub = now
        elif status == "cleaned":
            member.compliance = True
        return member

    def apply_fields(
        self,
        lst: ListRecord,
        m: MemberRecord,
        body: Mapping[str, Any],
        *,
        sync_tags: bool,
        skip_merge: bool = False,
    ) -> None:
        """Check, then set, the member fields ``body`` gives (merge fields, tags, language,
        ...); nothing changes when one is refused."""
        changes = check_fields(lst, m, body, skip_merge=skip_merge)
        apply_fields(self, lst, m, body, changes, sync_tags=sync_tags)

    def set_tags(
        self, lst: ListRecord, m: MemberRecord, names: Sequence[str], *, replace: bool
    ) -> None:
        """Give ``m`` the tags ``names`` (added to its tags, or instead of them)."""
        current = [] if replace else list(m.tags or ())
        for name in names:
            if name not in lst.tag_ids:
                self._tag_seq += 1
                lst.tag_ids[name] = self._tag_seq
            if name not in current:
                current.append(name)
        m.tags = current or None

    # ----------------------------------------------------------------- one member: API

    def add_member(
        self, list_id: str, body: Any, base: str, *, skip_merge: bool = False
    ) -> dict[str, Any]:
        """POST /lists/{id}/members (``skip_merge``: the ``skip_merge_validation`` query
        argument, which lets required merge fields be left out)."""
        body = problems.require_object(body)
        with self._lock:
            lst = self._list(list_id)
            missing = [k for k in ("email_address", "status") if k not in body]
            if missing:
                raise problems.required_fields(*missing)
            email = self.check_email(body["email_address"])
            status = self.check_status(body["status"], "status")
            member = self.add_or_readd(
                lst, email, status, body, sync_tags=False, skip_merge=skip_merge
            )
            return member_json(lst, member, base)

    def add_or_readd(
        self,
        lst: ListRecord,
        email: str,
        status: str,
        body: Mapping[str, Any],
        *,
        sync_tags: bool,
        skip_merge: bool = False,
    ) -> MemberRecord:
        """Add ``email`` to ``lst``, or bring back its archived member."""
        key = subscriber_hash(email)
        if key in lst.forgotten:
            raise problems.forgotten_email(email)
        existing = lst.members.get(key)
        if existing is not None and existing.status != "archived":
            raise problems.member_exists(email)
        if existing is not None and status == "subscribed" and existing.compliance:
            raise problems.compliance_state(email)
        changes = check_fields(lst, existing, body, skip_merge=skip_merge)
        signup = status in ("subscribed", "pending")
        rules = self._state.address_rules
        if signup:
            rules.check_signup(email, lst.id)
        if existing is not None:
            apply_fields(self, lst, existing, body, changes, sync_tags=sync_tags)
            self._set_status(lst, existing, status)
            existing.email = email
        else:
            existing = self._new_member(lst, email, key, status)
            apply_fields(self, lst, existing, body, changes, sync_tags=sync_tags)
        self.changed(lst)
        if signup:
            rules.record_signup(email, lst.id)
        return existing

    def _drop(self, lst: ListRecord, member: MemberRecord) -> None:
        del lst.members[member.hash]
        lst.counts[member.status] -= 1

    def set_member(
        self, list_id: str, key: str, body: Any, base: str, *, skip_merge: bool = False
    ) -> dict[str, Any]:
        """PUT /lists/{id}/members/{hash}: add or update; unarchives. ``tags`` are ignored:
        the PUT schema has none (mailchimp-api.md §2, from the 3.0.76 spec)."""
        body = {k: v for k, v in problems.require_object(body).items() if k != "tags"}
        with self._lock:
            lst = self._list(list_id)
            missing = [k for k in ("email_address", "status_if_new") if k not in body]
            if missing:
                raise problems.required_fields(*missing)
            email = self.check_email(body["email_address"])
            status_if_new = self.check_status(body["status_if_new"], "status_if_new")
            status = self.check_status(body["status"], "status") if "status" in body else None
            path_key = self._member_key(key)
            if path_key in lst.forgotten or subscriber_hash(email) in lst.forgotten:
                raise problems.forgotten_email(email)
            member = lst.members.get(path_key)
            if member is None:
                if path_key != subscriber_hash(email):
                    raise problems.invalid_resource(
                        errors=[
                            {
                                "field": "email_address",
                                "message": "The subscriber hash in the URL does not match "
                                "the lowercase MD5 hash of the email address.",
                            }
                        ]
                    )
                added = self.add_or_readd(
                    lst, email, status_if_new, body, sync_tags=False, skip_merge=skip_merge
                )
                return member_json(lst, added, base)
            new_status = status or (status_if_new if member.status == "archived" else None)
            self.update(lst, member, email, new_status, body, skip_merge=skip_merge)
            return member_json(lst, member, base)

    def update(
        self,
        lst: ListRecord,
        member: MemberRecord,
        email: str | None,
        status: str | None,
        body: Mapping[str, Any],
        *,
        skip_merge: bool = False,
    ) -> None:
        """Change an existing member: its address, fields and (if given) status; nothing
        changes when a value is refused."""
        if status == "subscribed" and member.status != "subscribed" and member.compliance:
            raise problems.compliance_state(member.email)
        changes = check_fields(lst, member, body, skip_merge=skip_merge)
        if email is not None and subscriber_hash(email) != member.hash:
            new_key = subscriber_hash(email)
            if new_key in lst.members:
                raise problems.member_exists(email)
            del lst.members[member.hash]
            member.hash = new_key
            lst.members[new_key] = member
        if email is not None:
            member.email = email
        apply_fields(self, lst, member, body, changes, sync_tags=False)
        if status is not None:
            self._set_status(lst, member, status)
        member.changed = self._state.clock()
        self.changed(lst)

    def update_member(
        self, list_id: str, key: str, body: Any, base: str, *, skip_merge: bool = False
    ) -> dict[str, Any]:
        """PATCH /lists/{id}/members/{hash}: 404 when the member is missing."""
        body = problems.require_object(body)
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, key)
            email = self.check_email(body["email_address"]) if "email_address" in body else None
            status = None
            if "status" in body:
                if body["status"] == "transactional":
                    self.check_status(None, "status")
                status = self.check_status(body["status"], "status")
            self.update(lst, member, email, status, body, skip_merge=skip_merge)
            return member_json(lst, member, base)

    def get_member(self, list_id: str, key: str, base: str) -> dict[str, Any]:
        """GET /lists/{id}/members/{hash} (``key``: a hash or an address)."""
        with self._lock:
            lst = self._list(list_id)
            return member_json(lst, self._member(lst, key), base)

    def archive_member(self, list_id: str, key: str) -> None:
        """DELETE /lists/{id}/members/{hash}: archive; 405 for archived/pending/cleaned."""
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, key)
            if member.status in ("archived", "pending", "cleaned"):
                raise MailchimpProblem(
                    405,
                    "Method Not Allowed",
                    "This list member cannot be removed. "
                    "Can not archive a contact that is bounced, pending or archived",
                    headers={"Allow": "GET, PUT"},
                )
            self._set_status(lst, member, "archived")
            self.changed(lst)

    def delete_member_permanent(self, list_id: str, key: str) -> None:
        """POST …/actions/delete-permanent: gone, and refused on POST/PUT forever."""
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, key)
            self._drop(lst, member)
            lst.forgotten.add(member.hash)
            self.changed(lst)

    def get_member_tags(self, list_id: str, key: str, base: str) -> dict[str, Any]:
        """GET /lists/{id}/members/{hash}/tags."""
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, key)
            tags = [
                {"id": lst.tag_ids[name], "name": name, "date_added": iso(member.changed)}
                for name in member.tags or ()
            ]
            return {"tags": tags, "total_items": len(tags), "_links": []}

    def update_member_tags(self, list_id: str, key: str, body: Any) -> None:
        """POST …/tags ``{tags: [{name, status: active|inactive}]}``."""
        body = problems.require_object(body)
        tags = body.get("tags")
        if not isinstance(tags, list):
            raise problems.required_fields("tags")
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, key)
            current = list(member.tags or ())
            for tag in tags:
                if not isinstance(tag, dict) or not isinstance(tag.get("name"), str):
                    raise problems.schema_mismatch("tags", "object", problems.type_name(tag))
                name = tag["name"]
                if tag.get("status", "active") == "inactive":
                    if name in current:
                        current.remove(name)
                else:
                    self.set_tags(lst, member, [name], replace=False)
                    current = list(member.tags or ())
            member.tags = current or None
            member.changed = self._state.clock()
            self.changed(lst)

    # ----------------------------------------------------------------- user actions (no API)

    def unsubscribe(
        self, list_id: str, email: str, *, reason: str = "manual", campaign_id: str = ""
    ) -> None:
        """The person clicked "unsubscribe": status unsubscribed, compliance state, webhook."""
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, email)
            member.compliance = True
            self._set_status(lst, member, "unsubscribed", source="user")
            self._state.webhook_store.outgoing_extra(lst, reason=reason, campaign_id=campaign_id)
            self.changed(lst)
        self._state.webhook_store.flush_webhooks()

    def bounce(
        self, list_id: str, email: str, *, reason: str = "hard", campaign_id: str = ""
    ) -> None:
        """The address bounced: status cleaned (compliance state), ``cleaned`` webhook."""
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, email)
            self._set_status(lst, member, "cleaned", source="user")
            self._state.webhook_store.outgoing_extra(lst, reason=reason, campaign_id=campaign_id)
            self.changed(lst)
        self._state.webhook_store.flush_webhooks()

    def confirm(self, list_id: str, email: str) -> None:
        """The person confirmed a double opt-in: pending becomes subscribed, compliance cleared."""
        with self._lock:
            lst = self._list(list_id)
            member = self._member(lst, email)
            if member.status != "pending":
                raise ValueError("only a pending member can confirm")
            member.compliance = False
            self._set_status(lst, member, "subscribed", source="user")
            self.changed(lst)
