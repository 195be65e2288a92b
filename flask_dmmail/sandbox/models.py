"""The Notify side's data: statuses, keys, templates, reply-to addresses and notifications.

Plain dataclasses and constants with no behaviour beyond their own fields, plus the small
helpers every Notify module shares (:func:`utcnow`, :func:`format_time`,
:func:`smoke_test_address`). Nothing here holds a lock; :mod:`~flask_dmmail.sandbox.notify_state`
owns the instances.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "DEFAULT_TEAM_MEMBER",
    "EMAIL_STATUSES",
    "FAILED_STATUSES",
    "KEY_TYPE_LABELS",
    "NOTIFICATION_STATUSES",
    "SIMULATED_FINAL_STATUS",
    "SMOKE_TEST_EMAILS",
    "TEMPLATE_TYPES",
    "TERMINAL_STATUSES",
    "ApiKey",
    "KeyType",
    "Notification",
    "ReplyToAddress",
    "SandboxKeys",
    "Template",
    "TemplateVersion",
    "format_time",
    "smoke_test_address",
    "utcnow",
]

KeyType = Literal["test", "team", "normal"]

#: Every status the list filter accepts, in Notify's order (``failed`` means all failures).
NOTIFICATION_STATUSES: tuple[str, ...] = (
    "cancelled",
    "created",
    "sending",
    "sent",
    "delivered",
    "pending",
    "failed",
    "technical-failure",
    "temporary-failure",
    "permanent-failure",
    "pending-virus-check",
    "validation-failed",
    "virus-scan-failed",
    "returned-letter",
    "accepted",
    "received",
)
FAILED_STATUSES: tuple[str, ...] = (
    "technical-failure",
    "temporary-failure",
    "permanent-failure",
    "validation-failed",
    "virus-scan-failed",
    "returned-letter",
)
EMAIL_STATUSES: tuple[str, ...] = (
    "created",
    "sending",
    "delivered",
    "permanent-failure",
    "temporary-failure",
    "technical-failure",
)
#: Statuses after which a notification never changes again (``completed_at`` is set).
TERMINAL_STATUSES = frozenset(
    {"delivered", "sent", "cancelled", "returned-letter", "received", *FAILED_STATUSES}
)
SMOKE_TEST_EMAILS = frozenset(
    {
        "simulate-delivered@notifications.service.gov.uk",
        "simulate-delivered-2@notifications.service.gov.uk",
        "simulate-delivered-3@notifications.service.gov.uk",
    }
)
SIMULATED_FINAL_STATUS = {
    "temp-fail@simulator.notify": "temporary-failure",
    "perm-fail@simulator.notify": "permanent-failure",
}
TEMPLATE_TYPES = ("sms", "email", "letter")
DEFAULT_TEAM_MEMBER = "sandbox-user@example.gov.uk"
KEY_TYPE_LABELS: dict[str, str] = {"test": "TEST", "team": "TEAM", "normal": "LIVE"}


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class SandboxKeys:
    """The full API key strings (``name-serviceid-secret``) of the sandbox service."""

    test: str
    team: str
    live: str


@dataclass
class ApiKey:
    """One API key of the service. Revoked keys still match tokens (then answer 403)."""

    name: str
    key_type: KeyType
    secret: str
    revoked: bool = False

    def full_key(self, service_id: str) -> str:
        """The key string a client is configured with."""
        return f"{self.name}-{service_id}-{self.secret}"


@dataclass(frozen=True)
class TemplateVersion:
    """One saved version of a template."""

    version: int
    name: str
    type: str
    subject: str | None
    body: str
    created_at: datetime
    created_by: str


@dataclass
class Template:
    """A template with all its versions; ``versions[-1]`` is the current one."""

    id: str
    versions: list[TemplateVersion]
    archived: bool = False

    @property
    def current(self) -> TemplateVersion:
        """The latest version."""
        return self.versions[-1]

    @property
    def created_at(self) -> datetime:
        """When version 1 was saved."""
        return self.versions[0].created_at

    @property
    def updated_at(self) -> datetime | None:
        """When the latest version was saved, or None if there is only one."""
        return self.versions[-1].created_at if len(self.versions) > 1 else None

    def version(self, number: int) -> TemplateVersion | None:
        """Version ``number``, or None."""
        if 1 <= number <= len(self.versions):
            return self.versions[number - 1]
        return None


@dataclass(frozen=True)
class ReplyToAddress:
    """An email reply-to address of the service."""

    id: str
    email_address: str


@dataclass
class Notification:
    """A stored email notification, as the sandbox keeps it."""

    id: str
    key_type: str
    email_address: str
    template_id: str
    template_version: int
    template_name: str
    subject: str
    body: str
    reference: str | None
    email_reply_to_id: str | None
    one_click_unsubscribe_url: str | None
    personalisation: dict[str, Any]
    files: list[dict[str, Any]]
    status: str
    created_at: datetime
    sent_at: datetime | None = None
    completed_at: datetime | None = None
    type: str = "email"
    from_email: str = ""
    reply_to: str | None = None
    sanitised_content: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> Notification:
        """A copy safe to hand out of the lock."""
        return dataclasses.replace(
            self,
            personalisation=dict(self.personalisation),
            files=[dict(f) for f in self.files],
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (times in ISO 8601)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, datetime) else value
        return out


def smoke_test_address(email_address: str) -> bool:
    """True for Notify's smoke-test recipients (answered 201, never stored)."""
    return email_address.strip().lower() in SMOKE_TEST_EMAILS


def format_time(value: datetime | None) -> str | None:
    """Notify's timestamp format: ``%Y-%m-%dT%H:%M:%S.%fZ`` in UTC."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
