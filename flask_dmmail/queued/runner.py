"""One run of a queued email, in a worker (or at once, in eager mode): exactly once.

:func:`run_queued` sends the email through the same path as ``Mailer.send``
(:class:`~flask_dmmail.pipeline.SendPipeline`: redirect already decided, retries that look
the reference up first, typed errors, the log line and the signals). Celery acknowledges a
task only after it ran and queues it again when its worker dies, so a run may repeat; the
ledger makes that harmless:

1. a run takes the email's *lease* (or, when another run holds it, is put back in the
   queue until it runs out), and re-reads the state: a sent, skipped or failed email is
   left as it is;
2. before posting it marks the email ``sending``. A run that finds it ``sending`` follows
   one that died mid-send: its lease has run out, which is long enough for that post to
   have been stored or refused, so the reference is looked up in Notify first and a
   stored email is taken as sent;
3. the outcome is recorded: sent, skipped, queued again after a transient error (at most
   ``DM_MAIL_QUEUE_RETRIES`` times), or failed for good (the email is kept).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ..errors import DailyLimitError, DMMailError, NotifyError, QueueError
from ..pipeline import SendPipeline
from .ledger import Ledger
from .records import FAILED, RETRYING, SENDING, SENT, SKIPPED, QueuedStatus, decode_email

__all__ = ["RunResult", "lease_seconds", "now_iso", "retry_delay", "run_queued"]

logger = logging.getLogger("flask_dmmail")

#: The longest wait before a queued email whose send failed transiently is tried again.
MAX_RETRY_DELAY = 3600.0


def now_iso() -> str:
    """This moment, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def lease_seconds(timeout: float) -> float:
    """How long a run may hold an email between two renewals: a look-up, a post and the
    look-up after an ambiguous failure (each at most the client's ``timeout``), the wait
    for a timed-out post to settle, and a margin."""
    return 3 * timeout + min(timeout, 10.0) + 5.0


def retry_delay(failures: int, backoff: float, retry_after: float | None = None) -> float:
    """Seconds before a queued email is tried again after its ``failures``-th transient
    failure: ``retry_after`` when the service gave one, else 60 × DM_NOTIFY_RETRY_BACKOFF,
    doubled for each failure before (at most an hour)."""
    if retry_after is not None and retry_after > 0:
        return min(MAX_RETRY_DELAY, float(retry_after))
    doubling: float = 2.0 ** max(0, failures - 1)
    return min(MAX_RETRY_DELAY, max(0.05, backoff * 60 * doubling))


@dataclass(frozen=True)
class RunResult:
    """What one run did: the email's state after it (None when the ledger has no such
    email), whether to run it again after ``retry_in`` seconds, and the error that failed
    it for good."""

    status: QueuedStatus | None
    retry_in: float | None = None
    error: DMMailError | None = None

    def summary(self) -> dict[str, str | None]:
        """What a task returns (Celery's result): no address, no personalisation."""
        status = self.status
        return {
            "state": status.state if status else None,
            "reference": status.reference if status else None,
            "notification_id": status.notification_id if status else None,
            "error_class": status.error_class if status else None,
        }


def run_queued(
    pipeline: SendPipeline,
    ledger: Ledger,
    task_id: str,
    *,
    queue_retries: int,
    eager: bool = False,
) -> RunResult:
    """Run the queued email ``task_id`` once (see the module's docstring).

    :param pipeline: the app's send path.
    :param ledger: where the email and its state are kept.
    :param task_id: the email's task id.
    :param queue_retries: how often a transient failure queues it again
        (``DM_MAIL_QUEUE_RETRIES``); never in eager mode.
    :param eager: True when it runs in the process that queued it.
    :raises ~flask_dmmail.errors.QueueError: the ledger could not be read or written.
    """
    status = ledger.get(task_id)
    if status is None:
        logger.warning(
            "Queued email %s is not in the ledger (expired or removed); nothing sent",
            task_id,
            extra={"task_id": task_id},
        )
        return RunResult(None)
    if status.done:
        return RunResult(status)
    token = uuid.uuid4().hex
    lease = lease_seconds(pipeline.settings.timeout)
    if not ledger.take_lease(task_id, token, lease):
        return RunResult(status, retry_in=max(0.5, ledger.lease_left(task_id)))
    try:
        return _run(pipeline, ledger, task_id, token, lease, queue_retries, eager)
    finally:
        ledger.release_lease(task_id, token)


def _run(
    pipeline: SendPipeline,
    ledger: Ledger,
    task_id: str,
    token: str,
    lease: float,
    queue_retries: int,
    eager: bool,
) -> RunResult:
    status = ledger.get(task_id)  # again, under the lease
    if status is None or status.done:
        return RunResult(status)
    text = ledger.email(task_id)
    if text is None:
        error = QueueError(
            "The queued email's copy is missing from the ledger, so it cannot be sent. "
            "Queue it again (send_later) if it is still wanted."
        )
        failed = replace(
            status,
            state=FAILED,
            updated_at=now_iso(),
            error_class=type(error).__name__,
            error=error.message,
        )
        ledger.save(failed)
        pipeline.announce.failed(error, None, attempt=0)
        return RunResult(failed, error=error)
    email, allow_resend = decode_email(text)
    in_doubt = status.state == SENDING  # a run before this one died while sending it
    status = replace(status, state=SENDING, attempts=status.attempts + 1, updated_at=now_iso())
    ledger.save(status)

    def renew(error: NotifyError, attempt: int, delay: float) -> None:
        ledger.renew_lease(task_id, token, lease + delay)

    announced = True
    try:
        if in_doubt:
            announced = False
            found = pipeline.gateway.find_reference(
                email.reference, include_failed=False, email=email
            )
            announced = True
            if found is not None:
                sent = pipeline.recovered(email, found)
                done = replace(
                    status,
                    state=SENT,
                    updated_at=now_iso(),
                    notification_id=sent.id,
                    error_class=None,
                    error=None,
                )
                ledger.save(done)
                return RunResult(done)
        result = pipeline.send_prepared(email, allow_resend=allow_resend, on_retry=renew)
    except DMMailError as error:
        if not announced:
            pipeline.announce.failed(error, email, attempt=0)
        failures = status.failures + 1
        again = (
            not eager
            and error.transient
            and not isinstance(error, DailyLimitError)
            and failures <= queue_retries
        )
        after = replace(
            status,
            state=RETRYING if again else FAILED,
            updated_at=now_iso(),
            failures=failures,
            error_class=type(error).__name__,
            error=error.message,
        )
        ledger.save(after)
        if again:
            retry_after = error.retry_after if isinstance(error, NotifyError) else None
            delay = retry_delay(failures, pipeline.settings.retry_backoff, retry_after)
            return RunResult(after, retry_in=delay)
        logger.error(
            "Queued email %s failed for good with %s; it is kept for inspection "
            "(flask dmmail status --reference %s)",
            task_id,
            type(error).__name__,
            email.reference,
            extra={"task_id": task_id, "reference": email.reference, "to_hash": email.to_hash},
        )
        return RunResult(after, error=error)
    if result is None:
        done = replace(status, state=SKIPPED, updated_at=now_iso(), error_class=None, error=None)
    else:
        done = replace(
            status,
            state=SENT,
            updated_at=now_iso(),
            notification_id=result.id,
            error_class=None,
            error=None,
        )
    ledger.save(done)
    return RunResult(done)
