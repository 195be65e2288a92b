"""One bulk run on threads from start to end (``flask_dmmail.bulk.send.send_bulk`` checks
the options, then starts it): the run plans every recipient, claims the journal, decides who
to send to, hands the emails to the sender threads, records each outcome, and reports.

Exactly once: an email is marked *in-flight* in the journal, and the mark committed,
before it is posted; it is marked *sent* after. A run that stops (the caller's ``stop``
event, an error every email would hit) takes back what no thread started, waits a little
for the sends under way, and leaves the rest in-flight, to be looked up in Notify when the
run is resumed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..budget import SharedRateLimiter
from ..errors import (
    BulkAbortedError,
    BulkInterruptedError,
    NotifyUnavailableError,
    RateLimitError,
)
from ..ratelimit import RateLimiter
from .adapter import MailerAdapter
from .journal import FAILED, IN_FLIGHT, PENDING, SENT, SKIPPED, Entry, Journal, Record
from .planning import Planned, Planner
from .report import BulkFailure, BulkProgress, BulkReport, failure, log_end
from .senders import EXPECTED_LATENCY, STOP_GRACE, Result, SenderPool, Work
from .sources import RecipientSource
from .systemic import FirstRows, stopped_by_input

if TYPE_CHECKING:
    pass

__all__ = ["BulkRun"]

logger = logging.getLogger("flask_dmmail")

#: How often one email goes back to the queue after transient failures before it fails.
MAX_REQUEUES = 8

_STOPPED = "Stopped on request. Run again with the same journal and input to resume."


class BulkRun:
    """One run of :func:`send_bulk`: plan, then dispatch to the sender threads."""

    def __init__(
        self,
        adapter: MailerAdapter,
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
        stop: threading.Event | None = None,
        abandon: threading.Event | None = None,
    ) -> None:
        self.adapter = adapter
        self.template_id = template_id
        self.source = source
        self.journal_path = journal_path
        budget = adapter.budget
        self.limiter = (
            RateLimiter(rate, burst=burst)
            if budget is None
            else SharedRateLimiter(budget, rate, burst=burst)
        )
        self.planner = Planner(adapter, template_id, source, sanitise, stop)
        self.pool = SenderPool(adapter, self.limiter, concurrency)
        self.dry_run = dry_run
        self.progress = progress
        self.check_notify = check_notify
        self.stop = stop
        self.abandon = abandon
        self.interrupted = False
        self.abort_error: BaseException | None = None
        #: The first rows' outcomes: all failing with one input error stops the run.
        self.first_rows = FirstRows()
        self.input_abort = False
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

    # -- the whole run --

    def run(self) -> BulkReport:
        planned = self.planner.plan()
        if planned is None:  # stopped while reading the recipients: nothing done yet
            raise BulkInterruptedError(_STOPPED)
        self.total = len(planned)
        if self.dry_run:  # the template's placeholders against the input, by Notify's preview
            self.planner.check_placeholders(planned)
        self.journal = Journal.open(self.journal_path, create=not self.dry_run)
        try:
            return self._run(planned)
        finally:
            if self.journal is not None:
                self.journal.close()

    def _run(self, planned: list[Planned]) -> BulkReport:
        journal = self.journal
        entries = journal.entries() if journal is not None else []
        if not self.source.positional:
            self.planner.number(planned, entries)
        if journal is not None:
            journal.claim(
                template_id=self.template_id,
                kind="audience" if not self.source.positional else "rows",
                fingerprint=self.planner.fingerprint(planned),
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
        try:
            self.dispatch(todo)
        finally:
            # After an exception nothing queued is started: it stays in-flight, looked up
            # on resume. The threads are waited for unless sends were abandoned.
            self.pool.shutdown(wait=self.in_doubt == 0)
        report = self.report()
        self.adapter.finished(report)
        log_end(report, self.template_id)
        if self.abort_error is not None and self.input_abort:
            raise BulkAbortedError(stopped_by_input(self.abort_error), report=report) from (
                self.abort_error
            )
        if self.abort_error is not None:
            raise BulkAbortedError(
                f"Stopped: {type(self.abort_error).__name__} would fail every other email too. "
                f"{getattr(self.abort_error, 'message', '')} Fix it, then run the same command "
                "with the same journal to resume.",
                report=report,
            ) from self.abort_error
        if self.interrupted:
            raise BulkInterruptedError(_STOPPED, report=report)
        return report

    def classify(
        self, planned: list[Planned], entries: list[Entry]
    ) -> tuple[deque[Work], list[Record]]:
        """Decide each recipient: fail, skip or send; the records to save before sending."""
        known = {e.reference: e for e in entries if e.reference and e.state != SKIPPED}
        seen: set[str] = set()
        todo: deque[Work] = deque()
        records: list[Record] = []
        watching = not self.dry_run  # the rows before the first one to send
        for p in planned:
            assert p.row is not None
            if p.email is None:
                assert p.error is not None
                self.failures.append(failure(p.row, p.error))
                records.append((p.row, p.address_hash, None, FAILED, None, type(p.error).__name__))
                if not self.dry_run:
                    self.adapter.failed(p.error)
                    if watching and self.first_rows.outcome(p.error):
                        self.abort_input(p.error)
                continue
            watching = False
            email = p.email
            if email.reference in seen:
                self.duplicates += 1
                records.append((p.row, email.to_hash, email.reference, SKIPPED, None, None))
                continue
            seen.add(email.reference)
            entry = known.get(email.reference)
            if entry is not None and entry.state == SENT:
                self.already_sent += 1
                if not self.dry_run:
                    self.adapter.skipped(email)
                continue
            # In doubt: left in-flight by a run that stopped, or (check_notify) anything the
            # journal does not know as sent: looked up in Notify before it is sent.
            in_doubt = self.check_notify or (entry is not None and entry.state == IN_FLIGHT)
            work = Work(p.row, email, lookup_first=in_doubt)
            todo.append(work)
            records.append(work.record(IN_FLIGHT if in_doubt else PENDING))
        return todo, records

    # -- stopping --

    def stopping(self) -> bool:
        """Whether the run is stopping. A stop the caller asks for (the ``stop`` event)
        stops it as Ctrl-C did: nothing more is started; the sends under way finish."""
        if self.stop is not None and self.stop.is_set() and not self.interrupted:
            self.interrupted = True
            self.pool.stop.set()
        return self.pool.stop.is_set()

    def abandoning(self) -> bool:
        """Whether the caller gave up waiting for the sends under way (``abandon``)."""
        self.stopping()
        return self.abandon is not None and self.abandon.is_set()

    def abort_input(self, error: BaseException) -> None:
        """Stop because the first rows all failed with ``error``, an input error."""
        if self.abort_error is None:
            self.input_abort = True
        self.abort(error)

    def abort(self, error: BaseException) -> None:
        """Stop because of ``error``, which every other email would hit too."""
        if self.abort_error is None:
            self.abort_error = error
        self.pool.stop.set()

    # -- dispatch (main thread) --

    def dispatch(self, todo: deque[Work]) -> None:
        assert self.journal is not None
        pool = self.pool
        pool.start(len(todo))
        outstanding = 0
        pending: list[Record] = []
        last_flush = last_grow = last_progress = time.monotonic()
        while (todo or outstanding) and not self.stopping():
            for result in pool.collect(0.05 if outstanding else 0.0):
                outstanding -= 1
                pending.extend(self.handle(result, todo))
            now = time.monotonic()
            handout: list[Work] = []
            if not self.stopping() and outstanding <= pool.size:
                room = pool.size + max(4, pool.size // 2) - outstanding
                while todo and len(handout) < room:
                    handout.append(todo.popleft())
            if handout or (pending and now - last_flush > 0.5):
                # The in-flight marks are committed before any of these is posted.
                pending.extend(w.record(IN_FLIGHT) for w in handout if not w.lookup_first)
                self.journal.save(pending)
                pending, last_flush = [], now
            for work in handout:
                pool.queue.put(work)
                outstanding += 1
            if now - last_grow > 1.0:
                pool.grow(len(todo) + outstanding, self.latency)
                last_grow = now
            if now - last_progress > 0.2:
                self.emit_progress(len(todo) + outstanding)
                last_progress = now
        pending.extend(self.wind_down(todo, outstanding))
        self.journal.save(pending)
        self.emit_progress(self.unsent + self.in_doubt)

    def handle(self, result: Result, todo: deque[Work]) -> list[Record]:
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
            self.first_rows.outcome(None)
            return [work.record(SENT, result.sent.id)]
        if outcome == "found":
            assert result.found is not None
            self.already_sent += 1
            self.found += 1
            return [work.record(SENT, result.found.id)]
        if outcome == "failed":
            assert error is not None
            self.unavailable_streak = 0
            self.failures.append(failure(work.row, error))
            if self.first_rows.outcome(error):
                self.abort_input(error)
            return [work.record(FAILED, error=type(error).__name__)]
        if outcome == "requeue":
            assert error is not None
            work.lookup_first = work.lookup_first or result.ambiguous
            if self.pool.stop.is_set():
                return self.leave(work)
            if isinstance(error, NotifyUnavailableError):
                self.unavailable_streak += 1
                if self.unavailable_streak >= max(25, 2 * self.pool.size):
                    self.abort(error)
            work.requeues += 1
            if work.requeues > MAX_REQUEUES and not isinstance(error, RateLimitError):
                self.failures.append(failure(work.row, error))
                # An ambiguous one stays in-flight: a resumed run looks it up first.
                state = IN_FLIGHT if work.lookup_first else FAILED
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

    def leave(self, work: Work) -> list[Record]:
        """Count an email this run will not send after all: in doubt (left in-flight, to be
        looked up on resume) or unsent (back to pending)."""
        if work.lookup_first:
            self.in_doubt += 1
            return []
        self.unsent += 1
        return [work.record(PENDING)]

    def wind_down(self, todo: deque[Work], outstanding: int) -> list[Record]:
        """After a stop: take back what no thread started, wait a little for the sends
        under way, abandon the rest (left in-flight, looked up on resume)."""
        records: list[Record] = []
        for work in todo:  # never handed out (or handed back): pending unless in doubt
            records.extend(self.leave(work))
        for work in self.pool.take_back():
            outstanding -= 1
            records.extend(self.leave(work))
        deadline = time.monotonic() + STOP_GRACE + self.adapter.timeout
        while outstanding > 0 and not self.abandoning() and time.monotonic() < deadline:
            self.emit_progress(outstanding, stopping=True, in_flight=outstanding)
            for result in self.pool.collect(0.1):
                outstanding -= 1
                records.extend(self.handle(result, deque()))
        self.in_doubt += outstanding
        return records

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
                stopping=stopping or self.pool.stop.is_set(),
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
            concurrency=self.pool.size,
            elapsed=time.monotonic() - self.started,
            dry_run=self.dry_run,
            interrupted=self.interrupted,
        )
