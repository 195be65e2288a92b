"""CSV cells that a spreadsheet shows as text, never runs as a formula.

Excel, LibreOffice and Google Sheets treat a cell that starts with ``=``, ``+``, ``-`` or ``@``
(and, after a tab or carriage return, the same) as a formula, so a value someone typed into
a signup form, such as ``=HYPERLINK("https://evil.example", "Click")``, would run when the
exported file is opened. Every CSV this package writes passes its values through
:func:`safe_cell` (OWASP's advice on CSV injection): such a value gets a leading ``'``, which
spreadsheets hide and which keeps the rest as typed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = ["FORMULA_STARTS", "safe_cell", "safe_row"]

#: The first characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """``value``, or a string that starts with a formula character prefixed with ``'``.
    Other values (numbers, None, ...) are returned as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(values: Iterable[object]) -> list[object]:
    """:func:`safe_cell` of every value of a row."""
    return [safe_cell(value) for value in values]
