"""GOV.UK Notify API v2 (email) routes, answered as Notify answers them.

Every /v2 route authenticates first. POSTs to /v2/notifications/* then check the rate
limit and the daily limit before the body is parsed; then come schema validation, the
service permission, template, reply-to, recipient and file checks, the size check and
the 201, in Notify's order.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, abort, g, request, url_for

from . import files, render
from .auth import authenticate
from .models import (
    KEY_TYPE_LABELS,
    Notification,
    Template,
    TemplateVersion,
    format_time,
    smoke_test_address,
    utcnow,
)
from .notify_state import NotifyState
from .validation import ApiError, bad_request, strip_address, validate

__all__ = ["json_response", "notify_blueprint", "notify_json"]

EMAIL_SIZE_LIMIT = 2_000_000
NOT_FOUND_MESSAGE = (
    "The requested URL was not found on the server. If you entered the URL manually "
    "please check your spelling and try again."
)


def notify_json(body: Any) -> str:
    """``body`` as Notify's Flask ``jsonify`` writes it: compact, keys sorted at every level,
    non-ASCII escaped, and a trailing newline."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n"


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON response as Notify sends one (:func:`notify_json`)."""
    return Response(notify_json(body), status=status, mimetype="application/json")


def _no_result() -> ApiError:
    return ApiError(404, "NoResultFound", "No result found")


def _request_json(*, empty_is_object: bool = False) -> Any:
    """The body as JSON whatever the Content-Type, as Notify's ``get_valid_json`` reads it.

    A body that is not JSON (an empty one too) is 400 "Invalid JSON supplied in POST
    data"; a falsy value (``null``, ``[]``, ``0``, ``false``, ``""``) is ``{}``
    (``request.get_json(force=True) or {}``). ``empty_is_object``: an empty body is ``{}``
    (the preview route checks for an empty body before it parses).
    """
    data = request.get_data(cache=False)
    if empty_is_object and not data:
        return {}
    try:
        return json.loads(data) or {}
    except ValueError:
        raise bad_request("Invalid JSON supplied in POST data") from None


def _template_json(template: Template, version: TemplateVersion) -> dict[str, Any]:
    names = render.placeholders(version.subject) + render.placeholders(version.body)
    personalisation: dict[str, Any] = {}
    for name in names:
        personalisation.setdefault(name, {"required": True})
    return {
        "id": template.id,
        "type": version.type,
        "created_at": format_time(template.created_at),
        "updated_at": format_time(version.created_at) if version.version > 1 else None,
        "created_by": version.created_by,
        "version": version.version,
        "body": version.body,
        "subject": version.subject if version.type != "sms" else None,
        "name": version.name,
        "personalisation": personalisation,
        "postage": "second" if version.type == "letter" else None,
        "letter_contact_block": None,
    }


def notification_json(n: Notification, root: str) -> dict[str, Any]:
    """A notification as GET /v2/notifications/{id} shows it (``root`` ends with /)."""
    return {
        "id": n.id,
        "reference": n.reference,
        "email_address": n.email_address,
        "phone_number": None,
        "line_1": None,
        "line_2": None,
        "line_3": None,
        "line_4": None,
        "line_5": None,
        "line_6": None,
        "postcode": None,
        "type": n.type,
        "status": n.status,
        "template": {
            "id": n.template_id,
            "version": n.template_version,
            "uri": f"{root}v2/template/{n.template_id}/version/{n.template_version}",
        },
        "body": n.body,
        "subject": n.subject,
        "created_at": format_time(n.created_at),
        "created_by_name": None,
        "sent_at": format_time(n.sent_at),
        "completed_at": format_time(n.completed_at),
        "scheduled_for": None,
        "postage": None,
        "one_click_unsubscribe_url": n.one_click_unsubscribe_url,
        "is_cost_data_ready": True,
        "cost_in_pounds": 0.0,
        "cost_details": {},
    }


class NotifyApi:
    """The /v2 views over one :class:`~flask_dmmail.sandbox.notify_state.NotifyState`."""

    def __init__(self, state: NotifyState) -> None:
        self.state = state

    # ------------------------------------------------------------------ hooks

    def authenticate(self) -> None:
        """before_request: Notify's auth; the matched key goes to ``g.api_key``."""
        g.api_key = authenticate(self.state, request.headers.get("Authorization"))

    # ------------------------------------------------------------------ send

    def post_notification(self, notification_type: str) -> Response:
        """POST /v2/notifications/{email,sms,letter}."""
        if notification_type not in ("email", "sms", "letter"):
            abort(404)
        key_type: str = g.api_key.key_type
        state = self.state
        if not state.limits.take_rate_token(key_type):
            raise ApiError(
                429,
                "RateLimitError",
                f"Exceeded rate limit for key type {KEY_TYPE_LABELS[key_type]} of "
                f"{state.limits.rate_limit} requests per 60 seconds",
            )
        if state.limits.daily_limit_reached(key_type, notification_type):
            raise ApiError(
                429,
                "TooManyRequestsError",
                f"Exceeded send limits ({notification_type}: {state.limits.daily_limit}) for today",
            )
        data = _request_json()
        if notification_type == "sms":
            validate("sms", data)
            raise bad_request("Service is not allowed to send text messages")
        if notification_type == "letter":
            is_precompiled = isinstance(data, dict) and "content" in data
            validate("precompiled_letter" if is_precompiled else "letter", data)
            raise bad_request("Service is not allowed to send letters")
        validate("email", data)
        return self._send_email(data, key_type)

    def _send_email(self, data: dict[str, Any], key_type: str) -> Response:
        state = self.state
        template_id = str(uuid.UUID(data["template_id"]))
        personalisation: dict[str, Any] = dict(data.get("personalisation") or {})

        template = state.template(template_id)
        if template is None:
            if not state.auto_templates:
                raise bad_request("Template not found")
            template = state.unknown_template(template_id, personalisation)
        with state.lock:
            version = template.current
            archived = template.archived
        if version.type != "email":
            raise bad_request(f"{version.type} template is not suitable for email notification")
        if archived:
            raise bad_request("Template has been deleted")

        sanitised: dict[str, Any] = {}
        if data.get("sanitise_content_for"):
            personalisation, sanitised = render.sanitise(
                personalisation, data["sanitise_content_for"]
            )
        missing = render.missing_placeholders(version.subject, version.body, personalisation)
        if missing:
            raise bad_request(f"Missing personalisation: {', '.join(missing)}")
        if not render.fill(version.body, personalisation).strip():
            raise bad_request("Your message is empty.")

        reply_to_id = data.get("email_reply_to_id")
        reply_to = None
        if reply_to_id:
            reply = state.reply_to_addresses.get(str(uuid.UUID(reply_to_id)))
            if reply is None:
                raise bad_request(
                    f"email_reply_to_id {reply_to_id} does not exist in database "
                    f"for service id {state.service_id}"
                )
            reply_to = reply.email_address

        email_address = strip_address(data["email_address"])
        simulated = smoke_test_address(email_address)
        if not simulated and not state.recipient_allowed(key_type, email_address):
            if key_type == "team":
                raise bad_request("Can’t send to this recipient using a team-only API key")
            raise bad_request(
                "Can’t send to this recipient when service is in trial mode – see "
                "https://www.notifications.service.gov.uk/trial-mode"
            )

        uploaded: list[dict[str, Any]] = []
        file_keys = [k for k, v in personalisation.items() if files.is_file_value(v)]
        if file_keys:
            files.check_contact_link(state.contact_link, state.service_id)
            for key in file_keys:
                if simulated:
                    personalisation[key] = files.simulated_url(state.service_id)
                    continue
                meta = files.upload(key, personalisation[key], state.service_id)
                personalisation[key] = meta["url"]
                uploaded.append(meta)

        body = render.fill(version.body, personalisation).strip()
        size = len(body.encode("utf-8"))
        if size > EMAIL_SIZE_LIMIT:
            raise bad_request(
                f"Your message is too long. Emails cannot be longer than {EMAIL_SIZE_LIMIT} "
                f"bytes. Your message is {size} bytes."
            )
        subject = render.format_subject(render.fill(version.subject or "", personalisation))
        from_email = f"{state.email_sender_local_part}@notifications.service.gov.uk"
        notification_id = str(uuid.uuid4())
        if not simulated:
            state.store(
                Notification(
                    id=notification_id,
                    key_type=key_type,
                    email_address=email_address,
                    template_id=template.id,
                    template_version=version.version,
                    template_name=version.name,
                    subject=subject,
                    body=body,
                    reference=data.get("reference"),
                    email_reply_to_id=reply_to_id,
                    one_click_unsubscribe_url=data.get("one_click_unsubscribe_url"),
                    personalisation=personalisation,
                    files=uploaded,
                    status="created",
                    created_at=utcnow(),
                    from_email=from_email,
                    reply_to=reply_to,
                    sanitised_content=sanitised,
                )
            )
        root = request.url_root
        return json_response(
            {
                "id": notification_id,
                "reference": data.get("reference"),
                "uri": f"{root}v2/notifications/{notification_id}",
                "template": {
                    "id": template.id,
                    "version": version.version,
                    "uri": f"{root}services/{state.service_id}/templates/{template.id}",
                },
                "scheduled_for": None,
                "content": {
                    "from_email": from_email,
                    "body": body,
                    "subject": subject,
                    "one_click_unsubscribe_url": data.get("one_click_unsubscribe_url"),
                },
                "sanitised_content": sanitised,
            },
            201,
        )

    # ------------------------------------------------------------------ read

    def get_notification(self, notification_id: str) -> Response:
        """GET /v2/notifications/{id} (any key type of the service)."""
        validate("notification_id", {"notification_id": notification_id})
        found = self.state.notifications.get(str(uuid.UUID(notification_id)))
        if found is None:
            raise _no_result()
        return json_response(notification_json(found, request.url_root))

    def get_notifications(self) -> Response:
        """GET /v2/notifications: the caller's key type only, newest first, 250 a page."""
        data: dict[str, Any] = request.args.to_dict(flat=False)
        for single in ("older_than", "reference", "include_jobs"):
            if single in data:
                data[single] = data[single][0]
        validate("get_notifications", data)
        older_than = data.get("older_than")
        page = self.state.notifications.list_notifications(
            g.api_key.key_type,
            reference=data.get("reference"),
            statuses=data.get("status", ()),
            template_types=data.get("template_type", ()),
            older_than=str(uuid.UUID(older_than)) if older_than else None,
        )
        root = request.url_root
        links = {"current": url_for(".get_notifications", _external=True, **data)}
        if page:
            links["next"] = url_for(
                ".get_notifications", _external=True, **dict(data, older_than=page[-1].id)
            )
        return json_response(
            {"notifications": [notification_json(n, root) for n in page], "links": links}
        )

    # ------------------------------------------------------------- templates

    def _find_template(self, template_id: str) -> Template:
        validate("id", {"id": template_id})
        template = self.state.template(str(uuid.UUID(template_id)))
        if template is None:
            raise _no_result()
        return template

    def get_template(self, template_id: str) -> Response:
        """GET /v2/template/{id} (archived templates too)."""
        template = self._find_template(template_id)
        with self.state.lock:
            return json_response(_template_json(template, template.current))

    def get_template_version(self, template_id: str, version: int) -> Response:
        """GET /v2/template/{id}/version/{n}; version 0 is the current version, as Notify's
        ``get_template_by_id`` only asks for a version ``if version``."""
        template = self._find_template(template_id)
        with self.state.lock:
            found = template.version(version) if version else template.current
            if found is None:
                raise _no_result()
            return json_response(_template_json(template, found))

    def get_templates(self) -> Response:
        """GET /v2/templates[?type=]: not archived, by name then type."""
        data = request.args.to_dict()
        validate("get_templates", data)
        wanted = data.get("type")
        with self.state.lock:
            chosen = [
                (t, t.current)
                for t in self.state.templates.values()
                if not t.archived and (wanted is None or t.current.type == wanted)
            ]
            chosen.sort(key=lambda pair: (pair[1].name, pair[1].type))
            return json_response({"templates": [_template_json(t, v) for t, v in chosen]})

    def preview_template(self, template_id: str) -> Response:
        """POST /v2/template/{id}/preview."""
        data = _request_json(empty_is_object=True)
        if isinstance(data, dict):
            data = dict(data, id=template_id)
        validate("preview", data)
        template = self._find_template(template_id)
        with self.state.lock:
            version = template.current
        personalisation: Mapping[str, Any] = data.get("personalisation") or {}
        missing = render.missing_placeholders(version.subject, version.body, personalisation)
        if missing:
            raise bad_request(f"Missing personalisation: {', '.join(missing)}")
        filled = render.fill(version.body, personalisation)
        subject = None
        if version.type != "sms":
            subject = render.format_subject(render.fill(version.subject or "", personalisation))
        return json_response(
            {
                "id": template.id,
                "type": version.type,
                "version": version.version,
                # notifications-utils: content_with_placeholders_filled_in is stripped;
                # html_body renders the filled content as it is.
                "body": filled.strip(),
                "subject": subject,
                "html": render.render_email_html(filled) if version.type == "email" else None,
                "postage": "second" if version.type == "letter" else None,
            }
        )

    def received_text_messages(self) -> Response:
        """GET /v2/received-text-messages: this service receives none."""
        return json_response(
            {
                "received_text_messages": [],
                "links": {"current": url_for(".received_text_messages", _external=True)},
            }
        )


def _api_error(error: ApiError) -> Response:
    return json_response(error.body(), error.status_code)


def notify_blueprint(state: NotifyState) -> Blueprint:
    """The /v2 routes, bound to ``state``."""
    api = NotifyApi(state)
    bp = Blueprint("notify_v2", __name__, url_prefix="/v2")
    bp.before_request(api.authenticate)
    bp.register_error_handler(ApiError, _api_error)
    bp.add_url_rule(
        "/notifications/<notification_type>",
        "post_notification",
        api.post_notification,
        methods=["POST"],
    )
    bp.add_url_rule("/notifications/<notification_id>", "get_notification", api.get_notification)
    bp.add_url_rule("/notifications", "get_notifications", api.get_notifications)
    bp.add_url_rule("/template/<template_id>", "get_template", api.get_template)
    bp.add_url_rule(
        "/template/<template_id>/version/<int:version>",
        "get_template_version",
        api.get_template_version,
    )
    bp.add_url_rule(
        "/template/<template_id>/preview",
        "preview_template",
        api.preview_template,
        methods=["POST"],
    )
    bp.add_url_rule("/templates", "get_templates", api.get_templates)
    bp.add_url_rule("/received-text-messages", "received_text_messages", api.received_text_messages)
    return bp


def register_error_pages(app: Flask) -> None:
    """Notify's envelopes for unknown routes, wrong methods and server errors."""

    def not_found(error: Exception) -> Response:
        return json_response({"result": "error", "message": NOT_FOUND_MESSAGE}, 404)

    def method_not_allowed(error: Exception) -> Response:
        description = getattr(error, "description", "Method not allowed")
        return json_response({"result": "error", "message": description}, 405)

    def server_error(error: Exception) -> Response:
        original = getattr(error, "original_exception", None) or error
        body = {
            "status_code": 500,
            "errors": [{"error": type(original).__name__, "message": "Internal server error"}],
        }
        return json_response(body, 500)

    app.register_error_handler(404, not_found)
    app.register_error_handler(405, method_not_allowed)
    app.register_error_handler(500, server_error)
