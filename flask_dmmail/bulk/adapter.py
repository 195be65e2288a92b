"""Every use a bulk run makes of the :class:`~flask_dmmail.extension.Mailer`, in one place.

A bulk run sends each email through the same path as ``Mailer.send``: the same checks,
reference and redirect (``prepare``), the same retries, log lines and signals
(``send_prepared``), the same look-up by reference. :class:`MailerAdapter` is the run's
only door to that path; the rest of :mod:`flask_dmmail.bulk` never touches the Mailer, so
a change to how the Mailer sends changes this module alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import signals
from ..errors import DMMailError, NotifyError
from ..notify import NotificationStatus, PreparedEmail, SentEmail, TemplatePreview
from ..validation import check_template_name

if TYPE_CHECKING:
    from flask.ctx import AppContext

    from ..budget import SharedBudget
    from ..extension import Mailer
    from ..references import AddressHasher
    from .report import BulkReport
    from .sources import Recipient, RecipientSource

__all__ = ["MailerAdapter"]


class MailerAdapter:
    """The Mailer as a bulk run sees it.

    :param mailer: the :class:`~flask_dmmail.extension.Mailer` of the app that sends.
    """

    def __init__(self, mailer: Mailer) -> None:
        self._mailer = mailer
        self._pipeline = mailer.pipeline

    # -- settings --

    @property
    def hasher(self) -> AddressHasher:
        """The app's keyed address hasher (``DM_MAIL_HASH_KEY``)."""
        return self._mailer.hasher

    @property
    def bulk_rate(self) -> float:
        """The default rate, in requests a minute (``DM_NOTIFY_BULK_RATE``)."""
        return self._mailer.settings.bulk_rate

    @property
    def timeout(self) -> float:
        """Seconds one request to Notify may take (``DM_NOTIFY_TIMEOUT``)."""
        return self._mailer.settings.timeout

    @property
    def retries(self) -> int:
        """How often a transient Notify error is retried (``DM_NOTIFY_RETRIES``)."""
        return self._mailer.settings.retries

    @property
    def retry_backoff(self) -> float:
        """The first retry's delay in seconds (``DM_NOTIFY_RETRY_BACKOFF``)."""
        return self._mailer.settings.retry_backoff

    @property
    def budget(self) -> SharedBudget | None:
        """The Notify budget shared through Redis (``DM_MAIL_REDIS_URL``), or None."""
        return self._mailer.budget

    def template_id(self, template: str) -> str:
        """The id of ``template`` (a name from ``DM_NOTIFY_TEMPLATES`` or an id)."""
        return check_template_name(template, self._mailer.settings.templates)

    def app_context(self) -> AppContext:
        """An application context of the app, for a sender thread."""
        return self._mailer.app.app_context()

    def preview(self, template_id: str, personalisation: Mapping[str, Any]) -> TemplatePreview:
        """Notify's preview of the template filled with ``personalisation``."""
        return self._mailer.preview(template_id, personalisation)

    # -- the send path --

    def recipients(self, source: RecipientSource) -> Iterator[Recipient]:
        """Every recipient of ``source``, which reads them with the Mailer's help."""
        return source.recipients(self._mailer)

    def prepare(
        self, recipient: Recipient, template_id: str, sanitise: Sequence[str]
    ) -> PreparedEmail:
        """Check one recipient's email and work out its reference and redirect."""
        return self._pipeline.prepare(
            recipient.to,
            template_id,
            recipient.personalisation,
            sanitise_content_for=sanitise or None,
        )

    def send(
        self, email: PreparedEmail, on_retry: Callable[[NotifyError, int, float], None]
    ) -> SentEmail:
        """Post a prepared email with the send path's retries, log lines and signals (the
        run's limiter takes the tokens)."""
        return self._pipeline.deliver(email, on_retry=on_retry, paced=True)

    def find(self, reference: str) -> NotificationStatus | None:
        """Notify's notification with this reference, whatever its status (one request)."""
        return self._pipeline.find_reference(reference)

    # -- announcing outcomes (log lines and signals, as the send path does) --

    def recovered(self, email: PreparedEmail, found: NotificationStatus) -> SentEmail:
        """An email this run posted and Notify stored although the send failed (the
        send path's last lookup failed too): logged and signalled as the send path does."""
        return self._pipeline.recovered(email, found)

    def skipped(self, email: PreparedEmail) -> None:
        """An email skipped because it was already sent."""
        self._pipeline.announce.skipped(email)

    def failed(self, error: DMMailError) -> None:
        """A recipient refused before anything was sent."""
        self._pipeline.announce.failed(error, None, attempt=0)

    def finished(self, report: BulkReport) -> None:
        """The run ended: the ``bulk_finished`` signal."""
        signals.bulk_finished.send(self._mailer.app, report=report)
