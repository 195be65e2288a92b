"""Queued sends on Celery: ``Mailer.send_later`` checks an email now and a worker sends it.

::

    # the web app
    dmmail = DMMail(app, celery=celery_app)      # or DM_MAIL_CELERY_BROKER_URL
    queued = dmmail.send_later("buyer@example.gov.uk", "reset_password", {"url": url})

    # the worker: celery -A example_app.worker worker --loglevel=INFO

The parts, one module each:

- ``flask_dmmail.queued.records``: :class:`QueuedEmail` (what ``send_later`` returns),
  :class:`QueuedStatus` (where a queued email is) and the email's codec;
- ``flask_dmmail.queued.ledger``: where queued emails and their states are kept (Redis,
  or memory in eager mode), and the lease that makes each one's send exactly once;
- ``flask_dmmail.queued.runner``: one run of a queued email in a worker;
- ``flask_dmmail.queued.sends``: :class:`QueuedSends`, the Mailer's queue;
- ``flask_dmmail.queued.tasks``: the Celery tasks, their task class and the Celery app the
  extension makes (imported only when there is a Celery app).
"""

from __future__ import annotations

from . import records
from .records import QueuedEmail, QueuedStatus
from .sends import QueuedSends

# The states of a queued email (QueuedStatus.state), bound here with their doc comments.
#: Waiting for a worker.
QUEUED = records.QUEUED
#: A worker is sending it (or was, and died: the next run looks it up in Notify first).
SENDING = records.SENDING
#: Its send failed transiently; it is queued again.
RETRYING = records.RETRYING
#: Notify has it (``notification_id``).
SENT = records.SENT
#: Not sent because it had been already (``allow_resend=False``).
SKIPPED = records.SKIPPED
#: Failed for good (``error_class``, ``error``); the email is kept for inspection.
FAILED = records.FAILED

__all__ = [
    "FAILED",
    "QUEUED",
    "RETRYING",
    "SENDING",
    "SENT",
    "SKIPPED",
    "QueuedEmail",
    "QueuedSends",
    "QueuedStatus",
]
