"""Notify's delivery receipts: :func:`notify_callbacks_blueprint` and the receipt's checks.

Notify POSTs a JSON receipt to the service's callback URL each time an email reaches a
final status, with ``Authorization: Bearer <token>``. :func:`notify_callbacks_blueprint`
answers those requests:

1. the bearer token is compared with ``DM_NOTIFY_CALLBACK_TOKEN`` in constant time;
   a missing or wrong token gets 401, and the token is never echoed or logged;
2. the body is checked against the receipt's shape (``id``, ``reference``, ``to``,
   ``status``, ``created_at``, ``completed_at``, ``sent_at``, ``notification_type``,
   ``template_id``, ``template_version``); a bad body gets 400, and so does a body nested
   more than a few levels deep (a receipt is a flat object), refused before it is decoded;
   a body over 64 KB gets 413; each refusal is one WARNING log line;
3. :data:`~flask_dmmail.signals.email_status_changed` fires with the real app as sender
   and ``notification_id``, ``reference``, ``status`` and ``to_hash`` (the Mailer's keyed
   hash of ``to``: the address itself never leaves the handler);
4. one log line records the receipt (fields, no address), and the answer is 204.

``init_app`` mounts it at ``/_dmmail/callbacks/notify`` when ``DM_NOTIFY_CALLBACK_TOKEN``
is set. Notify retries a receipt whose POST failed with a 5xx, a 429 or no answer, so
receivers should be idempotent (the same ``notification_id`` and ``status`` may come twice).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from .. import signals
from ..errors import InvalidReceiptError
from ..notify import FAILED_STATUSES
from ..validation import is_unicode
from .common import read_body, same_secret

__all__ = [
    "NOTIFY_CALLBACKS_BLUEPRINT",
    "NOTIFY_CALLBACKS_PATH",
    "DeliveryReceipt",
    "notify_callbacks_blueprint",
    "parse_delivery_receipt",
]

logger = logging.getLogger("flask_dmmail")

#: Where ``init_app`` mounts the delivery-receipt endpoint when a callback token is set.
NOTIFY_CALLBACKS_PATH = "/_dmmail/callbacks/notify"
#: The blueprint's default name (its endpoint is ``<name>.receipt``).
NOTIFY_CALLBACKS_BLUEPRINT = "dmmail_notify_callbacks"

_MAX_BODY = 64 * 1024
#: A receipt is a flat object: a body nested deeper than this is refused before it is decoded
#: (the decoder recurses once per level, so deep nesting would otherwise crash it).
_MAX_DEPTH = 8
_JSON_STRUCTURE = re.compile(r'[\[\]{}"\\]')
_MAX_REFERENCE = 1000
_STATUS = re.compile(r"^[a-z][a-z-]{0,48}[a-z]$")
_NOTIFICATION_TYPES = frozenset({"email", "sms", "letter"})
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


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
        raise InvalidReceiptError(
            f"{key} is required (a UTC time like 2017-05-14T12:15:30.000000Z)."
        )
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidReceiptError(f"{key} must be a time string like 2017-05-14T12:15:30.000000Z.")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise InvalidReceiptError(
            f"{key} is not an ISO 8601 time like 2017-05-14T12:15:30.000000Z."
        ) from None
    return value


def _uuid(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise InvalidReceiptError(f"{key} must be a UUID.")
    return str(uuid.UUID(value))


def parse_delivery_receipt(data: object, hash_address: Any) -> DeliveryReceipt:
    """Check a decoded receipt body and return it with ``to`` hashed by ``hash_address``.

    Raises :class:`~flask_dmmail.errors.InvalidReceiptError` naming the first bad field.
    Fields Notify may add later are ignored.
    """
    if not isinstance(data, Mapping):
        raise InvalidReceiptError("The body must be a JSON object.")
    notification_id = _uuid(data, "id")
    reference = data.get("reference")
    if reference is not None and (
        not isinstance(reference, str) or len(reference) > _MAX_REFERENCE
    ):
        raise InvalidReceiptError("reference must be null or a string of at most 1000 characters.")
    to = data.get("to")
    if not isinstance(to, str) or not to.strip() or len(to) > 320 or not is_unicode(to):
        raise InvalidReceiptError("to must be the recipient, a non-empty string of valid Unicode.")
    status = data.get("status")
    if not isinstance(status, str) or not _STATUS.fullmatch(status):
        raise InvalidReceiptError("status must be a Notify status such as 'delivered'.")
    notification_type = data.get("notification_type")
    if not isinstance(notification_type, str) or notification_type not in _NOTIFICATION_TYPES:
        raise InvalidReceiptError("notification_type must be 'email', 'sms' or 'letter'.")
    template_id = _uuid(data, "template_id")
    version = data.get("template_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidReceiptError("template_version must be a whole number of at least 1.")
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


def _nests_deeper_than(text: str, limit: int) -> bool:
    """True when the JSON ``text`` opens more than ``limit`` arrays or objects inside each
    other. One pass, no recursion; brackets inside strings do not count. Not a validator:
    whatever this lets through is then decoded (and refused if it is not JSON)."""
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _JSON_STRUCTURE.finditer(text):
        char, position = match.group(), match.start()
        if in_string:
            if position == escaped_at:
                continue
            if char == "\\":
                escaped_at = position + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth = max(depth - 1, 0)
    return False


def _decode_json(raw: bytes) -> object:
    """Decode a receipt body as :func:`json.loads` does (UTF-8, -16 or -32), refusing deep
    nesting first. Raises :class:`~flask_dmmail.errors.InvalidReceiptError` for anything that
    is not JSON."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    except (UnicodeDecodeError, LookupError):
        raise InvalidReceiptError("The body must be a JSON object.") from None
    if _nests_deeper_than(text, _MAX_DEPTH):
        raise InvalidReceiptError(
            f"The body must be a delivery receipt: a JSON object nested at most "
            f"{_MAX_DEPTH} levels deep."
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: never, after the check above
        raise InvalidReceiptError("The body must be a JSON object.") from None


def _error(status: int, message: str) -> Response:
    response = jsonify(result="error", message=message)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="flask-dmmail"'
    return response


def _bearer_token_matches(header: str | None, expected: str | None) -> bool:
    """True when ``header`` is ``Bearer <expected>`` (compared by
    :func:`~flask_dmmail.webhooks.common.same_secret`)."""
    if not header or expected is None:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return same_secret(given.strip(), expected)


def _refused(reason: str, status: int, **fields: Any) -> None:
    logger.warning(
        "Notify delivery receipt refused: %s",
        reason,
        extra={"callback": "notify", "http_status": status, **fields},
    )


def _receipt() -> Response:
    from ..extension import EXTENSION_KEY, Mailer

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
    raw = read_body(_MAX_BODY)
    if raw is None:
        _refused("body too large", 413)
        return _error(413, "The receipt is too large.")
    try:
        data = _decode_json(raw)
    except InvalidReceiptError as error:
        _refused(str(error), 400)
        return _error(400, str(error))
    try:
        receipt = parse_delivery_receipt(data, mailer.hasher.hash_address)
    except InvalidReceiptError as error:
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
