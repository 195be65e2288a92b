"""The apps of the queued-send tests: the Celery app they bring (:func:`make_celery`) and
the Flask app the workers run (:func:`create_app`; the worker module is
``tests/celery_worker.py``)."""

from __future__ import annotations

from typing import Any

from celery import Celery
from flask import Flask

from flask_dmmail import DMMail, Mailer
from flask_dmmail.sandbox import Sandbox

TEMPLATES = {
    "welcome": "6f1a3c1e-8a0b-4c3e-9d0f-5b6a7c8d9e01",
    "reset_password": "0c2b8e7a-1f3d-4e5a-8b6c-7d9e0f1a2b3c",
}
#: The keyed-hash key of the test apps and the workers: the same, so references match.
HASH_KEY = "celery-tests-hash-key"


def make_celery(broker_url: str, *, visibility_timeout: float = 5.0) -> Celery:
    """A Celery app of the tests' own. A message a killed worker took is given to another
    after ``visibility_timeout`` seconds (Redis transport), looked for every second."""
    celery_app = Celery("tests.celery_app", broker=broker_url)
    celery_app.conf.update(
        broker_transport_options={
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        worker_hijack_root_logger=True,
    )
    return celery_app


def create_app(celery_app: Celery | None = None) -> Flask:
    """The workers' app, configured from the environment."""
    app = Flask("celery_worker_app")
    app.config.update(
        SECRET_KEY="celery-test-secret",
        DM_NOTIFY_TEMPLATES=TEMPLATES,
        DM_MAIL_SANDBOX=False,
        DM_ENVIRONMENT="production",
        DM_MAIL_HASH_KEY=HASH_KEY,
    )
    DMMail(app, celery=celery_app)
    return app


def make_web_app(sandbox: Sandbox, celery_app: Celery | None, **config: Any) -> Flask:
    """A web app that queues on ``celery_app`` (the workers' app has the same config)."""
    app = Flask("queued_web_app")
    app.config.update(
        SECRET_KEY="queued-web",
        DM_NOTIFY_KEY=sandbox.keys.test,
        DM_NOTIFY_BASE_URL=sandbox.url,
        DM_NOTIFY_TEMPLATES=TEMPLATES,
        DM_NOTIFY_TIMEOUT=2,
        DM_NOTIFY_RETRY_BACKOFF=0.001,
        DM_MAIL_SANDBOX=False,
        DM_ENVIRONMENT="production",
        DM_MAIL_HASH_KEY=HASH_KEY,
    )
    app.config.update(config)
    DMMail(app, celery=celery_app)
    return app


def mailer_of(app: Flask) -> Mailer:
    mailer = app.extensions["dmmail"]
    assert isinstance(mailer, Mailer)
    return mailer
