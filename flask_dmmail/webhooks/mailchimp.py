"""Mailchimp's audience events: :func:`mailchimp_webhooks_blueprint` (unsubscribes, cleaned
addresses).


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

import io
import logging
import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from werkzeug.datastructures import MultiDict

from .. import signals
from .common import read_body, same_secret

__all__ = [
    "MAILCHIMP_WEBHOOKS_BLUEPRINT",
    "MAILCHIMP_WEBHOOKS_PATH",
    "mailchimp_webhooks_blueprint",
]

logger = logging.getLogger("flask_dmmail")

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
    """True when the URL's token is ``expected`` (compared by
    :func:`~flask_dmmail.webhooks.common.same_secret`)."""
    return expected is not None and same_secret(given, expected)


def _plain(status: int, text: str) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain")


def _shaped(value: str | None, shape: re.Pattern[str]) -> str | None:
    """``value`` without surrounding spaces if it has ``shape``, else ``None``."""
    value = (value or "").strip()
    return value if shape.fullmatch(value) else None


def _mailchimp_form() -> MultiDict[str, str] | None:
    """The POSTed form fields, or ``None`` when the body is over :data:`_MAX_EVENT_BODY`
    (refused before any of it is parsed)."""
    raw = read_body(_MAX_EVENT_BODY)
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
    from ..extension import EXTENSION_KEY, Mailer

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
