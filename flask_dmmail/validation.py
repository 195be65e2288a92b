"""Checks that run before any network call: addresses, ids, personalisation, options.

The email address rules are Notify's own (notifications-utils ``validate_email_address``),
so an address this module accepts is one Notify accepts. Messages never repeat the
value they refuse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from rfc3986_validator import validate_rfc3986

from .attachments import Attachment
from .errors import (
    InvalidEmailAddressError,
    InvalidOptionError,
    InvalidPersonalisationError,
    UnknownTemplateError,
)

__all__ = [
    "MAX_REFERENCE_LENGTH",
    "canonical_address",
    "canonical_domain",
    "check_email_address",
    "check_one_click_unsubscribe_url",
    "check_personalisation",
    "check_reference",
    "check_sanitise_content_for",
    "check_scheduled_for",
    "check_uuid",
    "is_unicode",
    "is_uuid",
]

MAX_REFERENCE_LENGTH = 1000
# Ints up to 4,000 decimal digits or so: below Python's 4,300-digit limit for int -> str.
_MAX_INT_BITS = 13_000
_MAX_ADDRESS_LENGTH = 320
_MAX_HOST_LENGTH = 253

# Whitespace Notify trims from both ends of an address.
_TRIM = " \t\r\n\f\v\u00a0"
# Zero-width characters Notify removes from *anywhere* in an address before it checks or
# sends it (notifications-utils ``strip_and_remove_obscure_whitespace``): ``a@exam\u200bple.com``
# is delivered to example.com, so every comparison must see it as example.com too.
_OBSCURE = dict.fromkeys(map(ord, "\u180e\u200b\u200c\u200d\u2060\ufeff"))
_ADDRESS = re.compile(r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~\-]+@([^.@][^@\s]+)$")
_LABEL = re.compile(r"^(xn|[a-z0-9]+)(-?-[a-z0-9]+)*$", re.IGNORECASE)
_TLD = re.compile(r"^([a-z]{2,63}|xn--([a-z0-9]+-)*[a-z0-9]+)$", re.IGNORECASE)
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

_ADDRESS_HELP = (
    "The recipient is not a valid email address by GOV.UK Notify's rules "
    "(one '@', allowed characters before it, a domain with a dot and a real top-level domain). "
    "Correct the address before sending."
)


def remove_obscure_characters(text: str) -> str:
    """``text`` without the zero-width characters Notify removes from addresses."""
    return text.translate(_OBSCURE)


def canonical_domain(domain: str) -> str:
    """A domain as Notify resolves it, for comparisons: zero-width characters removed,
    IDNA-encoded (so full-width letters, ideographic full stops and soft hyphens become what
    they encode to, and ``bücher.example`` is ``xn--bcher-kva.example``), lower-cased, without
    a trailing dot. A domain that cannot be encoded is returned cleaned and lower-cased."""
    cleaned = remove_obscure_characters(domain).strip()
    try:
        encoded = cleaned.encode("idna").decode("ascii")
    except UnicodeError:
        encoded = cleaned
    return encoded.lower().rstrip(".")


def canonical_address(address: str) -> str:
    """An address as Notify delivers it, for comparisons, hashes and references: zero-width
    characters removed, trimmed, lower-cased, and its domain in :func:`canonical_domain` form."""
    cleaned = remove_obscure_characters(address).strip(_TRIM).strip()
    local, at, domain = cleaned.rpartition("@")
    if not at:
        return cleaned.lower()
    return f"{local.lower()}@{canonical_domain(domain)}"


def _address_problem(address: str) -> str | None:
    """Say what is wrong with an already trimmed address, or None if Notify would take it."""
    if len(address) > _MAX_ADDRESS_LENGTH:
        return "it is longer than 320 characters"
    if ".." in address:
        return "it contains '..'"
    match = _ADDRESS.match(address)
    if match is None:
        return "it has no '@', more than one, or a character Notify does not allow before the '@'"
    host = match.group(1)
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return "its domain cannot be encoded as an internationalised domain name"
    if len(ascii_host) > _MAX_HOST_LENGTH:
        return "its domain is longer than 253 characters"
    labels = ascii_host.split(".")
    if len(labels) < 2:
        return "its domain has no dot"
    for label in labels:
        if not 1 <= len(label) <= 63 or not _LABEL.match(label):
            return "a part of its domain is empty, too long or has characters domains cannot have"
    if not _TLD.match(labels[-1]):
        return "its top-level domain is not 2 to 63 letters"
    return None


def check_email_address(address: object) -> str:
    """Return ``address`` as Notify will deliver it (zero-width characters removed, trimmed),
    or raise InvalidEmailAddressError."""
    if not isinstance(address, str):
        raise InvalidEmailAddressError(
            f"The recipient must be a string, not {type(address).__name__}. "
            "Pass the email address as text."
        )
    trimmed = remove_obscure_characters(address).strip(_TRIM)
    if not trimmed:
        raise InvalidEmailAddressError("The recipient is empty. Pass an email address.")
    problem = _address_problem(trimmed)
    if problem is not None:
        raise InvalidEmailAddressError(f"{_ADDRESS_HELP} Here {problem}.")
    return trimmed


def is_uuid(value: object) -> bool:
    """True for a UUID in its canonical 8-4-4-4-12 hex form, as Notify's schema wants."""
    return isinstance(value, str) and _UUID.match(value) is not None


def check_uuid(value: object, what: str) -> str:
    """Return ``value`` lower-cased if it is a UUID, else raise InvalidOptionError."""
    if not is_uuid(value):
        raise InvalidOptionError(
            f"{what} must be a UUID like 'f33517ff-2a88-4f6e-b855-c550268ce08a' "
            "(copy it from Notify's dashboard)."
        )
    assert isinstance(value, str)
    return value.lower()


def named_id(value: str, known: Mapping[str, str]) -> str | None:
    """The id ``value`` stands for: ``known[value]`` (a configured name), or ``value`` itself,
    lower-cased, when it is a UUID; None when it is neither."""
    if value in known:
        return known[value]
    return value.lower() if is_uuid(value) else None


def shown_name(value: str) -> str:
    """``value`` as an error message may echo it: quoted when it looks like a name, else
    "given" (a value given in the wrong place, an address or a personalisation value, must
    not reach a log or a terminal)."""
    return repr(value) if _TEMPLATE_NAME.match(value) else "given"


def check_template_name(name: object, known: Mapping[str, str]) -> str:
    """Resolve a template name from DM_NOTIFY_TEMPLATES or a UUID to a template id."""
    if isinstance(name, str):
        found = named_id(name, known)
        if found is not None:
            return found
        names = ", ".join(sorted(known)) or "(none configured)"
        shown = shown_name(name)
        raise UnknownTemplateError(
            f"Unknown template {shown}: it is not a name in DM_NOTIFY_TEMPLATES nor a "
            f"template UUID. Known names: {names}."
        )
    raise UnknownTemplateError(
        f"The template must be a name from DM_NOTIFY_TEMPLATES or a template UUID, "
        f"not {type(name).__name__}."
    )


def is_unicode(text: str) -> bool:
    """False for text that holds a lone surrogate (what ``errors="surrogateescape"`` makes
    of undecodable bytes): it cannot be encoded as UTF-8, so Notify cannot take it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_NOT_UNICODE = (
    "is not valid Unicode text (it holds a lone surrogate, as text decoded with "
    "errors='surrogateescape' does); decode the input properly before sending."
)


def _check_scalar(key: str, value: object, *, in_list: bool = False) -> None:
    where = f"the list under {key!r}" if in_list else f"{key!r}"
    if isinstance(value, str):
        if not is_unicode(value):
            raise InvalidPersonalisationError(f"The value of {where} {_NOT_UNICODE}")
        return
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        # Python will not write an int of over 4,300 digits as text (nor JSON): refuse it here,
        # as one bad value, rather than fail later with a ValueError.
        if value.bit_length() > _MAX_INT_BITS:
            raise InvalidPersonalisationError(
                f"The value of {where} is a whole number of over 4,000 digits; send it as text "
                "if it really is that long."
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidPersonalisationError(
                f"The value of {where} is not a finite number; Notify cannot take NaN or infinity."
            )
        return
    raise InvalidPersonalisationError(
        f"The value of {where} is a {type(value).__name__}; use a string, number, boolean, "
        "None, a list of those, or flask_dmmail.attachment(...) for a file."
    )


def check_personalisation(personalisation: object) -> dict[str, Any]:
    """Return a plain dict copy of ``personalisation``, or raise InvalidPersonalisationError."""
    if personalisation is None:
        return {}
    if not isinstance(personalisation, Mapping):
        raise InvalidPersonalisationError(
            f"personalisation must be a mapping of placeholder names to values, "
            f"not {type(personalisation).__name__}."
        )
    checked: dict[str, Any] = {}
    for key, value in personalisation.items():
        if not isinstance(key, str) or not key.strip():
            raise InvalidPersonalisationError(
                "Every personalisation key must be a non-empty string naming a placeholder."
            )
        if not is_unicode(key):
            raise InvalidPersonalisationError(f"A personalisation key {_NOT_UNICODE}")
        if isinstance(value, Attachment):
            pass
        elif isinstance(value, list | tuple):
            for item in value:
                _check_scalar(key, item, in_list=True)
            value = list(value)
        else:
            _check_scalar(key, value)
        checked[key] = value
    return checked


def check_reference(reference: object) -> str:
    """Return a caller's reference if Notify would take it."""
    if not isinstance(reference, str):
        raise InvalidOptionError(f"reference must be a string, not {type(reference).__name__}.")
    if not reference:
        raise InvalidOptionError(
            "reference is empty: pass None to derive one, or a non-empty string."
        )
    if not is_unicode(reference):
        raise InvalidOptionError(f"reference {_NOT_UNICODE}")
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidOptionError(
            f"reference is {len(reference)} characters long; Notify takes at most "
            f"{MAX_REFERENCE_LENGTH}. Shorten it (or hash the long part)."
        )
    return reference


def check_sanitise_content_for(fields: object) -> tuple[str, ...]:
    """Return the personalisation keys for Notify's ``sanitise_content_for`` (their values lose
    URLs and have markdown escaped, so text a user typed cannot smuggle a link into the email)."""
    if fields is None:
        return ()
    if isinstance(fields, str) or not isinstance(fields, list | tuple | set | frozenset):
        raise InvalidOptionError(
            "sanitise_content_for must be a list of personalisation keys, such as ['name']."
        )
    checked = []
    for name in fields:
        if not isinstance(name, str) or not name.strip() or not is_unicode(name):
            raise InvalidOptionError(
                "Every key in sanitise_content_for must be a non-empty personalisation key."
            )
        checked.append(name)
    return tuple(sorted(set(checked)))


def is_uri(value: str) -> bool:
    """True when ``value`` is a URI by RFC 3986, the check Notify's schema makes of
    ``one_click_unsubscribe_url`` (its ``uri`` format)."""
    return bool(validate_rfc3986(value, rule="URI"))


def check_one_click_unsubscribe_url(url: object) -> str:
    """Return ``url`` if it is an absolute https URL, as Notify requires."""
    if isinstance(url, str) and url.startswith("https://") and is_unicode(url) and is_uri(url):
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname:
            return url
    raise InvalidOptionError(
        "one_click_unsubscribe_url must be an absolute https:// URL (RFC 3986: non-ASCII "
        "characters percent-encoded), such as https://www.example.gov.uk/unsubscribe?token=..."
    )


def check_scheduled_for(when: object, *, now: datetime | None = None) -> str:
    """Return ``when`` as an ISO 8601 UTC string if it is within the next 24 hours."""
    if isinstance(when, str):
        try:
            parsed = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidOptionError(
                "scheduled_for is not an ISO 8601 date and time; use e.g. "
                "'2026-11-23T15:30:00+00:00' or pass an aware datetime."
            ) from None
    elif isinstance(when, datetime):
        parsed = when
    else:
        raise InvalidOptionError(
            f"scheduled_for must be an aware datetime or an ISO 8601 string, "
            f"not {type(when).__name__}."
        )
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidOptionError(
            "scheduled_for has no time zone; give an aware datetime (e.g. with tzinfo=UTC) "
            "or a string ending in Z or +00:00."
        )
    current = now or datetime.now(UTC)
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:  # e.g. datetime.min with a positive offset
        raise InvalidOptionError(
            "scheduled_for is not a time Notify can schedule; give a time within the next 24 hours."
        ) from None
    if utc <= current:
        raise InvalidOptionError("scheduled_for is in the past; Notify can only schedule ahead.")
    if utc > current + timedelta(hours=24):
        raise InvalidOptionError(
            "scheduled_for is more than 24 hours ahead; Notify schedules at most 24 hours ahead."
        )
    return utc.strftime("%Y-%m-%dT%H:%M:%S")
