"""What the send path tells the app: one log line and one blinker signal per outcome.

:class:`Announcer` is the only writer of the send path's log lines (logger ``flask_dmmail``,
addresses only as keyed hashes in the record's fields) and of the ``email_sent``,
``email_skipped`` and ``email_failed`` signals (sender: the app). The send pipeline
(:class:`~flask_dmmail.pipeline.SendPipeline`) calls it; nothing here decides anything.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from . import signals
from .errors import DMMailError, NotifyError
from .notify import PreparedEmail, SentEmail

__all__ = ["Announcer", "log_fields"]

logger = logging.getLogger("flask_dmmail")


def log_fields(email: PreparedEmail, **extra: Any) -> dict[str, Any]:
    """The fields of a log record about ``email`` (no address: its keyed hash), plus ``extra``."""
    fields: dict[str, Any] = {
        "reference": email.reference,
        "template_id": email.template_id,
        "to_hash": email.to_hash,
        "redirected": email.redirected,
        "redirected_by": email.redirected_by,
    }
    fields.update(extra)
    return fields


class Announcer:
    """Logs and signals each outcome of a send for one app.

    :param app: the Flask app, the sender of every signal.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app

    def __repr__(self) -> str:
        return f"<Announcer app={self.app.name!r}>"

    def sent(
        self,
        email: PreparedEmail,
        sent: SentEmail,
        *,
        attempt: int | None,
        duration_ms: float | None,
        recovered: bool,
    ) -> None:
        """Notify has ``email`` (posted now, or found stored after a failed attempt).

        :param email: the email as prepared.
        :param sent: what Notify holds (:class:`~flask_dmmail.notify.SentEmail`).
        :param attempt: the attempt that got it through (None when not known).
        :param duration_ms: how long the send took (None when not known).
        :param recovered: True when it was found already stored, not posted now.
        """
        logger.info(
            "Email sent to Notify: notification %s, reference %s%s",
            sent.id,
            sent.reference,
            " (found already stored after a failed attempt)" if recovered else "",
            extra=log_fields(
                email,
                attempt=attempt,
                notification_id=sent.id,
                duration_ms=duration_ms,
                recovered=recovered,
            ),
        )
        signals.email_sent.send(self.app, email=sent)

    def skipped(self, email: PreparedEmail) -> None:
        """``email`` was not sent because it had been already (``allow_resend=False``).

        :param email: the email as prepared.
        """
        logger.info(
            "Email with reference %s has already been sent; skipped",
            email.reference,
            extra=log_fields(email),
        )
        signals.email_skipped.send(
            self.app,
            reference=email.reference,
            template_id=email.template_id,
            to_hash=email.to_hash,
        )

    def failed(self, error: DMMailError, email: PreparedEmail | None, *, attempt: int) -> None:
        """An email was not sent.

        :param error: why (a :class:`~flask_dmmail.errors.DMMailError`).
        :param email: the email as prepared, or None when its checks refused it.
        :param attempt: how many attempts were made (0: none).
        """
        fields: dict[str, Any] = log_fields(email) if email is not None else {}
        fields.update(error=type(error).__name__, attempt=attempt)
        fields["status_code"] = getattr(error, "status_code", None)
        logger.error("Email not sent: %s", error.message, extra=fields)
        signals.email_failed.send(
            self.app,
            error=error,
            template_id=email.template_id if email else None,
            reference=email.reference if email else None,
            to_hash=email.to_hash if email else None,
        )

    def retrying(
        self, error: NotifyError, email: PreparedEmail, *, attempt: int, delay: float
    ) -> None:
        """An attempt to post ``email`` failed and will be retried (a log line, no signal).

        :param error: the attempt's :class:`~flask_dmmail.errors.NotifyError`.
        :param email: the email as prepared.
        :param attempt: the attempt that failed (1 for the first).
        :param delay: seconds until the next attempt.
        """
        logger.warning(
            "Notify send failed with %s; retrying in %.0f ms",
            type(error).__name__,
            delay * 1000,
            extra=log_fields(email, attempt=attempt, error=type(error).__name__),
        )
