"""A small app for the bulk-send subprocess tests: ``flask --app tests.bulk_app ...``.

The Notify key, base URL, timeout and backoff come from the environment (DM_* variables),
so a test points it at a sandbox it started itself.
"""

from __future__ import annotations

from flask import Flask

from flask_dmmail import DMMail

TEMPLATES = {
    "welcome": "6f1a3c1e-8a0b-4c3e-9d0f-5b6a7c8d9e01",
    "reset_password": "0c2b8e7a-1f3d-4e5a-8b6c-7d9e0f1a2b3c",
}


def create_app() -> Flask:
    """The app, configured from the environment."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="bulk-test-secret",
        DM_NOTIFY_TEMPLATES=TEMPLATES,
        DM_MAIL_SANDBOX=False,
        DM_ENVIRONMENT="production",
    )
    DMMail(app)
    return app
