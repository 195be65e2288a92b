"""Spotting a run that every email would fail for the same reason in its input: when the
first :data:`FIRST_ROWS` rows of a run all fail with the same input error (the same error
class and message: a CSV column that does not fit the template, say), the run stops
(:class:`~flask_dmmail.errors.BulkAbortedError`) instead of failing every other row too.
"""

from __future__ import annotations

from ..errors import InvalidInputError, NotifyBadRequestError, NotifyValidationError

__all__ = ["FIRST_ROWS", "FirstRows", "is_input_error", "stopped_by_input"]

#: How many rows must all fail the same way, from the start of a run, to stop it.
FIRST_ROWS = 50


def is_input_error(error: BaseException) -> bool:
    """An error in what a row asks for, refused before sending or by Notify (a 400): never
    a transient one, a key's or the service's."""
    return isinstance(error, InvalidInputError | NotifyBadRequestError | NotifyValidationError)


class FirstRows:
    """Watches the outcomes of the first ``limit`` rows of a run, in the order they come.

    :param limit: how many rows must all fail the same way.
    """

    def __init__(self, limit: int = FIRST_ROWS) -> None:
        self.limit = limit
        self._count = 0
        self._same: tuple[str, str] | None = None
        self._over = False

    def outcome(self, error: BaseException | None) -> bool:
        """Count one row: ``error`` is what failed it (None when it went through). True
        once the first ``limit`` rows have all failed with the same input error."""
        if self._over:
            return False
        if error is None or not is_input_error(error):
            self._over = True
            return False
        same = (type(error).__name__, str(getattr(error, "message", error)))
        if self._same is None:
            self._same = same
        elif same != self._same:
            self._over = True
            return False
        self._count += 1
        if self._count >= self.limit:
            self._over = True
            return True
        return False


def stopped_by_input(error: BaseException) -> str:
    """The message of the :class:`~flask_dmmail.errors.BulkAbortedError` of a run that
    :class:`FirstRows` stopped."""
    return (
        f"Stopped: the first {FIRST_ROWS} rows all failed with {type(error).__name__}: "
        f"{getattr(error, 'message', '')} The other rows would very likely fail the same way. "
        "Fix the input or the template, then run again (with a new journal if you changed the "
        "input)."
    )
