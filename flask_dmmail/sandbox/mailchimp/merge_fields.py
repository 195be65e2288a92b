"""An audience's merge fields: ``/lists/{id}/merge-fields`` (list, get, add, update, delete).

A new audience has Mailchimp's five default fields, as recorded in grouparoo/grouparoo's
fixtures (``plugins/@grouparoo/mailchimp/__tests__/fixtures/mailchimp-export.js``): FNAME and
LNAME (text, size 25), ADDRESS (address, default country 164), PHONE (phone, no format) and
BIRTHDAY (birthday, ``MM/DD``), none required, with merge ids 1 to 5. The collection lists them
by tag, as the recordings do. Member values are checked against them by
``merge_values.check_merge_values``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from . import problems
from .models import ListRecord, MergeFieldRecord
from .problems import MailchimpProblem
from .serialise import collection_links

if TYPE_CHECKING:
    from .state import MailchimpState

__all__ = [
    "DEFAULT_FIELDS",
    "MERGE_TYPES",
    "MergeFieldStore",
    "default_merge_fields",
    "merge_field_json",
]

#: The types a merge field may have (the API reference's list).
MERGE_TYPES: Final = (
    "text",
    "number",
    "address",
    "phone",
    "date",
    "url",
    "imageurl",
    "radio",
    "dropdown",
    "birthday",
    "zip",
)
#: ``(merge_id, tag, name, type, public, display_order, options)`` of a new audience's fields.
DEFAULT_FIELDS: Final = (
    (1, "FNAME", "First Name", "text", True, 2, {"size": 25}),
    (2, "LNAME", "Last Name", "text", True, 3, {"size": 25}),
    (3, "ADDRESS", "Address", "address", False, 4, {"default_country": 164}),
    (4, "PHONE", "Phone Number", "phone", False, 5, {"phone_format": "none"}),
    (5, "BIRTHDAY", "Birthday", "birthday", True, 6, {"date_format": "MM/DD"}),
)
_TAG = re.compile(r"^[A-Z0-9_]{1,10}$")
_SETTINGS: Final = {
    "name": str,
    "required": bool,
    "default_value": str,
    "public": bool,
    "display_order": int,
    "options": dict,
    "help_text": str,
}


def default_merge_fields() -> dict[str, MergeFieldRecord]:
    """A new audience's merge fields, by tag."""
    return {
        tag: MergeFieldRecord(
            merge_id=merge_id,
            tag=tag,
            name=name,
            type=kind,
            public=public,
            display_order=order,
            options=dict(options),
        )
        for merge_id, tag, name, kind, public, order, options in DEFAULT_FIELDS
    }


def merge_field_json(lst: ListRecord, field: MergeFieldRecord, base: str) -> dict[str, Any]:
    """The merge field as the API shows it."""
    href = f"{base}/lists/{lst.id}/merge-fields/{field.merge_id}"
    return {
        "merge_id": field.merge_id,
        "tag": field.tag,
        "name": field.name,
        "type": field.type,
        "required": field.required,
        "default_value": field.default_value,
        "public": field.public,
        "display_order": field.display_order,
        "options": dict(field.options),
        "help_text": field.help_text,
        "list_id": lst.id,
        "_links": [
            {"rel": "self", "href": href, "method": "GET"},
            {"rel": "parent", "href": f"{base}/lists/{lst.id}/merge-fields", "method": "GET"},
            {"rel": "update", "href": href, "method": "PATCH"},
            {"rel": "delete", "href": href, "method": "DELETE"},
        ],
    }


def _settings(body: Mapping[str, Any]) -> dict[str, Any]:
    """The settings ``body`` gives, each of its schema type (Mailchimp's schema problem
    otherwise)."""
    errors = []
    for key, kind in _SETTINGS.items():
        if key not in body:
            continue
        value = body[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            expected = {str: "string", bool: "boolean", int: "integer", dict: "object"}[kind]
            errors.append(problems.schema_error(key, expected, value))
    if errors:
        raise problems.invalid_resource(errors=errors)
    return {k: body[k] for k in _SETTINGS if k in body}


class MergeFieldStore:
    """The merge fields of the account's audiences; shares the state's lock.

    :param state: the :class:`~flask_dmmail.sandbox.mailchimp.state.MailchimpState` it belongs to.
    """

    def __init__(self, state: MailchimpState) -> None:
        self._state = state
        self._lock = state.lock

    def _list(self, list_id: str) -> ListRecord:
        return self._state.list_store.record(list_id)

    @staticmethod
    def _field(lst: ListRecord, merge_id: str) -> MergeFieldRecord:
        for field in lst.merge_fields.values():
            if str(field.merge_id) == merge_id:
                return field
        raise problems.not_found()

    def list_fields(
        self,
        list_id: str,
        base: str,
        *,
        count: int = 10,
        offset: int = 0,
        type_: str | None = None,
        required: bool | None = None,
    ) -> dict[str, Any]:
        """GET /lists/{id}/merge-fields: a page, by tag."""
        with self._lock:
            lst = self._list(list_id)
            fields = sorted(lst.merge_fields.values(), key=lambda f: f.tag)
            if type_ is not None:
                fields = [f for f in fields if f.type == type_]
            if required is not None:
                fields = [f for f in fields if f.required is required]
            page = fields[offset : offset + count]
            return {
                "merge_fields": [merge_field_json(lst, f, base) for f in page],
                "list_id": lst.id,
                "total_items": len(fields),
                "_links": collection_links(f"{base}/lists/{lst.id}/merge-fields"),
            }

    def get_field(self, list_id: str, merge_id: str, base: str) -> dict[str, Any]:
        """GET /lists/{id}/merge-fields/{merge_id}."""
        with self._lock:
            lst = self._list(list_id)
            return merge_field_json(lst, self._field(lst, merge_id), base)

    def create_field(self, list_id: str, body: Any, base: str) -> dict[str, Any]:
        """POST /lists/{id}/merge-fields: ``name`` and ``type`` required; ``tag`` optional
        (``MMERGE<n>`` when left out)."""
        body = problems.require_object(body)
        missing = [k for k in ("name", "type") if k not in body]
        if missing:
            raise problems.required_fields(*missing)
        settings = _settings(body)
        kind = body["type"]
        if kind not in MERGE_TYPES:
            message = "Data presented is not one of the accepted values: " + ", ".join(MERGE_TYPES)
            raise problems.invalid_resource(errors=[{"field": "type", "message": message + "."}])
        tag = body.get("tag")
        if tag is not None and (not isinstance(tag, str) or not _TAG.match(tag.upper())):
            raise problems.invalid_resource(
                errors=[
                    {
                        "field": "tag",
                        "message": "A merge tag is at most 10 letters, digits or underscores.",
                    }
                ]
            )
        with self._lock:
            lst = self._list(list_id)
            field = self.add_field(lst, kind=kind, tag=tag.upper() if tag else None, **settings)
            return merge_field_json(lst, field, base)

    def add_field(
        self, lst: ListRecord, *, kind: str, tag: str | None = None, **settings: Any
    ) -> MergeFieldRecord:
        """Add a merge field to ``lst`` (no HTTP); Mailchimp's problem if ``tag`` is taken."""
        if tag in ("EMAIL", *lst.merge_fields):
            # Mailchimp's wording for a taken tag is not recorded (docs/sandbox.md).
            raise MailchimpProblem(
                400,
                "Invalid Resource",
                f'A Merge Field with the tag "{tag}" already exists for this list.',
            )
        lst.merge_seq = max(lst.merge_seq, *(f.merge_id for f in lst.merge_fields.values()), 0)
        lst.merge_seq += 1
        field = MergeFieldRecord(
            merge_id=lst.merge_seq,
            tag=tag or f"MMERGE{lst.merge_seq}",
            name=str(settings.pop("name", tag or f"MMERGE{lst.merge_seq}")),
            type=kind,
            display_order=int(settings.pop("display_order", lst.merge_seq + 1)),
        )
        self._apply(field, settings)
        lst.merge_fields[field.tag] = field
        return field

    @staticmethod
    def _apply(field: MergeFieldRecord, settings: Mapping[str, Any]) -> None:
        for key, value in settings.items():
            if key == "options":
                field.options = {**field.options, **value}
            else:
                setattr(field, key, value)

    def update_field(self, list_id: str, merge_id: str, body: Any, base: str) -> dict[str, Any]:
        """PATCH /lists/{id}/merge-fields/{merge_id}: its name, flags, options and help."""
        body = problems.require_object(body)
        settings = _settings(body)
        with self._lock:
            lst = self._list(list_id)
            field = self._field(lst, merge_id)
            self._apply(field, settings)
            return merge_field_json(lst, field, base)

    def delete_field(self, list_id: str, merge_id: str) -> None:
        """DELETE /lists/{id}/merge-fields/{merge_id}: the field and every member's value."""
        with self._lock:
            lst = self._list(list_id)
            field = self._field(lst, merge_id)
            del lst.merge_fields[field.tag]
            for member in lst.members.values():
                if member.merge_fields:
                    member.merge_fields.pop(field.tag, None)
            self._state.member_store.changed(lst)

    def seed_fields(self, list_id: str, entries: list[Mapping[str, Any]]) -> None:
        """Add or change merge fields from a seed: ``[{"tag", "type", "name", "required",
        ...}]`` (an existing tag is changed, a new one added; ValueError when one is wrong)."""
        with self._lock:
            lst = self._list(list_id)
            for entry in entries:
                tag = str(entry.get("tag", "")).upper()
                if not _TAG.match(tag):
                    raise ValueError("seed: mailchimp.lists[].merge_fields[] needs a tag")
                try:
                    settings = _settings(entry)
                except MailchimpProblem as problem:
                    raise ValueError(f"seed: merge field {tag}: {problem.errors}") from None
                field = lst.merge_fields.get(tag)
                if field is None:
                    kind = entry.get("type", "text")
                    if kind not in MERGE_TYPES:
                        raise ValueError(f"seed: merge field {tag}: unknown type {kind!r}")
                    self.add_field(lst, kind=kind, tag=tag, **settings)
                else:
                    self._apply(field, settings)
