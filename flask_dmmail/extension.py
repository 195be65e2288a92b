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
from werkzeug.serving import is_running_from_reloader

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

    from .budget import SharedBudget
    from .bulk import BulkProgress, BulkReport, RecipientSource
    from .embedded import EmbeddedSandbox, RemoteSandbox
    from .mailchimp import Audiences
    from .sandbox import Sandbox, SandboxState

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
        #: Logs and signals the outcome of every send
        #: (:class:`~flask_dmmail.announce.Announcer`).
        self.announce = Announcer(app)
        #: Queued sends (:class:`~flask_dmmail.queued.QueuedSends`): ``send_later``, the
        #: workers' runs, and the state of each queued email.
        self.queue = QueuedSends(self, celery)
        self._mailchimp: Audiences | None = None
        self._pipeline: SendPipeline | None = None
        self._embedded: EmbeddedSandbox | None = None
        self._connect_lock = threading.Lock()
        self._connected_to: object = None  # the sandbox the pipeline and Mailchimp use
        self._mailchimp_for: object = None
        #: The Notify budget shared by every process through Redis
        #: (:class:`~flask_dmmail.budget.SharedBudget`), or None without DM_MAIL_REDIS_URL.
        self.budget: SharedBudget | None = None
        if settings.sandbox:
            from .embedded import EmbeddedSandbox, check_audiences

            check_audiences(settings)
            # Nothing starts here: the sandbox starts (or is found) on first use.
            self._embedded = EmbeddedSandbox(app, settings)
            if not (app.debug or app.testing):
                logger.error(
                    "flask-dmmail sandbox mode on the stage %r (DM_MAIL_SANDBOX = True in the "
                    "app's config, outside debug and testing): NO EMAIL IS SENT. Every email "
                    "goes to a local sandbox and is dropped; its outbox at /_dmmail/ answers "
                    "only clients on this machine.",
                    settings.stage,
                )
            return
        if app.debug and not is_running_from_reloader():
            # Once: the reloader's watcher process has said it before starting this one.
            logger.warning(
                "flask-dmmail: this debug app sends through real GOV.UK Notify at %s with the "
                "key named %r (from the app's %s). Use a Notify test key on your machine.",
                settings.notify_base_url,
                settings.notify_key_name,
                settings.notify_key_source,
            )
        assert settings.notify_key is not None  # Settings refuses no key outside sandbox mode
        gateway = NotifyGateway(settings.notify_key, settings.notify_base_url, settings.timeout)
        self._pipeline = SendPipeline(
            settings, self.hasher, gateway, self.announce, self._shared_budget(settings.notify_key)
        )

    def __repr__(self) -> str:
        mode = "sandbox" if self._embedded is not None else "notify"
        return f"<Mailer app={self.app.name!r} mode={mode}>"

    @property
    def sandbox(self) -> Sandbox | RemoteSandbox | None:
        """The app's sandbox in sandbox mode (None otherwise), started or found on first use:
        a :class:`~flask_dmmail.sandbox.Sandbox` running in this process, or a
        :class:`~flask_dmmail.embedded.RemoteSandbox` that another process of the app runs
        (see :mod:`flask_dmmail.embedded`)."""
        return self._embedded.get() if self._embedded is not None else None

    @property
    def pipeline(self) -> SendPipeline:
        """The send path from the checks to the outcome
        (:class:`~flask_dmmail.pipeline.SendPipeline`): bulk sends use it too. In sandbox
        mode, getting it starts (or finds) the sandbox."""
        if self._embedded is None:
            assert self._pipeline is not None
            return self._pipeline
        sandbox = self._embedded.get()
        pipeline = self._pipeline
        if pipeline is None or self._connected_to is not sandbox:
            with self._connect_lock:
                pipeline = self._pipeline
                if pipeline is None or self._connected_to is not sandbox:
                    gateway = NotifyGateway(sandbox.keys.test, sandbox.url, self.settings.timeout)
                    if pipeline is None:
                        budget = self._shared_budget(sandbox.keys.test)
                        pipeline = SendPipeline(
                            self.settings, self.hasher, gateway, self.announce, budget
                        )
                        self._pipeline = pipeline
                    else:  # the sandbox was started again, or another process runs it now
                        pipeline.gateway = gateway
                    self._connected_to = sandbox
        return pipeline

    def _shared_budget(self, api_key: str) -> SharedBudget | None:
        """The shared Notify budget of the key's service (DM_MAIL_REDIS_URL), made once."""
        if self.settings.redis_url is None:
            return None
        if self.budget is None:
            from .budget import SharedBudget, service_id_of

            self.budget = SharedBudget.from_url(
                self.settings.redis_url,
                service_id=service_id_of(api_key),
                key_type=self.settings.notify_key_type,
                rate_per_minute=self.settings.rate_limit,
                bulk_share=self.settings.bulk_share,
                required=self.settings.redis_required,
            )
        return self.budget

    @property
    def notify(self) -> NotifyGateway:
        """The Notify gateway (:class:`~flask_dmmail.notify.NotifyGateway`) sends go through."""
        return self.pipeline.gateway

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
        :param reply_to_id: a name from ``DM_NOTIFY_REPLY_TO_IDS``, or the id of one of the
            service's reply-to addresses.
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
        audiences = self._mailchimp
        sandbox = self.sandbox
        if audiences is None or self._mailchimp_for is not sandbox:
            from .mailchimp import Audiences

            audiences = self._mailchimp = Audiences.from_mailer(self)
            self._mailchimp_for = sandbox
        return audiences

    def sandbox_state(self) -> SandboxState:
        """The state of the app's sandbox (started or found now), for the outbox page; raises
        ExtensionError outside sandbox mode."""
        sandbox = self.sandbox
        if sandbox is None:
            raise ExtensionError("This app is not in sandbox mode: it has no sandbox.")
        return sandbox.state

    def close(self) -> None:
        """Let go of the embedded sandbox, if any (it stops when no other app of this process
        uses it, as it does when the app is garbage-collected, or at exit), and close the
        connections to Redis."""
        if self.budget is not None:
            self.budget.close()
        if self._embedded is not None:
            self._embedded.release()


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

    It never stores an app: :meth:`send`, :meth:`send_later`, :meth:`prepare`,
    :meth:`send_bulk`, :meth:`preview`, :meth:`get_notification`, :meth:`notifications` and
    :attr:`mailchimp` act on
    ``current_app``'s Mailer, with the Mailer's signatures; :meth:`mailer` returns it.

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
        if settings.sandbox:
            from .embedded import OutboxOnFirstRequest

            # The outbox pages at /_dmmail/ are registered just before the app's first request:
            # compiling their URL rules would triple the cost of creating an app.
            app.wsgi_app = OutboxOnFirstRequest(app, mailer.sandbox_state)  # type: ignore[method-assign]
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
    send_bulk = _on_current_app(Mailer.send_bulk)
    preview = _on_current_app(Mailer.preview)
    get_notification = _on_current_app(Mailer.get_notification)
    notifications = _on_current_app(Mailer.notifications)

    @property
    def mailchimp(self) -> Audiences:
        """:attr:`Mailer.mailchimp` of ``current_app``'s Mailer."""
        return self.mailer().mailchimp
