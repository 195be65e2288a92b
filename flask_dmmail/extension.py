"""The Flask extension: :class:`DMMail` registers a :class:`Mailer` on each app."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from os import PathLike
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from flask import Flask, current_app

from .announce import Announcer
from .attachments import Attachment
from .config import Settings
from .errors import ExtensionError, InvalidPersonalisationError
from .notify import (
    NotificationStatus,
    NotifyGateway,
    PreparedEmail,
    SentEmail,
    TemplatePreview,
)
from .pipeline import RetryHook, SendPipeline
from .queued.records import QueuedEmail, QueuedStatus
from .queued.sends import QueuedSends
from .references import AddressHasher
from .validation import check_personalisation, check_template_name, check_uuid

if TYPE_CHECKING:
    from celery import Celery

    from .bulk import BulkProgress, BulkReport, RecipientSource
    from .mailchimp import Audiences
    from .sandbox import Sandbox

__all__ = ["DMMail", "ExtensionError", "Mailer"]

logger = logging.getLogger("flask_dmmail")
EXTENSION_KEY = "dmmail"
_P = ParamSpec("_P")
_R = TypeVar("_R")


class Mailer:
    """Per-app state: settings, the Notify gateway, the send pipeline and its announcer, the
    sandbox in sandbox mode. Its methods are the library's API; a send's steps are
    :class:`~flask_dmmail.pipeline.SendPipeline`'s.

    Reach it as ``app.extensions["dmmail"]``; it is safe to share between threads.
    """

    def __init__(self, app: Flask, settings: Settings, celery: Celery | None = None) -> None:
        self.app = app
        self.settings = settings
        self.hasher = AddressHasher(settings.hash_key)
        self.sandbox: Sandbox | None = None
        api_key = settings.notify_key
        base_url = settings.notify_base_url
        if settings.sandbox:
            from .sandbox import Sandbox

            self.sandbox = Sandbox.start(seed=settings.sandbox_seed, auto_templates=True)
            api_key = self.sandbox.keys.test
            base_url = self.sandbox.url
            if app.debug or app.testing:
                logger.log(
                    logging.INFO if app.testing else logging.WARNING,
                    "flask-dmmail sandbox mode: emails go to a local Notify sandbox at %s; read "
                    "them at /_dmmail/ in this app",
                    base_url,
                )
            else:
                logger.error(
                    "flask-dmmail sandbox mode on the stage %r (DM_MAIL_SANDBOX = True in the "
                    "app's config, outside debug and testing): NO EMAIL IS SENT. Every email "
                    "goes to a local sandbox at %s and is dropped; its outbox at /_dmmail/ "
                    "answers only clients on this machine.",
                    settings.stage,
                    base_url,
                )
        elif app.debug:
            logger.warning(
                "flask-dmmail: this debug app sends through real GOV.UK Notify at %s with the "
                "key named %r (from the app's %s). Use a Notify test key on your machine.",
                base_url,
                settings.notify_key_name,
                settings.notify_key_source,
            )
        assert api_key is not None  # Settings refuses no key outside sandbox mode
        try:
            self.notify = NotifyGateway(api_key, base_url, settings.timeout)
            #: Logs and signals the outcome of every send
            #: (:class:`~flask_dmmail.announce.Announcer`).
            self.announce = Announcer(app)
            #: The send path from the checks to the outcome
            #: (:class:`~flask_dmmail.pipeline.SendPipeline`): bulk sends use it too.
            self.pipeline = SendPipeline(settings, self.hasher, self.notify, self.announce)
            #: Queued sends (:class:`~flask_dmmail.queued.QueuedSends`): ``send_later``, the
            #: workers' runs, and the state of each queued email.
            self.queue = QueuedSends(self, celery)
            self._mailchimp: Audiences | None = None
            if self.sandbox is not None:
                from .mailchimp import Audiences

                # The sandbox's Mailchimp side, with every configured audience already there.
                self._mailchimp = Audiences.from_mailer(self)
        except BaseException:
            self.close()  # no Mailer to stop it later: do not leave its sandbox serving
            raise

    def __repr__(self) -> str:
        mode = "sandbox" if self.sandbox is not None else "notify"
        return f"<Mailer app={self.app.name!r} mode={mode}>"

    # -- sending ---------------------------------------------------------------------------

    def send(
        self,
        to: str,
        template: str,
        personalisation: Mapping[str, Any] | None = None,
        *,
        reference: str | None = None,
        reply_to_id: str | None = None,
        one_click_unsubscribe_url: str | None = None,
        scheduled_for: datetime | str | None = None,
        allow_resend: bool = True,
        sanitise_content_for: Sequence[str] | None = None,
    ) -> SentEmail | None:
        """Send one email through Notify.

        Returns the :class:`~flask_dmmail.notify.SentEmail`, or None when ``allow_resend=False``
        found it already sent. Raises an :class:`~flask_dmmail.errors.InvalidInputError` before
        any network call for bad input (of any type), and a
        :class:`~flask_dmmail.errors.NotifyError` when Notify refuses. The steps are
        :class:`~flask_dmmail.pipeline.SendPipeline`'s (:attr:`pipeline`).

        :param to: the recipient's email address.
        :param template: a name from ``DM_NOTIFY_TEMPLATES`` or a template UUID.
        :param personalisation: the template's placeholders and their values (text, numbers,
            lists, or a file from :func:`~flask_dmmail.attachment`).
        :param reference: the email's reference; by default one derived from the address,
            template and personalisation, so the same email always gets the same one.
        :param reply_to_id: the id of one of the service's reply-to addresses.
        :param one_click_unsubscribe_url: an https URL for the email's unsubscribe header.
        :param scheduled_for: when to send it, within the next 24 hours (an aware datetime or
            an ISO 8601 string).
        :param allow_resend: False to skip the email (and return None) when it was already
            sent: an email of the same reference, address and template that Notify has not
            failed.
        :param sanitise_content_for: personalisation keys whose values Notify strips of URLs
            and markdown (added to those DM_NOTIFY_SANITISE names for the template).
        """
        return self.pipeline.send(
            to,
            template,
            personalisation,
            reference=reference,
            reply_to_id=reply_to_id,
            one_click_unsubscribe_url=one_click_unsubscribe_url,
            scheduled_for=scheduled_for,
            allow_resend=allow_resend,
            sanitise_content_for=sanitise_content_for,
        )

    def send_later(
        self,
        to: str,
        template: str,
        personalisation: Mapping[str, Any] | None = None,
        *,
        reference: str | None = None,
        reply_to_id: str | None = None,
        one_click_unsubscribe_url: str | None = None,
        scheduled_for: datetime | str | None = None,
        allow_resend: bool = True,
        sanitise_content_for: Sequence[str] | None = None,
    ) -> QueuedEmail:
        """Check one email now, queue it for a Celery worker, and return at once.

        The arguments and checks are those of :meth:`send`, run now: bad input raises its
        :class:`~flask_dmmail.errors.InvalidInputError` here and nothing is queued. A worker
        then sends it through the same path as :meth:`send` (reference, redirect, retries
        that look the reference up first, the log line and the signals, whose sender is the
        worker's app), exactly once even when a worker dies mid-send. Follow it with
        :meth:`queued` or ``flask dmmail status --reference``.

        Without a Celery app (``DMMail(app, celery=...)`` or ``DM_MAIL_CELERY_BROKER_URL``),
        in testing or sandbox mode, the email is sent at once, in this process; elsewhere
        that is a :class:`~flask_dmmail.errors.ConfigurationError`.

        :returns: the :class:`~flask_dmmail.queued.QueuedEmail`: reference, task id,
            template and where it goes (``sent_to``, ``redirected``).
        :raises ~flask_dmmail.errors.QueueError: the broker or Redis did not take it
            (nothing was queued).
        """
        return self.queue.send_later(
            to,
            template,
            personalisation,
            reference=reference,
            reply_to_id=reply_to_id,
            one_click_unsubscribe_url=one_click_unsubscribe_url,
            scheduled_for=scheduled_for,
            allow_resend=allow_resend,
            sanitise_content_for=sanitise_content_for,
        )

    def queued(self, reference: str) -> list[QueuedStatus]:
        """The state of every email queued with ``reference`` (newest first): queued,
        sending, retrying, sent, skipped, or failed for good (kept for inspection). Empty
        when none is known, or the app queues nothing.

        :param reference: the email's reference (the ``reference`` of the
            :class:`~flask_dmmail.queued.QueuedEmail` that ``send_later`` returned).
        """
        return self.queue.status(reference)

    @property
    def celery(self) -> Celery | None:
        """The Celery app emails are queued on (given to :class:`DMMail`, or made from
        ``DM_MAIL_CELERY_BROKER_URL``); None without one. A worker module exposes it::

            flask_app = create_app()
            celery_app = flask_app.extensions["dmmail"].celery
        """
        return self.queue.celery

    def prepare(
        self,
        to: str,
        template: str,
        personalisation: Mapping[str, Any] | None = None,
        *,
        reference: str | None = None,
        reply_to_id: str | None = None,
        one_click_unsubscribe_url: str | None = None,
        scheduled_for: datetime | str | None = None,
        sanitise_content_for: Sequence[str] | None = None,
    ) -> PreparedEmail:
        """Check one email and work out its reference and redirect, without sending it.

        The parameters are those of :meth:`send` (without ``allow_resend``); see
        :meth:`~flask_dmmail.pipeline.SendPipeline.prepare`.
        """
        return self.pipeline.prepare(
            to,
            template,
            personalisation,
            reference=reference,
            reply_to_id=reply_to_id,
            one_click_unsubscribe_url=one_click_unsubscribe_url,
            scheduled_for=scheduled_for,
            sanitise_content_for=sanitise_content_for,
        )

    def send_prepared(
        self,
        email: PreparedEmail,
        *,
        allow_resend: bool = True,
        on_retry: RetryHook | None = None,
    ) -> SentEmail | None:
        """Send an email made by :meth:`prepare` (the second half of :meth:`send`); see
        :meth:`~flask_dmmail.pipeline.SendPipeline.send_prepared`.

        :param email: the :class:`~flask_dmmail.notify.PreparedEmail` to send.
        :param allow_resend: as for :meth:`send`.
        :param on_retry: called as ``on_retry(error, attempt, delay)`` before each retry
            (bulk sends use it to slow down on a 429 and to pace retries).
        """
        return self.pipeline.send_prepared(email, allow_resend=allow_resend, on_retry=on_retry)

    def send_bulk(
        self,
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
        """Send ``template`` to every recipient exactly once at Notify's rate limit,
        resumable through ``journal``: see :func:`flask_dmmail.bulk.send_bulk`."""
        from .bulk import send_bulk

        return send_bulk(
            self,
            template,
            recipients,
            journal=journal,
            rate=rate,
            burst=burst,
            concurrency=concurrency,
            dry_run=dry_run,
            progress=progress,
            sanitise_content_for=sanitise_content_for,
            check_notify=check_notify,
            stop=stop,
            abandon=abandon,
            via=via,
            chunk_size=chunk_size,
        )

    # -- reading ---------------------------------------------------------------------------

    def preview(
        self, template: str, personalisation: Mapping[str, Any] | None = None
    ) -> TemplatePreview:
        """Notify's preview of ``template`` filled with ``personalisation``."""
        template_id = check_template_name(template, self.settings.templates)
        values = check_personalisation(personalisation)
        for key, value in values.items():
            if isinstance(value, Attachment):
                raise InvalidPersonalisationError(
                    f"The value of {key!r} is a file: Notify's preview cannot take one. "
                    "Preview with any text in its place."
                )
        return self.notify.preview(template_id, values)

    def get_notification(self, notification_id: str) -> NotificationStatus:
        """One notification by id (raises NotificationNotFoundError if Notify has none)."""
        return self.notify.get_notification(check_uuid(notification_id, "notification_id"))

    def notifications(
        self, *, reference: str | None = None, status: str | None = None
    ) -> Iterator[NotificationStatus]:
        """Every email notification of this key's type, newest first, walking every page."""
        return self.notify.notifications(reference=reference, status=status)

    @property
    def mailchimp(self) -> Audiences:
        """Mailchimp audiences and campaigns (:class:`~flask_dmmail.mailchimp.Audiences`).

        Raises ConfigurationError when DM_MAILCHIMP_API_KEY is not set outside sandbox mode.
        """
        if self._mailchimp is None:
            from .mailchimp import Audiences

            self._mailchimp = Audiences.from_mailer(self)
        return self._mailchimp

    def close(self) -> None:
        """Stop the embedded sandbox, if any."""
        if self.sandbox is not None:
            self.sandbox.stop()


def _on_current_app(
    method: Callable[Concatenate[Mailer, _P], _R],
) -> Callable[Concatenate[DMMail, _P], _R]:
    """``method`` of ``current_app``'s Mailer as a method of :class:`DMMail`, with the Mailer
    method's signature (for type checkers and :func:`inspect.signature`)."""

    def on_current_app(self: DMMail, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return method(self.mailer(), *args, **kwargs)

    functools.update_wrapper(on_current_app, method)
    on_current_app.__qualname__ = f"DMMail.{method.__name__}"
    on_current_app.__doc__ = f":meth:`Mailer.{method.__name__}` on ``current_app``'s Mailer."
    return on_current_app


class DMMail:
    """The extension object. ``DMMail(app)`` or ``dmmail = DMMail(); dmmail.init_app(app)``.

    It never stores an app: :meth:`send` and friends act on ``current_app``'s Mailer.

    :param app: the app to register on now (or call :meth:`init_app` later).
    :param celery: a Celery app of your own to queue emails on (``send_later``, bulk runs
        with ``via="celery"``); flask-dmmail registers its tasks on it. Without one, the
        extension makes one from ``DM_MAIL_CELERY_BROKER_URL`` when that is set.
    """

    def __init__(self, app: Flask | None = None, *, celery: Celery | None = None) -> None:
        self.celery = celery
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, celery: Celery | None = None) -> Mailer:
        """Read and check the app's config, build its Mailer, register the CLI, the
        sandbox outbox page and (when ``DM_NOTIFY_CALLBACK_TOKEN`` is set) the delivery
        receipts endpoint at ``/_dmmail/callbacks/notify``. Raises ConfigurationError naming
        any bad key.

        :param app: the Flask app.
        :param celery: a Celery app for this app's queued sends (default: the one given to
            :class:`DMMail`)."""
        if EXTENSION_KEY in app.extensions:
            raise ExtensionError(
                f"flask-dmmail is already registered on the app {app.name!r}; call init_app once "
                "per app."
            )
        settings = Settings.from_config(app.config, debug=app.debug, testing=app.testing)
        mailer = Mailer(app, settings, celery if celery is not None else self.celery)
        app.extensions[EXTENSION_KEY] = mailer
        if mailer.sandbox is not None:
            from .sandbox.outbox import outbox_blueprint

            app.register_blueprint(outbox_blueprint(mailer.sandbox.state), url_prefix="/_dmmail")
        if settings.callback_token is not None:
            from .webhooks import notify_callbacks_blueprint

            app.register_blueprint(notify_callbacks_blueprint())
        if settings.mailchimp_webhook_token is not None:
            from .webhooks import mailchimp_webhooks_blueprint

            app.register_blueprint(mailchimp_webhooks_blueprint())
        from .cli import dmmail_cli

        app.cli.add_command(dmmail_cli)
        return mailer

    @staticmethod
    def mailer(app: Flask | None = None) -> Mailer:
        """The Mailer of ``app`` (default: ``current_app``)."""
        target = app if app is not None else current_app
        try:
            mailer = target.extensions[EXTENSION_KEY]
        except RuntimeError:
            raise ExtensionError(
                "No Flask app context: use app.extensions['dmmail'] or push an app context."
            ) from None
        except KeyError:
            raise ExtensionError(
                "flask-dmmail is not registered on this app: call DMMail(app) or init_app(app)."
            ) from None
        assert isinstance(mailer, Mailer)
        return mailer

    send = _on_current_app(Mailer.send)
    send_later = _on_current_app(Mailer.send_later)
    prepare = _on_current_app(Mailer.prepare)

    @property
    def mailchimp(self) -> Audiences:
        """:attr:`Mailer.mailchimp` of ``current_app``'s Mailer."""
        return self.mailer().mailchimp
