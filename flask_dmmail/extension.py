"""The Flask extension: :class:`DMMail` registers a :class:`Mailer` on each app."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from . import signals
from .attachments import Attachment
from .config import Settings
from .errors import DMMailError, ExtensionError, InvalidPersonalisationError, NotifyError
from .notify import (
    NotificationStatus,
    NotifyGateway,
    PreparedEmail,
    SendOutcome,
    SentEmail,
    TemplatePreview,
    post_with_retries,
    prepare,
)
from .references import AddressHasher, SentReferences
from .validation import check_personalisation, check_template_name, check_uuid

if TYPE_CHECKING:
    from .bulk import BulkProgress, BulkReport, RecipientSource
    from .mailchimp import Audiences
    from .sandbox import Sandbox

__all__ = ["DMMail", "ExtensionError", "Mailer"]

logger = logging.getLogger("flask_dmmail")
EXTENSION_KEY = "dmmail"


def _sent_key(email: PreparedEmail) -> str:
    """What makes one email for allow_resend=False: its reference, recipient and template."""
    return f"{email.reference}\n{email.to_hash}\n{email.template_id}"


class Mailer:
    """Per-app state: settings, the Notify gateway, the sandbox in sandbox mode.

    Reach it as ``app.extensions["dmmail"]``; it is safe to share between threads.
    """

    def __init__(self, app: Flask, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.hasher = AddressHasher(settings.hash_key)
        self.sent_references = SentReferences()
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

    def prepare(
        self,
        to: object,
        template: object,
        personalisation: object = None,
        *,
        reference: object = None,
        reply_to_id: object = None,
        one_click_unsubscribe_url: object = None,
        scheduled_for: object = None,
        sanitise_content_for: object = None,
    ) -> PreparedEmail:
        """Check one email and work out its reference and redirect, without sending it."""
        return prepare(
            self.settings,
            self.hasher,
            to,
            template,
            personalisation,
            reference=reference,
            reply_to_id=reply_to_id,
            one_click_unsubscribe_url=one_click_unsubscribe_url,
            scheduled_for=scheduled_for,
            sanitise_content_for=sanitise_content_for,
        )

    def send(
        self,
        to: str,
        template: str,
        personalisation: Mapping[str, Any] | None = None,
        *,
        reference: str | None = None,
        reply_to_id: str | None = None,
        one_click_unsubscribe_url: str | None = None,
        scheduled_for: Any = None,
        allow_resend: bool = True,
        sanitise_content_for: Sequence[str] | None = None,
    ) -> SentEmail | None:
        """Send one email through Notify.

        ``template`` is a name from ``DM_NOTIFY_TEMPLATES`` or a template UUID. Returns the
        :class:`SentEmail`, or None when ``allow_resend=False`` found it already sent (an
        email of the same reference, address and template that Notify has not failed).
        ``sanitise_content_for`` lists personalisation keys whose values Notify strips of
        URLs and markdown (added to those DM_NOTIFY_SANITISE names for the template).
        Raises an :class:`~flask_dmmail.errors.InvalidInputError` before any network call
        for bad input, and a :class:`~flask_dmmail.errors.NotifyError` when Notify refuses.
        """
        try:
            email = self.prepare(
                to,
                template,
                personalisation,
                reference=reference,
                reply_to_id=reply_to_id,
                one_click_unsubscribe_url=one_click_unsubscribe_url,
                scheduled_for=scheduled_for,
                sanitise_content_for=sanitise_content_for,
            )
        except DMMailError as error:
            self._failed(error, None, attempt=0)
            raise
        return self.send_prepared(email, allow_resend=allow_resend)

    def send_prepared(
        self,
        email: PreparedEmail,
        *,
        allow_resend: bool = True,
        on_retry: Callable[[NotifyError, int, float], None] | None = None,
    ) -> SentEmail | None:
        """Send an email made by :meth:`prepare` (the second half of :meth:`send`).

        ``on_retry(error, attempt, delay)`` is called before each retry (bulk sends use it
        to slow down on a 429 and to pace retries)."""
        if allow_resend:
            return self._deliver(email, on_retry)
        key = _sent_key(email)
        with self.sent_references.claim(key):
            if self._already_sent(email, key):
                self._skipped(email)
                return None
            return self._deliver(email, on_retry)

    def _already_sent(self, email: PreparedEmail, key: str) -> bool:
        """True when this process sent the email, or Notify has a notification of its
        reference, address and template that has not failed. (A reference alone is not
        enough: Notify lets a whole batch share one.)"""
        if key in self.sent_references:
            return True
        try:
            found = self.notify.find_reference(email.reference, include_failed=False, email=email)
        except NotifyError as error:
            self._failed(error, email, attempt=0)
            raise
        if found is not None:
            self.sent_references.add(key)
            return True
        return False

    def _deliver(
        self,
        email: PreparedEmail,
        hook: Callable[[NotifyError, int, float], None] | None = None,
    ) -> SentEmail:
        started = time.perf_counter()

        def on_retry(error: NotifyError, attempt: int, delay: float) -> None:
            logger.warning(
                "Notify send failed with %s; retrying in %.0f ms",
                type(error).__name__,
                delay * 1000,
                extra=self._fields(email, attempt=attempt, error=type(error).__name__),
            )
            if hook is not None:
                hook(error, attempt, delay)

        try:
            outcome: SendOutcome = post_with_retries(
                self.notify,
                email,
                retries=self.settings.retries,
                backoff=self.settings.retry_backoff,
                on_retry=on_retry,
            )
        except NotifyError as error:
            self._failed(error, email, attempt=error.attempts)
            raise
        self._sent(
            email,
            outcome.email,
            attempt=outcome.attempts,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            recovered=outcome.recovered,
        )
        return outcome.email

    def _sent(
        self,
        email: PreparedEmail,
        sent: SentEmail,
        *,
        attempt: int | None,
        duration_ms: float | None,
        recovered: bool,
    ) -> None:
        """Remember, log and signal an email Notify has (posted now, or found stored)."""
        self.sent_references.add(_sent_key(email))
        logger.info(
            "Email sent to Notify: notification %s, reference %s%s",
            sent.id,
            sent.reference,
            " (found already stored after a failed attempt)" if recovered else "",
            extra=self._fields(
                email,
                attempt=attempt,
                notification_id=sent.id,
                duration_ms=duration_ms,
                recovered=recovered,
            ),
        )
        signals.email_sent.send(self.app, email=sent)

    def _fields(self, email: PreparedEmail, **extra: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "reference": email.reference,
            "template_id": email.template_id,
            "to_hash": email.to_hash,
            "redirected": email.redirected,
            "redirected_by": email.redirected_by,
        }
        fields.update(extra)
        return fields

    def _skipped(self, email: PreparedEmail) -> None:
        logger.info(
            "Email with reference %s has already been sent; skipped",
            email.reference,
            extra=self._fields(email),
        )
        signals.email_skipped.send(
            self.app,
            reference=email.reference,
            template_id=email.template_id,
            to_hash=email.to_hash,
        )

    def _failed(self, error: DMMailError, email: PreparedEmail | None, *, attempt: int) -> None:
        fields: dict[str, Any] = self._fields(email) if email is not None else {}
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


class DMMail:
    """The extension object. ``DMMail(app)`` or ``dmmail = DMMail(); dmmail.init_app(app)``.

    It never stores an app: :meth:`send` and friends act on ``current_app``'s Mailer.
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> Mailer:
        """Read and check the app's config, build its Mailer, register the CLI, the
        sandbox outbox page and (when ``DM_NOTIFY_CALLBACK_TOKEN`` is set) the delivery
        receipts endpoint at ``/_dmmail/callbacks/notify``. Raises ConfigurationError naming
        any bad key."""
        if EXTENSION_KEY in app.extensions:
            raise ExtensionError(
                f"flask-dmmail is already registered on the app {app.name!r}; call init_app once "
                "per app."
            )
        settings = Settings.from_config(app.config, debug=app.debug, testing=app.testing)
        mailer = Mailer(app, settings)
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

    def send(self, *args: Any, **kwargs: Any) -> SentEmail | None:
        """:meth:`Mailer.send` on ``current_app``'s Mailer."""
        return self.mailer().send(*args, **kwargs)

    @property
    def mailchimp(self) -> Audiences:
        """:attr:`Mailer.mailchimp` of ``current_app``'s Mailer."""
        return self.mailer().mailchimp
