"""Webhooks: GOV.UK Notify's delivery receipts (and, later, Mailchimp's audience events).

Notify delivery receipts
------------------------

Notify POSTs a JSON receipt to the service's callback URL each time an email reaches a
final status, with ``Authorization: Bearer <token>``. :func:`notify_callbacks_blueprint`
answers those requests:

1. the bearer token is compared with ``DM_NOTIFY_CALLBACK_TOKEN`` in constant time;
   a missing or wrong token gets 401, and the token is never echoed or logged;
2. the body is checked against the receipt's shape (``id``, ``reference``, ``to``,
   ``status``, ``created_at``, ``completed_at``, ``sent_at``, ``notification_type``,
   ``template_id``, ``template_version``); a bad body gets 400;
3. :data:`~flask_dmmail.signals.email_status_changed` fires with the real app as sender
   and ``notification_id``, ``reference``, ``status`` and ``to_hash`` (the Mailer's keyed
   hash of ``to``: the address itself never leaves the handler);
4. one log line records the receipt (fields, no address), and the answer is 204.

``init_app`` mounts it at ``/_dmmail/callbacks/notify`` when ``DM_NOTIFY_CALLBACK_TOKEN``
is set. Notify retries a receipt whose POST failed with a 5xx, a 429 or no answer, so
receivers should be idempotent (the same ``notification_id`` and ``status`` may come twice).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from . import signals
from .notify import FAILED_STATUSES

__all__ = [
    "NOTIFY_CALLBACKS_BLUEPRINT",
    "NOTIFY_CALLBACKS_PATH",
    "DeliveryReceipt",
    "InvalidReceipt",
    "notify_callbacks_blueprint",
    "parse_delivery_receipt",
]

logger = logging.getLogger("flask_dmmail")

#: Where ``init_app`` mounts the delivery-receipt endpoint when a callback token is set.
NOTIFY_CALLBACKS_PATH = "/_dmmail/callbacks/notify"
#: The blueprint's default name (its endpoint is ``<name>.receipt``).
NOTIFY_CALLBACKS_BLUEPRINT = "dmmail_notify_callbacks"

_MAX_BODY = 64 * 1024
_MAX_REFERENCE = 1000
_STATUS = re.compile(r"^[a-z][a-z-]{0,48}[a-z]$")
_NOTIFICATION_TYPES = frozenset({"email", "sms", "letter"})
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class InvalidReceipt(ValueError):
    """A delivery receipt body that does not have Notify's shape. The message names the
    field and never repeats its value."""


@dataclass(frozen=True)
class DeliveryReceipt:
    """A checked delivery receipt, with the recipient already replaced by its hash."""

    notification_id: str
    reference: str | None
    status: str
    to_hash: str
    notification_type: str
    template_id: str
    template_version: int
    created_at: str
    sent_at: str | None
    completed_at: str | None


def _timestamp(data: Mapping[str, Any], key: str, *, nullable: bool) -> str | None:
    value = data.get(key)
    if value is None:
        if nullable:
            return None
        raise InvalidReceipt(f"{key} is required (a UTC time like 2017-05-14T12:15:30.000000Z).")
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidReceipt(f"{key} must be a time string like 2017-05-14T12:15:30.000000Z.")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise InvalidReceipt(
            f"{key} is not an ISO 8601 time like 2017-05-14T12:15:30.000000Z."
        ) from None
    return value


def _uuid(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not _UUID.match(value):
        raise InvalidReceipt(f"{key} must be a UUID.")
    return str(uuid.UUID(value))


def parse_delivery_receipt(data: object, hash_address: Any) -> DeliveryReceipt:
    """Check a decoded receipt body and return it with ``to`` hashed by ``hash_address``.

    Raises :class:`InvalidReceipt` naming the first bad field. Fields Notify may add
    later are ignored.
    """
    if not isinstance(data, Mapping):
        raise InvalidReceipt("The body must be a JSON object.")
    notification_id = _uuid(data, "id")
    reference = data.get("reference")
    if reference is not None and (
        not isinstance(reference, str) or len(reference) > _MAX_REFERENCE
    ):
        raise InvalidReceipt("reference must be null or a string of at most 1000 characters.")
    to = data.get("to")
    if not isinstance(to, str) or not to.strip() or len(to) > 320:
        raise InvalidReceipt("to must be the recipient, a non-empty string.")
    status = data.get("status")
    if not isinstance(status, str) or not _STATUS.match(status):
        raise InvalidReceipt("status must be a Notify status such as 'delivered'.")
    notification_type = data.get("notification_type")
    if notification_type not in _NOTIFICATION_TYPES:
        raise InvalidReceipt("notification_type must be 'email', 'sms' or 'letter'.")
    assert isinstance(notification_type, str)
    template_id = _uuid(data, "template_id")
    version = data.get("template_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidReceipt("template_version must be a whole number of at least 1.")
    created_at = _timestamp(data, "created_at", nullable=False)
    assert created_at is not None
    return DeliveryReceipt(
        notification_id=notification_id,
        reference=reference,
        status=status,
        to_hash=str(hash_address(to)),
        notification_type=notification_type,
        template_id=template_id,
        template_version=version,
        created_at=created_at,
        sent_at=_timestamp(data, "sent_at", nullable=True),
        completed_at=_timestamp(data, "completed_at", nullable=True),
    )


def _error(status: int, message: str) -> Response:
    response = jsonify(result="error", message=message)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="flask-dmmail"'
    return response


def _bearer_token_matches(header: str | None, expected: str | None) -> bool:
    """True when ``header`` is ``Bearer <expected>``; the comparison takes the same time
    wherever the first difference is."""
    if not header or expected is None:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), expected.encode("utf-8"))


def _refused(reason: str, status: int, **fields: Any) -> None:
    logger.warning(
        "Notify delivery receipt refused: %s",
        reason,
        extra={"callback": "notify", "http_status": status, **fields},
    )


def _receipt() -> Response:
    from .extension import EXTENSION_KEY, Mailer

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    mailer = app.extensions.get(EXTENSION_KEY)
    expected = mailer.settings.callback_token if isinstance(mailer, Mailer) else None
    if expected is None:
        _refused("DM_NOTIFY_CALLBACK_TOKEN is not set (or DMMail is not registered)", 401)
        return _error(401, "Unauthorized: delivery receipts are not accepted here.")
    if not _bearer_token_matches(request.headers.get("Authorization"), expected):
        _refused("missing or wrong bearer token", 401)
        return _error(401, "Unauthorized: a valid bearer token is required.")
    assert isinstance(mailer, Mailer)
    if request.content_length is not None and request.content_length > _MAX_BODY:
        _refused("body too large", 413)
        return _error(413, "The receipt is too large.")
    raw = request.stream.read(_MAX_BODY + 1)
    if len(raw) > _MAX_BODY:
        _refused("body too large", 413)
        return _error(413, "The receipt is too large.")
    try:
        data = json.loads(raw)
    except ValueError:
        _refused("body is not JSON", 400)
        return _error(400, "The body must be a JSON object.")
    try:
        receipt = parse_delivery_receipt(data, mailer.hasher.hash_address)
    except InvalidReceipt as error:
        _refused(str(error), 400)
        return _error(400, str(error))
    failed = receipt.status in FAILED_STATUSES or receipt.status.endswith(("failure", "failed"))
    logger.log(
        logging.WARNING if failed else logging.INFO,
        "Notify delivery receipt: notification %s is %s",
        receipt.notification_id,
        receipt.status,
        extra={
            "callback": "notify",
            "notification_id": receipt.notification_id,
            "reference": receipt.reference,
            "status": receipt.status,
            "to_hash": receipt.to_hash,
            "notification_type": receipt.notification_type,
            "template_id": receipt.template_id,
            "template_version": receipt.template_version,
            "completed_at": receipt.completed_at,
        },
    )
    signals.email_status_changed.send(
        app,
        notification_id=receipt.notification_id,
        reference=receipt.reference,
        status=receipt.status,
        to_hash=receipt.to_hash,
    )
    return Response(status=204)


def notify_callbacks_blueprint(name: str = NOTIFY_CALLBACKS_BLUEPRINT) -> Blueprint:
    """A blueprint with one route, ``POST`` at its ``url_prefix`` (by default
    ``/_dmmail/callbacks/notify``), that takes Notify's delivery receipts for the app's Mailer.

    ``init_app`` registers it when ``DM_NOTIFY_CALLBACK_TOKEN`` is set. To take receipts
    at another URL as well, register another one under its own name::

        app.register_blueprint(notify_callbacks_blueprint("receipts"), url_prefix="/callbacks")

    The token always comes from the app's ``DM_NOTIFY_CALLBACK_TOKEN``; without it every
    request is answered 401.
    """
    blueprint = Blueprint(name, __name__, url_prefix=NOTIFY_CALLBACKS_PATH)
    blueprint.add_url_rule("", "receipt", _receipt, methods=["POST"])
    return blueprint
