"""A member's merge field values, checked as Mailchimp checks them on ``POST``/``PUT``/``PATCH``
``/lists/{id}/members`` and the batch endpoint.

Two layers, in Mailchimp's order:

1. the schema: each value must be a string, a number or (an address) an object; anything else
   answers the generic "Invalid Resource" with ``merge_fields.TAG``: "Data did not match any of
   the schemas described in anyOf." (recorded: VingtCinq/python-mailchimp#146, a boolean);
2. the audience's merge fields: tags the audience does not have are dropped, and each value is
   checked against its field's type and ``required`` flag; every bad field is named in one
   400 "Invalid Resource" with the detail "Your merge fields were invalid." and ``errors``
   ``[{field: TAG, message}]``.

The messages Mailchimp is recorded using: "Please enter a value" (a required field left out),
"Please enter a complete address", "Please enter the date" and "Please enter a month (01-12)
and a day (01-31)" (ibericode/mailchimp-for-wordpress#545 and #662, MailChimp.Net#631,
mailchimp/mc-magento2#987). The other types' messages are the sandbox's own wording (see
docs/sandbox.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any, Final

from . import problems
from .models import ListRecord, MergeFieldRecord
from .problems import MailchimpProblem

__all__ = ["MERGE_INVALID", "check_merge_values"]

MERGE_INVALID: Final = "Your merge fields were invalid."
ANY_OF: Final = "Data did not match any of the schemas described in anyOf."
REQUIRED: Final = "Please enter a value"
ADDRESS: Final = "Please enter a complete address"
DATE: Final = "Please enter the date"
BIRTHDAY: Final = "Please enter a month (01-12) and a day (01-31)"
# The sandbox's own wording (Mailchimp's is not recorded):
TEXT: Final = "This value should be of type string."
NUMBER: Final = "Please enter a number"
PHONE: Final = "Please enter a valid phone number"
ZIP: Final = "Please enter a valid zip code"
URL: Final = "Please enter a valid URL"
CHOICE: Final = "Please choose one of the options"

_US_PHONE = re.compile(r"^\(?\d{3}\)?[-. ]?\d{3}[-. ]?\d{4}$")
_ZIP = re.compile(r"^\d{5}(-\d{4})?$")
_URL = re.compile(r"^https?://[^\s/]+\.[^\s/]+")
_ADDRESS_PARTS: Final = ("addr1", "city", "state", "zip")


def _empty(value: Any) -> bool:
    return value == "" or (isinstance(value, dict) and not any(value.values()))


def _date_parts(value: str, date_format: str) -> tuple[int, int, int] | None:
    """``(year, month, day)`` of ``value`` in ``date_format`` (or ISO), or None."""
    iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", value)
    if iso:
        return int(iso.group(1)), int(iso.group(2)), int(iso.group(3))
    parts = re.fullmatch(r"(\d{1,4})[/.-](\d{1,2})[/.-](\d{1,4})", value)
    if not parts:
        return None
    a, b, c = (int(x) for x in parts.groups())
    order = date_format.upper().replace("YYYY", "Y").split("/")
    values = dict(zip(order, (a, b, c), strict=False))
    if set(values) != {"MM", "DD", "Y"}:
        values = {"MM": a, "DD": b, "Y": c}
    return values["Y"], values["MM"], values["DD"]


def _valid_date(value: str, date_format: str) -> bool:
    parts = _date_parts(value, date_format)
    if parts is None:
        return False
    try:
        date(*parts)
    except ValueError:
        return False
    return True


def _valid_birthday(value: str, date_format: str) -> bool:
    match = re.fullmatch(r"(\d{1,2})/(\d{1,2})", value)
    if not match:
        return False
    first, second = int(match.group(1)), int(match.group(2))
    month, day = (second, first) if date_format.upper().startswith("DD") else (first, second)
    try:
        date(2000, month, day)  # a leap year: 02/29 is a birthday
    except ValueError:
        return False
    return True


def _check(field: MergeFieldRecord, value: Any) -> str | None:
    """The message for ``value`` in ``field`` (not empty), or None when it is good."""
    kind = field.type
    options = field.options
    text = value.strip() if isinstance(value, str) else None
    if kind == "address":
        if not isinstance(value, dict) or not all(
            isinstance(value.get(part), str) and value[part].strip() for part in _ADDRESS_PARTS
        ):
            return ADDRESS
        extra = [v for k, v in value.items() if k in ("addr2", "country")]
        return None if all(isinstance(v, str) for v in extra) else ADDRESS
    if kind == "number":
        if isinstance(value, int | float):
            return None
        try:
            float(str(text))
        except ValueError:
            return NUMBER
        return None
    if kind == "date":
        fmt = str(options.get("date_format", "MM/DD/YYYY"))
        return None if text is not None and _valid_date(text, fmt) else DATE
    if kind == "birthday":
        fmt = str(options.get("date_format", "MM/DD"))
        return None if text is not None and _valid_birthday(text, fmt) else BIRTHDAY
    if kind == "phone":
        if text is None:
            return PHONE
        return PHONE if options.get("phone_format") == "US" and not _US_PHONE.match(text) else None
    if kind == "zip":
        return None if text is not None and _ZIP.match(text) else ZIP
    if kind in ("url", "imageurl"):
        return None if text is not None and _URL.match(text) else URL
    if kind in ("radio", "dropdown"):
        return None if value in (options.get("choices") or []) else CHOICE
    return None if text is not None else TEXT


def check_merge_values(
    lst: ListRecord,
    given: Any,
    *,
    current: Mapping[str, Any] | None,
    skip_required: bool = False,
) -> dict[str, Any]:
    """The values of ``given`` (a request's ``merge_fields``) to store for a member of ``lst``:
    only the audience's tags, checked; raises Mailchimp's problem when any is bad.

    ``current`` is the member's stored values (None: a new member, whose required fields must
    all be given unless ``skip_required``, as the ``skip_merge_validation`` query argument
    asks; fields left out take their ``default_value``).
    """
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise problems.schema_mismatch("merge_fields", "object", problems.type_name(given))
    schema_errors = [
        {"field": f"merge_fields.{tag}", "message": ANY_OF}
        for tag, value in given.items()
        if isinstance(value, bool) or not isinstance(value, str | int | float | dict)
    ]
    if schema_errors:
        raise problems.invalid_resource(errors=schema_errors)
    fields = lst.merge_fields
    values: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for tag, field in fields.items():
        if tag in given:
            value = given[tag]
        elif current is None and field.default_value:
            value = field.default_value
        else:
            continue
        if _empty(value):
            if field.required and not skip_required:
                errors.append({"field": tag, "message": REQUIRED})
            values[tag] = ""
            continue
        message = _check(field, value)
        if message is not None:
            errors.append({"field": tag, "message": message})
        else:
            values[tag] = dict(value) if isinstance(value, dict) else value
    if current is None and not skip_required:
        for tag, field in fields.items():
            if field.required and tag not in values and tag not in given:
                errors.append({"field": tag, "message": REQUIRED})
    if errors:
        raise MailchimpProblem(400, "Invalid Resource", MERGE_INVALID, errors=errors)
    return values
