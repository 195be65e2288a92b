"""The fields of a member a write may set, checked before any is set: merge fields (by the
audience's merge fields, :mod:`.merge_values`), ``email_type``, ``vip``, ``language``, the
signup and opt-in IPs and times, and tags.

Mailchimp refuses a bad value instead of storing or ignoring it: ``email_type`` is ``html`` or
``text`` and ``vip`` a boolean (the API reference's member schema), ``language`` a string. What
Mailchimp accepts as a language is not recorded; the sandbox takes any code shaped like ``en``
or ``pt_PT`` (and ``""``), see docs/sandbox.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from . import problems
from .merge_values import check_merge_values
from .models import ListRecord, MemberRecord, parse_time

if TYPE_CHECKING:
    from .members import MemberStore

__all__ = ["EMAIL_TYPES", "FieldChanges", "apply_fields", "check_fields"]

EMAIL_TYPES: Final = ("html", "text")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")


@dataclass(slots=True)
class FieldChanges:
    """What a write will set on a member, once every value has been checked."""

    merge_fields: dict[str, Any] | None = None
    email_type: str | None = None
    language: str | None = None
    vip: bool | None = None
    tags: list[str] | None = None


def check_fields(
    lst: ListRecord,
    member: MemberRecord | None,
    body: Mapping[str, Any],
    *,
    skip_merge: bool = False,
) -> FieldChanges:
    """Check the fields ``body`` gives for ``member`` of ``lst`` (None: a new member); every
    problem is raised before anything changes."""
    changes = FieldChanges()
    if "merge_fields" in body or member is None:
        changes.merge_fields = check_merge_values(
            lst,
            body.get("merge_fields"),
            current=None if member is None else (member.merge_fields or {}),
            skip_required=skip_merge,
        )
    errors: list[dict[str, str]] = []
    if "email_type" in body:
        if body["email_type"] not in EMAIL_TYPES:
            message = "Data presented is not one of the accepted values: html, text."
            errors.append({"field": "email_type", "message": message})
        else:
            changes.email_type = str(body["email_type"])
    if "vip" in body:
        if not isinstance(body["vip"], bool):
            errors.append(problems.schema_error("vip", "boolean", body["vip"]))
        else:
            changes.vip = body["vip"]
    if "language" in body:
        language = body["language"]
        if not isinstance(language, str):
            errors.append(problems.schema_error("language", "string", language))
        elif language and not _LANGUAGE.match(language):
            errors.append({"field": "language", "message": "This value is not a valid language."})
        else:
            changes.language = language
    tags = body.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            errors.append(problems.schema_error("tags", "array", tags))
        else:
            changes.tags = list(tags)
    if errors:
        raise problems.invalid_resource(errors=errors)
    return changes


def apply_fields(
    store: MemberStore,
    lst: ListRecord,
    m: MemberRecord,
    body: Mapping[str, Any],
    changes: FieldChanges,
    *,
    sync_tags: bool,
) -> None:
    """Set on ``m`` the checked ``changes`` and the other fields ``body`` gives."""
    if changes.merge_fields is not None:
        m.merge_fields = {**(m.merge_fields or {}), **changes.merge_fields} or None
    if changes.email_type is not None:
        m.email_type = changes.email_type
    if changes.language is not None:
        m.language = changes.language
    if changes.vip is not None:
        m.vip = changes.vip
    if isinstance(body.get("ip_signup"), str):
        m.ip_signup = body["ip_signup"]
    if isinstance(body.get("ip_opt"), str):
        m.ip_opt = body["ip_opt"]
    for name in ("timestamp_signup", "timestamp_opt"):
        if isinstance(body.get(name), str) and body[name]:
            try:
                stamp = parse_time(body[name])
            except ValueError:
                continue
            if name == "timestamp_signup":
                m.signup = stamp
            else:
                m.opt = stamp
    if changes.tags is not None:
        store.set_tags(lst, m, changes.tags, replace=sync_tags)
