"""The sender threads of a bulk run: :class:`SenderPool` takes :class:`Work` from a
queue, sends each email (after looking it up in Notify, when an earlier attempt left it in
doubt), paced by the run's rate limiter, and puts a :class:`Result` on another queue for
the run to count. Its ``stop`` event makes every thread start nothing more and give up
its waits; :func:`default_concurrency` says how many threads a rate needs.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from queue import Empty, Queue

from ..errors import (
    DailyLimitError,
    DMMailError,
    NotifyAuthError,
    NotifyError,
    NotifyForbiddenError,
    NotifyProtocolError,
    NotifyUnavailableError,
    RateLimitError,
    RedisUnavailableError,
    TemplateNotFoundError,
)
from ..notify import NotificationStatus, PreparedEmail, SentEmail
from ..ratelimit import RateLimiter
from ..retry import backoff_delay
from .adapter import MailerAdapter
from .journal import Record

__all__ = ["default_concurrency"]

#: The latency the default concurrency assumes before it has measured any (seconds).
EXPECTED_LATENCY = 0.2
#: Never more sender threads than this, unless asked for.
MAX_CONCURRENCY = 64
#: Never more sender threads than this.
MAX_THREADS = 256
#: Seconds a stopping run waits for the sends under way before it abandons them.
STOP_GRACE = 2.0

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


def default_concurrency(rate_per_minute: float, latency: float = EXPECTED_LATENCY) -> int:
    """Sender threads enough to keep ``rate_per_minute`` going at ``latency`` seconds a
    request (Little's law, with half again for slow answers), from 2 to MAX_CONCURRENCY."""
    return max(2, min(MAX_CONCURRENCY, math.ceil(rate_per_minute / 60 * latency * 1.5) + 2))


class Abandon(BaseException):
    """Raised inside a sender thread to give up a send because the run is stopping."""


@dataclass(eq=False)
class Work:
    """One email to send, handed to a sender thread (and back, when it is requeued)."""

    row: int
    email: PreparedEmail
    lookup_first: bool
    requeues: int = 0
    attempted: bool = False  # posted by this run

    def record(
        self, state: str, notification_id: str | None = None, error: str | None = None
    ) -> Record:
        """This email's row of the journal, in ``state``."""
        return (self.row, self.email.to_hash, self.email.reference, state, notification_id, error)


@dataclass
class Result:
    """What a sender thread did with one :class:`Work`."""

    work: Work
    outcome: str  # sent | found | failed | requeue | abort | unstarted | abandoned
    sent: SentEmail | None = None
    found: NotificationStatus | None = None
    error: BaseException | None = None
    ambiguous: bool = False  # a requeued send that Notify may have stored
    latency: float = 0.0


class SenderPool:
    """The sender threads of one run.

    :param adapter: the run's way to the Mailer.
    :param limiter: paces every post and retry.
    :param fixed: the number of threads asked for; None grows it with the latency.
    """

    def __init__(self, adapter: MailerAdapter, limiter: RateLimiter, fixed: int | None) -> None:
        self.adapter = adapter
        self.limiter = limiter
        self.fixed = fixed
        #: Set: no thread starts a send; retries and waits give up.
        self.stop = threading.Event()
        self.queue: Queue[Work | None] = Queue()
        self.results: Queue[Result] = Queue()
        self.workers: list[threading.Thread] = []

    @property
    def size(self) -> int:
        """How many threads have been started."""
        return len(self.workers)

    def start(self, todo: int) -> None:
        """Start as many threads as the rate needs (or as asked for), at most ``todo``."""
        initial = self.fixed or default_concurrency(self.limiter.rate)
        self.spawn(min(initial, max(1, todo)))

    def grow(self, remaining: int, latency: float) -> None:
        """Add threads when measured latency says the rate needs more (Little's law)."""
        if self.fixed is not None or remaining <= len(self.workers):
            return
        target = default_concurrency(self.limiter.configured, latency)
        if target > len(self.workers):
            self.spawn(min(target, remaining) - len(self.workers))

    def spawn(self, count: int) -> None:
        """Start ``count`` more threads."""
        for _ in range(count):
            thread = threading.Thread(
                target=self.worker, name=f"dmmail-bulk-{len(self.workers) + 1}", daemon=True
            )
            self.workers.append(thread)
            thread.start()

    def collect(self, timeout: float) -> list[Result]:
        """The results ready, waiting up to ``timeout`` seconds for the first."""
        results: list[Result] = []
        try:
            results.append(
                self.results.get(timeout=timeout) if timeout else self.results.get_nowait()
            )
            while True:
                results.append(self.results.get_nowait())
        except Empty:
            pass
        return results

    def take_back(self) -> list[Work]:
        """The work still queued, that no thread has started."""
        taken: list[Work] = []
        try:
            while True:
                queued = self.queue.get_nowait()
                if queued is not None:
                    taken.append(queued)
        except Empty:
            pass
        return taken

    def shutdown(self, wait: bool) -> None:
        """Tell the threads to finish; with ``wait``, wait for them."""
        self.stop.set()
        for _ in self.workers:
            self.queue.put(None)
        if wait:
            for thread in self.workers:
                thread.join(timeout=self.adapter.timeout + STOP_GRACE)

    # -- in each sender thread --

    def worker(self) -> None:
        """One thread: send what the queue hands out until it hands out None."""
        with self.adapter.app_context():
            while True:
                work = self.queue.get()
                if work is None:
                    return
                try:
                    result = self.attempt(work)
                except BaseException as error:  # never lose an email's outcome
                    result = Result(work, "abort", error=error)
                self.results.put(result)

    def attempt(self, work: Work) -> Result:
        """Send one email (after looking it up, if an earlier attempt left it in doubt)."""
        if self.stop.is_set():
            return Result(work, "unstarted")
        email = work.email
        if work.lookup_first:
            try:
                found = self.lookup(email.reference)
            except Abandon:
                return Result(work, "unstarted")
            except NotifyError as error:
                if isinstance(error, _SYSTEMIC):
                    return Result(work, "abort", error=error)
                return Result(work, "requeue", error=error, ambiguous=True)
            if found is not None:
                if work.attempted:  # this run's own post got through after all
                    return Result(work, "sent", sent=self.adapter.recovered(email, found))
                self.adapter.skipped(email)
                return Result(work, "found", found=found)
            work.lookup_first = False
        if not self.limiter.acquire(self.stop):
            return Result(work, "unstarted")
        started = time.monotonic()
        work.attempted = True
        try:
            sent = self.adapter.send(email, on_retry=self.on_retry)
        except Abandon:
            return Result(work, "abandoned")
        except RateLimitError as error:
            self.limiter.penalise()
            return Result(work, "requeue", error=error)
        except NotifyUnavailableError as error:
            return Result(work, "requeue", error=error, ambiguous=True)
        except _STOPPING as error:
            return Result(work, "abort", error=error)
        except RedisUnavailableError as error:
            # Redis down past the pause: stop, resumable (the email stays in-flight).
            return Result(work, "abort", error=error)
        except DMMailError as error:
            return Result(work, "failed", error=error)
        return Result(work, "sent", sent=sent, latency=time.monotonic() - started)

    def on_retry(self, error: NotifyError, attempt: int, delay: float) -> None:
        """Called by the send path before each retry: a 429 slows the whole run, and every
        retry waits for a token like a first attempt."""
        if isinstance(error, RateLimitError):
            self.limiter.penalise()
        if self.stop.is_set() or not self.limiter.acquire(self.stop):
            raise Abandon

    def lookup(self, reference: str) -> NotificationStatus | None:
        """Notify's notification with this reference, whatever its status; retries
        transient errors like a send does."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.adapter.find(reference)
            except NotifyError as error:
                if not error.transient or attempt > self.adapter.retries:
                    raise
            if self.stop.wait(backoff_delay(attempt, self.adapter.retry_backoff)):
                raise Abandon
