"""A small Digital Marketplace-style frontend that sends email through flask-dmmail.

Run it with no keys at all (the embedded sandbox takes the emails)::

    flask --app example_app run

then open http://127.0.0.1:5000/ and the outbox at http://127.0.0.1:5000/_dmmail/.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

from flask_dmmail import DMMail, signals
from flask_dmmail.errors import DMMailError
from flask_dmmail.notify import SentEmail

from .config import configs
from .views import main

dmmail = DMMail()
audit_log = logging.getLogger("example_app.audit")


def create_app(environment: str | None = None, **overrides: Any) -> Flask:
    """The app factory. The config class comes from ``environment`` or ``DM_ENVIRONMENT``
    (development, test, preview, staging, production); ``overrides`` win over it."""
    name = (environment or os.environ.get("DM_ENVIRONMENT") or "development").lower()
    if name not in configs:
        raise ValueError(f"DM_ENVIRONMENT must be one of {', '.join(configs)}, not {name!r}")
    app = Flask(__name__)
    app.config.from_object(configs[name])
    app.config.update(overrides)
    dmmail.init_app(app)
    app.register_blueprint(main)
    _connect_audit_receivers(app)
    return app


def _connect_audit_receivers(app: Flask) -> None:
    """Log sends and failures the way a frontend's audit trail would: ids and hashes only."""

    def sent(sender: Flask, email: SentEmail, **_: Any) -> None:
        audit_log.info(
            "email sent",
            extra={"notification_id": email.id, "reference": email.reference},
        )

    def failed(sender: Flask, error: DMMailError, to_hash: str | None, **_: Any) -> None:
        audit_log.warning("email failed: %s", type(error).__name__, extra={"to_hash": to_hash})

    signals.email_sent.connect(sent, sender=app, weak=False)
    signals.email_failed.connect(failed, sender=app, weak=False)
