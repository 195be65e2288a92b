"""Build the sandbox Flask app: Notify's /v2 API, the /_sandbox controls, faults, outbox page."""

from __future__ import annotations

from typing import Any

from flask import Flask

from .control import control_blueprint
from .faults import FaultMiddleware
from .mailchimp import (
    ConnectionLimit,
    mailchimp_blueprint,
    mailchimp_downloads_blueprint,
    mailchimp_error_body,
)
from .notify_api import notify_blueprint, register_error_pages
from .outbox import outbox_blueprint
from .state import SandboxState

__all__ = ["create_app"]


def create_app(state: SandboxState | None = None, **state_options: Any) -> Flask:
    """The sandbox app over ``state`` (a new :class:`SandboxState` from ``state_options``
    when None).

    Serves Notify's /v2 API, the /_sandbox controls, the outbox page at / and Mailchimp's
    /3.0 API (with finished batches' results under /_sandbox/mailchimp/).
    ``app.extensions["dmmail_sandbox"]`` is the state; the
    :class:`~flask_dmmail.sandbox.faults.FaultMiddleware` (also at
    ``app.extensions["dmmail_sandbox_faults"]``) wraps the whole app, so any blueprint
    registered on it later gets the same fault injection.
    """
    if state is None:
        state = SandboxState(**state_options)
    elif state_options:
        raise TypeError("pass either a state or state options, not both")
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["dmmail_sandbox"] = state
    app.register_blueprint(notify_blueprint(state.notify))
    app.register_blueprint(control_blueprint(state))
    app.register_blueprint(outbox_blueprint(state))
    app.register_blueprint(mailchimp_blueprint(state.mailchimp))
    app.register_blueprint(mailchimp_downloads_blueprint(state.mailchimp))
    register_error_pages(app)
    faults = FaultMiddleware(app.wsgi_app, state)
    faults.add_error_body("/3.0/", mailchimp_error_body)
    app.extensions["dmmail_sandbox_faults"] = faults
    # Outermost, so fault latency and stalls hold a Mailchimp connection open (429 past 10).
    app.wsgi_app = ConnectionLimit(faults, state.mailchimp)  # type: ignore[method-assign]
    return app
