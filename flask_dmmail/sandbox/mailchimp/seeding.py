"""Loading the sandbox's Mailchimp account from a seed mapping (the ``mailchimp`` part of a
sandbox seed file): audiences, their members and the "looks fake" rule, checked first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .state import MailchimpState

__all__ = ["seed"]


def seed(state: MailchimpState, mapping: Mapping[str, Any]) -> None:
    """Load audiences (and their members) from a mapping.

    Accepts ``{"mailchimp": {...}}`` or the inner part: ``{"lists": [{"id", "name",
    "members": ["a@x.org" | {"email_address", "status", "merge_fields", "tags"}]}],
    "fake_rule": bool | {"enabled", "domains", "addresses"}}``.
    """
    data = mapping.get("mailchimp", mapping)
    if not isinstance(data, Mapping):
        raise ValueError("seed: mailchimp must be a mapping")
    unknown = set(data) - {"lists", "fake_rule"}
    if unknown:
        raise ValueError(f"seed: mailchimp has unknown keys {', '.join(sorted(unknown))}")
    lists = data.get("lists", [])
    if not isinstance(lists, list) or not all(isinstance(x, Mapping) for x in lists):
        raise ValueError("seed: mailchimp.lists must be a list of objects")
    for entry in lists:
        members = entry.get("members", [])
        if not isinstance(members, list) or not all(
            isinstance(m, str) or (isinstance(m, Mapping) and "email_address" in m) for m in members
        ):
            raise ValueError(
                "seed: mailchimp.lists[].members must be addresses or objects with an email_address"
            )
        list_id = state.list_store.ensure_list(
            entry.get("id"),
            str(entry.get("name", "Sandbox audience")),
            **{k: v for k, v in entry.items() if k not in ("id", "name", "members")},
        )
        plain: list[str] = []
        for member in members:
            if isinstance(member, str):
                plain.append(member)
            else:
                state.collection_store.add_members(
                    list_id,
                    [member["email_address"]],
                    status=member.get("status", "subscribed"),
                    merge_fields=member.get("merge_fields"),
                    tags=member.get("tags"),
                )
        if plain:
            state.collection_store.add_members(list_id, plain)
    fake = data.get("fake_rule")
    if isinstance(fake, Mapping):
        state.member_store.set_fake_rule(
            bool(fake.get("enabled", True)),
            domains=fake.get("domains"),
            addresses=fake.get("addresses"),
        )
    elif fake is not None:
        state.member_store.set_fake_rule(bool(fake))
