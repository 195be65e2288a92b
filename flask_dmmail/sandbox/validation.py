"""Notify's request schemas (JSON Schema draft 7) and its way of turning errors into messages.

Validators are compiled once at import. :func:`validate` raises :class:`ApiError` with
every schema error, deduplicated, in the order jsonschema finds them (schema-property
order, then ``required``, then ``additionalProperties``), worded as Notify words them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema import ValidationError as SchemaError

from ..validation import is_uri
from .models import NOTIFICATION_STATUSES, TEMPLATE_TYPES

__all__ = [
    "ApiError",
    "InvalidEmailError",
    "check_email_address",
    "validate",
]


class ApiError(Exception):
    """An error Notify answers with ``{"status_code": N, "errors": [{error, message}]}``."""

    def __init__(self, status_code: int, error: str, messages: str | Iterable[str]) -> None:
        self.status_code = status_code
        self.error = error
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__(f"{status_code} {error}")

    def body(self) -> dict[str, Any]:
        """The JSON body Notify sends."""
        return {
            "status_code": self.status_code,
            "errors": [{"error": self.error, "message": m} for m in self.messages],
        }


def bad_request(message: str, status_code: int = 400) -> ApiError:
    """A BadRequestError."""
    return ApiError(status_code, "BadRequestError", message)


class InvalidEmailError(Exception):
    """Raised by :func:`check_email_address`."""

    def __init__(self, message: str = "Not a valid email address") -> None:
        super().__init__(message)


# ------------------------------------------------------------------ email rule

_OBSCURE_WHITESPACE = dict.fromkeys(map(ord, "\u180e\u200b\u200c\u200d\u2060\ufeff"))
_HOSTNAME_PART = re.compile(r"^(xn|[a-z0-9]+)(-?-[a-z0-9]+)*$", re.IGNORECASE)
_TLD_PART = re.compile(r"^([a-z]{2,63}|xn--([a-z0-9]+-)*[a-z0-9]+)$", re.IGNORECASE)
_EMAIL = re.compile(r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~\-]+@([^.@][^@\s]+)$")


def strip_address(value: str) -> str:
    """Trim whitespace and zero-width characters, as Notify does before checking."""
    return value.translate(_OBSCURE_WHITESPACE).strip()


def check_email_address(value: str) -> str:
    """Return the trimmed address, or raise :class:`InvalidEmailError` (Notify's rule)."""
    address = strip_address(value)
    match = _EMAIL.match(address)
    if not match or len(address) > 320 or ".." in address:
        raise InvalidEmailError
    try:
        hostname = match.group(1).encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidEmailError from None
    parts = hostname.split(".")
    if len(hostname) > 253 or len(parts) < 2:
        raise InvalidEmailError
    for part in parts:
        if not part or len(part) > 63 or not _HOSTNAME_PART.match(part):
            raise InvalidEmailError
    if not _TLD_PART.match(parts[-1]):
        raise InvalidEmailError
    return address


# ------------------------------------------------------------- format checks

format_checker = FormatChecker()


@format_checker.checks("uri", raises=ValueError)
def _uri(instance: object) -> bool:
    # RFC 3986 (rfc3986-validator, as jsonschema's non-GPL format extra uses), registered
    # explicitly so the check does not depend on which optional libraries are installed.
    return not isinstance(instance, str) or is_uri(instance)


_DATETIME_INVALID = (
    "datetime format is invalid. It must be a valid ISO8601 date time format, "
    "https://en.wikipedia.org/wiki/ISO_8601"
)


@format_checker.checks("validate_uuid", raises=ValueError)
def _uuid_format(instance: object) -> bool:
    if isinstance(instance, str):
        uuid.UUID(instance)
    return True


@format_checker.checks("email_address", raises=InvalidEmailError)
def _email_format(instance: object) -> bool:
    if isinstance(instance, str):
        check_email_address(instance)
    return True


def _parse_iso8601(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise SchemaError(_DATETIME_INVALID) from None
    # Notify drops the offset without converting (iso8601 then .replace(tzinfo=None)).
    return parsed.replace(tzinfo=None)


@format_checker.checks("datetime_within_next_day", raises=SchemaError)
def _within_next_day(instance: object) -> bool:
    if isinstance(instance, str):
        when = _parse_iso8601(instance)
        now = datetime.now(UTC).replace(tzinfo=None)
        if when < now:
            raise SchemaError("datetime can not be in the past")
        if when > now + timedelta(hours=24):
            raise SchemaError("datetime can only be 24 hours in the future")
    return True


@format_checker.checks("datetime", raises=SchemaError)
def _datetime_format(instance: object) -> bool:
    if isinstance(instance, str):
        _parse_iso8601(instance)
    return True


@format_checker.checks("send_a_file_retention_period", raises=SchemaError)
def _retention_period(instance: object) -> bool:
    if instance is None:
        return True
    if isinstance(instance, str):
        match = re.match(r"^(\d+) weeks?$", instance.strip().lower())
        if match and 1 <= int(match.group(1)) <= 78:
            return True
    raise SchemaError(
        f"Unsupported value for retention_period: {instance}. "
        "Supported periods are from 1 to 78 weeks."
    )


@format_checker.checks("send_a_file_filename", raises=SchemaError)
def _filename(instance: object) -> bool:
    if instance is None or (isinstance(instance, str) and "." in instance):
        return True
    raise SchemaError("`filename` must end with a file extension. For example, filename.csv")


def _boolean_option(name: str) -> None:
    @format_checker.checks(f"send_a_file_{name}", raises=SchemaError)
    def _check(instance: object) -> bool:
        if instance is None or isinstance(instance, bool):
            return True
        raise SchemaError(
            f"Unsupported value for {name}: {instance}. Use a boolean true or false value."
        )


_boolean_option("is_csv")
_boolean_option("confirm_email_before_download")


# ------------------------------------------------------------------- schemas

_DRAFT7 = "http://json-schema.org/draft-07/schema#"
UUID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "format": "validate_uuid",
    "validationMessage": "is not a valid UUID",
}
PERSONALISATION_SCHEMA: dict[str, Any] = {"type": "object"}
HTTPS_URL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "format": "uri",
    "pattern": "^https",
    "validationMessage": "is not a valid https url",
}

POST_EMAIL_REQUEST: dict[str, Any] = {
    "$schema": _DRAFT7,
    "description": "POST email notification schema",
    "type": "object",
    "title": "POST v2/notifications/email",
    "properties": {
        "reference": {"type": "string", "maxLength": 1000},
        "email_address": {"type": "string", "format": "email_address"},
        "template_id": UUID_SCHEMA,
        "personalisation": PERSONALISATION_SCHEMA,
        "scheduled_for": {"type": ["string", "null"], "format": "datetime_within_next_day"},
        "email_reply_to_id": UUID_SCHEMA,
        "one_click_unsubscribe_url": HTTPS_URL_SCHEMA,
        "sanitise_content_for": {"type": ["array", "null"], "items": {"type": "string"}},
    },
    "required": ["email_address", "template_id"],
    "additionalProperties": False,
}

POST_SMS_REQUEST: dict[str, Any] = {
    "$schema": _DRAFT7,
    "description": "POST sms notification schema",
    "type": "object",
    "title": "POST v2/notifications/sms",
    "properties": {
        "reference": {"type": "string", "maxLength": 1000},
        "phone_number": {"type": "string"},
        "template_id": UUID_SCHEMA,
        "personalisation": PERSONALISATION_SCHEMA,
        "scheduled_for": {"type": ["string", "null"], "format": "datetime_within_next_day"},
        "sms_sender_id": UUID_SCHEMA,
    },
    "required": ["phone_number", "template_id"],
    "additionalProperties": False,
}

POST_LETTER_REQUEST: dict[str, Any] = {
    "$schema": _DRAFT7,
    "description": "POST letter notification schema",
    "type": "object",
    "title": "POST v2/notifications/letter",
    "properties": {
        "reference": {"type": "string", "maxLength": 1000},
        "template_id": UUID_SCHEMA,
        "personalisation": PERSONALISATION_SCHEMA,
    },
    "required": ["template_id", "personalisation"],
    "additionalProperties": False,
}

POST_PRECOMPILED_LETTER_REQUEST: dict[str, Any] = {
    "$schema": _DRAFT7,
    "description": "POST precompiled letter schema",
    "type": "object",
    "title": "POST v2/notifications/letter",
    "properties": {
        "reference": {"type": "string"},
        "content": {"type": "string"},
        "postage": {"type": "string"},
    },
    "required": ["reference", "content"],
    "additionalProperties": False,
}

FILE_PERSONALISATION: dict[str, Any] = {
    "$schema": _DRAFT7,
    "description": "a file to send by email",
    "type": "object",
    "properties": {
        "file": {"type": "string"},
        "filename": {"format": "send_a_file_filename"},
        "confirm_email_before_download": {"format": "send_a_file_confirm_email_before_download"},
        "retention_period": {"format": "send_a_file_retention_period"},
        "is_csv": {"format": "send_a_file_is_csv"},
    },
    "required": ["file"],
    "additionalProperties": False,
}

GET_NOTIFICATIONS_REQUEST: dict[str, Any] = {
    "$schema": _DRAFT7,
    "description": "schema for query parameters allowed when getting list of notifications",
    "type": "object",
    "properties": {
        "reference": {"type": "string"},
        "status": {"type": "array", "items": {"enum": list(NOTIFICATION_STATUSES)}},
        "template_type": {"type": "array", "items": {"enum": list(TEMPLATE_TYPES)}},
        "include_jobs": {"enum": ["true", "True"]},
        "older_than": UUID_SCHEMA,
    },
    "additionalProperties": False,
}

GET_TEMPLATES_REQUEST: dict[str, Any] = {
    "$schema": _DRAFT7,
    "description": "request schema for parameters allowed when getting all templates",
    "type": "object",
    "properties": {"type": {"enum": list(TEMPLATE_TYPES)}},
    "additionalProperties": False,
}

POST_TEMPLATE_PREVIEW_REQUEST: dict[str, Any] = {
    "$schema": _DRAFT7,
    "description": "POST template schema",
    "type": "object",
    "title": "POST v2/template/{id}/preview",
    "properties": {"id": UUID_SCHEMA, "personalisation": PERSONALISATION_SCHEMA},
    "required": ["id"],
}

ID_REQUEST: dict[str, Any] = {
    "$schema": _DRAFT7,
    "type": "object",
    "properties": {"id": UUID_SCHEMA, "version": {"type": ["integer", "null"]}},
    "required": ["id"],
}

NOTIFICATION_ID_REQUEST: dict[str, Any] = {
    "$schema": _DRAFT7,
    "type": "object",
    "properties": {"notification_id": UUID_SCHEMA},
    "required": ["notification_id"],
}


def compile_schema(schema: dict[str, Any]) -> Draft7Validator:
    """A validator for ``schema`` with Notify's format checks (compile once, reuse)."""
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=format_checker)


VALIDATORS: dict[str, Draft7Validator] = {
    "email": compile_schema(POST_EMAIL_REQUEST),
    "sms": compile_schema(POST_SMS_REQUEST),
    "letter": compile_schema(POST_LETTER_REQUEST),
    "precompiled_letter": compile_schema(POST_PRECOMPILED_LETTER_REQUEST),
    "file": compile_schema(FILE_PERSONALISATION),
    "get_notifications": compile_schema(GET_NOTIFICATIONS_REQUEST),
    "get_templates": compile_schema(GET_TEMPLATES_REQUEST),
    "preview": compile_schema(POST_TEMPLATE_PREVIEW_REQUEST),
    "id": compile_schema(ID_REQUEST),
    "notification_id": compile_schema(NOTIFICATION_ID_REQUEST),
}


def _message(error: SchemaError) -> str:
    schema = error.schema
    path: str | int | None = error.path[0] if error.path else None
    if isinstance(schema, Mapping) and "validationMessage" in schema:
        return f"{'' if path is None else path} {schema['validationMessage']}".strip()
    text = str(error.cause) if error.cause else error.message
    text = text.replace("'", "")
    return f"{path} {text}" if path else text


def error_messages(validator: Draft7Validator, instance: Any) -> list[str]:
    """Every error message for ``instance``, deduplicated, in jsonschema's order."""
    messages: list[str] = []
    for error in validator.iter_errors(instance):
        message = _message(error)
        if message not in messages:
            messages.append(message)
    return messages


def validate(name: str, instance: Any) -> Any:
    """Validate with the named schema; raise a 400 ValidationError :class:`ApiError`."""
    messages = error_messages(VALIDATORS[name], instance)
    if messages:
        raise ApiError(400, "ValidationError", messages)
    return instance
