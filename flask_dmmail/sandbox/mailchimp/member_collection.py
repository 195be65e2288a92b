"""An audience's members collection, many members at a time: the batch subscribe endpoint
(``POST /lists/{id}``, up to 500), bulk loading without HTTP, pages of
``GET /lists/{id}/members``, and the reads the outbox page makes.

A page is cut from a cached, filtered and sorted view of the audience's members; the cache is
dropped whenever the audience changes (:meth:`~.members.MemberStore.changed`), so walking
100,000 members in pages of 1,000 filters once and then slices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from . import problems
from .merge_values import MERGE_INVALID
from .models import MEMBER_STATUSES, ListRecord, MemberRecord, subscriber_hash
from .problems import MailchimpProblem
from .serialise import collection_links, member_json, unique_email_id

if TYPE_CHECKING:
    from .state import MailchimpState

__all__ = ["MemberCollectionStore"]

MAX_BATCH_MEMBERS: Final = 500
MEMBER_SORT_FIELDS: Final = ("timestamp_opt", "timestamp_signup", "last_changed")
_MAX_VIEWS: Final = 8


class MemberCollectionStore:
    """Many members of an audience at once; shares the state's lock.

    :param state: the :class:`~flask_dmmail.sandbox.mailchimp.MailchimpState` it belongs to
        (its lock, clock and the other stores).
    """

    def __init__(self, state: MailchimpState) -> None:
        self._state = state
        self._lock = state.lock

    def _list(self, list_id: str) -> ListRecord:
        return self._state.list_store.record(list_id)

    def batch_members(
        self, list_id: str, body: Any, base: str, *, skip_merge: bool = False
    ) -> dict[str, Any]:
        """POST /lists/{id}: up to 500 members, each added, updated or refused."""
        body = problems.require_object(body)
        members = body.get("members")
        if members is None:
            raise problems.required_fields("members")
        if not isinstance(members, list):
            raise problems.schema_mismatch("members", "array", problems.type_name(members))
        if len(members) > MAX_BATCH_MEMBERS:
            raise problems.invalid_resource(
                errors=[
                    {
                        "field": "members",
                        "message": f"Maximum array size is {MAX_BATCH_MEMBERS} items.",
                    }
                ]
            )
        update_existing = bool(body.get("update_existing", False))
        sync_tags = bool(body.get("sync_tags", False))
        created: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        store = self._state.member_store
        with self._lock:
            lst = self._list(list_id)
            for item in members:
                email = item.get("email_address") if isinstance(item, dict) else None
                try:
                    if not isinstance(item, dict):
                        raise problems.schema_mismatch("", "object", problems.type_name(item))
                    checked = store.check_email(email)
                    key = subscriber_hash(checked)
                    existing = lst.members.get(key)
                    if key in lst.forgotten:
                        raise problems.forgotten_email(checked)
                    status_given = item.get("status")
                    if existing is not None and existing.status != "archived":
                        if not update_existing:
                            errors.append(
                                {
                                    "email_address": checked,
                                    "error": f"{checked} is already a list member, do you want "
                                    "to update? please provide update_existing:true in the "
                                    "request body",
                                    "error_code": "ERROR_CONTACT_EXISTS",
                                    "field": "",
                                    "field_message": "",
                                }
                            )
                            continue
                        status = (
                            store.check_status(status_given, "status")
                            if status_given is not None
                            else None
                        )
                        store.update(
                            lst,
                            existing,
                            checked,
                            status,
                            {**item, "tags": None},
                            skip_merge=skip_merge,
                        )
                        if item.get("tags") is not None:
                            store.apply_fields(
                                lst, existing, {"tags": item["tags"]}, sync_tags=sync_tags
                            )
                        updated.append(member_json(lst, existing, base))
                    else:
                        status_new = (
                            status_given if status_given is not None else item.get("status_if_new")
                        )
                        if status_new is None:
                            raise problems.required_fields("status")
                        status = store.check_status(status_new, "status")
                        member = store.add_or_readd(
                            lst, checked, status, item, sync_tags=sync_tags, skip_merge=skip_merge
                        )
                        created.append(member_json(lst, member, base))
                except MailchimpProblem as problem:
                    errors.append(_batch_error(email, problem))
        self._state.webhook_store.flush_webhooks()
        return {
            "new_members": created,
            "updated_members": updated,
            "errors": errors,
            "total_created": len(created),
            "total_updated": len(updated),
            "error_count": len(errors),
            "_links": [
                {"rel": "parent", "href": f"{base}/lists/{list_id}", "method": "GET"},
            ],
        }

    # ----------------------------------------------------------------- bulk load, pages

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
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown member status {status!r}")
        flag = status in ("unsubscribed", "cleaned") if compliance is None else compliance
        shared_merge = dict(merge_fields) if merge_fields else None
        tag_list = list(tags) if tags else None
        added = 0
        store = self._state.member_store
        with self._lock:
            lst = self._list(list_id)
            now = self._state.clock()
            members = lst.members
            for email in emails:
                key = subscriber_hash(email)
                if key in members:
                    continue
                members[key] = MemberRecord(
                    email=email,
                    hash=key,
                    seq=store.next_seq(),
                    status=status,
                    changed=now,
                    opt=now if status == "subscribed" else None,
                    compliance=flag,
                    merge_fields=dict(shared_merge) if shared_merge else None,
                )
                if tag_list:
                    store.set_tags(lst, members[key], tag_list, replace=True)
                lst.forgotten.discard(key)
                added += 1
            lst.counts[status] += added
            if added and status == "subscribed":
                lst.last_sub = now
            store.changed(lst)
        return added

    def members_page(
        self,
        list_id: str,
        base: str,
        *,
        count: int = 10,
        offset: int = 0,
        status: str | None = None,
        since_last_changed: float | None = None,
        before_last_changed: float | None = None,
        since_timestamp_opt: float | None = None,
        before_timestamp_opt: float | None = None,
        unique_email_id: str | None = None,
        vip_only: bool = False,
        sort_field: str | None = None,
        sort_dir: str = "ASC",
        member_keys: frozenset[str] | None = None,
    ) -> dict[str, Any]:
        """GET /lists/{id}/members: one page plus ``total_items``.

        Without ``status`` archived members are left out, as Mailchimp does.
        ``member_keys`` limits each member to those top-level keys (see ``fields``).
        """
        key = (
            status,
            since_last_changed,
            before_last_changed,
            since_timestamp_opt,
            before_timestamp_opt,
            unique_email_id,
            vip_only,
            sort_field,
            sort_dir.upper(),
        )
        with self._lock:
            lst = self._list(list_id)
            view = lst.views.get(key)
            if view is None:
                view = _build_view(lst, key)
                if len(lst.views) >= _MAX_VIEWS:
                    lst.views.clear()
                lst.views[key] = view
            page = view[offset : offset + count]
            members = [member_json(lst, m, base, member_keys) for m in page]
            return {
                "members": members,
                "list_id": lst.id,
                "total_items": len(view),
                "_links": collection_links(f"{base}/lists/{lst.id}/members"),
            }

    # ----------------------------------------------------------------- reads (the outbox)

    def members(
        self, list_id: str, *, status: str | None = None, offset: int = 0, count: int | None = None
    ) -> list[dict[str, Any]]:
        """Members of an audience as the API shows them; all statuses unless ``status``."""
        with self._lock:
            lst = self._state.list_store.find(list_id)
            if lst is None:
                raise KeyError(list_id)
            chosen = [m for m in lst.members.values() if status is None or m.status == status]
            end = None if count is None else offset + count
            return [member_json(lst, m, "") for m in chosen[offset:end]]

    def member_count(self, list_id: str, status: str | None = None) -> int:
        """How many members an audience has (of ``status``, when given)."""
        with self._lock:
            lst = self._state.list_store.find(list_id)
            if lst is None:
                raise KeyError(list_id)
            return len(lst.members) if status is None else lst.counts[status]


def _batch_error(email: Any, problem: MailchimpProblem) -> dict[str, Any]:
    """One entry of the batch endpoint's ``errors``: a merge field problem names its first
    field in ``field``/``field_message``; others join their messages into ``error``."""
    message, field, field_message = problem.detail, "", ""
    if problem.detail == MERGE_INVALID and problem.errors:
        field = problem.errors[0].get("field", "")
        field_message = problem.errors[0].get("message", "")
    elif problem.errors:
        message = "; ".join(e.get("message", "") for e in problem.errors)
    return {
        "email_address": email if isinstance(email, str) else "",
        "error": message,
        "error_code": "ERROR_GENERIC",
        "field": field,
        "field_message": field_message,
    }


def _build_view(lst: ListRecord, key: tuple[Any, ...]) -> list[MemberRecord]:
    (
        status,
        since_lc,
        before_lc,
        since_opt,
        before_opt,
        ueid,
        vip_only,
        sort_field,
        sort_dir,
    ) = key
    if status is None:
        view = [m for m in lst.members.values() if m.status != "archived"]
    else:
        view = [m for m in lst.members.values() if m.status == status]
    if since_lc is not None:
        view = [m for m in view if m.changed >= since_lc]
    if before_lc is not None:
        view = [m for m in view if m.changed < before_lc]
    if since_opt is not None:
        view = [m for m in view if m.opt is not None and m.opt >= since_opt]
    if before_opt is not None:
        view = [m for m in view if m.opt is not None and m.opt < before_opt]
    if ueid is not None:
        view = [m for m in view if unique_email_id(lst, m) == ueid]
    if vip_only:
        view = [m for m in view if m.vip]
    if sort_field in MEMBER_SORT_FIELDS:
        attr = {
            "timestamp_opt": "opt",
            "timestamp_signup": "signup",
            "last_changed": "changed",
        }[sort_field]

        def sort_key(m: MemberRecord) -> tuple[float, int]:
            value = getattr(m, attr)
            return (value if value is not None else 0.0, m.seq)

        view.sort(key=sort_key, reverse=sort_dir == "DESC")
    elif sort_dir == "DESC":
        view.reverse()
    return view
