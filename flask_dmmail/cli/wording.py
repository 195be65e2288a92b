"""What the commands print: counted nouns, and one line (not four) per failure.

:func:`plural` spells a count with its noun ("1 recipient", "2 recipients").
:func:`one_line_per_failure` keeps the log lines about a failure (Notify's client's "API POST
request ... failed" for each attempt, the library's retries and its "Email not sent: ...") off
the terminal while a command runs, when nothing but Python's last-resort handler would print
them: the command prints the failure itself, once. An app that configured logging (a handler
on these loggers or the root logger) still gets every record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["one_line_per_failure", "plural"]

_LOGGER = logging.getLogger("flask_dmmail")
#: notifications-python-client logs a WARNING for every failed request.
_CLIENT_LOGGER = logging.getLogger("notifications_python_client.base")


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``count`` and ``noun``, or ``nouns`` (default ``noun + "s"``) unless ``count`` is 1."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def _about_a_failure(record: logging.LogRecord) -> bool:
    """A record of the send path or the Mailchimp transport about a failed or retried call:
    it carries the error's class (``error``) or the attempt that failed (``attempt``)."""
    return record.levelno >= logging.WARNING and (
        hasattr(record, "error") or hasattr(record, "attempt")
    )


def _drop_failures(record: logging.LogRecord) -> bool:
    return not _about_a_failure(record)


def _drop_warnings(record: logging.LogRecord) -> bool:
    return record.levelno < logging.WARNING


@contextmanager
def one_line_per_failure() -> Iterator[None]:
    """Inside the block, failure records of the ``flask_dmmail`` logger, and the warnings of
    Notify's client, are not printed by Python's last-resort handler (they would repeat what
    the command prints). Nothing changes for a logger whose records have a handler to go to:
    they go where the app sends them."""
    filtered = [
        (logger, drop)
        for logger, drop in ((_LOGGER, _drop_failures), (_CLIENT_LOGGER, _drop_warnings))
        if not logger.hasHandlers()
    ]
    for logger, drop in filtered:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger, drop in filtered:
            logger.removeFilter(drop)
