"""The Notify transport: the typed results, :class:`NotifyGateway` and the error mapping.

:class:`PreparedEmail` is an email ready to post (made by
:meth:`~flask_dmmail.pipeline.SendPipeline.prepare`); :class:`SentEmail`,
:class:`NotificationStatus` and :class:`TemplatePreview` are what Notify answers;
:func:`map_error` turns the client's exceptions into :mod:`flask_dmmail.errors`. The steps of
a send (checks, redirect, dedupe, retries) are :mod:`flask_dmmail.pipeline`.

Each thread gets its own ``NotificationsAPIClient`` (the client keeps a
``requests.Session`` and is not thread-safe), so one :class:`NotifyGateway` serves every
thread of an app.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from notifications_python_client.errors import APIError, HTTP503Error, InvalidResponse
from notifications_python_client.notifications import NotificationsAPIClient
from requests.exceptions import ReadTimeout

from .attachments import Attachment
from .deadline import DeadlineSession
from .errors import (
    ApiKeyNotFoundError,
    ApiKeyRevokedError,
    ClockSkewError,
    ConfigurationError,
    DailyLimitError,
    MissingPersonalisationError,
    NotificationNotFoundError,
    NotifyAuthError,
    NotifyBadRequestError,
    NotifyError,
    NotifyForbiddenError,
    NotifyProtocolError,
    NotifyUnavailableError,
    NotifyValidationError,
    RateLimitError,
    RecipientNotAllowedError,
    TemplateNotFoundError,
)
from .redaction import redact
from .validation import canonical_address

__all__ = [
    "EMAIL_STATUSES",
    "FAILED_STATUSES",
    "NotificationStatus",
    "NotifyGateway",
    "PreparedEmail",
    "SentEmail",
    "TemplatePreview",
    "map_error",
]

#: Notify's email failure statuses: a notification in one of these was not delivered.
FAILED_STATUSES = frozenset({"permanent-failure", "temporary-failure", "technical-failure"})
#: Every status an email notification can have, in the order it moves through them.
EMAIL_STATUSES = ("created", "sending", "delivered", *sorted(FAILED_STATUSES))
_T = TypeVar("_T")


@dataclass(frozen=True)
class SentEmail:
    """An email Notify accepted. ``to`` is the caller's recipient, ``sent_to`` the address
    Notify was given (they differ when ``redirected``). Addresses, subject and body are
    left out of ``repr``."""

    id: str
    reference: str | None
    to: str = field(repr=False)
    sent_to: str = field(repr=False)
    redirected: bool
    template_id: str
    template_version: int
    subject: str = field(repr=False)
    body: str = field(repr=False)
    from_email: str | None = field(repr=False)
    uri: str
    scheduled_for: str | None
    #: Why ``sent_to`` differs from ``to``: "domain" (DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS) or
    #: "stage" (the stage guard, outside production); None when not redirected.
    redirected_by: str | None = None


@dataclass(frozen=True)
class NotificationStatus:
    """A notification as Notify reports it on GET. Address, subject and body stay out of
    ``repr``."""

    id: str
    reference: str | None
    status: str
    template_id: str
    template_version: int
    email_address: str | None = field(repr=False)
    subject: str | None = field(repr=False)
    body: str | None = field(repr=False)
    created_at: str | None
    sent_at: str | None
    completed_at: str | None

    @property
    def failed(self) -> bool:
        """True when Notify could not deliver it."""
        return self.status in FAILED_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NotificationStatus:
        template = data.get("template") or {}
        return cls(
            id=data["id"],
            reference=data.get("reference"),
            status=data.get("status", ""),
            template_id=template.get("id", ""),
            template_version=int(template.get("version") or 0),
            email_address=data.get("email_address"),
            subject=data.get("subject"),
            body=data.get("body"),
            created_at=data.get("created_at"),
            sent_at=data.get("sent_at"),
            completed_at=data.get("completed_at"),
        )


@dataclass(frozen=True)
class TemplatePreview:
    """A template filled with personalisation, as Notify's preview endpoint returns it."""

    id: str
    version: int
    subject: str | None = field(repr=False)
    body: str = field(repr=False)
    html: str | None = field(repr=False)


@dataclass(frozen=True)
class PreparedEmail:
    """One email, checked and ready to post: the output of every pre-network step."""

    to: str = field(repr=False)
    sent_to: str = field(repr=False)
    redirected: bool
    to_hash: str
    template_id: str
    personalisation: Mapping[str, Any] = field(repr=False)
    reference: str
    reply_to_id: str | None
    one_click_unsubscribe_url: str | None = field(repr=False)
    scheduled_for: str | None
    #: "domain" or "stage" when ``sent_to`` is not ``to`` (see :attr:`SentEmail.redirected_by`).
    redirected_by: str | None = None
    #: Personalisation keys Notify strips of URLs and markdown (``sanitise_content_for``).
    sanitise_content_for: tuple[str, ...] = ()

    def payload(self) -> dict[str, Any]:
        """The JSON body of POST /v2/notifications/email."""
        body: dict[str, Any] = {
            "email_address": self.sent_to,
            "template_id": self.template_id,
            "reference": self.reference,
        }
        if self.personalisation:
            body["personalisation"] = {
                key: value.to_notify() if isinstance(value, Attachment) else value
                for key, value in self.personalisation.items()
            }
        if self.reply_to_id:
            body["email_reply_to_id"] = self.reply_to_id
        if self.one_click_unsubscribe_url:
            body["one_click_unsubscribe_url"] = self.one_click_unsubscribe_url
        if self.scheduled_for:
            body["scheduled_for"] = self.scheduled_for
        if self.sanitise_content_for:
            body["sanitise_content_for"] = list(self.sanitise_content_for)
        return body

    def secrets(self) -> list[str]:
        """Values that must never appear in a message about this email."""
        values = [self.to, self.sent_to]
        for value in self.personalisation.values():
            items = value if isinstance(value, list) else [value]
            values.extend(str(item) for item in items if not isinstance(item, Attachment))
        return values


def _scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret of 3 or more characters (ignoring case) replaced by
    ``[redacted]`` (see :mod:`flask_dmmail.redaction`)."""
    return redact(text, (s for s in secrets if len(s) >= 3), "[redacted]")


_HINTS: dict[type[NotifyError], str] = {
    TemplateNotFoundError: "Check that the template id exists in the Notify service of this "
    "API key (DM_NOTIFY_TEMPLATES).",
    MissingPersonalisationError: "Add the missing placeholders to personalisation.",
    RecipientNotAllowedError: "This key may only send to team members and the guest list: use "
    "a live key, add the address to the guest list, or redirect its domain.",
    ClockSkewError: "Set this machine's clock right (NTP) and try again.",
    ApiKeyNotFoundError: "Check DM_NOTIFY_KEY: the key does not belong to this service.",
    ApiKeyRevokedError: "DM_NOTIFY_KEY has been revoked: create a new key in Notify.",
    NotifyAuthError: "Check DM_NOTIFY_KEY.",
    RateLimitError: "Slow down: the key's per-minute limit was reached; retry shortly.",
    DailyLimitError: "The service's daily limit was reached; it resets at midnight UTC.",
    NotifyUnavailableError: "Notify did not answer properly; the call may be retried later.",
    NotificationNotFoundError: "Check the id; Notify keeps notifications for 7 days.",
}


def _classify(
    status: int, error_class: str | None, text: str, *, template: bool
) -> type[NotifyError]:
    if status >= 500:
        return NotifyUnavailableError
    if status == 429:
        return DailyLimitError if error_class == "TooManyRequestsError" else RateLimitError
    if status in (401, 403) and error_class == "AuthError":
        if "clock must be accurate" in text:
            return ClockSkewError
        if "API key not found" in text:
            return ApiKeyNotFoundError
        if "API key revoked" in text:
            return ApiKeyRevokedError
        return NotifyAuthError
    if status == 403:
        return NotifyForbiddenError
    if status == 401:
        return NotifyAuthError
    if status == 404:
        return TemplateNotFoundError if template else NotificationNotFoundError
    if status == 400:
        if error_class == "ValidationError":
            return NotifyValidationError
        if text.startswith("Template not found"):
            return TemplateNotFoundError
        if text.startswith("Missing personalisation"):
            return MissingPersonalisationError
        if text.startswith("Can’t send to this recipient"):
            return RecipientNotAllowedError
        return NotifyBadRequestError
    return NotifyError


def map_error(
    exc: Exception, *, secrets: Iterable[str] = (), template: bool = False
) -> NotifyError:
    """Turn an exception of notifications-python-client into the typed hierarchy.

    ``template`` says the call was about a template (so a 404 means its template is
    missing); ``secrets`` are values to remove from the message.
    """
    if isinstance(exc, InvalidResponse):
        return NotifyProtocolError(
            "Notify answered with a body that is not JSON; check DM_NOTIFY_BASE_URL points at "
            "Notify's API.",
            status_code=exc.status_code,
        )
    if not isinstance(exc, APIError):
        return NotifyError(f"Unexpected error from the Notify client: {type(exc).__name__}.")
    status = exc.status_code
    raw = exc.message
    error_class: str | None = None
    if isinstance(raw, list):
        items = [m for m in raw if isinstance(m, dict)]
        error_class = items[0].get("error") if items else None
        text = "; ".join(str(m.get("message", "")) for m in items)
    else:
        text = str(raw)
    if isinstance(exc, HTTP503Error) and error_class is None:
        cls: type[NotifyError] = NotifyUnavailableError
        if text == "Request failed":
            text = "no answer (timeout, dropped connection or 503)"
    else:
        cls = _classify(status, error_class, text, template=template)
    text = _scrub(text, secrets)
    hint = next((h for k, h in _HINTS.items() if issubclass(cls, k)), "")
    verb = "could not handle" if issubclass(cls, NotifyUnavailableError) else "refused"
    message = f"Notify {verb} the request ({status} {error_class or 'error'}): {text}"
    message = f"{message}. {hint}" if hint else message
    if cls is MissingPersonalisationError:
        names = text.split(":", 1)[1] if ":" in text else ""
        return MissingPersonalisationError(
            message,
            missing=[n.strip() for n in names.split(",") if n.strip()],
            status_code=status,
            error_class=error_class,
        )
    error = cls(message, status_code=status, error_class=error_class)
    if isinstance(error, NotifyUnavailableError) and isinstance(exc.__cause__, ReadTimeout):
        error.timed_out = True
    return error


class NotifyGateway:
    """One Notify API key and base URL; a client per thread; typed errors."""

    def __init__(self, api_key: str, base_url: str, timeout: float) -> None:
        self._api_key = api_key
        self.base_url = base_url
        self.timeout = timeout
        self._local = threading.local()
        try:
            self._client()
        except AssertionError:
            raise ConfigurationError(
                "DM_NOTIFY_KEY", "the Notify client could not read the key's service id and secret."
            ) from None

    def __repr__(self) -> str:
        return f"NotifyGateway(base_url={self.base_url!r})"

    def _client(self) -> NotificationsAPIClient:
        client: NotificationsAPIClient | None = getattr(self._local, "client", None)
        if client is None:
            client = NotificationsAPIClient(
                self._api_key, base_url=self.base_url, timeout=self.timeout
            )
            client.request_session = DeadlineSession()  # the timeout is a total deadline
            self._local.client = client
        return client

    def _call(
        self,
        fn: Callable[[NotificationsAPIClient], _T],
        *,
        secrets: Iterable[str] = (),
        template: bool = False,
    ) -> _T:
        try:
            return fn(self._client())
        except (APIError, InvalidResponse) as exc:
            raise map_error(exc, secrets=secrets, template=template) from None

    def post_email(self, payload: Mapping[str, Any], secrets: Iterable[str] = ()) -> dict[str, Any]:
        """POST /v2/notifications/email with ``payload``; the 201 body."""
        result = self._call(
            lambda c: c.post("/v2/notifications/email", data=dict(payload)), secrets=secrets
        )
        return _with_id(result, "the send")

    def get_notification(self, notification_id: str) -> NotificationStatus:
        """GET /v2/notifications/{id}."""
        data = self._call(lambda c: c.get_notification_by_id(notification_id))
        return NotificationStatus.from_json(_with_id(data, "the notification"))

    def notifications(
        self, *, reference: str | None = None, status: str | None = None
    ) -> Iterator[NotificationStatus]:
        """Every notification of this key type matching the filters, newest first, all pages."""
        iterator = self._call(
            lambda c: c.get_all_notifications_iterator(
                status=status, template_type="email", reference=reference
            )
        )
        while True:
            item = self._call(lambda _c: next(iterator, None))
            if item is None:
                return
            yield NotificationStatus.from_json(item)

    def find_reference(
        self,
        reference: str,
        *,
        since: datetime | None = None,
        include_failed: bool = True,
        email: PreparedEmail | None = None,
    ) -> NotificationStatus | None:
        """The newest notification with ``reference`` (created after ``since``; of ``email``'s
        address and template, since a reference may name a batch), or None."""
        data = self._call(
            lambda c: c.get_all_notifications(reference=reference, template_type="email")
        )
        for item in data.get("notifications", []):
            found = NotificationStatus.from_json(item)
            if not include_failed and found.failed:
                continue
            if since is not None and not _created_after(found.created_at, since):
                continue
            if email is not None and not _is_of(found, email):
                continue
            return found
        return None

    def preview(self, template_id: str, personalisation: Mapping[str, Any]) -> TemplatePreview:
        """POST /v2/template/{id}/preview."""
        data = self._call(
            lambda c: c.post_template_preview(template_id, dict(personalisation)),
            secrets=[str(v) for v in personalisation.values()],
            template=True,
        )
        data = _with_id(data, "the preview")
        return TemplatePreview(
            id=data["id"],
            version=int(data.get("version") or 0),
            subject=data.get("subject"),
            body=data.get("body", ""),
            html=data.get("html"),
        )


def _with_id(data: Any, what: str) -> dict[str, Any]:
    """A 2xx body that is a JSON object with an id, as Notify's are; else NotifyProtocolError."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise NotifyProtocolError(
            f"Notify answered {what} with JSON that has no id; check DM_NOTIFY_BASE_URL points "
            "at Notify's API."
        )
    return data


def _is_of(found: NotificationStatus, email: PreparedEmail) -> bool:
    """True when ``found`` is this email's address and template. Both addresses are compared
    as Notify delivers them (:func:`~flask_dmmail.validation.canonical_address`), so any
    spelling of the one mailbox matches and a stored email is never sent again."""
    address = canonical_address(found.email_address or email.sent_to)
    template_id = (found.template_id or email.template_id).lower()
    return address == canonical_address(email.sent_to) and template_id == email.template_id


def _created_after(created_at: str | None, since: datetime) -> bool:
    if not created_at:
        return True
    try:
        created = datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return True
    return created >= since


def sent_email_from_response(email: PreparedEmail, body: Mapping[str, Any]) -> SentEmail:
    """Build the result of a send from Notify's 201 body."""
    content = body.get("content") or {}
    template = body.get("template") or {}
    return SentEmail(
        id=body["id"],
        reference=body.get("reference"),
        to=email.to,
        sent_to=email.sent_to,
        redirected=email.redirected,
        template_id=template.get("id", email.template_id),
        template_version=int(template.get("version") or 0),
        subject=content.get("subject", ""),
        body=content.get("body", ""),
        from_email=content.get("from_email"),
        uri=body.get("uri", ""),
        scheduled_for=email.scheduled_for,
        redirected_by=email.redirected_by,
    )


def sent_email_from_status(
    email: PreparedEmail, found: NotificationStatus, base_url: str
) -> SentEmail:
    """Build the result of a send that Notify had already stored (found by reference)."""
    return SentEmail(
        id=found.id,
        reference=found.reference,
        to=email.to,
        sent_to=email.sent_to,
        redirected=email.redirected,
        template_id=found.template_id or email.template_id,
        template_version=found.template_version,
        subject=found.subject or "",
        body=found.body or "",
        from_email=None,
        uri=f"{base_url}/v2/notifications/{found.id}",
        scheduled_for=email.scheduled_for,
        redirected_by=email.redirected_by,
    )
