"""Webhooks: GOV.UK Notify's delivery receipts and Mailchimp's audience events.

Notify delivery receipts
------------------------

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

Mailchimp audience events
-------------------------

Mailchimp has no signature on its webhooks, so the secret is in the URL:
:func:`mailchimp_webhooks_blueprint` answers ``/_dmmail/callbacks/mailchimp/<token>``, and
``init_app`` mounts it when ``DM_MAILCHIMP_WEBHOOK_TOKEN`` is set. Give Mailchimp
``https://<app>/_dmmail/callbacks/mailchimp/<DM_MAILCHIMP_WEBHOOK_TOKEN>`` (or call
``mailchimp.add_webhook(audience, url)``).

1. the token is compared in constant time; a wrong one gets a plain 404 (the token is never
   echoed or logged) and so does every request when no token is configured, and every
   method other than ``GET`` and ``POST`` whatever the token (no 405 or ``Allow`` header
   shows the route exists);
2. ``GET`` answers 200: Mailchimp checks the URL with a GET when the webhook is created;
3. a ``POST`` body over 64 KB gets 413 before any of it is parsed. ``POST`` bodies are
   Mailchimp's form fields (``type``, ``fired_at``, ``data[list_id]``, ``data[email]``,
   ``data[reason]``, ``data[action]``, ``data[campaign_id]``...). For ``type=unsubscribe``
   and ``type=cleaned`` :data:`~flask_dmmail.signals.audience_unsubscribed` fires (the
   address only as the Mailer's ``to_hash``) and the answer is 200; other event types are
   answered 200 and ignored (a failing webhook is retried, then disabled, by Mailchimp); an
   event without ``data[list_id]`` or ``data[email]``, or whose ``data[list_id]`` is not an
   audience id (1 to 32 letters and digits), gets 400 and the value is not logged;
4. the other fields that reach the log line or the signal (``type``, ``data[reason]``,
   ``data[action]``, ``data[campaign_id]``, ``fired_at``) must have their plain shape (a
   short word, id or time of bounded length: no control characters or ``@``); a value of
   another shape is dropped (``None`` in the signal, the field's name in a WARNING log line)
   and the event is still taken, so that an unsubscribe is never lost.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from werkzeug.datastructures import MultiDict

from . import signals
from .errors import InvalidReceiptError
from .notify import FAILED_STATUSES
from .validation import is_unicode

__all__ = [
    "MAILCHIMP_WEBHOOKS_BLUEPRINT",
    "MAILCHIMP_WEBHOOKS_PATH",
    "NOTIFY_CALLBACKS_BLUEPRINT",
    "NOTIFY_CALLBACKS_PATH",
    "DeliveryReceipt",
    "InvalidReceipt",
    "mailchimp_webhooks_blueprint",
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


#: The name :class:`~flask_dmmail.errors.InvalidReceiptError` had before it moved to
#: ``errors.py`` (it is a ``ValueError`` as it was, and now a ``DMMailError`` too).
InvalidReceipt = InvalidReceiptError


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


def _same_secret(given: str, expected: str) -> bool:
    """The module's one secret comparison, in constant time: of SHA-256 digests, so neither
    where the two first differ nor their lengths show in the time it takes."""

    def digest(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    return hmac.compare_digest(digest(given), digest(expected))


def _bearer_token_matches(header: str | None, expected: str | None) -> bool:
    """True when ``header`` is ``Bearer <expected>`` (compared by :func:`_same_secret`)."""
    if not header or expected is None:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return _same_secret(given.strip(), expected)


def _read_body(limit: int) -> bytes | None:
    """The request body, or ``None`` (having read no more than ``limit + 1`` bytes) when it is
    longer than ``limit`` bytes, whether or not it came with a Content-Length."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = request.stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return None if size > limit else b"".join(chunks)


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
    raw = _read_body(_MAX_BODY)
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


# --------------------------------------------------------------------------- Mailchimp

#: Where ``init_app`` mounts Mailchimp's webhook when a webhook token is set.
MAILCHIMP_WEBHOOKS_PATH = "/_dmmail/callbacks/mailchimp"
#: The blueprint's default name (its endpoint is ``<name>.event``).
MAILCHIMP_WEBHOOKS_BLUEPRINT = "dmmail_mailchimp_webhooks"
_MAILCHIMP_EVENTS = frozenset({"unsubscribe", "cleaned"})
#: Mailchimp's events are a few hundred bytes of form fields.
_MAX_EVENT_BODY = 64 * 1024
#: Shapes of the fields that reach a log line or a signal (matched whole, ASCII only): no
#: control characters or ``@``, and a bounded length. An audience id as
#: ``DM_MAILCHIMP_AUDIENCES`` accepts it; an event type, reason or action is one short word.
_MAILCHIMP_ID = re.compile(r"[0-9a-zA-Z]{1,32}")
_MAILCHIMP_WORD = re.compile(r"[a-zA-Z][a-zA-Z0-9_-]{0,31}")
_MAILCHIMP_TIME = re.compile(r"[0-9][0-9 :.TZ+-]{0,39}")
#: Optional fields: a value of another shape is dropped (``None`` in the signal, named in the
#: log line), so that the unsubscribe itself is still recorded.
_MAILCHIMP_OPTIONAL = (
    ("data[reason]", "reason", _MAILCHIMP_WORD),
    ("data[action]", "action", _MAILCHIMP_WORD),
    ("data[campaign_id]", "campaign_id", _MAILCHIMP_ID),
    ("fired_at", "fired_at", _MAILCHIMP_TIME),
)


def _token_matches(given: str, expected: str | None) -> bool:
    """True when the URL's token is ``expected`` (compared by :func:`_same_secret`)."""
    return expected is not None and _same_secret(given, expected)


def _plain(status: int, text: str) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain")


def _shaped(value: str | None, shape: re.Pattern[str]) -> str | None:
    """``value`` without surrounding spaces if it has ``shape``, else ``None``."""
    value = (value or "").strip()
    return value if shape.fullmatch(value) else None


def _mailchimp_form() -> MultiDict[str, str] | None:
    """The POSTed form fields, or ``None`` when the body is over :data:`_MAX_EVENT_BODY`
    (refused before any of it is parsed)."""
    raw = _read_body(_MAX_EVENT_BODY)
    if raw is None:
        return None
    parser = request.make_form_data_parser()
    _, form, _ = parser.parse(io.BytesIO(raw), request.mimetype, len(raw), request.mimetype_params)
    return form


def _mailchimp_refused(reason: str, status: int, **fields: Any) -> None:
    logger.warning(
        "Mailchimp webhook refused: %s",
        reason,
        extra={"callback": "mailchimp", "http_status": status, **fields},
    )


def _mailchimp_event(token: str) -> Response:
    from .extension import EXTENSION_KEY, Mailer

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    mailer = app.extensions.get(EXTENSION_KEY)
    expected = mailer.settings.mailchimp_webhook_token if isinstance(mailer, Mailer) else None
    if not _token_matches(token, expected):
        _mailchimp_refused("wrong token or DM_MAILCHIMP_WEBHOOK_TOKEN not set", 404)
        return _plain(404, "Not Found")
    assert isinstance(mailer, Mailer)
    if request.method not in ("GET", "HEAD", "POST"):
        # The same answer as a wrong token: no 405 or Allow header shows the route exists.
        _mailchimp_refused("a method other than GET or POST", 404)
        return _plain(404, "Not Found")
    if request.method != "POST":
        return _plain(200, "OK")  # Mailchimp's check of the URL
    form = _mailchimp_form()
    if form is None:
        _mailchimp_refused("body too large", 413)
        return _plain(413, "Request Entity Too Large")
    event = _shaped(form.get("type"), _MAILCHIMP_WORD)
    if event not in _MAILCHIMP_EVENTS:
        logger.info(
            "Mailchimp webhook event %r ignored",
            event,
            extra={"callback": "mailchimp", "event": event},
        )
        return _plain(200, "OK")
    list_id = form.get("data[list_id]", "").strip()
    email = form.get("data[email]", "").strip()
    if not list_id or not email:
        _mailchimp_refused(f"{event} without data[list_id] or data[email]", 400, event=event)
        return _plain(400, "data[list_id] and data[email] are required")
    if not _MAILCHIMP_ID.fullmatch(list_id):
        _mailchimp_refused(
            f"{event} with a data[list_id] that is not an audience id", 400, event=event
        )
        return _plain(
            400, "data[list_id] must be a Mailchimp audience id (1 to 32 letters and digits)"
        )
    to_hash = mailer.hasher.hash_address(email)
    audience_name = next(
        (name for name, value in mailer.settings.audiences.items() if value == list_id), None
    )
    fields: dict[str, str | None] = {}
    dropped: list[str] = []
    for field, name, shape in _MAILCHIMP_OPTIONAL:
        given = form.get(field, "") if name != "action" or event == "unsubscribe" else ""
        fields[name] = _shaped(given, shape)
        if fields[name] is None and given.strip():
            dropped.append(field)
    message, args = "Mailchimp webhook: %s from audience %s", [event, list_id]
    if dropped:
        message += "; malformed %s dropped"
        args.append(", ".join(dropped))
    logger.log(
        logging.WARNING if dropped else logging.INFO,
        message,
        *args,
        extra={
            "callback": "mailchimp",
            "event": event,
            "list_id": list_id,
            "audience_name": audience_name,
            "reason": fields["reason"],
            "action": fields["action"],
            "campaign_id": fields["campaign_id"],
            "dropped_fields": tuple(dropped),
            "to_hash": to_hash,
        },
    )
    signals.audience_unsubscribed.send(
        app,
        audience=list_id,
        audience_name=audience_name,
        event=event,
        reason=fields["reason"],
        action=fields["action"],
        campaign_id=fields["campaign_id"],
        fired_at=fields["fired_at"],
        to_hash=to_hash,
    )
    return _plain(200, "OK")


def _route_every_other_method(state: BlueprintSetupState) -> None:
    """Send every other HTTP method at ``<url_prefix>/<token>`` to the view as well, which
    answers it as it answers a wrong token: Flask would answer 405 with an ``Allow`` header,
    or OPTIONS with 200, showing that the route exists."""
    rule = "/".join(((state.url_prefix or "").rstrip("/"), "<token>"))
    state.app.url_map.add(
        state.app.url_rule_class(  # methods=None: any method
            rule,
            endpoint=f"{state.name_prefix}.{state.name}.event".lstrip("."),
            subdomain=state.subdomain,
            defaults=state.url_defaults or None,
        )
    )


def mailchimp_webhooks_blueprint(name: str = MAILCHIMP_WEBHOOKS_BLUEPRINT) -> Blueprint:
    """A blueprint answering ``GET`` and ``POST`` at ``<url_prefix>/<token>`` (by default
    ``/_dmmail/callbacks/mailchimp/<token>``) for Mailchimp's unsubscribe and cleaned events.

    ``init_app`` registers it when ``DM_MAILCHIMP_WEBHOOK_TOKEN`` is set; the token always
    comes from that key. If the app uses CSRF protection, exempt this blueprint.
    """
    blueprint = Blueprint(name, __name__, url_prefix=MAILCHIMP_WEBHOOKS_PATH)
    blueprint.add_url_rule(
        "/<token>",
        "event",
        _mailchimp_event,
        methods=["GET", "POST"],
        provide_automatic_options=False,
    )
    blueprint.record(_route_every_other_method)
    return blueprint
