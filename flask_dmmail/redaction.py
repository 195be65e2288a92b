"""Replacing known values (addresses, personalisation) in text that goes to a log or an error.

One implementation for every message the library builds from a service's answer: Notify's
error texts and Mailchimp's problem details. It is linear in the sizes of the text and the
values: no pattern is built from the values, and each is looked for with ``str.find`` in the
case-folded text, so a 2 MB personalisation value costs one scan, not a huge regex.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["redact"]


def redact(text: str, values: Iterable[str], placeholder: str) -> str:
    """``text`` with every occurrence of each of ``values`` (ignoring case) replaced by
    ``placeholder``; overlapping occurrences become one placeholder."""
    spans = _spans(text, values)
    if not spans:
        return text
    parts: list[str] = []
    at = 0
    for start, end in spans:
        parts.append(text[at:start])
        parts.append(placeholder)
        at = end
    parts.append(text[at:])
    return "".join(parts)


def _spans(text: str, values: Iterable[str]) -> list[tuple[int, int]]:
    """The merged (start, end) spans of ``text`` where a value occurs, ignoring case."""
    folded: str | None = None
    starts: list[int] | None = None  # position in text of each folded character, if they differ
    found: list[tuple[int, int]] = []
    for value in values:
        if not value:
            continue
        needle = value.casefold()
        if folded is None:
            folded = text.casefold()
            if len(folded) != len(text):  # a character folds to several ("ß" -> "ss")
                starts = [i for i, char in enumerate(text) for _ in char.casefold()]
        at = folded.find(needle)
        while at >= 0:
            end = at + len(needle)
            if starts is None:
                found.append((at, end))
            else:
                found.append((starts[at], starts[end - 1] + 1))
            at = folded.find(needle, end)
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
