"""``GET /search-members``: the members of one audience, or of every audience, that match a
query (the official client's ``searchMembers.search(query, list_id=...)``).

The answer has Mailchimp's two parts, ``exact_matches`` and ``full_search``, each
``{members, total_items}`` (the API reference; docs.rs ``mailchimp_api::types::MembersData``).
The query "should be a valid email, or a string representing a contact's first or last name"
(the client's docstring): an exact match is a member whose address is the query (compared
without case); the full search finds the others whose address, first or last name, or full
name contains it. How Mailchimp ranks or caps the full search is not published: the sandbox
lists every match, audience by audience, and leaves archived members out (docs/sandbox.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import problems
from .serialise import member_json

if TYPE_CHECKING:
    from .models import MemberRecord
    from .state import MailchimpState

__all__ = ["search_members"]


def _names(m: MemberRecord) -> list[str]:
    merge = m.merge_fields or {}
    first, last = str(merge.get("FNAME", "")), str(merge.get("LNAME", ""))
    return [first, last, f"{first} {last}".strip()]


def search_members(
    state: MailchimpState, query: str | None, list_id: str | None, base: str
) -> dict[str, Any]:
    """GET /search-members?query=...&list_id=...: exact and partial matches."""
    if not query or not query.strip():
        raise problems.invalid_resource(
            errors=[{"field": "query", "message": "This value should not be blank."}]
        )
    wanted = query.strip().lower()
    with state.lock:
        if list_id is not None:
            lists = [state.list_store.record(list_id)]
        else:
            lists = state.list_store.records()
        exact: list[dict[str, Any]] = []
        partial: list[dict[str, Any]] = []
        for lst in lists:
            for member in lst.members.values():
                if member.status == "archived":
                    continue
                if member.email.lower() == wanted:
                    exact.append(member_json(lst, member, base))
                elif wanted in member.email.lower() or any(
                    wanted in name.lower() for name in _names(member) if name
                ):
                    partial.append(member_json(lst, member, base))
    return {
        "exact_matches": {"members": exact, "total_items": len(exact)},
        "full_search": {"members": partial, "total_items": len(partial)},
        "_links": [{"rel": "self", "href": f"{base}/search-members", "method": "GET"}],
    }
