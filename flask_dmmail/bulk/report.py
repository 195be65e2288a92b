"""What a bulk send tells its caller: :class:`BulkProgress` while it runs (for progress
bars), :class:`BulkReport` when it ends, and :class:`BulkFailure` for each recipient that
was not sent. None of them holds an address or a personalisation value."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from ..csvsafe import safe_row
from ..errors import DMMailError

__all__ = ["BulkFailure", "BulkProgress", "BulkReport", "log_end"]


@dataclass(frozen=True)
class BulkFailure:
    """A recipient that was not sent: its row, the error class and message (no address)."""

    row: int
    error_class: str
    message: str


def failure(row: int, error: BaseException) -> BulkFailure:
    """The failure of ``row`` with ``error``: its class and message (no address)."""
    message = error.message if isinstance(error, DMMailError) else type(error).__name__
    return BulkFailure(row, type(error).__name__, message)


@dataclass(frozen=True)
class BulkProgress:
    """Where a bulk send is, for progress bars. ``done`` counts recipients dealt with
    (sent, skipped or failed) out of ``total``; ``rate`` is emails sent per second
    recently; ``eta`` is seconds to go (None until known); ``stopping`` is set while a
    stop waits for the ``in_flight`` sends under way."""

    total: int
    done: int
    sent: int
    skipped: int
    failed: int
    elapsed: float
    rate: float
    eta: float | None
    stopping: bool = False
    in_flight: int = 0


@dataclass(frozen=True)
class BulkReport:
    """What a bulk send did.

    ``sent`` were sent by this run (``redirected`` of them to a redirect address);
    ``already_sent`` were skipped because an earlier run sent them (``found_in_notify`` of
    those were in doubt after a killed run and found by reference); ``duplicates`` repeat
    an earlier row's email exactly and were sent once; ``failures`` lists the rest by row;
    ``unsent`` were not attempted (a dry run, or a stopped run); ``in_doubt`` were being
    sent when the run stopped and are checked in Notify when it resumes; ``rate_limited``
    counts 429s Notify answered (each retried, none failed an email).
    """

    template_id: str
    journal: str
    total: int
    sent: int
    already_sent: int
    found_in_notify: int
    duplicates: int
    redirected: int
    failures: tuple[BulkFailure, ...]
    unsent: int
    in_doubt: int
    rate_limited: int
    rate: float
    concurrency: int
    elapsed: float
    dry_run: bool = False
    interrupted: bool = False

    @property
    def failed(self) -> int:
        """How many recipients failed."""
        return len(self.failures)

    @property
    def failed_by_class(self) -> dict[str, int]:
        """Failures counted by error class, most frequent first."""
        return dict(Counter(f.error_class for f in self.failures).most_common())

    @property
    def complete(self) -> bool:
        """True when every recipient was sent, skipped or failed."""
        return not self.dry_run and self.unsent == 0 and self.in_doubt == 0

    @property
    def ok(self) -> bool:
        """True when the run is complete and nothing failed."""
        return self.complete and not self.failures

    @property
    def achieved_rate(self) -> float:
        """Emails sent per second by this run."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def write_failures(self, path: str | PathLike[str]) -> None:
        """Write the failures as CSV: ``row,error_class,message`` (no addresses).

        :param path: the file to write (replaced if it exists).
        """
        with Path(path).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["row", "error_class", "message"])
            writer.writerows(safe_row((f.row, f.error_class, f.message)) for f in self.failures)


def log_end(report: BulkReport, template_id: str, *, where: str = "") -> None:
    """The one log line at the end of a run (counts and error classes only).

    :param report: the run's report.
    :param template_id: the template sent.
    :param where: how it ran, for the message (``" on Celery"``; empty for threads).
    """
    logging.getLogger("flask_dmmail").info(
        "Bulk send%s %s: %d sent, %d already sent, %d failed, %d not yet sent",
        where,
        "finished" if report.complete else "stopped",
        report.sent,
        report.already_sent,
        report.failed,
        report.unsent + report.in_doubt,
        extra={"template_id": template_id, "bulk_failed": report.failed_by_class},
    )
