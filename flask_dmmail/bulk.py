"""Bulk sending at Notify's rate limit: resumable, each email exactly once.

:func:`send_bulk` (also ``Mailer.send_bulk`` and ``flask dmmail bulk-send``) prepares every
recipient with ``Mailer.prepare`` (the checks, reference and redirect of ``Mailer.send``),
then sends from a pool of threads through ``Mailer.send_prepared`` (the same retries, log
lines and signals), paced by a client-side token bucket shaped like Notify's.

Exactly once: an email is marked *in-flight* in a SQLite journal, and the mark committed,
before it is posted; it is marked *sent* after. A run that dies at any instant leaves at
most the in-flight emails in doubt, and the next run with the same journal looks each of
those up by reference in Notify before it sends anything again. The journal holds row
numbers, keyed address hashes, references, states, notification ids and error classes:
never an address or a personalisation value.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
import signal
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from os import PathLike
from pathlib import Path
from queue import Empty, Queue
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import signals
from .csvsafe import safe_row
from .errors import (
    BulkAbortedError,
    BulkInterruptedError,
    DailyLimitError,
    DMMailError,
    InvalidOptionError,
    InvalidPersonalisationError,
    JournalError,
    NotifyAuthError,
    NotifyError,
    NotifyForbiddenError,
    NotifyProtocolError,
    NotifyUnavailableError,
    RateLimitError,
    RecipientsError,
    TemplateNotFoundError,
)
from .notify import (
    NotificationStatus,
    PreparedEmail,
    SentEmail,
    sent_email_from_status,
)
from .ratelimit import RateLimiter, notify_bucket_size
from .retry import backoff_delay
from .validation import (
    check_personalisation,
    check_sanitise_content_for,
    check_template_name,
)

if TYPE_CHECKING:
    from .extension import Mailer
    from .references import AddressHasher

__all__ = [
    "AudienceSource",
    "BulkFailure",
    "BulkProgress",
    "BulkReport",
    "CsvSource",
    "IterableSource",
    "RateLimiter",
    "Recipient",
    "RecipientSource",
    "default_concurrency",
    "load_personalisation",
    "notify_bucket_size",
    "send_bulk",
]

logger = logging.getLogger("flask_dmmail")

#: The latency the default concurrency assumes before it has measured any (seconds).
EXPECTED_LATENCY = 0.2
#: Never more sender threads than this, unless asked for.
MAX_CONCURRENCY = 64
#: Never more sender threads than this.
MAX_THREADS = 256
#: How often one email goes back to the queue after transient failures before it fails.
MAX_REQUEUES = 8
#: Seconds a stopping run waits for the sends under way before it abandons them.
STOP_GRACE = 2.0

_FORMAT = "1"
_APPLICATION_ID = 0x646D6D4A  # "dmmJ": marks a file as a flask-dmmail journal
_PENDING, _IN_FLIGHT, _SENT, _SKIPPED, _FAILED = "pending", "in-flight", "sent", "skipped", "failed"
#: Errors that would fail every other email of the run too: stop instead of failing them.
_SYSTEMIC: tuple[type[NotifyError], ...] = (
    DailyLimitError,
    NotifyAuthError,
    TemplateNotFoundError,
    NotifyForbiddenError,
)
#: What a failed send raises that stops the run: those, and a 2xx that is not JSON (a base
#: URL that is not Notify; the email may have been stored, so it is looked up on resume).
_STOPPING: tuple[type[NotifyError], ...] = (*_SYSTEMIC, NotifyProtocolError)


# -- rate limiting -------------------------------------------------------------------------


def default_concurrency(rate_per_minute: float, latency: float = EXPECTED_LATENCY) -> int:
    """Sender threads enough to keep ``rate_per_minute`` going at ``latency`` seconds a
    request (Little's law, with half again for slow answers), from 2 to MAX_CONCURRENCY."""
    return max(2, min(MAX_CONCURRENCY, math.ceil(rate_per_minute / 60 * latency * 1.5) + 2))


# -- recipients ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    """One recipient of a bulk send. ``row`` is its row number (None: the journal numbers
    it); ``problem`` is an input error found while reading it (the row then fails)."""

    row: int | None
    to: object = field(repr=False)
    personalisation: object = field(repr=False, default=None)
    problem: DMMailError | None = None


class RecipientSource:
    """Where the recipients of a bulk send come from.

    A positional source (a list, a CSV) must give the same rows in the same order when a
    run is resumed; the journal checks that with a fingerprint of every row's reference.
    A non-positional source (a Mailchimp audience) may change between runs: the journal
    is keyed by reference, and a resumed run sends to newcomers and skips whoever has had
    the email.
    """

    positional = True
    description = "recipients"

    def recipients(self, mailer: Mailer) -> Iterator[Recipient]:
        """Every recipient, in order."""
        raise NotImplementedError

    def identity(self, hasher: AddressHasher, template_id: str) -> str | None:
        """A stable fingerprint of a non-positional source (None for positional ones)."""
        return None


class IterableSource(RecipientSource):
    """``(address, personalisation)`` pairs (or bare addresses), numbered from row 1."""

    description = "recipients"

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = items

    def recipients(self, mailer: Mailer) -> Iterator[Recipient]:
        for row, item in enumerate(self._items, start=1):
            if isinstance(item, tuple | list) and len(item) == 2:
                yield Recipient(row, item[0], item[1])
            elif isinstance(item, str):
                yield Recipient(row, item, None)
            else:
                yield Recipient(
                    row,
                    None,
                    problem=InvalidPersonalisationError(
                        "Each recipient must be an (address, personalisation) pair or an "
                        f"address, not {type(item).__name__}."
                    ),
                )


_EMAIL_COLUMNS = {"email", "email address", "emailaddress"}


def _column_key(name: str) -> str:
    return " ".join(name.strip().lower().replace("_", " ").replace("-", " ").split())


class CsvSource(RecipientSource):
    """A UTF-8 CSV file: an ``email`` (or ``email address``) column, whatever the case, and
    one column per placeholder. Row numbers are the file's, as a spreadsheet shows them:
    the header is row 1. ``personalisation`` holds values for every row (columns win)."""

    description = "CSV file"

    def __init__(
        self, path: str | PathLike[str], personalisation: Mapping[str, Any] | None = None
    ) -> None:
        self.path = Path(path)
        self.personalisation = dict(personalisation or {})

    def recipients(self, mailer: Mailer) -> Iterator[Recipient]:
        try:
            handle = self.path.open(encoding="utf-8-sig", newline="")
        except OSError as error:
            raise RecipientsError(
                f"Cannot open the CSV file {self.path.name!r}: {error.strerror}."
            ) from None
        with handle:
            try:
                yield from self._rows(csv.reader(handle))
            except UnicodeDecodeError:
                raise RecipientsError(
                    f"The CSV file {self.path.name!r} is not UTF-8: save it as 'CSV UTF-8'."
                ) from None
            except csv.Error as error:
                raise RecipientsError(
                    f"The CSV file {self.path.name!r} is not valid CSV: {error}."
                ) from None

    def _rows(self, reader: Iterator[list[str]]) -> Iterator[Recipient]:
        header = next(reader, None)
        if not header:
            raise RecipientsError(f"The CSV file {self.path.name!r} is empty: it needs a header.")
        keys = [_column_key(name) for name in header]
        email_columns = [i for i, key in enumerate(keys) if key in _EMAIL_COLUMNS]
        if len(email_columns) != 1:
            raise RecipientsError(
                f"The CSV file {self.path.name!r} needs exactly one column named 'email' or "
                f"'email address' (found {len(email_columns)})."
            )
        named = [k for k in keys if k]
        if len(set(named)) != len(named):
            raise RecipientsError(
                f"The CSV file {self.path.name!r} has two columns with the same name."
            )
        email_at = email_columns[0]
        columns = [(i, name.strip()) for i, name in enumerate(header) if i != email_at and keys[i]]
        for row, cells in enumerate(reader, start=2):
            if any("\x00" in cell for cell in cells):
                raise RecipientsError(
                    f"Row {row} of the CSV file {self.path.name!r} holds a NUL character, as "
                    "a binary file or UTF-16 text does: save it as 'CSV UTF-8'."
                )
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header) and any(c.strip() for c in cells[len(header) :]):
                yield Recipient(
                    row,
                    None,
                    problem=InvalidPersonalisationError(
                        f"This row has {len(cells)} cells but the header has {len(header)} "
                        "columns. Check for unquoted commas."
                    ),
                )
                continue
            if len(cells) < len(header):
                yield Recipient(
                    row,
                    None,
                    problem=InvalidPersonalisationError(
                        f"This row has {len(cells)} cells but the header has {len(header)} "
                        "columns. Fill in every column."
                    ),
                )
                continue
            values = dict(self.personalisation)
            values.update((name, cells[i]) for i, name in columns)
            yield Recipient(row, cells[email_at], values)


class AudienceSource(RecipientSource):
    """The members of a Mailchimp audience (a name from ``DM_MAILCHIMP_AUDIENCES``) with a
    ``status`` (default subscribed), optionally only those changed ``since`` a time (when
    they subscribed, for subscribed members), through ``Mailer.mailchimp.members``.
    ``personalisation`` goes to every member."""

    positional = False
    description = "Mailchimp audience"

    def __init__(
        self,
        audience: str,
        *,
        status: str = "subscribed",
        since: date | str | None = None,
        personalisation: Mapping[str, Any] | None = None,
    ) -> None:
        self.audience = audience
        self.status = status
        self.since = since
        # Checked now: the values go into the source's fingerprint, and into every email.
        self.personalisation = check_personalisation(personalisation)

    def recipients(self, mailer: Mailer) -> Iterator[Recipient]:
        audiences = mailer.mailchimp  # a ConfigurationError without a Mailchimp key
        try:
            members = audiences.members(
                self.audience, status=self.status, since=self.since, fields=()
            )
            for member in members:
                yield Recipient(None, member.email_address, dict(self.personalisation))
        except DMMailError as error:
            raise RecipientsError(
                f"Cannot read the Mailchimp audience {self.audience!r}: {error.message}"
            ) from error

    def identity(self, hasher: AddressHasher, template_id: str) -> str:
        # A keyed digest (a derived reference), so the journal holds no personalisation.
        since = self.since.isoformat() if isinstance(self.since, date) else self.since
        return hasher.reference(
            f"audience:{self.audience}:{self.status}:{since}", template_id, self.personalisation
        )


def _source(recipients: RecipientSource | Iterable[Any]) -> RecipientSource:
    if isinstance(recipients, RecipientSource):
        return recipients
    if isinstance(recipients, str | bytes | PathLike) or not isinstance(recipients, Iterable):
        raise RecipientsError(
            "recipients must be (address, personalisation) pairs, a CsvSource or an "
            "AudienceSource; for a CSV file pass CsvSource(path)."
        )
    return IterableSource(recipients)


# -- the journal ---------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recipients (
    row INTEGER PRIMARY KEY,
    address_hash TEXT,
    reference TEXT,
    state TEXT NOT NULL
        CHECK (state IN ('pending', 'in-flight', 'sent', 'skipped', 'failed')),
    notification_id TEXT,
    error_class TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS recipients_reference ON recipients (reference);
"""

#: (row, address_hash, reference, state, notification_id, error_class)
_Record = tuple[int, str | None, str | None, str, str | None, str | None]


@dataclass(frozen=True)
class _Entry:
    row: int
    address_hash: str | None
    reference: str | None
    state: str
    notification_id: str | None


def _is_sqlite(path: Path) -> bool:
    """Whether the file starts as an SQLite database does."""
    try:
        with path.open("rb") as handle:
            return handle.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _no_tables(db: sqlite3.Connection) -> bool:
    """Whether the database is empty: no table, no index, nothing."""
    return bool(db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0)


def _checkpoint(db: sqlite3.Connection, name: str) -> None:
    """Copy every committed page from the write-ahead log into the main file, synced, so
    that the main file is complete on its own. Raises JournalError if it could not."""
    busy, logged, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if busy or logged != copied:
        raise JournalError(
            f"The journal {name!r} could not be written completely (its checkpoint was "
            "blocked). Nothing more is sent; make sure no other program has it open and run "
            "the same command again to resume."
        )


def _damaged(name: str, detail: str) -> str:
    """The advice for a journal that cannot be trusted: restore it, or recover through
    Notify; never a bare new journal, which would send every email again."""
    return (
        f"The journal {name!r} is damaged or incomplete ({detail}); nothing was sent. "
        f"Restore it: copy it again from where the run wrote it (with its {name}-wal "
        "file, if one is beside it there), then run the same command again. If it cannot be "
        "restored, run with a new journal file and --check-notify (check_notify=True): every "
        "email is then looked up by reference in Notify before it is sent, so none Notify "
        "has from the last 7 days goes twice. A new journal without it sends every email "
        "again, including those already sent."
    )


def _not_a_journal(name: str) -> str:
    return (
        f"{name!r} is not a flask-dmmail journal. For a new send, give --journal a new file "
        "name. If it is the journal of a send that has begun, copied without its "
        f"{name}-wal file (journals of earlier flask-dmmail versions need it), copy that file "
        "beside it and run again, or finish the send with a new journal and --check-notify "
        "(check_notify=True): a new journal without it sends to every recipient again."
    )


class Journal:
    """The SQLite record of one bulk send. One run at a time holds it (an exclusive
    lock, released when the process ends, however it ends).

    The file is complete on its own after every save: each commit goes to the write-ahead
    log, synced, and is then copied into the main file (a checkpoint), synced, before
    :meth:`save` returns. So a copy of the main file alone, taken after the run was killed
    at any instant, holds every in-flight mark of every email posted; a copy taken in the
    middle of a checkpoint fails the integrity check on open instead of losing marks.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection

    @classmethod
    def open(cls, path: str | PathLike[str], *, create: bool) -> Journal | None:
        """Open (or, with ``create``, make) the journal at ``path``; None if it does not
        exist and ``create`` is false. Raises JournalError if it is in use, not a journal,
        or damaged."""
        target = Path(path)
        name = target.name
        exists = target.exists() and target.stat().st_size > 0
        if not exists and not create:
            return None
        try:
            db = sqlite3.connect(target, timeout=0.2, isolation_level=None)
        except sqlite3.Error as error:
            raise JournalError(f"Cannot open the journal {name!r}: {error}.") from None
        try:
            if create:
                db.execute("PRAGMA locking_mode = EXCLUSIVE")
            if exists:
                application_id = db.execute("PRAGMA application_id").fetchone()[0]
                if application_id == 0 and _no_tables(db):
                    # A journal killed before its first commit (only its WAL header): new.
                    if not create:
                        db.close()
                        return None
                elif application_id != _APPLICATION_ID:
                    raise JournalError(_not_a_journal(name))
                else:
                    problems = [row[0] for row in db.execute("PRAGMA integrity_check(1)")]
                    if problems != ["ok"]:
                        raise JournalError(_damaged(name, "its integrity check fails"))
            if create:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
                db.execute("BEGIN IMMEDIATE")  # takes the exclusive lock, kept until close
                db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("COMMIT")
                _checkpoint(db, name)
        except sqlite3.OperationalError as error:
            db.close()
            if "locked" in str(error):
                raise JournalError(
                    f"The journal {name!r} is in use by another bulk send; wait for it "
                    "to finish or stop it."
                ) from None
            raise JournalError(
                f"Cannot use the journal {name!r}: {error}. Nothing was sent; fix the "
                "problem and run the same command again."
            ) from None
        except sqlite3.DatabaseError as error:
            db.close()
            if _is_sqlite(target):
                raise JournalError(_damaged(name, str(error))) from None
            raise JournalError(_not_a_journal(name)) from None
        except BaseException:
            db.close()
            raise
        return cls(target, db)

    def close(self) -> None:
        """Close the journal (and release its lock)."""
        self._db.close()

    def meta(self) -> dict[str, str]:
        """The journal's description of its run."""
        with self._errors():
            return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def claim(
        self, *, template_id: str, kind: str, fingerprint: str, total: int, write: bool = True
    ) -> None:
        """Check that the journal is this run's (or, with ``write``, make it so). Raises
        JournalError if it was made for another template or input."""
        meta = self.meta()
        name = self.path.name
        if not meta:
            if not write:
                return
            now = datetime.now(UTC).isoformat()
            values = {
                "format": _FORMAT,
                "template_id": template_id,
                "kind": kind,
                "fingerprint": fingerprint,
                "total": str(total),
                "created_at": now,
            }
            self._write("INSERT INTO meta (key, value) VALUES (?, ?)", list(values.items()))
            return
        if meta.get("format") != _FORMAT:
            raise JournalError(
                f"The journal {name!r} was written by another version of flask-dmmail; "
                "finish the send with that version (a new journal would send every email "
                "again)."
            )
        if meta.get("template_id") != template_id:
            raise JournalError(
                f"The journal {name!r} was made for template {meta.get('template_id')}, not "
                f"{template_id}. Resume with the same template; a new journal file is for "
                "a new send (it sends to every recipient)."
            )
        if meta.get("kind") != kind or meta.get("fingerprint") != fingerprint:
            raise JournalError(
                f"The journal {name!r} was made for other recipients (another file, other "
                "rows, another order or other values, or another DM_MAIL_HASH_KEY). Resume "
                "with exactly the same input; a new journal file is for a new send (it sends "
                "to every recipient)."
            )

    def entries(self) -> list[_Entry]:
        """Every recipient recorded so far."""
        with self._errors():
            rows = self._db.execute(
                "SELECT row, address_hash, reference, state, notification_id FROM recipients"
            ).fetchall()
        return [_Entry(*row) for row in rows]

    def save(self, records: Sequence[_Record]) -> None:
        """Record the state of these recipients, all in one committed transaction."""
        if not records:
            return
        now = datetime.now(UTC).isoformat()
        self._write(
            "INSERT INTO recipients (row, address_hash, reference, state, notification_id, "
            "error_class, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (row) DO UPDATE "
            "SET address_hash = excluded.address_hash, reference = excluded.reference, "
            "state = excluded.state, notification_id = excluded.notification_id, "
            "error_class = excluded.error_class, updated_at = excluded.updated_at",
            [(*record, now) for record in records],
        )

    def _write(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            _checkpoint(self._db, self.path.name)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as error:
            raise JournalError(
                f"The journal {self.path.name!r} could not be read or written: {error}. "
                "Nothing more is sent; fix the problem and run the same command again to "
                "resume."
            ) from None
        except sqlite3.DatabaseError as error:
            raise JournalError(_damaged(self.path.name, str(error))) from None


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkFailure:
    """A recipient that was not sent: its row, the error class and message (no address)."""

    row: int
    error_class: str
    message: str


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
        """Write the failures as CSV: ``row,error_class,message`` (no addresses)."""
        with Path(path).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["row", "error_class", "message"])
            writer.writerows(safe_row((f.row, f.error_class, f.message)) for f in self.failures)


# -- the run -------------------------------------------------------------------------------


class _Abandon(BaseException):
    """Raised inside a sender thread to give up a send because the run is stopping."""


@dataclass(eq=False)
class _Work:
    row: int
    email: PreparedEmail
    lookup_first: bool
    requeues: int = 0
    attempted: bool = False  # posted by this run

    def record(
        self, state: str, notification_id: str | None = None, error: str | None = None
    ) -> _Record:
        return (self.row, self.email.to_hash, self.email.reference, state, notification_id, error)


@dataclass
class _Result:
    work: _Work
    outcome: str  # sent | found | failed | requeue | abort | unstarted | abandoned
    sent: SentEmail | None = None
    found: NotificationStatus | None = None
    error: BaseException | None = None
    ambiguous: bool = False  # a requeued send that Notify may have stored
    latency: float = 0.0


@dataclass
class _Planned:
    row: int | None
    email: PreparedEmail | None
    error: DMMailError | None
    address_hash: str | None


class _BulkRun:
    """One run of :func:`send_bulk`: plan, then dispatch to the sender threads."""

    def __init__(
        self,
        mailer: Mailer,
        template_id: str,
        source: RecipientSource,
        journal_path: Path,
        *,
        rate: float,
        burst: int | None,
        concurrency: int | None,
        dry_run: bool,
        progress: Callable[[BulkProgress], None] | None,
        sanitise: tuple[str, ...] = (),
        check_notify: bool = False,
    ) -> None:
        self.mailer = mailer
        self.template_id = template_id
        self.source = source
        self.journal_path = journal_path
        self.limiter = RateLimiter(rate, burst=burst)
        self.fixed_concurrency = concurrency
        self.dry_run = dry_run
        self.progress = progress
        self.sanitise = sanitise
        self.check_notify = check_notify
        self.stop = threading.Event()
        self.abandon = threading.Event()
        self.interrupted = False
        self.abort_error: BaseException | None = None
        self.queue: Queue[_Work | None] = Queue()
        self.results: Queue[_Result] = Queue()
        self.workers: list[threading.Thread] = []
        self.journal: Journal | None = None
        self.started = time.monotonic()
        # counters
        self.total = 0
        self.sent = self.already_sent = self.found = self.duplicates = self.redirected = 0
        self.failures: list[BulkFailure] = []
        self.unsent = self.in_doubt = 0
        self.latency = EXPECTED_LATENCY
        self.recent: deque[tuple[float, int]] = deque(maxlen=50)
        self.unavailable_streak = 0

    # -- planning --

    def plan(self) -> list[_Planned]:
        planned: list[_Planned] = []
        hasher = self.mailer.hasher
        for recipient in self.source.recipients(self.mailer):
            to_hash = hasher.hash_address(recipient.to) if isinstance(recipient.to, str) else None
            if recipient.problem is not None:
                planned.append(_Planned(recipient.row, None, recipient.problem, to_hash))
                continue
            try:
                email = self.mailer.prepare(
                    recipient.to,
                    self.template_id,
                    recipient.personalisation,
                    sanitise_content_for=self.sanitise or None,
                )
            except DMMailError as error:
                planned.append(_Planned(recipient.row, None, error, to_hash))
            else:
                planned.append(_Planned(recipient.row, email, None, email.to_hash))
        return planned

    def fingerprint(self, planned: list[_Planned]) -> str:
        identity = self.source.identity(self.mailer.hasher, self.template_id)
        if identity is not None:
            return "audience:" + identity
        digest = hashlib.sha256()
        for p in planned:
            item = p.email.reference if p.email else f"invalid:{type(p.error).__name__}"
            digest.update(f"{p.row}:{item}:{p.address_hash}\n".encode())
        return "rows:" + digest.hexdigest()

    def number(self, planned: list[_Planned], entries: list[_Entry]) -> None:
        """Give rows to a non-positional source's recipients: the journal's row for a
        reference (or, for an invalid one, address hash) it knows, else the next free one."""
        by_reference = {e.reference: e.row for e in entries if e.reference}
        by_hash = {e.address_hash: e.row for e in entries if not e.reference and e.address_hash}
        next_row = max((e.row for e in entries), default=0) + 1
        for p in planned:
            known = (
                by_reference.get(p.email.reference)
                if p.email
                else by_hash.get(p.address_hash)
                if p.address_hash
                else None
            )
            if known is None:
                known, next_row = next_row, next_row + 1
            p.row = known

    # -- the whole run --

    def run(self) -> BulkReport:
        planned = self.plan()
        self.total = len(planned)
        self.journal = Journal.open(self.journal_path, create=not self.dry_run)
        try:
            return self._run(planned)
        finally:
            if self.journal is not None:
                self.journal.close()

    def _run(self, planned: list[_Planned]) -> BulkReport:
        journal = self.journal
        entries = journal.entries() if journal is not None else []
        if not self.source.positional:
            self.number(planned, entries)
        if journal is not None:
            journal.claim(
                template_id=self.template_id,
                kind="audience" if not self.source.positional else "rows",
                fingerprint=self.fingerprint(planned),
                total=self.total,
                write=not self.dry_run,
            )
        todo, records = self.classify(planned, entries)
        if self.dry_run:
            self.unsent = len(todo)
            return self.report()
        assert journal is not None
        journal.save(records)
        logger.info(
            "Bulk send started: %d recipients, %d to send, template %s, %.0f/min",
            self.total,
            len(todo),
            self.template_id,
            self.limiter.rate,
            extra={"template_id": self.template_id, "bulk_total": self.total},
        )
        with self._stop_on_signals():
            try:
                self.dispatch(todo)
            finally:
                self.shutdown()
        report = self.report()
        signals.bulk_finished.send(self.mailer.app, report=report)
        logger.info(
            "Bulk send %s: %d sent, %d already sent, %d failed, %d not yet sent",
            "finished" if report.complete else "stopped",
            report.sent,
            report.already_sent,
            report.failed,
            report.unsent + report.in_doubt,
            extra={"template_id": self.template_id, "bulk_failed": report.failed_by_class},
        )
        if self.abort_error is not None:
            raise BulkAbortedError(
                f"Stopped: {type(self.abort_error).__name__} would fail every other email too. "
                f"{getattr(self.abort_error, 'message', '')} Fix it, then run the same command "
                "with the same journal to resume.",
                report=report,
            ) from self.abort_error
        if self.interrupted:
            raise BulkInterruptedError(
                "Stopped on request. Run again with the same journal and input to resume.",
                report=report,
            )
        return report

    def classify(
        self, planned: list[_Planned], entries: list[_Entry]
    ) -> tuple[deque[_Work], list[_Record]]:
        """Decide each recipient: fail, skip or send; the records to save before sending."""
        known = {e.reference: e for e in entries if e.reference and e.state != _SKIPPED}
        seen: set[str] = set()
        todo: deque[_Work] = deque()
        records: list[_Record] = []
        for p in planned:
            assert p.row is not None
            if p.email is None:
                assert p.error is not None
                self.fail(p.row, p.error)
                records.append((p.row, p.address_hash, None, _FAILED, None, type(p.error).__name__))
                if not self.dry_run:
                    self.mailer._failed(p.error, None, attempt=0)
                continue
            email = p.email
            if email.reference in seen:
                self.duplicates += 1
                records.append((p.row, email.to_hash, email.reference, _SKIPPED, None, None))
                continue
            seen.add(email.reference)
            entry = known.get(email.reference)
            if entry is not None and entry.state == _SENT:
                self.already_sent += 1
                if not self.dry_run:
                    self.mailer._skipped(email)
                continue
            # In doubt: left in-flight by a run that stopped, or (check_notify) anything the
            # journal does not know as sent: looked up in Notify before it is sent.
            in_doubt = self.check_notify or (entry is not None and entry.state == _IN_FLIGHT)
            work = _Work(p.row, email, lookup_first=in_doubt)
            todo.append(work)
            records.append(work.record(_IN_FLIGHT if in_doubt else _PENDING))
        return todo, records

    def fail(self, row: int, error: BaseException) -> None:
        message = error.message if isinstance(error, DMMailError) else type(error).__name__
        self.failures.append(BulkFailure(row, type(error).__name__, message))

    # -- sender threads --

    def spawn(self, count: int) -> None:
        for _ in range(count):
            thread = threading.Thread(
                target=self.worker, name=f"dmmail-bulk-{len(self.workers) + 1}", daemon=True
            )
            self.workers.append(thread)
            thread.start()

    def worker(self) -> None:
        with self.mailer.app.app_context():
            while True:
                work = self.queue.get()
                if work is None:
                    return
                try:
                    result = self.attempt(work)
                except BaseException as error:  # never lose an email's outcome
                    result = _Result(work, "abort", error=error)
                self.results.put(result)

    def attempt(self, work: _Work) -> _Result:
        """Send one email (after looking it up, if an earlier attempt left it in doubt)."""
        if self.stop.is_set():
            return _Result(work, "unstarted")
        email = work.email
        if work.lookup_first:
            try:
                found = self.lookup(email.reference)
            except _Abandon:
                return _Result(work, "unstarted")
            except NotifyError as error:
                if isinstance(error, _SYSTEMIC):
                    return _Result(work, "abort", error=error)
                return _Result(work, "requeue", error=error, ambiguous=True)
            if found is not None:
                if work.attempted:  # this run's own post got through after all
                    return _Result(work, "sent", sent=self.recovered(email, found))
                self.mailer._skipped(email)
                return _Result(work, "found", found=found)
            work.lookup_first = False
        if not self.limiter.acquire(self.stop):
            return _Result(work, "unstarted")
        started = time.monotonic()
        work.attempted = True
        try:
            sent = self.mailer.send_prepared(email, on_retry=self.on_retry)
        except _Abandon:
            return _Result(work, "abandoned")
        except RateLimitError as error:
            self.limiter.penalise()
            return _Result(work, "requeue", error=error)
        except NotifyUnavailableError as error:
            return _Result(work, "requeue", error=error, ambiguous=True)
        except _STOPPING as error:
            return _Result(work, "abort", error=error)
        except DMMailError as error:
            return _Result(work, "failed", error=error)
        assert sent is not None
        return _Result(work, "sent", sent=sent, latency=time.monotonic() - started)

    def on_retry(self, error: NotifyError, attempt: int, delay: float) -> None:
        """Called by the send path before each retry: a 429 slows the whole run, and every
        retry waits for a token like a first attempt."""
        if isinstance(error, RateLimitError):
            self.limiter.penalise()
        if self.stop.is_set() or not self.limiter.acquire(self.stop):
            raise _Abandon

    def recovered(self, email: PreparedEmail, found: NotificationStatus) -> SentEmail:
        """An email this run posted and Notify stored although the send failed (the
        send path's last lookup failed too): logged and signalled as the send path does."""
        sent = sent_email_from_status(email, found, self.mailer.notify.base_url)
        self.mailer._sent(email, sent, attempt=None, duration_ms=None, recovered=True)
        return sent

    def lookup(self, reference: str) -> NotificationStatus | None:
        """Notify's notification with this reference, whatever its status; retries
        transient errors like a send does."""
        settings = self.mailer.settings
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.mailer.notify.find_reference(reference)
            except NotifyError as error:
                if not error.transient or attempt > settings.retries:
                    raise
            if self.stop.wait(backoff_delay(attempt, settings.retry_backoff)):
                raise _Abandon

    # -- dispatch (main thread) --

    def dispatch(self, todo: deque[_Work]) -> None:
        assert self.journal is not None
        initial = self.fixed_concurrency or default_concurrency(self.limiter.rate)
        self.spawn(min(initial, max(1, len(todo))))
        outstanding = 0
        pending: list[_Record] = []
        last_flush = last_grow = last_progress = time.monotonic()
        while (todo or outstanding) and not self.stop.is_set():
            for result in self.collect(0.05 if outstanding else 0.0):
                outstanding -= 1
                pending.extend(self.handle(result, todo))
            now = time.monotonic()
            handout: list[_Work] = []
            if not self.stop.is_set() and outstanding <= len(self.workers):
                room = len(self.workers) + max(4, len(self.workers) // 2) - outstanding
                while todo and len(handout) < room:
                    handout.append(todo.popleft())
            if handout or (pending and now - last_flush > 0.5):
                # The in-flight marks are committed before any of these is posted.
                pending.extend(w.record(_IN_FLIGHT) for w in handout if not w.lookup_first)
                self.journal.save(pending)
                pending, last_flush = [], now
            for work in handout:
                self.queue.put(work)
                outstanding += 1
            if now - last_grow > 1.0:
                self.grow(len(todo) + outstanding)
                last_grow = now
            if now - last_progress > 0.2:
                self.emit_progress(len(todo) + outstanding)
                last_progress = now
        pending.extend(self.wind_down(todo, outstanding))
        self.journal.save(pending)
        self.emit_progress(self.unsent + self.in_doubt)

    def collect(self, timeout: float) -> list[_Result]:
        results: list[_Result] = []
        try:
            results.append(
                self.results.get(timeout=timeout) if timeout else self.results.get_nowait()
            )
            while True:
                results.append(self.results.get_nowait())
        except Empty:
            pass
        return results

    def handle(self, result: _Result, todo: deque[_Work]) -> list[_Record]:
        """Count one outcome; the journal records it needs."""
        work, outcome, error = result.work, result.outcome, result.error
        if outcome == "sent":
            assert result.sent is not None
            self.sent += 1
            self.redirected += result.sent.redirected
            self.unavailable_streak = 0
            if result.latency:
                self.latency += 0.1 * (result.latency - self.latency)
            self.recent.append((time.monotonic(), self.sent))
            return [work.record(_SENT, result.sent.id)]
        if outcome == "found":
            assert result.found is not None
            self.already_sent += 1
            self.found += 1
            return [work.record(_SENT, result.found.id)]
        if outcome == "failed":
            assert error is not None
            self.unavailable_streak = 0
            self.fail(work.row, error)
            return [work.record(_FAILED, error=type(error).__name__)]
        if outcome == "requeue":
            assert error is not None
            work.lookup_first = work.lookup_first or result.ambiguous
            if self.stop.is_set():
                return self.leave(work)
            if isinstance(error, NotifyUnavailableError):
                self.unavailable_streak += 1
                if self.unavailable_streak >= max(25, 2 * len(self.workers)):
                    self.abort(error)
            work.requeues += 1
            if work.requeues > MAX_REQUEUES and not isinstance(error, RateLimitError):
                self.fail(work.row, error)
                # An ambiguous one stays in-flight: a resumed run looks it up first.
                state = _IN_FLIGHT if work.lookup_first else _FAILED
                return [work.record(state, error=type(error).__name__)]
            todo.append(work)
            return []
        if outcome == "abort":
            assert error is not None
            self.abort(error)
            # Conservative: an earlier attempt of this send may have reached Notify.
            work.lookup_first = True
            return self.leave(work)
        if outcome == "unstarted":
            return self.leave(work)
        work.lookup_first = True  # abandoned mid-send: stays in-flight
        return self.leave(work)

    def leave(self, work: _Work) -> list[_Record]:
        """Count an email this run will not send after all: in doubt (left in-flight, to be
        looked up on resume) or unsent (back to pending)."""
        if work.lookup_first:
            self.in_doubt += 1
            return []
        self.unsent += 1
        return [work.record(_PENDING)]

    def abort(self, error: BaseException) -> None:
        if self.abort_error is None:
            self.abort_error = error
        self.stop.set()

    def wind_down(self, todo: deque[_Work], outstanding: int) -> list[_Record]:
        """After a stop: take back what no thread started, wait a little for the sends
        under way, abandon the rest (left in-flight, looked up on resume)."""
        records: list[_Record] = []
        for work in todo:  # never handed out (or handed back): pending unless in doubt
            records.extend(self.leave(work))
        with contextlib.suppress(Empty):
            while True:
                queued = self.queue.get_nowait()
                if queued is not None:
                    outstanding -= 1
                    records.extend(self.leave(queued))
        deadline = time.monotonic() + STOP_GRACE + self.mailer.settings.timeout
        while outstanding > 0 and not self.abandon.is_set() and time.monotonic() < deadline:
            self.emit_progress(outstanding, stopping=True, in_flight=outstanding)
            for result in self.collect(0.1):
                outstanding -= 1
                records.extend(self.handle(result, deque()))
        self.in_doubt += outstanding
        return records

    def shutdown(self) -> None:
        """Tell the threads to finish; wait for them unless sends were abandoned. (After an
        exception nothing queued is started: it stays in-flight, looked up on resume.)"""
        self.stop.set()
        for _ in self.workers:
            self.queue.put(None)
        if self.in_doubt == 0:
            for thread in self.workers:
                thread.join(timeout=self.mailer.settings.timeout + STOP_GRACE)

    def grow(self, remaining: int) -> None:
        """Add threads when measured latency says the rate needs more (Little's law)."""
        if self.fixed_concurrency is not None or remaining <= len(self.workers):
            return
        target = default_concurrency(self.limiter.configured, self.latency)
        if target > len(self.workers):
            self.spawn(min(target, remaining) - len(self.workers))

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """Ctrl-C or SIGTERM: stop cleanly; a second one abandons the sends under way."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            if self.stop.is_set():
                self.abandon.set()
            self.interrupted = True
            self.stop.set()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    # -- reporting --

    def emit_progress(self, remaining: int, *, stopping: bool = False, in_flight: int = 0) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        rate = 0.0
        if len(self.recent) >= 2 and now - self.recent[0][0] > 0:
            rate = (self.recent[-1][1] - self.recent[0][1]) / (now - self.recent[0][0])
        elif self.sent and now > self.started:
            rate = self.sent / (now - self.started)
        done = self.total - remaining
        self.progress(
            BulkProgress(
                total=self.total,
                done=max(0, done),
                sent=self.sent,
                skipped=self.already_sent + self.duplicates,
                failed=len(self.failures),
                elapsed=now - self.started,
                rate=rate,
                eta=remaining / rate if rate > 0 else None,
                stopping=stopping or self.stop.is_set(),
                in_flight=in_flight,
            )
        )

    def report(self) -> BulkReport:
        return BulkReport(
            template_id=self.template_id,
            journal=str(self.journal_path),
            total=self.total,
            sent=self.sent,
            already_sent=self.already_sent,
            found_in_notify=self.found,
            duplicates=self.duplicates,
            redirected=self.redirected,
            failures=tuple(sorted(self.failures, key=lambda f: f.row)),
            unsent=self.unsent,
            in_doubt=self.in_doubt,
            rate_limited=self.limiter.rate_limited,
            rate=self.limiter.configured,
            concurrency=len(self.workers),
            elapsed=time.monotonic() - self.started,
            dry_run=self.dry_run,
            interrupted=self.interrupted,
        )


def send_bulk(
    mailer: Mailer,
    template: str,
    recipients: RecipientSource | Iterable[Any],
    *,
    journal: str | PathLike[str],
    rate: float | None = None,
    burst: int | None = None,
    concurrency: int | None = None,
    dry_run: bool = False,
    progress: Callable[[BulkProgress], None] | None = None,
    sanitise_content_for: Sequence[str] | None = None,
    check_notify: bool = False,
) -> BulkReport:
    """Send ``template`` to every recipient once, at up to ``rate`` requests a minute.

    ``recipients`` is an iterable of ``(address, personalisation)`` pairs, a
    :class:`CsvSource` or an :class:`AudienceSource`. ``journal`` is the SQLite file that
    makes the run resumable: run again with the same journal and input after a crash or
    Ctrl-C, and only what was not sent is sent. ``rate`` defaults to
    ``DM_NOTIFY_BULK_RATE``, ``burst`` to Notify's bucket size for the rate, and
    ``concurrency`` (sender threads) grows with the measured latency unless given.
    ``dry_run`` checks every recipient and the journal, and sends nothing.
    ``sanitise_content_for`` names personalisation keys (values a user typed) that Notify
    strips of URLs and markdown in every email (as ``Mailer.send`` does).
    ``check_notify`` looks up, by reference in Notify, every email the journal does not
    record as sent before sending it: the way to finish a send whose journal was lost or
    damaged without sending anything twice that Notify still has (it keeps emails 7 days).

    A recipient that fails is recorded in the report and never stops the run. Raises
    JournalError (another run's journal), RecipientsError, BulkInterruptedError (Ctrl-C or
    SIGTERM) or BulkAbortedError (an error every other email would hit too); the last two
    carry the ``report``.
    """
    template_id = check_template_name(template, mailer.settings.templates)
    per_minute = mailer.settings.bulk_rate if rate is None else rate
    if (
        isinstance(per_minute, bool)
        or not isinstance(per_minute, int | float)
        or not 1 <= per_minute < math.inf
    ):
        raise InvalidOptionError("rate must be a number of requests per minute, at least 1.")
    if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
        raise InvalidOptionError("burst must be a whole number of requests, at least 1.")
    if concurrency is not None and (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_THREADS
    ):
        raise InvalidOptionError(f"concurrency must be a whole number from 1 to {MAX_THREADS}.")
    sanitise = check_sanitise_content_for(sanitise_content_for)
    if not isinstance(check_notify, bool):
        raise InvalidOptionError("check_notify must be True or False.")
    run = _BulkRun(
        mailer,
        template_id,
        _source(recipients),
        Path(journal),
        rate=float(per_minute),
        burst=burst,
        concurrency=concurrency,
        dry_run=dry_run,
        progress=progress,
        sanitise=sanitise,
        check_notify=check_notify,
    )
    return run.run()


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
    Raises RecipientsError, saying why, if it cannot."""
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
