"""Loading the sandbox's Mailchimp account from a seed mapping (the ``mailchimp`` part of a
sandbox seed file): audiences with their merge fields and members, the address rules, the
plan's audience cap and the verified sending domains, checked first.
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
    "merge_fields": [{"tag", "type", "name", "required", ...}],
    "members": ["a@x.org" | {"email_address", "status", "merge_fields", "tags"}]}],
    "fake_rule": bool | {"enabled", "domains", "addresses"}, "busy_addresses": [...],
    "max_lists": int, "verified_domains": [...]}``.
    """
    data = mapping.get("mailchimp", mapping)
    if not isinstance(data, Mapping):
        raise ValueError("seed: mailchimp must be a mapping")
    unknown = set(data) - {"lists", "fake_rule", "busy_addresses", "max_lists", "verified_domains"}
    if unknown:
        raise ValueError(f"seed: mailchimp has unknown keys {', '.join(sorted(unknown))}")
    lists = data.get("lists", [])
    if not isinstance(lists, list) or not all(isinstance(x, Mapping) for x in lists):
        raise ValueError("seed: mailchimp.lists must be a list of objects")
    max_lists = data.get("max_lists")
    if max_lists is not None and (
        not isinstance(max_lists, int) or isinstance(max_lists, bool) or max_lists < 0
    ):
        raise ValueError("seed: mailchimp.max_lists must be a whole number")
    for key in ("busy_addresses", "verified_domains"):
        if key in data and (
            not isinstance(data[key], list) or not all(isinstance(x, str) for x in data[key])
        ):
            raise ValueError(f"seed: mailchimp.{key} must be a list of strings")
    if "verified_domains" in data:
        state.domain_store.set_verified(data["verified_domains"])
    for entry in lists:
        fields = entry.get("merge_fields", [])
        if not isinstance(fields, list) or not all(isinstance(f, Mapping) for f in fields):
            raise ValueError("seed: mailchimp.lists[].merge_fields must be a list of objects")
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
            **{
                k: v for k, v in entry.items() if k not in ("id", "name", "members", "merge_fields")
            },
        )
        if fields:
            state.merge_field_store.seed_fields(list_id, fields)
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
        state.address_rules.set_fake_rule(
            bool(fake.get("enabled", True)),
            domains=fake.get("domains"),
            addresses=fake.get("addresses"),
        )
    elif fake is not None:
        state.address_rules.set_fake_rule(bool(fake))
    if "busy_addresses" in data:
        state.address_rules.set_busy_addresses(data["busy_addresses"])
    if max_lists is not None:
        state.max_lists = max_lists
