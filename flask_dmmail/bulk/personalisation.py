"""Reading the personalisation values every recipient of a bulk send shares from a JSON
file (``flask dmmail bulk-send --personalisation``): :func:`load_personalisation`."""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path
from typing import Any

from ..errors import RecipientsError
from ..validation import check_personalisation

__all__ = ["load_personalisation"]

#: Longer runs of digits are refused before Python's int() refuses them (4,300 digits).
_MAX_JSON_DIGITS = 4000


class _JsonRefused(Exception):
    """A JSON value load_personalisation will not take; the message says why."""


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_JSON_DIGITS:
        raise _JsonRefused(
            "holds a whole number of over 4,000 digits, more than Python turns into a number "
            "(its limit is 4,300 digits): write it as a string"
        )
    return int(text)


def load_personalisation(path: str | PathLike[str]) -> dict[str, Any]:
    """Read a JSON object of personalisation values for every recipient (``--personalisation``).
    Raises RecipientsError, saying why, if it cannot.

    :param path: the JSON file (UTF-8).
    """
    name = Path(path).name
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise RecipientsError(f"Cannot read {name!r}: {error.strerror}.") from None
    except UnicodeDecodeError:
        raise RecipientsError(
            f'{name!r} is not UTF-8 text: save it as UTF-8 JSON, like {{"name": "Ada"}}.'
        ) from None
    try:
        data = json.loads(text, parse_int=_json_int)
    except _JsonRefused as refused:
        raise RecipientsError(f"{name!r} {refused}.") from None
    except RecursionError:
        raise RecipientsError(
            f"{name!r} is nested too deeply to read; personalisation values are strings, "
            "numbers, booleans, null or lists of those."
        ) from None
    except ValueError as error:
        # json's message names a line and column, never the text there.
        raise RecipientsError(
            f"Cannot read {name!r} as a JSON object of personalisation values: {error}."
        ) from None
    if not isinstance(data, dict):
        raise RecipientsError(f'{name!r} must hold a JSON object, like {{"name": 1}}.')
    return check_personalisation(data)
