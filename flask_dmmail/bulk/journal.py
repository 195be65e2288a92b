"""The journal: the SQLite file that records each recipient's state in a bulk send, so a
run that stops at any instant can be resumed without sending anything twice.

It holds row numbers, keyed address hashes, references, states, notification ids and
error classes: never an address or a personalisation value. :class:`Journal` opens,
checks and writes it; the rest of this module is its schema and the advice its errors give.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Any

from ..errors import JournalError

__all__ = ["Journal"]

_FORMAT = "1"
_APPLICATION_ID = 0x646D6D4A  # "dmmJ": marks a file as a flask-dmmail journal
#: A recipient's states in the journal.
PENDING, IN_FLIGHT, SENT, SKIPPED, FAILED = "pending", "in-flight", "sent", "skipped", "failed"

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
Record = tuple[int, str | None, str | None, str, str | None, str | None]


@dataclass(frozen=True)
class Entry:
    """One recipient as the journal records it."""

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

    :param path: the journal file.
    :param connection: its open SQLite connection (see :meth:`open`).
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
        JournalError if it was made for another template or input.

        :param template_id: the run's template.
        :param kind: ``rows`` (a positional source) or ``audience``.
        :param fingerprint: the run's input, as ``Planner.fingerprint`` makes it.
        :param total: how many recipients the run has.
        :param write: record the run in a journal that has none yet.
        """
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

    def entries(self) -> list[Entry]:
        """Every recipient recorded so far."""
        with self._errors():
            rows = self._db.execute(
                "SELECT row, address_hash, reference, state, notification_id FROM recipients"
            ).fetchall()
        return [Entry(*row) for row in rows]

    def save(self, records: Sequence[Record]) -> None:
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
