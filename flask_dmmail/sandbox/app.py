"""Build the sandbox Flask app: Notify's /v2 API, the /_sandbox controls, faults, outbox page."""

from __future__ import annotations

from typing import Any

from flask import Flask

from .control import control_blueprint
from .faults import FaultMiddleware
from .notify_api import notify_blueprint, register_error_pages
from .state import SandboxState

__all__ = ["create_app"]


def create_app(state: SandboxState | None = None, **state_options: Any) -> Flask:
    """The sandbox app over ``state`` (a new :class:`SandboxState` from ``state_options``
    when None).

    ``app.extensions["dmmail_sandbox"]`` is the state and ``app.wsgi_app`` is wrapped in
    the :class:`FaultMiddleware` (also at ``app.extensions["dmmail_sandbox_faults"]``), so
    any blueprint registered on the app later gets the same fault injection.
    """
    if state is None:
        state = SandboxState(**state_options)
    elif state_options:
        raise TypeError("pass either a state or state options, not both")
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["dmmail_sandbox"] = state
    app.register_blueprint(notify_blueprint(state))
    app.register_blueprint(control_blueprint(state))
    try:
        from .outbox import outbox_blueprint
    except ImportError:  # the outbox page lands separately
        pass
    else:
        app.register_blueprint(outbox_blueprint(state))
    register_error_pages(app)
    faults = FaultMiddleware(app.wsgi_app, state)
    app.extensions["dmmail_sandbox_faults"] = faults
    app.wsgi_app = faults  # type: ignore[method-assign]
    return app
