"""Checks of the arguments of the Mailchimp calls, made before any request: texts, addresses,
merge fields, tags, member statuses and field names, dates. Each raises
:class:`~flask_dmmail.errors.InvalidInputError` (or
:class:`~flask_dmmail.errors.InvalidEmailAddressError`) with a message that says what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

from ..errors import InvalidEmailAddressError, InvalidInputError
from ..validation import check_email_address, is_unicode

#: The member statuses Mailchimp knows (what ``status`` may be when reading members).
MEMBER_STATUSES: Final = (
    "subscribed",
    "unsubscribed",
    "cleaned",
    "pending",
    "transactional",
    "archived",
)
_REQUIRED_FIELDS: Final = ("email_address", "status", "last_changed")
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")


def _iso(value: object, what: str) -> str:
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00+00:00"
    if isinstance(value, str):
        try:
            return _iso(datetime.fromisoformat(value.strip().replace("Z", "+00:00")), what)
        except ValueError:
            pass
    raise InvalidInputError(
        f"{what} must be a datetime, a date or an ISO 8601 string such as "
        "2024-05-01T09:00:00+00:00."
    )


_NOT_TEXT = (
    "holds a lone surrogate (such as '\\udcff'): it is not valid Unicode text, as happens when "
    "bytes that are not UTF-8 are read as text. Read the source as UTF-8 and correct it."
)


def _all_text(value: object) -> bool:
    """True when every string in ``value`` (a merge field value, maybe a dict) is text."""
    if isinstance(value, str):
        return is_unicode(value)
    if isinstance(value, Mapping):
        return all(_all_text(k) and _all_text(v) for k, v in value.items())
    return True


def _text(value: object, what: str, *, limit: int = 1000) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} must be a non-empty string.")
    if len(value) > limit:
        raise InvalidInputError(f"{what} must be at most {limit} characters.")
    if not is_unicode(value):
        raise InvalidInputError(f"{what} {_NOT_TEXT}")
    return value.strip()


def _address(value: object) -> str:
    """``value`` trimmed; InvalidEmailAddressError for what is not a string of text."""
    if not isinstance(value, str):
        raise InvalidEmailAddressError(f"The address must be a string, not {type(value).__name__}.")
    if not is_unicode(value):
        raise InvalidEmailAddressError(f"The address {_NOT_TEXT}")
    return value.strip()


def _valid(address: str) -> bool:
    try:
        check_email_address(address)
    except InvalidEmailAddressError:
        return False
    return True


def _merge_fields(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str | int | float | dict)
        for k, v in value.items()
    ):
        raise InvalidInputError(
            "merge_fields must map merge tags (such as 'FNAME') to strings or numbers."
        )
    if not _all_text(value):
        raise InvalidInputError(f"A value of merge_fields {_NOT_TEXT}")
    return dict(value)


def _tags(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidInputError("tags must be a list of tag names, such as ['dos7'].")
    tags = list(value)
    if not all(isinstance(t, str) and t.strip() and len(t) <= 100 for t in tags):
        raise InvalidInputError("every tag must be a non-empty string of at most 100 characters.")
    if not all(is_unicode(t) for t in tags):
        raise InvalidInputError(f"A tag {_NOT_TEXT}")
    return [t.strip() for t in tags]


def _check_status(status: object) -> str:
    if status not in MEMBER_STATUSES:
        raise InvalidInputError(
            "status must be one of " + ", ".join(MEMBER_STATUSES) + " (or None for every status "
            "but archived)."
        )
    assert isinstance(status, str)
    return status


def _check_fields(fields: object) -> tuple[str, ...]:
    if isinstance(fields, str) or not isinstance(fields, Sequence):
        raise InvalidInputError(
            "fields must be a list of member field names, such as ['email_address', "
            "'merge_fields.FNAME'] (a string would be split into characters)."
        )
    names: list[str] = []
    for name in (*_REQUIRED_FIELDS, *fields):
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            raise InvalidInputError(f"{name!r} is not a member field name.")
        if name not in names:
            names.append(name)
    return tuple(names)
