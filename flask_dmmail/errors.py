"""The exception hierarchy: every error flask-dmmail raises, in one place.

Every error is a :class:`DMMailError`. Its message says what to do next and never carries an
API key, an email address or a personalisation value. The errors of the services share one
base, :class:`ServiceError`, with the same attributes whichever service answered: ``service``
(``"notify"``, ``"mailchimp"``, or ``"redis"`` for the shared Notify budget), ``status_code``
(the HTTP status), ``transient`` and ``retry_after``. ``transient`` is true exactly for the
errors flask-dmmail retries itself (``DM_NOTIFY_RETRIES``, ``DM_MAILCHIMP_RETRIES``; a bulk run
puts them back in its queue); when one is raised the retries ran out, and trying again later
may work. Callers branch on types and attributes, not on message text.

Names: an error of one service's HTTP answer carries the service's prefix
(``NotifyAuthError``, ``MailchimpAuthError``); an error named after the service's own thing
does not (``TemplateNotFoundError``, ``MemberExistsError``). ``RateLimitError`` and
``DailyLimitError`` keep Notify's names for its two 429s (``RateLimitError``,
``TooManyRequestsError``).

::

    DMMailError                       .message, .transient
    ├── ConfigurationError            a config key is missing or wrong (.key names it)
    ├── ExtensionError                DMMail used the wrong way round (also a RuntimeError)
    ├── TemplatesFileError            the pulled templates file cannot be read or written
    ├── InvalidInputError             refused before any network call (also a ValueError)
    │   ├── InvalidEmailAddressError
    │   ├── UnknownTemplateError
    │   ├── InvalidPersonalisationError
    │   ├── InvalidAttachmentError
    │   ├── InvalidOptionError        reference, reply_to_id, scheduled_for, ...
    │   ├── RecipientNotAllowedOnStageError  the stage guard refused the recipient
    │   ├── UnknownAudienceError      neither a DM_MAILCHIMP_AUDIENCES name nor a list id
    │   ├── UnlistedAudienceError     outside production, an audience the config does not list
    │   └── InvalidReceiptError       a delivery receipt without Notify's shape (webhooks)
    ├── ServiceError                  .service, .status_code, .transient, .retry_after
    │   ├── NotifyError               Notify answered with an error (or did not answer);
    │   │   │                         .error_class, .attempts
    │   │   ├── NotifyValidationError     400 ValidationError
    │   │   ├── NotifyBadRequestError     400 BadRequestError
    │   │   │   ├── TemplateNotFoundError (also the 404 of a template GET)
    │   │   │   ├── MissingPersonalisationError  .missing lists the names
    │   │   │   └── RecipientNotAllowedError     team-only key / trial mode
    │   │   ├── NotifyAuthError           401/403 AuthError
    │   │   │   ├── ClockSkewError
    │   │   │   ├── ApiKeyNotFoundError
    │   │   │   └── ApiKeyRevokedError
    │   │   ├── NotifyForbiddenError      403 BadRequestError
    │   │   ├── NotificationNotFoundError 404
    │   │   ├── RateLimitError            429 RateLimitError        (transient)
    │   │   ├── DailyLimitError           429 TooManyRequestsError  (.retry_after: to midnight UTC)
    │   │   ├── NotifyUnavailableError    5xx, timeout, connection  (transient)
    │   │   └── NotifyProtocolError       a 2xx body that is not JSON (or has no id)
    │   ├── MailchimpError            Mailchimp answered with an error (or did not answer);
    │   │   │                         .title, .detail, .errors (.status is .status_code)
    │   │   ├── MailchimpAuthError        401; 403 User Disabled / Wrong Datacenter
    │   │   ├── MailchimpForbiddenError   other 403s (e.g. the plan's audience limit)
    │   │   ├── MailchimpNotFoundError    404: no such audience, member or campaign
    │   │   ├── MailchimpBadRequestError  other 4xx (400 Bad Request, 405, ...)
    │   │   │   ├── MemberExistsError         400 Member Exists
    │   │   │   ├── MemberComplianceError     400 Member In Compliance State
    │   │   │   ├── ForgottenMemberError      400 Forgotten Email Not Subscribed
    │   │   │   └── MailchimpValidationError  400 Invalid Resource (.errors)
    │   │   │       └── InvalidMemberAddressError  "looks fake or invalid", bad syntax
    │   │   ├── MailchimpRateLimitError   429: 10 connections per key (transient)
    │   │   ├── MailchimpUnavailableError 5xx, timeout, no connection (transient)
    │   │   ├── MailchimpProtocolError    an answer that is not what the API documents
    │   │   └── CampaignError             send_campaign failed at .step (transient as its cause)
    │   └── RedisUnavailableError     the shared Notify budget's Redis did not answer (transient)
    ├── QueueError                    a queued send could not be queued, or its state read
    └── BulkError                     a bulk send could not start or did not finish (.report)
        ├── JournalError              the journal is another run's, in use, or unreadable
        ├── RecipientsError           the recipients cannot be read (CSV, audience)
        ├── BulkInterruptedError      stopped (stop event, Ctrl-C); resume with the journal
        └── BulkAbortedError          stopped because every other email would fail too
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .bulk import BulkReport

__all__ = [
    "ApiKeyNotFoundError",
    "ApiKeyRevokedError",
    "BulkAbortedError",
    "BulkError",
    "BulkInterruptedError",
    "CampaignError",
    "ClockSkewError",
    "ConfigurationError",
    "DMMailError",
    "DailyLimitError",
    "ExtensionError",
    "ForgottenMemberError",
    "InvalidAttachmentError",
    "InvalidEmailAddressError",
    "InvalidInputError",
    "InvalidMemberAddressError",
    "InvalidOptionError",
    "InvalidPersonalisationError",
    "InvalidReceiptError",
    "JournalError",
    "MailchimpAuthError",
    "MailchimpBadRequestError",
    "MailchimpError",
    "MailchimpForbiddenError",
    "MailchimpNotFoundError",
    "MailchimpProtocolError",
    "MailchimpRateLimitError",
    "MailchimpUnavailableError",
    "MailchimpValidationError",
    "MemberComplianceError",
    "MemberExistsError",
    "MissingPersonalisationError",
    "NotificationNotFoundError",
    "NotifyAuthError",
    "NotifyBadRequestError",
    "NotifyError",
    "NotifyForbiddenError",
    "NotifyProtocolError",
    "NotifyUnavailableError",
    "NotifyValidationError",
    "QueueError",
    "RateLimitError",
    "RecipientNotAllowedError",
    "RecipientNotAllowedOnStageError",
    "RecipientsError",
    "RedisUnavailableError",
    "ServiceError",
    "TemplateNotFoundError",
    "TemplatesFileError",
    "UnknownAudienceError",
    "UnknownTemplateError",
    "UnlistedAudienceError",
]


class DMMailError(Exception):
    """The root of every error raised by flask-dmmail.

    :param message: what went wrong and what to do about it (kept as ``message``).

    ``transient`` is true when flask-dmmail retried the error itself and trying again later
    may work (see :class:`ServiceError`); it is false for every other error.
    """

    transient: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigurationError(DMMailError):
    """A config key is missing or has a wrong value.

    :param key: the config key (kept as ``key``); the message starts with it.
    :param message: what is wrong with it and how to fix it.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class ExtensionError(DMMailError, RuntimeError):
    """The extension is used the wrong way round (registered twice, not registered, no app)."""


class TemplatesFileError(DMMailError):
    """The templates file ``flask dmmail templates pull`` writes (``notify_templates.json``)
    cannot be read or written, or is not in its shape; the message names the file."""


class InvalidInputError(DMMailError, ValueError):
    """The call's arguments were refused before anything was sent."""


class InvalidEmailAddressError(InvalidInputError):
    """The recipient is not an address Notify would accept."""


class UnknownTemplateError(InvalidInputError):
    """The template is neither a name in DM_NOTIFY_TEMPLATES nor a UUID."""


class InvalidPersonalisationError(InvalidInputError):
    """The personalisation is not a mapping of names to sendable values."""


class InvalidAttachmentError(InvalidInputError):
    """A file attachment breaks one of Notify's file rules (size, name, options)."""


class InvalidOptionError(InvalidInputError):
    """An option of the send (reference, reply_to_id, scheduled_for, ...) is wrong."""


class RecipientNotAllowedOnStageError(InvalidInputError):
    """Outside production, the recipient is not in DM_NOTIFY_ALLOWED_RECIPIENTS and the app
    asked the stage guard to refuse such addresses (DM_NOTIFY_STAGE_GUARD = "refuse")."""


class UnknownAudienceError(InvalidInputError):
    """The audience is neither a name in DM_MAILCHIMP_AUDIENCES nor a Mailchimp list id."""


class UnlistedAudienceError(InvalidInputError):
    """Refused before any network call: outside production (DM_ENVIRONMENT) only the audiences
    in this environment's DM_MAILCHIMP_AUDIENCES may be used (read, written, mailed, forgotten),
    and no audience is created."""


class InvalidReceiptError(InvalidInputError):
    """A delivery receipt body that does not have Notify's shape
    (:func:`~flask_dmmail.webhooks.parse_delivery_receipt`). The message names the field and
    never repeats its value. ``flask_dmmail.webhooks.InvalidReceipt`` is the same class."""


class ServiceError(DMMailError):
    """Notify or Mailchimp refused the request, or could not be reached.

    :param message: what the service said, without any address or secret, and what to do.
    :param status_code: the HTTP status of the answer (kept as ``status_code``); None when
        there was no answer (Notify's client reports that as 503).
    :param retry_after: seconds after which trying again may work, when the service says so
        (kept as ``retry_after``; None when it is not known).

    ``service`` is ``"notify"``, ``"mailchimp"`` or ``"redis"``. ``transient`` is true exactly
    for the errors flask-dmmail retries (rate limits, the service unavailable or not
    answering): when one is raised, the retries ran out. The CLI exits 75 for them.
    """

    service: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class NotifyError(ServiceError):
    """Notify refused the request, or could not be reached.

    :param message: what Notify said, without any address or secret, and what to do.
    :param status_code: the HTTP status (503 when there was no response, as the Notify
        client reports it).
    :param error_class: Notify's error class (``"BadRequestError"``, ``"AuthError"``, ...)
        when it gave one (kept as ``error_class``).
    :param retry_after: as for :class:`ServiceError`.
    """

    service: ClassVar[str] = "notify"
    #: How many times the request was sent before this error was raised.
    attempts: int = 1

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_class: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, retry_after=retry_after)
        self.error_class = error_class


class NotifyValidationError(NotifyError):
    """Notify's schema validation refused the request (400 ValidationError)."""


class NotifyBadRequestError(NotifyError):
    """Notify refused the request (400 BadRequestError)."""


class TemplateNotFoundError(NotifyBadRequestError):
    """The template does not exist in the Notify service of this API key."""


class MissingPersonalisationError(NotifyBadRequestError):
    """The template has placeholders the personalisation does not fill.

    :param missing: the placeholder names, as Notify spells them (kept as ``missing``).

    The other parameters are :class:`NotifyError`'s.
    """

    def __init__(
        self,
        message: str,
        *,
        missing: Sequence[str] = (),
        status_code: int | None = 400,
        error_class: str | None = "BadRequestError",
    ) -> None:
        super().__init__(message, status_code=status_code, error_class=error_class)
        self.missing = tuple(missing)


class RecipientNotAllowedError(NotifyBadRequestError):
    """The key (team-only) or the service (trial mode) may not send to this recipient."""


class NotifyAuthError(NotifyError):
    """Notify did not accept the API key (401/403 AuthError)."""


class ClockSkewError(NotifyAuthError):
    """This machine's clock is more than 30 seconds away from Notify's."""


class ApiKeyNotFoundError(NotifyAuthError):
    """The API key does not belong to the service it names."""


class ApiKeyRevokedError(NotifyAuthError):
    """The API key has been revoked in Notify."""


class NotifyForbiddenError(NotifyError):
    """The service is not allowed to do this (403 BadRequestError)."""


class NotificationNotFoundError(NotifyError):
    """No notification (or route) with that id (404)."""


class RateLimitError(NotifyError):
    """Notify's per-minute rate limit for this key type was exceeded (429)."""

    transient = True


def _seconds_to_midnight_utc(now: datetime | None = None) -> float:
    """Seconds from ``now`` (default: this moment) to the next midnight UTC, when Notify's
    daily limits reset."""
    now = datetime.now(UTC) if now is None else now.astimezone(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return (midnight - now).total_seconds()


class DailyLimitError(NotifyError):
    """The service's daily sending limit was reached (429). It resets at midnight UTC.

    It is not transient: it is not retried (it lasts until midnight), and a bulk run stops
    on it. ``retry_after`` is the number of seconds from the error to the next midnight UTC,
    unless given. The parameters are :class:`NotifyError`'s.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_class: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        if retry_after is None:
            retry_after = _seconds_to_midnight_utc()
        super().__init__(
            message, status_code=status_code, error_class=error_class, retry_after=retry_after
        )


class NotifyUnavailableError(NotifyError):
    """Notify failed (5xx) or did not answer in time, or the connection failed.

    ``timed_out`` is true when the request was sent and no answer came in time: Notify
    may still be handling it.
    """

    transient = True
    timed_out = False


class NotifyProtocolError(NotifyError):
    """Notify answered 2xx with a body that is not JSON, or JSON without the id it must have."""


class MailchimpError(ServiceError):
    """Mailchimp refused the request, or could not be reached (the subclasses are in this
    module's docstring).

    :param message: what Mailchimp said, without any address or secret, and what to do.
    :param status: the HTTP status (None when there was no answer); kept as ``status_code``,
        and ``status`` is the same value under the name it had before.
    :param title: Mailchimp's problem-detail ``title`` (kept as ``title``).
    :param detail: its ``detail``, with any address removed (kept as ``detail``).
    :param errors: its per-field errors (``{"field", "message"}``), with any address removed
        (kept as ``errors``, a tuple of dicts).
    :param status_code: the same as ``status`` (the name every :class:`ServiceError` uses);
        give one or the other.
    :param retry_after: as for :class:`ServiceError`.
    """

    service: ClassVar[str] = "mailchimp"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        title: str | None = None,
        detail: str | None = None,
        errors: Sequence[Mapping[str, str]] = (),
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code if status_code is not None else status,
            retry_after=retry_after,
        )
        self.title = title
        self.detail = detail
        self.errors = tuple(dict(error) for error in errors)

    @property
    def status(self) -> int | None:
        """The HTTP status: the same as ``status_code`` (the older name of it)."""
        return self.status_code

    @status.setter
    def status(self, value: int | None) -> None:
        self.status_code = value


class MailchimpAuthError(MailchimpError):
    """Mailchimp did not accept the API key (check DM_MAILCHIMP_API_KEY)."""


class MailchimpForbiddenError(MailchimpError):
    """The account may not do this (403), e.g. its plan allows no more audiences."""


class MailchimpNotFoundError(MailchimpError):
    """No such audience, member or campaign (404)."""


class MailchimpBadRequestError(MailchimpError):
    """Mailchimp refused the request (a 4xx without a more precise class)."""


class MemberExistsError(MailchimpBadRequestError):
    """The address is already a member of the audience (400 Member Exists)."""


class MemberComplianceError(MailchimpBadRequestError):
    """The person unsubscribed, bounced or is under review: Mailchimp will not subscribe
    them through the API (400 Member In Compliance State)."""


class ForgottenMemberError(MailchimpBadRequestError):
    """The address was permanently deleted; the person must re-subscribe through a signup
    form (400 Forgotten Email Not Subscribed)."""


class MailchimpValidationError(MailchimpBadRequestError):
    """Mailchimp's validation refused the body (400 Invalid Resource); see ``errors``."""


class InvalidMemberAddressError(MailchimpValidationError):
    """Mailchimp refused the address as fake, invalid or not a real address."""


class MailchimpRateLimitError(MailchimpError):
    """More than 10 requests were in flight for the API key (429)."""

    transient = True


class MailchimpUnavailableError(MailchimpError):
    """Mailchimp failed (5xx), did not answer in time, or could not be reached."""

    transient = True


class MailchimpProtocolError(MailchimpError):
    """Mailchimp answered with something the API does not document (no JSON, no id)."""


class CampaignError(MailchimpError):
    """``send_campaign`` failed. The Mailchimp error is the ``__cause__``; its status, title,
    detail and ``transient`` are copied here.

    :param step: ``"create"``, ``"content"`` or ``"send"`` (kept as ``step``).
    :param campaign_id: the draft it made (None before one existed).
    :param draft_deleted: whether that draft was deleted again.
    :param checklist: Mailchimp's unmet send-checklist items (kept as a tuple).
    :param transient: the cause's ``transient``: the step's request was retried and trying
        again later may work.

    ``message``, ``status``, ``title`` and ``detail`` are :class:`MailchimpError`'s.
    """

    def __init__(
        self,
        message: str,
        *,
        step: str,
        campaign_id: str | None,
        draft_deleted: bool,
        checklist: Sequence[str] = (),
        status: int | None = None,
        title: str | None = None,
        detail: str | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message, status=status, title=title, detail=detail)
        self.step = step
        self.campaign_id = campaign_id
        self.draft_deleted = draft_deleted
        self.checklist = tuple(checklist)
        self.transient = transient


class RedisUnavailableError(ServiceError):
    """The Redis of the shared Notify budget (``DM_MAIL_REDIS_URL``) did not answer, or
    refused, for longer than a send may wait, and ``DM_MAIL_REDIS_REQUIRED`` is on.

    Nothing was posted to Notify for the email when this is raised (a send that failed
    before looked its reference up first), so sending it again later is safe. It is transient:
    the CLI exits 75, and a bulk run stops with its journal ready to resume. ``status_code``
    is None. The message never holds the URL (it may carry a password).
    """

    service: ClassVar[str] = "redis"
    transient = True
    #: How many times the email was posted to Notify before this was raised.
    attempts: int = 0


class QueueError(DMMailError):
    """A queued send (``send_later``, a bulk run on Celery) could not be queued, or its state
    could not be read or written: the broker or the Redis that keeps queued emails did not
    answer. Nothing was queued when ``send_later`` raises it."""


class BulkError(DMMailError):
    """A bulk send could not start, or stopped before the end.

    ``report`` is the :class:`~flask_dmmail.bulk.BulkReport` of what was done when the run
    got that far (None when it never started).
    """

    def __init__(self, message: str, *, report: BulkReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class JournalError(BulkError):
    """The journal was made for another template or input, is in use by another run, or
    is not a flask-dmmail journal."""


class RecipientsError(BulkError):
    """The recipients cannot be read (no email column, a CSV that is not UTF-8, no
    Mailchimp audience)."""


class BulkInterruptedError(BulkError):
    """The run was stopped (its ``stop`` event was set; the command sets it on Ctrl-C or
    SIGTERM) with the journal consistent: run it again with the same journal and input to
    finish. ``report`` is None when it stopped while reading the recipients."""


class BulkAbortedError(BulkError):
    """The run stopped because the error (``__cause__``) would fail every other email too:
    the key or template is wrong, the daily limit is reached, or Notify is not answering."""
