"""Notify's placeholder rules: finding ``((placeholders))``, filling them, ``sanitise_content_for``.

Placeholders and filling follow notifications-utils' ``field.py``; :func:`sanitise` follows
the API's ``sanitise_content_for``. Written from the behaviour, not from their code.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["fill", "missing_placeholders", "normalise_name", "placeholders", "sanitise"]

# --------------------------------------------------------------------------------------
# Placeholders
# --------------------------------------------------------------------------------------

#: ``((name))`` or ``((name??conditional text))``: one or more characters other than
#: parentheses between doubled brackets.
_PLACEHOLDER = re.compile(r"\(\(([^()]+)\)\)")
_NAME_IGNORED = str.maketrans("", "", " _-")
_SHOW_CONDITIONAL = frozenset({"yes", "y", "true", "t", "1", "include", "show"})
#: Characters Notify strips from values and subjects (the typography and HTML use them too).
ZERO_WIDTH = "\u180e\u200b\u200c\u200d\u2060\ufeff"
NBSP = "\u00a0"


def normalise_name(name: str) -> str:
    """The form placeholders and keys are matched in: no spaces, ``_`` or ``-``; lowercase."""
    return name.translate(_NAME_IGNORED).lower()


def _parts(inner: str) -> tuple[str, str | None]:
    """Split a placeholder's inside into its name and its conditional text (or None)."""
    name, sep, text = inner.partition("??")
    return name, (text if sep else None)


def placeholders(text: str | None) -> list[str]:
    """Placeholder names in order of first appearance, as spelled, one per normalised name."""
    if not text:
        return []
    found: dict[str, str] = {}
    for match in _PLACEHOLDER.finditer(text):
        name, _ = _parts(match.group(1))
        found.setdefault(normalise_name(name), name)
    return list(found.values())


def _by_normalised_name(personalisation: Mapping[str, Any] | None) -> dict[str, Any]:
    """Personalisation keyed by normalised name; a later spelling of a key wins."""
    return {normalise_name(key): value for key, value in (personalisation or {}).items()}


def missing_placeholders(
    subject: str | None, body: str, personalisation: Mapping[str, Any] | None
) -> list[str]:
    """Placeholders with no value (key absent or None): the subject's first, as spelled."""
    values = _by_normalised_name(personalisation)
    names: dict[str, str] = {}
    for name in placeholders(subject) + placeholders(body):
        names.setdefault(normalise_name(name), name)
    return [name for key, name in names.items() if values.get(key) is None]


def _strip_obscure_whitespace(value: str) -> str:
    for character in ZERO_WIDTH + NBSP:
        value = value.replace(character, "")
    return value.strip(string.whitespace)


def _as_text(value: Any) -> str:
    """A personalisation value as Notify puts it into a template."""
    if isinstance(value, list):
        items = [_strip_obscure_whitespace(str(item)) for item in value if item is not None]
        items = [item for item in items if item]
        if not items:
            return ""
        return "\n\n" + "\n".join(f"* {item}" for item in items)
    return str(value)


def _shows_conditional(value: Any) -> bool:
    return bool(value) and str(value).lower() in _SHOW_CONDITIONAL


def fill(text: str, personalisation: Mapping[str, Any] | None) -> str:
    """Replace placeholders with their values; those without a value are left as written."""
    values = _by_normalised_name(personalisation)

    def replace(match: re.Match[str]) -> str:
        name, conditional = _parts(match.group(1))
        value = values.get(normalise_name(name))
        if value is None:
            return match.group(0)
        if conditional is not None:
            return conditional if _shows_conditional(value) else ""
        return _as_text(value)

    return _PLACEHOLDER.sub(replace, text)


# --------------------------------------------------------------------------------------
# sanitise_content_for
# --------------------------------------------------------------------------------------


#: utils' URL pattern: an optional http(s) scheme, dotted (sub)domains, a letters-only
#: top-level domain, then an optional path, query or fragment. (Starting only at the front
#: of a run of name characters finds the same URLs in linear time.)
_URL = re.compile(r"(?i)\b(?<![\w\-@.])(https?://)?([\w\-]+\.)+([a-z]{2,63})(?!@)\b([/?#][^<\s]*)?")
_MARKDOWN_CHARACTERS = re.compile(r"([`*_(){}\[\]<>#+\-.!|\\])")


def _without_urls(value: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1) is None and match.group(4) is None:
            return match.group(0).replace(".", ". ")
        return ""

    return _URL.sub(replace, value)


def _sanitise_value(value: str) -> str:
    return _MARKDOWN_CHARACTERS.sub(r"\\\1", _without_urls(value))


def _sanitised(value: Any, clean: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [clean(item) if isinstance(item, str) else item for item in value]
    return value


def sanitise(
    personalisation: Mapping[str, Any], keys: Sequence[str]
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Apply ``sanitise_content_for``: drop URLs from the listed values, then escape markdown.

    A bare hostname (``evil.com``) becomes ``evil. com``; any other URL is deleted. Then each
    of ``\\`*_(){}[]<>#+-.!|`` gets a backslash. Keys match by normalised name; values that
    are not strings (or lists of strings) are left alone. Returns the new personalisation and
    ``{key: {"unsanitised": old, "sanitised": new}}`` for each value that changed.
    """
    wanted = {normalise_name(key) for key in keys}
    result = dict(personalisation)
    changes: dict[str, dict[str, str]] = {}
    for key, value in personalisation.items():
        if normalise_name(key) not in wanted:
            continue
        new_value = _sanitised(value, _sanitise_value)
        if new_value != value:
            result[key] = new_value
            changes[key] = {"unsanitised": value, "sanitised": new_value}
    return result, changes
