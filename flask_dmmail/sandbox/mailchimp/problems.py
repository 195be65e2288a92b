"""Mailchimp's RFC 7807 problem details: the error type and the exact texts the API uses,
and the body checks every resource shares (an object body, a URL, a schema error entry)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ERRORS_TYPE",
    "GENERIC_INVALID",
    "MailchimpProblem",
    "compliance_state",
    "forgotten_email",
    "internal_error",
    "invalid_resource",
    "looks_fake",
    "member_exists",
    "not_found",
    "require_object",
    "require_url",
    "schema_error",
    "too_many_signups",
]

ERRORS_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
GENERIC_INVALID = (
    "The resource submitted could not be validated. "
    "For field-specific details, see the 'errors' array."
)
INVALID_EMAIL = "Please provide a valid email address."


class MailchimpProblem(Exception):
    """An answer the sandbox gives as ``application/problem+json``.

    ``type_`` is ``None`` for the problems Mailchimp sends without a ``type`` (Member Exists).
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: Sequence[Mapping[str, str]] | None = None,
        type_: str | None = ERRORS_TYPE,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = [dict(e) for e in errors] if errors is not None else None
        self.type_ = type_
        self.headers = dict(headers or {})

    def body(self, instance: str) -> dict[str, Any]:
        """The problem document, with ``instance`` (also sent as ``X-Request-Id``)."""
        body: dict[str, Any] = {}
        if self.type_ is not None:
            body["type"] = self.type_
        body.update(title=self.title, status=self.status, detail=self.detail, instance=instance)
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def not_found() -> MailchimpProblem:
    return MailchimpProblem(404, "Resource Not Found", "The requested resource could not be found.")


def internal_error() -> MailchimpProblem:
    return MailchimpProblem(
        500,
        "Internal Server Error",
        "An unexpected internal error has occurred. Please contact Support for more information.",
    )


def invalid_resource(
    detail: str = GENERIC_INVALID, errors: Sequence[Mapping[str, str]] | None = None
) -> MailchimpProblem:
    return MailchimpProblem(400, "Invalid Resource", detail, errors=errors)


def required_fields(*names: str) -> MailchimpProblem:
    message = "Required fields were not provided: " + ", ".join(names)
    return invalid_resource(errors=[{"field": "", "message": message}])


def schema_mismatch(field: str, expected: str, found: str) -> MailchimpProblem:
    message = f"Schema describes {expected}, {found} found instead"
    return invalid_resource(errors=[{"field": field, "message": message}])


def member_exists(email: str) -> MailchimpProblem:
    detail = f"{email} is already a list member. Use PUT to insert or update list members."
    return MailchimpProblem(400, "Member Exists", detail, type_=None)


def forgotten_email(email: str) -> MailchimpProblem:
    detail = (
        f"{email} was permanently deleted and cannot be re-imported. "
        "The contact must re-subscribe to get back on the list."
    )
    return MailchimpProblem(400, "Forgotten Email Not Subscribed", detail)


def compliance_state(email: str) -> MailchimpProblem:
    detail = (
        f"{email} is in a compliance state due to unsubscribe, bounce, or compliance review "
        "and cannot be subscribed."
    )
    return MailchimpProblem(400, "Member In Compliance State", detail)


def looks_fake(email: str) -> MailchimpProblem:
    return invalid_resource(f"{email} looks fake or invalid, please enter a real email address.")


def too_many_signups(email: str) -> MailchimpProblem:
    # The detail as the reference notes record it (mailchimp-api.md §3).
    return invalid_resource(
        f"{email} has signed up to a lot of lists very recently; "
        "we're not allowing more signups for now"
    )


def invalid_email() -> MailchimpProblem:
    return invalid_resource(INVALID_EMAIL)


def type_name(value: object) -> str:
    """The JSON type name Mailchimp's schema errors use ("NULL", "string", "integer", ...)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def schema_error(field_name: str, expected: str, value: Any) -> dict[str, str]:
    """One entry of an ``errors`` array: ``value`` is not of the ``expected`` JSON type."""
    return {
        "field": field_name,
        "message": f"Schema describes {expected}, {type_name(value)} found instead",
    }


def require_object(body: Any) -> dict[str, Any]:
    """``body`` if it is a JSON object; the schema problem otherwise."""
    if not isinstance(body, dict):
        raise schema_mismatch("", "object", type_name(body))
    return body


def require_url(url: Any) -> str:
    """``url`` if it is an http(s) URL; Mailchimp's "valid URL" problem otherwise."""
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
        raise invalid_resource(
            errors=[{"field": "url", "message": "This value should be a valid URL."}]
        )
    return url
