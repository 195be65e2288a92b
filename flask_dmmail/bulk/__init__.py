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

The library installs no signal handlers: a run stops when the ``stop`` event given to
:func:`send_bulk` is set (``flask dmmail bulk-send`` sets it on Ctrl-C or SIGTERM).

The parts, one module each:

- ``flask_dmmail.bulk.sources``: where recipients come from (a list, a CSV file, a
  Mailchimp audience).
- ``flask_dmmail.bulk.personalisation``: values for every recipient, from a JSON file.
- ``flask_dmmail.bulk.journal``: the SQLite journal.
- ``flask_dmmail.bulk.report``: progress, report and failure types.
- ``flask_dmmail.bulk.send``: :func:`send_bulk`, which checks the options and starts the
  run; ``flask_dmmail.bulk.run``: the run on threads, helped by
  ``flask_dmmail.bulk.planning`` (preparing every recipient),
  ``flask_dmmail.bulk.senders`` (the sender threads) and
  ``flask_dmmail.bulk.adapter`` (every use of the Mailer).
- the token bucket that paces a run is ``flask_dmmail.ratelimit``'s.
- a run on Celery (``via="celery"``): ``flask_dmmail.bulk.distributed`` (the command's
  side), ``flask_dmmail.bulk.chunks`` (a worker's chunk) and
  ``flask_dmmail.bulk.redis_journal`` (the journal in Redis).
"""

from ..ratelimit import RateLimiter, notify_bucket_size
from .personalisation import load_personalisation
from .report import BulkFailure, BulkProgress, BulkReport
from .send import send_bulk
from .senders import default_concurrency
from .sources import AudienceSource, CsvSource, IterableSource, Recipient, RecipientSource

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
