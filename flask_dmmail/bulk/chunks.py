"""One chunk of a bulk run on Celery, in a worker: :func:`run_chunk` sends its emails
through the run's :class:`~flask_dmmail.bulk.adapter.MailerAdapter` (the send path of
``Mailer.send``), each claimed in the Redis journal first, so that whatever dies and runs
again, each email is sent once.

A chunk's task may run twice (acknowledged late, put back when its worker dies). A row it
finds claimed by a run that is still alive is left to that run; a row whose owner died is
looked up by reference in Notify before anything is posted; a row sent is skipped.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from ..budget import SharedBudget, SharedRateLimiter
from ..errors import (
    DMMailError,
    NotifyError,
    NotifyUnavailableError,
    RateLimitError,
)
from ..queued.records import decode_email
from ..queued.runner import lease_seconds
from ..ratelimit import RateLimiter
from .adapter import MailerAdapter
from .journal import FAILED, IN_FLIGHT, SENT
from .redis_journal import CLAIMED, IN_DOUBT, RedisJournal
from .senders import _STOPPING

__all__ = ["ChunkOutcome", "run_chunk"]

logger = logging.getLogger("flask_dmmail")

_LIMITERS: dict[tuple[str, float, int | None], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()
_NEVER = threading.Event()


def limiter_for(
    run: str, rate: float, burst: int | None = None, budget: SharedBudget | None = None
) -> RateLimiter:
    """This process's pace for the run ``run``: one bucket per process and run, shared by
    the process's chunks. With the app's shared Redis budget (``DM_MAIL_REDIS_URL``) each
    token is also taken from the service's one bucket, as bulk work (above the reserve), so
    the whole fleet of workers stays within Notify's limit."""
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get((run, rate, burst))
        if limiter is None:
            limiter = _LIMITERS[(run, rate, burst)] = (
                RateLimiter(rate, burst=burst)
                if budget is None
                else SharedRateLimiter(budget, rate, burst=burst)
            )
        return limiter


class ChunkOutcome(dict[str, int]):
    """What a chunk did, by outcome (``sent``, ``found``, ``failed``, ``left``...): a
    Celery task's result, with counts only."""


def _info(email: Any, **more: Any) -> dict[str, Any]:
    return {"h": email.to_hash, "r": email.reference, **more}


def run_chunk(
    adapter: MailerAdapter,
    journal: RedisJournal,
    chunk: str,
    rate: float,
    burst: int | None = None,
) -> ChunkOutcome:
    """Send the emails of ``chunk`` of the run ``journal`` (see the module's docstring).

    :param adapter: the worker's way to the Mailer.
    :param journal: the run's Redis journal.
    :param chunk: the chunk's id.
    :param rate: the run's rate, in requests a minute (each worker process's pace).
    :param burst: the size of each process's bucket (default Notify's for the rate).
    :raises ~flask_dmmail.errors.QueueError: Redis did not answer (the task is put back).
    """
    outcome = ChunkOutcome()
    emails = journal.chunk(chunk)
    if emails is None:  # done already (a repeated task), or expired
        return outcome
    token = uuid.uuid4().hex
    lease = lease_seconds(adapter.timeout)
    limiter = limiter_for(journal.name, rate, burst, adapter.budget)
    journal.lease(token, lease)
    try:
        for row, text in emails:
            if journal.stopping():
                outcome["left"] = outcome.get("left", 0) + 1
                continue
            email, _ = decode_email(text)
            limiter.acquire(_NEVER)
            if journal.stopping():  # again: the wait for a token may have been long
                outcome["left"] = outcome.get("left", 0) + 1
                continue
            journal.lease(token, lease)
            claim = journal.claim(row, token)
            if claim not in (CLAIMED, IN_DOUBT):
                outcome[claim] = outcome.get(claim, 0) + 1  # done, or another live run's
                continue
            result = _send_row(adapter, journal, limiter, token, lease, row, email, claim)
            outcome[result] = outcome.get(result, 0) + 1
    finally:
        journal.release(token)
    journal.done(chunk)
    return outcome


def _send_row(
    adapter: MailerAdapter,
    journal: RedisJournal,
    limiter: RateLimiter,
    token: str,
    lease: float,
    row: int,
    email: Any,
    claim: str,
) -> str:
    """Send one claimed row; record its outcome; say which."""

    def on_retry(error: NotifyError, attempt: int, delay: float) -> None:
        if isinstance(error, RateLimitError):
            limiter.penalise()
            journal.add("rate_limited")
        journal.lease(token, lease + delay)

    try:
        if claim == IN_DOUBT:
            found = adapter.find(email.reference)
            if found is not None:
                sent = adapter.recovered(email, found)
                info = _info(email, n=sent.id, f=1, d=int(email.redirected))
                journal.finish(row, token, SENT, info)
                return "found"
            journal.lease(token, lease)
        sent = adapter.send(email, on_retry)
    except (RateLimitError, NotifyUnavailableError) as error:
        if isinstance(error, RateLimitError):
            limiter.penalise()
            journal.add("rate_limited")
        # Handed out again, and looked up first: an earlier attempt may have been stored.
        journal.finish(row, token, IN_FLIGHT, None)
        return "left"
    except _STOPPING as error:  # every other email would fail too: stop the run
        journal.abort(type(error).__name__, error.message)
        journal.finish(row, token, IN_FLIGHT, None)
        return "left"
    except DMMailError as error:
        info = _info(email, e=type(error).__name__, m=error.message)
        journal.finish(row, token, FAILED, info)
        return "failed"
    journal.finish(row, token, SENT, _info(email, n=sent.id, d=int(sent.redirected)))
    return "sent"
