"""The entry point of a bulk send: :func:`send_bulk` checks its options before anything
happens, then runs it on this process's threads (:mod:`flask_dmmail.bulk.run`) or on Celery
workers (:mod:`flask_dmmail.bulk.distributed`)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptionError
from ..validation import check_sanitise_content_for
from .adapter import MailerAdapter
from .report import BulkProgress, BulkReport
from .run import BulkRun
from .senders import MAX_THREADS
from .sources import RecipientSource, as_source

if TYPE_CHECKING:
    from ..extension import Mailer

__all__ = ["send_bulk"]


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
    stop: threading.Event | None = None,
    abandon: threading.Event | None = None,
    via: str = "threads",
    chunk_size: int | None = None,
) -> BulkReport:
    """Send ``template`` to every recipient once, at up to ``rate`` requests a minute.

    A recipient that fails is recorded in the report and never stops the run. The function
    installs no signal handlers: to stop a run, set ``stop`` (``flask dmmail bulk-send``
    does on Ctrl-C or SIGTERM).

    :param mailer: the :class:`~flask_dmmail.extension.Mailer` that sends (or call
        ``Mailer.send_bulk``).
    :param template: a name from ``DM_NOTIFY_TEMPLATES`` or a template id.
    :param recipients: an iterable of ``(address, personalisation)`` pairs (or bare
        addresses), a :class:`~flask_dmmail.bulk.CsvSource` or an
        :class:`~flask_dmmail.bulk.AudienceSource`.
    :param journal: the SQLite file that makes the run resumable: run again with the same
        journal and input after a crash or a stop, and only what was not sent is sent.
    :param rate: requests a minute; defaults to ``DM_NOTIFY_BULK_RATE``.
    :param burst: the size of the key's token bucket; defaults to Notify's for the rate.
    :param concurrency: sender threads; unless given, they grow with the measured latency.
    :param dry_run: check every recipient and the journal, and send nothing.
    :param progress: called with a :class:`~flask_dmmail.bulk.BulkProgress` a few times a
        second, on the calling thread.
    :param sanitise_content_for: personalisation keys (values a user typed) that Notify
        strips of URLs and markdown in every email (as ``Mailer.send`` does).
    :param check_notify: look up, by reference in Notify, every email the journal does not
        record as sent before sending it: the way to finish a send whose journal was lost
        or damaged without sending anything twice that Notify still has (it keeps emails 7
        days).
    :param stop: a ``threading.Event``; once it is set (from any thread, or from
        ``progress``) the run starts nothing more, waits a little for the sends under way,
        records every outcome in the journal, and raises
        :class:`~flask_dmmail.errors.BulkInterruptedError` (whose ``report`` is None when
        it was set before every recipient was read: nothing was sent). The event is only
        read, never set or cleared.
    :param abandon: a ``threading.Event``; set after ``stop``, the run stops waiting
        for the sends under way: they stay in-flight in the journal and are looked up in
        Notify when the run is resumed.
    :param via: ``"threads"`` (this process sends, from a pool of threads) or ``"celery"``:
        the emails are cut into chunks, one Celery task each, that any number of workers
        send (see :doc:`/scaling`). ``journal`` then names the run's journal in Redis (the
        same name resumes it), ``concurrency`` is the workers' business, and ``stop`` asks
        every worker to start nothing more of the run.
    :param chunk_size: with ``via="celery"``, emails per chunk (default 100).
    :returns: the :class:`~flask_dmmail.bulk.BulkReport` of a run that reached its end.
    :raises ~flask_dmmail.errors.JournalError: the journal is another run's, in use,
        or damaged.
    :raises ~flask_dmmail.errors.RecipientsError: the recipients cannot be read.
    :raises ~flask_dmmail.errors.BulkInterruptedError: the run was stopped (``stop``);
        it carries the ``report``.
    :raises ~flask_dmmail.errors.BulkAbortedError: an error every other email would hit
        too stopped the run; it carries the ``report``.
    """
    if via not in ("threads", "celery"):
        raise InvalidOptionError("via must be 'threads' or 'celery'.")
    adapter = MailerAdapter(mailer)
    template_id = adapter.template_id(template)
    per_minute = adapter.bulk_rate if rate is None else rate
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
    for name, event in (("stop", stop), ("abandon", abandon)):
        if event is not None and not isinstance(event, threading.Event):
            raise InvalidOptionError(f"{name} must be a threading.Event or None.")
    if via == "celery":
        if concurrency is not None:
            raise InvalidOptionError(
                "concurrency is for via='threads': with Celery, the workers' pools send."
            )
        from .distributed import send_bulk_on_celery

        return send_bulk_on_celery(
            mailer,
            template_id,
            as_source(recipients),
            journal,
            rate=float(per_minute),
            burst=burst,
            chunk_size=chunk_size,
            dry_run=dry_run,
            progress=progress,
            sanitise=sanitise,
            check_notify=check_notify,
            stop=stop,
        )
    run = BulkRun(
        adapter,
        template_id,
        as_source(recipients),
        Path(journal),
        rate=float(per_minute),
        burst=burst,
        concurrency=concurrency,
        dry_run=dry_run,
        progress=progress,
        sanitise=sanitise,
        check_notify=check_notify,
        stop=stop,
        abandon=abandon,
    )
    return run.run()
