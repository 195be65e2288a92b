"""The Celery side of queued sends: the tasks, the task class that runs them in the Flask
app's context (the pattern of Flask's "Background Tasks with Celery"), and the Celery app
the extension makes from ``DM_MAIL_CELERY_BROKER_URL``.

Every task of flask-dmmail is acknowledged late and put back in the queue when its worker
dies (``acks_late``, ``reject_on_worker_lost``): the ledger's lease and the look-up by
reference make a repeated run harmless. Messages carry the task id and nothing else;
``argsrepr`` and ``kwargsrepr`` (what Celery logs and Flower show) hold only the reference,
the template id and the address's keyed hash; results hold states and ids.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import Celery, Task
from celery.exceptions import Reject
from flask import Flask

from ..errors import DMMailError, ExtensionError, QueueError

if TYPE_CHECKING:
    from ..extension import Mailer

__all__ = ["CHUNK_TASK", "SEND_TASK", "DMMailTask", "bind_celery", "make_celery", "publish"]

logger = logging.getLogger("flask_dmmail")

#: The name of the task that sends one queued email.
SEND_TASK = "flask_dmmail.send_queued"
#: The name of the task that sends one chunk of a bulk run on Celery.
CHUNK_TASK = "flask_dmmail.send_bulk_chunk"
#: Seconds a task waits before it puts itself back in the queue when the ledger's Redis
#: does not answer (so a Redis outage is a pause, not a busy loop).
REDIS_PAUSE = 2.0

_FLASK_APPS: weakref.WeakKeyDictionary[Celery, Flask] = weakref.WeakKeyDictionary()
#: The tasks to register on every Celery app: name -> function (bulk adds its own).
TASKS: dict[str, Callable[..., Any]] = {}


def flask_app_of(celery_app: Celery) -> Flask:
    """The Flask app bound to ``celery_app`` by ``DMMail(app, celery=celery_app)``."""
    try:
        return _FLASK_APPS[celery_app]
    except KeyError:
        raise ExtensionError(
            "This Celery app has no Flask app with flask-dmmail: the module the worker loads "
            "(celery -A ...) must create the Flask app, with DMMail(app, celery=celery_app) "
            "or DM_MAIL_CELERY_BROKER_URL, and expose its Celery app."
        ) from None


class DMMailTask(Task):  # type: ignore[type-arg]
    """A task that runs inside an application context of the Flask app its Celery app
    serves (Flask's "Background Tasks with Celery" pattern)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with flask_app_of(self.app).app_context():
            return self.run(*args, **kwargs)


def mailer_of(task: Task) -> Mailer:  # type: ignore[type-arg]
    """The Mailer of the Flask app ``task`` runs for."""
    from ..extension import DMMail

    return DMMail.mailer(flask_app_of(task.app))


def paused_on_redis(error: QueueError) -> Reject:
    """Wait :data:`REDIS_PAUSE`, then the exception that puts the message back in the
    queue: a task that could not reach the ledger never loses its email."""
    logger.warning("%s The task is put back in the queue.", error.message)
    time.sleep(REDIS_PAUSE)
    return Reject(error.message, requeue=True)


def send_queued(self: Task) -> dict[str, str | None]:  # type: ignore[type-arg]
    """Send the queued email whose task id this task has (see
    :mod:`flask_dmmail.queued.runner`)."""
    mailer = mailer_of(self)
    task_id = self.request.id
    assert isinstance(task_id, str)
    try:
        result = mailer.queue.run(task_id)
    except QueueError as error:
        raise paused_on_redis(error) from None
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in)
    if result.error is not None:
        raise result.error
    return result.summary()


def send_bulk_chunk(
    self: Task,  # type: ignore[type-arg]
    journal: str,
    chunk: str,
    rate: float,
    burst: int | None = None,
) -> dict[str, int]:
    """Send one chunk of the bulk run ``journal`` (see :mod:`flask_dmmail.bulk.chunks`)."""
    from ..bulk.adapter import MailerAdapter
    from ..bulk.chunks import run_chunk
    from ..bulk.redis_journal import RedisJournal

    mailer = mailer_of(self)
    try:
        outcome = run_chunk(
            MailerAdapter(mailer), RedisJournal(mailer.queue.redis, journal), chunk, rate, burst
        )
    except QueueError as error:
        raise paused_on_redis(error) from None
    return dict(outcome)


TASKS[SEND_TASK] = send_queued
TASKS[CHUNK_TASK] = send_bulk_chunk


def bind_celery(celery_app: Celery, flask_app: Flask) -> None:
    """Register flask-dmmail's tasks on ``celery_app``, to run for ``flask_app``."""
    _FLASK_APPS[celery_app] = flask_app
    for name, function in TASKS.items():
        celery_app.task(
            name=name,
            bind=True,
            base=DMMailTask,
            acks_late=True,
            reject_on_worker_lost=True,
            max_retries=None,  # the ledger counts transient failures (DM_MAIL_QUEUE_RETRIES)
            throws=(DMMailError,),
            typing=False,
        )(function)


def make_celery(flask_app: Flask, broker_url: str) -> Celery:
    """The Celery app the extension makes for ``flask_app`` from
    ``DM_MAIL_CELERY_BROKER_URL``: JSON messages, tasks acknowledged late and re-queued
    when a worker dies, one message prefetched at a time, no results kept (the ledger keeps
    each email's state). Its tasks run in the Flask app's context."""
    celery_app: Celery = Celery(flask_app.import_name, broker=broker_url, task_cls=DMMailTask)
    celery_app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
    )
    return celery_app


def publish(
    celery_app: Celery,
    name: str,
    task_id: str,
    shown: dict[str, str],
    kwargs: dict[str, Any] | None = None,
) -> None:
    """Send the task ``name`` with id ``task_id`` and ``kwargs`` (ids and numbers, never an
    address or a personalisation value); Celery's logs and monitoring show ``shown``
    (hashes, references, ids) as its keyword arguments. Raises QueueError when the broker
    does not take it."""
    try:
        celery_app.send_task(
            name, kwargs=kwargs or {}, task_id=task_id, argsrepr="()", kwargsrepr=repr(shown)
        )
    except DMMailError:
        raise
    except Exception as error:  # kombu's and redis's connection errors have no common base
        raise QueueError(
            f"The email was not queued: the Celery broker did not take the task "
            f"({type(error).__name__}). Check that the broker is running and reachable "
            "(DM_MAIL_CELERY_BROKER_URL or your Celery app's broker_url), then try again."
        ) from None
