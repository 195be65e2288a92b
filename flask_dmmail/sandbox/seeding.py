"""Seeds: reading a seed (a mapping, or a JSON or YAML file) and checking its Notify part.

A seed looks like ``{"templates": [...], "reply_to_addresses": [...], "team_members": [...],
"guest_list": [...], "mailchimp": {...}}``. :func:`load_seed` reads one, :func:`split_seed`
parts the Notify keys from the Mailchimp one, and :func:`parse_notify_seed` checks the Notify
part in full before anything is changed, so a bad seed changes nothing.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .models import TEMPLATE_TYPES, ReplyToAddress

__all__ = [
    "NOTIFY_SEED_KEYS",
    "SEED_KEYS",
    "NotifySeed",
    "ParsedTemplate",
    "Seed",
    "check_seed_keys",
    "load_seed",
    "parse_notify_seed",
    "parse_template",
    "snapshot_seed",
    "split_seed",
]

#: A seed as users give it: a mapping, or the path of a JSON or YAML file.
Seed = Mapping[str, Any] | str | os.PathLike[str]

#: The keys of a seed's Notify part.
NOTIFY_SEED_KEYS = frozenset({"templates", "reply_to_addresses", "team_members", "guest_list"})
#: Every key a seed may have: the Notify part and ``mailchimp``.
SEED_KEYS = NOTIFY_SEED_KEYS | {"mailchimp"}

#: A checked template: its id, its version's values (name, type, subject, body) and its
#: archived flag (None: leave it as it is).
ParsedTemplate = tuple[str, dict[str, Any], bool | None]


def load_seed(seed: Seed) -> Mapping[str, Any]:
    """The seed as a mapping: ``seed`` itself, or the file it names read (``.json``, else YAML)."""
    if isinstance(seed, Mapping):
        return seed
    path = Path(seed)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"seed file {path.name} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"seed file {path.name} must hold a mapping at the top level")
    return data


def snapshot_seed(seed: Seed | None) -> dict[str, Any]:
    """A deep copy of the loaded seed (``{}`` for None), kept to seed again on reset."""
    return copy.deepcopy(dict(load_seed(seed))) if seed is not None else {}


def check_seed_keys(data: Mapping[str, Any], allowed: Collection[str]) -> None:
    """Raise ValueError naming the keys of ``data`` that are not in ``allowed``."""
    unknown = set(data) - set(allowed)
    if unknown:
        raise ValueError(f"seed: unknown keys {', '.join(sorted(unknown))}")


def split_seed(data: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """The seed's Notify part (every key but ``mailchimp``) and its Mailchimp part (or None)."""
    notify = {key: value for key, value in data.items() if key != "mailchimp"}
    return notify, data.get("mailchimp")


def _str_list(seed: Mapping[str, Any], name: str) -> list[str]:
    value = seed.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"seed: {name} must be a list of strings")
    return value


def _check_uuid(value: Any, what: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"seed: {what} must be a UUID") from None


def parse_template(t: Mapping[str, Any]) -> ParsedTemplate:
    """Check one seed template; a template without an ``id`` gets a new one."""
    tid = _check_uuid(t["id"], "templates[].id") if "id" in t else str(uuid.uuid4())
    ttype = t.get("type", "email")
    if ttype not in TEMPLATE_TYPES:
        raise ValueError(f"seed: template type must be one of {', '.join(TEMPLATE_TYPES)}")
    body = t.get("body", t.get("content"))
    if not isinstance(body, str):
        raise ValueError("seed: every template needs a body (a string)")
    subject = t.get("subject")
    if ttype == "sms":
        subject = None
    elif not isinstance(subject, str):
        raise ValueError("seed: email and letter templates need a subject (a string)")
    name = t.get("name", "Untitled template")
    archived = t.get("archived")
    values = {"name": str(name), "type": ttype, "subject": subject, "body": body}
    return tid, values, None if archived is None else bool(archived)


@dataclass(frozen=True)
class NotifySeed:
    """The Notify part of a seed, checked and ready to apply."""

    templates: list[ParsedTemplate]
    reply_to_addresses: list[ReplyToAddress]
    team_members: list[str]
    guest_list: list[str]


def parse_notify_seed(data: Mapping[str, Any]) -> NotifySeed:
    """Check the Notify part of a seed (its keys are checked already); ValueError if bad."""
    templates = data.get("templates", [])
    replies = data.get("reply_to_addresses", [])
    if not isinstance(templates, list) or not all(isinstance(t, Mapping) for t in templates):
        raise ValueError("seed: templates must be a list of objects")
    if not isinstance(replies, list) or not all(isinstance(r, Mapping) for r in replies):
        raise ValueError("seed: reply_to_addresses must be a list of objects")
    team = _str_list(data, "team_members")
    guests = _str_list(data, "guest_list")
    parsed = [parse_template(t) for t in templates]
    if not all(isinstance(r.get("email_address"), str) for r in replies):
        raise ValueError("seed: every reply_to_addresses[] needs an email_address")
    parsed_replies = [
        ReplyToAddress(_check_uuid(r.get("id"), "reply_to_addresses[].id"), str(r["email_address"]))
        for r in replies
    ]
    return NotifySeed(parsed, parsed_replies, team, guests)
