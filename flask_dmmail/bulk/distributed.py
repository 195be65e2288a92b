"""A bulk run on Celery (``send_bulk(..., via="celery")``): the command plans every
recipient, records the plan in a Redis journal, cuts the emails into chunks (one Celery
task each) and watches the journal until every recipient is done; any number of workers,
on any number of machines, send the chunks (:mod:`flask_dmmail.bulk.chunks`).

The command shows one progress bar and one report for every worker. A stop (its ``stop``
event: Ctrl-C, SIGTERM) asks every worker to start nothing more of the run. Whatever is
killed (a worker, the command), running the same command again resumes: the journal keeps
each recipient's state, a chunk whose worker died goes to another worker, and a row whose
sender died is looked up in Notify before it is sent again.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import (
    BulkAbortedError,
    BulkInterruptedError,
    ConfigurationError,
    InvalidOptionError,
)
from ..notify import PreparedEmail
from ..queued.records import encode_email
from .adapter import MailerAdapter
from .journal import FAILED, IN_FLIGHT, PENDING, SENT, SKIPPED
from .planning import Planner
from .redis_journal import RedisJournal
from .report import BulkFailure, BulkProgress, BulkReport, failure, log_end
from .senders import STOP_GRACE
from .sources import RecipientSource

if TYPE_CHECKING:
    from ..extension import Mailer

__all__ = ["DEFAULT_CHUNK_SIZE", "send_bulk_on_celery"]

logger = logging.getLogger("flask_dmmail")

#: Emails per chunk (one Celery task) unless asked otherwise.
DEFAULT_CHUNK_SIZE = 100
#: How often the command reads the journal.
POLL = 0.25
_NAME = re.compile(r"^[^\s{}]{1,200}$")
_STOPPED = "Stopped on request. Run again with the same journal and input to resume."

Item = tuple[int, str, dict[str, Any]]


def _check_name(journal: object) -> str:
    name = str(journal)
    if not _NAME.match(name):
        raise InvalidOptionError(
            "journal must name the run in Redis: 1 to 200 characters, no spaces or braces "
            "(the same name resumes the run)."
        )
    return name


class _CeleryRun:
    """One bulk run on Celery, from the command's side."""

    def __init__(
        self,
        mailer: Mailer,
        template_id: str,
        source: RecipientSource,
        name: str,
        *,
        rate: float,
        burst: int | None,
        chunk_size: int,
        dry_run: bool,
        progress: Callable[[BulkProgress], None] | None,
        sanitise: tuple[str, ...],
        check_notify: bool,
        stop: threading.Event | None,
    ) -> None:
        self.mailer = mailer
        self.adapter = MailerAdapter(mailer)
        self.template_id = template_id
        self.source = source
        self.name = name
        self.rate = rate
        self.burst = burst
        self.chunk_size = chunk_size
        self.dry_run = dry_run
        self.progress = progress
        self.check_notify = check_notify
        self.stop = stop
        self.planner = Planner(self.adapter, template_id, source, sanitise, stop)
        self.started = time.monotonic()
        self.total = self.already_sent = self.duplicates = 0
        self.failures: list[BulkFailure] = []
        self.todo: dict[int, PreparedEmail] = {}
        self.chunks: list[str] = []
        self.interrupted = False

    # -- planning --

    def run(self) -> BulkReport:
        planned = self.planner.plan()
        if planned is None:
            raise BulkInterruptedError(_STOPPED)
        self.total = len(planned)
        journal = RedisJournal(self.mailer.queue.redis, self.name)
        holder = uuid.uuid4().hex
        journal.hold(holder)
        try:
            entries = journal.entries()
            if not self.source.positional:
                self.planner.number(planned, entries)
            journal.claim_run(
                template_id=self.template_id,
                kind="rows" if self.source.positional else "audience",
                fingerprint=self.planner.fingerprint(planned),
                total=self.total,
                write=not self.dry_run,
            )
            known = {e.reference: e for e in entries if e.reference and e.state != SKIPPED}
            new: list[Item] = []
            final: list[Item] = []
            seen: set[str] = set()
            for p in planned:
                assert p.row is not None
                if p.email is None:
                    assert p.error is not None
                    self.failures.append(failure(p.row, p.error))
                    final.append(
                        (
                            p.row,
                            FAILED,
                            {
                                "h": p.address_hash,
                                "e": type(p.error).__name__,
                                "m": p.error.message,
                            },
                        )
                    )
                    if not self.dry_run:
                        self.adapter.failed(p.error)
                    continue
                email = p.email
                info = {"h": email.to_hash, "r": email.reference}
                if email.reference in seen:
                    self.duplicates += 1
                    final.append((p.row, SKIPPED, info))
                    continue
                seen.add(email.reference)
                entry = known.get(email.reference)
                if entry is not None and entry.state == SENT:
                    self.already_sent += 1
                    if not self.dry_run:
                        self.adapter.skipped(email)
                    continue
                self.todo[p.row] = email
                if entry is not None and entry.state == FAILED:
                    final.append((p.row, PENDING, info))  # failed before: tried again
                else:
                    new.append((p.row, IN_FLIGHT if self.check_notify else PENDING, info))
            if self.dry_run:
                return self.report({}, {}, 0)
            journal.plan(new, final)
            return self.watch(journal, holder)
        finally:
            journal.let_go(holder)

    # -- sending --

    def dispatch(self, journal: RedisJournal, rows: Sequence[int]) -> set[str]:
        """Hand ``rows`` to the workers, in chunks; the chunks' ids."""
        from ..queued.tasks import CHUNK_TASK, publish

        celery_app = self.mailer.queue.celery
        assert celery_app is not None
        ids: set[str] = set()
        for start in range(0, len(rows), self.chunk_size):
            part = rows[start : start + self.chunk_size]
            chunk = f"{uuid.uuid4().hex}"
            journal.put_chunk(
                chunk, [(row, encode_email(self.todo[row], allow_resend=True)) for row in part]
            )
            publish(
                celery_app,
                CHUNK_TASK,
                str(uuid.uuid4()),
                {"journal": self.name, "chunk": chunk, "rows": f"{part[0]}-{part[-1]}"},
                kwargs={
                    "journal": self.name,
                    "chunk": chunk,
                    "rate": self.rate,
                    "burst": self.burst,
                },
            )
            ids.add(chunk)
            self.chunks.append(chunk)
        return ids

    def watch(self, journal: RedisJournal, holder: str) -> BulkReport:
        rows = sorted(self.todo)
        limited_before = journal.count("rate_limited")
        logger.info(
            "Bulk send started on Celery: %d recipients, %d to send, template %s, run %s",
            self.total,
            len(rows),
            self.template_id,
            self.name,
            extra={"template_id": self.template_id, "bulk_total": self.total},
        )
        outstanding = self.dispatch(journal, rows)
        stopping_since: float | None = None
        aborted: dict[str, str] | None = None
        while True:
            journal.renew_hold(holder)
            states = journal.states(rows)
            open_rows = [r for r in rows if states.get(r) in (PENDING, IN_FLIGHT)]
            self.emit(states, len(open_rows), stopping=stopping_since is not None)
            if not open_rows:
                break
            if stopping_since is None:
                aborted = journal.aborted()
                if aborted is not None or (self.stop is not None and self.stop.is_set()):
                    self.interrupted = aborted is None
                    journal.stop()
                    stopping_since = time.monotonic()
            if stopping_since is not None:
                grace = STOP_GRACE + self.adapter.timeout
                in_flight = [r for r in open_rows if states.get(r) == IN_FLIGHT]
                settled = journal.claimable(in_flight) == in_flight  # none is being sent
                if settled or time.monotonic() - stopping_since > grace:
                    break
            else:
                outstanding -= journal.chunks_done(sorted(outstanding))
                if not outstanding:
                    again = journal.claimable(open_rows)
                    if again:
                        outstanding = self.dispatch(journal, again)
            time.sleep(POLL)
        states = journal.states(rows)
        report = self.report(
            states, journal.info(rows), journal.count("rate_limited") - limited_before
        )
        self.adapter.finished(report)
        log_end(report, self.template_id, where=" on Celery")
        if aborted is not None:
            raise BulkAbortedError(
                f"Stopped: {aborted.get('class')} would fail every other email too. "
                f"{aborted.get('message', '')} Fix it, then run the same command with the same "
                "journal to resume.",
                report=report,
            )
        if self.interrupted:
            raise BulkInterruptedError(_STOPPED, report=report)
        return report

    # -- reporting --

    def counts(self, states: dict[int, str]) -> tuple[int, int, int]:
        """(sent or found, failed, open) among the rows to send."""
        done = sum(1 for s in states.values() if s == SENT)
        failed = sum(1 for s in states.values() if s == FAILED)
        return done, failed, len(self.todo) - done - failed

    def emit(self, states: dict[int, str], remaining: int, *, stopping: bool) -> None:
        if self.progress is None:
            return
        sent, failed, _ = self.counts(states)
        elapsed = time.monotonic() - self.started
        rate = sent / elapsed if elapsed > 0 else 0.0
        self.progress(
            BulkProgress(
                total=self.total,
                done=self.total - remaining,
                sent=sent,
                skipped=self.already_sent + self.duplicates,
                failed=len(self.failures) + failed,
                elapsed=elapsed,
                rate=rate,
                eta=remaining / rate if rate > 0 else None,
                stopping=stopping,
                in_flight=sum(1 for s in states.values() if s == IN_FLIGHT) if stopping else 0,
            )
        )

    def report(
        self, states: dict[int, str], infos: dict[int, dict[str, Any]], rate_limited: int
    ) -> BulkReport:
        sent = found = redirected = unsent = in_doubt = 0
        failures = list(self.failures)
        for row in self.todo:
            state = states.get(row, PENDING)
            info = infos.get(row, {})
            if state == SENT:
                if info.get("f"):
                    found += 1
                else:
                    sent += 1
                    redirected += int(info.get("d") or 0)
            elif state == FAILED:
                failures.append(BulkFailure(row, str(info.get("e")), str(info.get("m"))))
            elif state == IN_FLIGHT:
                in_doubt += 1
            else:
                unsent += 1
        return BulkReport(
            template_id=self.template_id,
            journal=self.name,
            total=self.total,
            sent=sent,
            already_sent=self.already_sent + found,
            found_in_notify=found,
            duplicates=self.duplicates,
            redirected=redirected,
            failures=tuple(sorted(failures, key=lambda f: f.row)),
            unsent=unsent,
            in_doubt=in_doubt,
            rate_limited=rate_limited,
            rate=self.rate,
            concurrency=len(self.chunks),
            elapsed=time.monotonic() - self.started,
            dry_run=self.dry_run,
            interrupted=self.interrupted,
        )


def send_bulk_on_celery(
    mailer: Mailer,
    template_id: str,
    source: RecipientSource,
    journal: object,
    *,
    rate: float,
    burst: int | None,
    chunk_size: int | None,
    dry_run: bool,
    progress: Callable[[BulkProgress], None] | None,
    sanitise: tuple[str, ...],
    check_notify: bool,
    stop: threading.Event | None,
) -> BulkReport:
    """A bulk run on Celery; the options are :func:`~flask_dmmail.bulk.send_bulk`'s, checked
    there. ``journal`` names the run in Redis."""
    name = _check_name(journal)
    if chunk_size is not None and (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int)
        or not 1 <= chunk_size <= 10_000
    ):
        raise InvalidOptionError("chunk_size must be a whole number from 1 to 10000.")
    if mailer.queue.celery is None:
        raise ConfigurationError(
            "DM_MAIL_CELERY_BROKER_URL",
            "a bulk run with via='celery' needs a Celery app: set this key to the broker's URL, "
            "or pass your own as DMMail(app, celery=celery_app), and run workers.",
        )
    run = _CeleryRun(
        mailer,
        template_id,
        source,
        name,
        rate=rate,
        burst=burst,
        chunk_size=chunk_size or DEFAULT_CHUNK_SIZE,
        dry_run=dry_run,
        progress=progress,
        sanitise=sanitise,
        check_notify=check_notify,
        stop=stop,
    )
    return run.run()
