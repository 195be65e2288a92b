"""The module a test's Celery workers load: ``celery -A tests.celery_worker:celery_app worker``.

The Notify key and base URL, the Redis (broker and ledger) and the send settings come from
the environment (see ``worker_environment`` in ``tests/celery_support.py``), so a test
points the workers at a sandbox and a redis-server it started itself. With
``DM_MAIL_CELERY_BROKER_URL`` set the extension makes the Celery app; otherwise the app
brings its own (``make_celery``), as Flask's "Background Tasks with Celery" does.
"""

from __future__ import annotations

import os

from celery import Celery

from tests.celery_app import create_app, make_celery

celery_app: Celery


if os.environ.get("DM_MAIL_CELERY_BROKER_URL"):
    flask_app = create_app()
    made = flask_app.extensions["dmmail"].celery
    assert made is not None
    celery_app = made
else:
    celery_app = make_celery(
        os.environ["TEST_CELERY_BROKER"],
        visibility_timeout=float(os.environ.get("TEST_VISIBILITY_TIMEOUT", "5")),
    )
    flask_app = create_app(celery_app)
