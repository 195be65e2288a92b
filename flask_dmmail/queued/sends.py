"""The Mailer's queue: :class:`QueuedSends` checks and queues emails (``send_later``),
runs them in workers, and says where each one is.

It decides the mode once: with a Celery app (``DMMail(app, celery=...)`` or
``DM_MAIL_CELERY_BROKER_URL``) emails go through the broker to the workers, and their
states are kept in Redis (``DM_MAIL_REDIS_URL``, else the broker's own Redis); in testing
and sandbox mode without one, ``send_later`` sends at once, in this process, with the
same steps, and keeps the states in memory.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from ..announce import log_fields
from ..errors import ConfigurationError, DMMailError, InvalidOptionError
from .ledger import Ledger, MemoryLedger, RedisLedger
from .records import QUEUED, QueuedEmail, QueuedStatus, encode_email
from .runner import RunResult, now_iso, run_queued

if TYPE_CHECKING:
    import redis
    from celery import Celery

    from ..extension import Mailer

__all__ = ["QueuedSends", "redis_url_for"]

logger = logging.getLogger("flask_dmmail")

_NO_CELERY = (
    "send_later needs a Celery app to queue emails: set it to the broker's URL (for "
    "example redis://localhost:6379/0), or pass your own Celery app as "
    "DMMail(app, celery=celery_app). In testing and sandbox mode without one, send_later "
    "sends at once."
)


def redis_url_for(mailer: Mailer, celery_app: Celery) -> str:
    """The Redis that keeps the states of queued emails and the journals of bulk runs on
    Celery: ``DM_MAIL_REDIS_URL`` when set (the Redis of the shared budget), else the Celery
    broker's URL when the broker is Redis."""
    configured = getattr(mailer.settings, "redis_url", None)
    if isinstance(configured, str) and configured:
        return configured
    broker = celery_app.conf.broker_url
    if isinstance(broker, str) and broker.startswith(("redis://", "rediss://", "unix://")):
        return broker
    raise ConfigurationError(
        "DM_MAIL_REDIS_URL",
        "queued sends keep each email's state in Redis, and the Celery broker is not Redis: "
        "set DM_MAIL_REDIS_URL to a Redis every web process and worker can reach.",
    )


class QueuedSends:
    """Queued sends of one app (``Mailer.queue``).

    :param mailer: the app's :class:`~flask_dmmail.extension.Mailer`.
    :param celery: the Celery app given to ``DMMail(app, celery=...)``, if any.
    """

    def __init__(self, mailer: Mailer, celery: Celery | None = None) -> None:
        self._mailer = mailer
        self._celery = celery
        self._made_celery = False
        self._ledger: Ledger | None = None
        if celery is not None:
            from .tasks import bind_celery

            bind_celery(celery, mailer.app)

    def __repr__(self) -> str:
        mode = "eager" if self.eager else "celery" if self.celery is not None else "off"
        return f"<QueuedSends mode={mode}>"

    @property
    def celery(self) -> Celery | None:
        """The Celery app emails are queued on: the one given, or the one made from
        ``DM_MAIL_CELERY_BROKER_URL`` (made on first use); None without either."""
        if self._celery is None and not self._made_celery:
            self._made_celery = True
            broker = self._mailer.settings.celery_broker_url
            if broker is not None:
                from .tasks import bind_celery, make_celery

                self._celery = make_celery(self._mailer.app, broker)
                bind_celery(self._celery, self._mailer.app)
        return self._celery

    @property
    def eager(self) -> bool:
        """True when ``send_later`` sends at once: no Celery app, in testing or sandbox mode."""
        app = self._mailer.app
        return self.celery is None and (app.testing or self._mailer.settings.sandbox)

    @property
    def ledger(self) -> Ledger:
        """Where queued emails and their states are kept (made on first use)."""
        if self._ledger is None:
            celery_app = self.celery
            if celery_app is None:
                if not self.eager:
                    raise ConfigurationError("DM_MAIL_CELERY_BROKER_URL", _NO_CELERY)
                self._ledger = MemoryLedger()
            else:
                from .ledger import redis_client

                self._ledger = RedisLedger(redis_client(redis_url_for(self._mailer, celery_app)))
        return self._ledger

    @property
    def redis(self) -> redis.Redis:
        """The Redis client of the ledger, which bulk runs on Celery keep their journals in
        too. Raises ConfigurationError without a Celery app."""
        ledger = self.ledger
        if not isinstance(ledger, RedisLedger):
            raise ConfigurationError("DM_MAIL_CELERY_BROKER_URL", _NO_CELERY)
        return ledger.client

    @property
    def available(self) -> bool:
        """True when this app can queue emails (a Celery app, or eager mode)."""
        return self.celery is not None or self.eager

    def send_later(
        self,
        to: object,
        template: object,
        personalisation: object = None,
        *,
        reference: object = None,
        reply_to_id: object = None,
        one_click_unsubscribe_url: object = None,
        scheduled_for: object = None,
        allow_resend: bool = True,
        sanitise_content_for: object = None,
    ) -> QueuedEmail:
        """Check one email now and queue it; see :meth:`flask_dmmail.Mailer.send_later`."""
        ledger = self.ledger  # no Celery app (and not eager): ConfigurationError
        pipeline = self._mailer.pipeline
        if not isinstance(allow_resend, bool):
            raise InvalidOptionError("allow_resend must be True or False.")
        email = pipeline.prepare_announced(
            to,
            template,
            personalisation,
            reference=reference,
            reply_to_id=reply_to_id,
            one_click_unsubscribe_url=one_click_unsubscribe_url,
            scheduled_for=scheduled_for,
            sanitise_content_for=sanitise_content_for,
        )
        task_id = str(uuid.uuid4())
        now = now_iso()
        status = QueuedStatus(
            task_id=task_id,
            reference=email.reference,
            state=QUEUED,
            template_id=email.template_id,
            to_hash=email.to_hash,
            redirected=email.redirected,
            redirected_by=email.redirected_by,
            queued_at=now,
            updated_at=now,
        )
        ledger.add(status, encode_email(email, allow_resend=allow_resend))
        eager = self.eager
        if not eager:
            from .tasks import SEND_TASK, publish

            celery_app = self.celery
            assert celery_app is not None
            shown = {
                "reference": email.reference,
                "template_id": email.template_id,
                "to_hash": email.to_hash,
            }
            try:
                publish(celery_app, SEND_TASK, task_id, shown)
            except DMMailError:
                ledger.forget(task_id)
                raise
        logger.info(
            "Email queued: task %s, reference %s%s",
            task_id,
            email.reference,
            " (sent at once: no broker, testing or sandbox mode)" if eager else "",
            extra=log_fields(email, task_id=task_id),
        )
        if eager:
            self.run(task_id, eager=True)
        return QueuedEmail(
            reference=email.reference,
            task_id=task_id,
            template_id=email.template_id,
            to=email.to,
            sent_to=email.sent_to,
            redirected=email.redirected,
            redirected_by=email.redirected_by,
            eager=eager,
        )

    def run(self, task_id: str, *, eager: bool = False) -> RunResult:
        """Run the queued email ``task_id`` once (a worker's task does; see
        :func:`~flask_dmmail.queued.runner.run_queued`)."""
        return run_queued(
            self._mailer.pipeline,
            self.ledger,
            task_id,
            queue_retries=self._mailer.settings.queue_retries,
            eager=eager,
        )

    def status(self, reference: str) -> list[QueuedStatus]:
        """Every queued email with ``reference`` (newest first); empty when this app
        queues nothing."""
        if not self.available:
            return []
        return self.ledger.for_reference(reference)

    def get(self, task_id: str) -> QueuedStatus | None:
        """The state of one queued email by task id."""
        return self.ledger.get(task_id) if self.available else None
