"""Control endpoints under ``/_sandbox/`` (never under /v2). Each mirrors a state method.

=========================================  =================================================
``GET    /_sandbox/state``                  service id, keys, limits, faults, team, guests
``POST   /_sandbox/seed``                   body shaped like the seed file; adds templates...
``POST   /_sandbox/reset``                  back to the initial state (keys unchanged)
``GET    /_sandbox/outbox``                 ``{"notifications": [...]}`` every key type
``GET    /_sandbox/outbox/<id>``            one stored notification
``POST   /_sandbox/notifications/<id>/status``  ``{"status": "delivered"}``
``GET|POST|DELETE /_sandbox/faults``        read / set (``latency``, ``error_rate``,
                                            ``drop_rate``, ``stall_rate``,
                                            ``stall_seconds``, ``paths``, ``seed``) / clear
``GET|POST /_sandbox/faults/next``         read / queue next-N faults (``kind``: error,
                                            rate_limit or timeout; ``count``, ``paths``,
                                            ``methods``, ``hold_seconds``); see
                                            :mod:`~flask_dmmail.sandbox.next_faults`
``POST   /_sandbox/limits``                 ``{"rate_limit": n, "burst": n, "daily_limit": n}``
``POST   /_sandbox/service``                ``{"restricted": bool, "delivery_delay": s}``
``POST   /_sandbox/keys/<type>/revoke``     type is test, team or live; ``/restore`` undoes
``POST   /_sandbox/templates/<id>/archive`` ``{"archived": true}`` (default true)
=========================================  =================================================

Errors are ``{"error": "..."}`` with status 400 (or 404 for an unknown id).

Every POST and DELETE must carry ``Content-Type: application/json``, with or without a body
(else 415), so that a web page cannot change the sandbox with a cross-site "simple" request;
and every request must name a loopback host (else 403), so that a page cannot read the state
by rebinding its own name to 127.0.0.1 (see :mod:`flask_dmmail.sandbox.guard`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from .guard import JSON_REQUIRED, host_refusal, json_required
from .next_faults import NextFaults
from .notify_api import json_response
from .state import SandboxState

__all__ = ["control_blueprint"]


class ControlError(Exception):
    """A refused control request."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _body() -> dict[str, Any]:
    """The request's JSON object ({} without a body); the content type is checked already."""
    data = request.get_json(silent=True) if request.get_data() else {}
    if not isinstance(data, dict):
        raise ControlError("the body must be a JSON object")
    return data


def _next_faults() -> NextFaults | None:
    """The app's next-N faults (None for an app without the fault layer)."""
    faults = current_app.extensions.get("dmmail_sandbox_faults")
    queue = getattr(faults, "next", None)
    return queue if isinstance(queue, NextFaults) else None


def control_blueprint(state: SandboxState) -> Blueprint:
    """The /_sandbox control endpoints, bound to ``state``."""
    bp = Blueprint("dmmail_sandbox_control", __name__, url_prefix="/_sandbox")

    @bp.before_request
    def _guard() -> Response | None:
        refusal = host_refusal()
        if refusal is not None:
            return json_response({"error": refusal}, 403)
        if json_required():
            return json_response({"error": JSON_REQUIRED}, 415)
        return None

    @bp.errorhandler(ControlError)
    def _control_error(error: ControlError) -> Response:
        return json_response({"error": error.message}, error.status)

    @bp.errorhandler(ValueError)
    def _value_error(error: ValueError) -> Response:
        return json_response({"error": str(error)}, 400)

    @bp.errorhandler(TypeError)
    def _type_error(error: TypeError) -> Response:
        return json_response({"error": str(error)}, 400)

    @bp.get("/state")
    def get_state() -> Response:
        return json_response(state.to_dict())

    @bp.post("/seed")
    def seed() -> Response:
        ids = state.seed(_body())
        return json_response({"templates": ids}, 201)

    @bp.post("/reset")
    def reset() -> Response:
        state.reset()
        queue = _next_faults()
        if queue is not None:
            queue.clear()
        return json_response({"result": "reset"})

    @bp.get("/outbox")
    def outbox() -> Response:
        return json_response({"notifications": [n.to_dict() for n in state.outbox()]})

    @bp.get("/outbox/<notification_id>")
    def outbox_item(notification_id: str) -> Response:
        found = state.get(notification_id)
        if found is None:
            raise ControlError("no such notification", 404)
        return json_response(found.to_dict())

    @bp.post("/notifications/<notification_id>/status")
    def force_status(notification_id: str) -> Response:
        status = _body().get("status")
        if not isinstance(status, str):
            raise ControlError("status must be a string")
        try:
            changed = state.force_status(notification_id, status)
        except KeyError:
            raise ControlError("no such notification", 404) from None
        return json_response(changed.to_dict())

    @bp.route("/faults", methods=["GET", "POST", "DELETE"])
    def faults() -> Response:
        if request.method == "DELETE":
            state.clear_faults()
            queue = _next_faults()
            if queue is not None:
                queue.clear()
        elif request.method == "POST":
            options = _body()
            allowed = {
                "latency",
                "error_rate",
                "drop_rate",
                "stall_rate",
                "stall_seconds",
                "paths",
                "seed",
            }
            unknown = set(options) - allowed
            if unknown:
                raise ControlError(f"unknown fault options: {', '.join(sorted(unknown))}")
            if "paths" in options and not isinstance(options["paths"], list):
                raise ControlError("paths must be a list")
            state.set_faults(**options)
        return json_response(state.faults.to_dict())

    @bp.route("/faults/next", methods=["GET", "POST"])
    def next_faults() -> tuple[Response, int]:
        queue = _next_faults()
        if queue is None:
            raise ControlError("this sandbox has no fault layer", 404)
        if request.method == "POST":
            options = _body()
            unknown = set(options) - {"kind", "count", "paths", "methods", "hold_seconds"}
            if unknown:
                raise ControlError(f"unknown fault options: {', '.join(sorted(unknown))}")
            if "kind" not in options:
                raise ControlError("kind is required: error, rate_limit or timeout")
            queue.add(**options)
            return json_response({"next": queue.pending()}), 201
        return json_response({"next": queue.pending()}), 200

    @bp.post("/limits")
    def limits() -> Response:
        options = _body()
        unknown = set(options) - {"rate_limit", "burst", "daily_limit"}
        if unknown:
            raise ControlError(f"unknown limit options: {', '.join(sorted(unknown))}")
        for name, value in options.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise ControlError(f"{name} must be an integer")
        state.set_limits(**options)
        limits = state.notify.limits
        return json_response(
            {
                "rate_limit": limits.rate_limit,
                "burst": limits.bucket_size,
                "daily_limit": limits.daily_limit,
            }
        )

    @bp.post("/service")
    def service() -> Response:
        options = _body()
        unknown = set(options) - {"restricted", "delivery_delay"}
        if unknown:
            raise ControlError(f"unknown service options: {', '.join(sorted(unknown))}")
        if "restricted" in options and not isinstance(options["restricted"], bool):
            raise ControlError("restricted must be true or false")
        if "delivery_delay" in options and (
            not isinstance(options["delivery_delay"], int | float)
            or isinstance(options["delivery_delay"], bool)
        ):
            raise ControlError("delivery_delay must be a number of seconds")
        state.set_service(**options)
        notify = state.notify
        return json_response(
            {"restricted": notify.restricted, "delivery_delay": notify.delivery_delay}
        )

    @bp.post("/keys/<key_type>/revoke")
    def revoke(key_type: str) -> Response:
        state.revoke_key(key_type)
        return json_response({"key_type": key_type, "revoked": True})

    @bp.post("/keys/<key_type>/restore")
    def restore(key_type: str) -> Response:
        state.revoke_key(key_type, revoked=False)
        return json_response({"key_type": key_type, "revoked": False})

    @bp.post("/templates/<template_id>/archive")
    def archive(template_id: str) -> Response:
        archived = _body().get("archived", True)
        if not isinstance(archived, bool):
            raise ControlError("archived must be true or false")
        try:
            state.archive_template(template_id, archived)
        except KeyError:
            raise ControlError("no such template", 404) from None
        return json_response({"id": template_id, "archived": archived})

    return bp
