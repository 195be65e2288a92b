"""The example app's Celery worker, for ``send_later`` and bulk runs on Celery::

    DM_MAIL_CELERY_BROKER_URL=redis://localhost:6379/0 \\
        celery -A example_app.worker worker --loglevel=INFO

It builds the app as the web processes do (``DM_ENVIRONMENT`` picks the config class; the
key and the broker come from the environment) and exposes the Celery app the extension made
from ``DM_MAIL_CELERY_BROKER_URL``. Its tasks run inside the app's context, and the signals
they send (``email_sent``, ``email_failed``) have this app as their sender, so the audit
receivers of :func:`example_app.create_app` log the worker's sends too.
"""

from __future__ import annotations

from celery import Celery

from flask_dmmail.errors import ConfigurationError

from . import create_app

flask_app = create_app()
_celery = flask_app.extensions["dmmail"].celery
if _celery is None:
    raise ConfigurationError(
        "DM_MAIL_CELERY_BROKER_URL",
        "the worker needs a broker: set it to the broker's URL, e.g. redis://localhost:6379/0.",
    )
celery_app: Celery = _celery
