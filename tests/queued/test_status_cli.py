"""``flask dmmail status --reference``: a queued email told apart from a sent one and from
one that failed for good (kept for inspection), from the queue's states in Redis and
Notify's list, with a real worker process in between."""

from __future__ import annotations

import json
from collections.abc import Callable

from click.testing import Result
from flask import Flask

from flask_dmmail import Mailer
from flask_dmmail.queued import FAILED, SENT
from flask_dmmail.sandbox import Sandbox
from tests.celery_app import mailer_of, make_celery, make_web_app
from tests.celery_support import Worker, wait_for, worker_environment
from tests.secrets_scan import register_secret

GOOD = {"name": "Status Stella", "framework": "Queued Framework Nine"}


def status(app: Flask, reference: str, *more: str) -> Result:
    return app.test_cli_runner().invoke(args=["dmmail", "status", "--reference", reference, *more])


def fields(output: str) -> list[dict[str, str]]:
    """Each block of ``key: value`` lines."""
    return [
        dict(line.split(": ", 1) for line in block.splitlines())
        for block in output.strip().split("\n\n")
    ]


def test_eager_sends_show_their_task_beside_the_notification(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    app = make_app()
    app.testing = True
    queued = app.extensions["dmmail"].send_later("eager.status@example.gov.uk", "welcome", GOOD)
    result = status(app, queued.reference)
    assert result.exit_code == 0, result.output
    [block] = fields(result.stdout)
    assert block["status"] in ("created", "sending", "delivered")
    assert block["task id"] == f"{queued.task_id} (queued with send_later)"
    [document] = json.loads(status(app, queued.reference, "--json").stdout)
    assert (document["task_id"], document["reference"]) == (queued.task_id, queued.reference)


def test_queued_sent_and_failed_for_good_are_told_apart(
    sandbox: Sandbox, clean_redis: str, workers: Callable[..., Worker]
) -> None:
    app = make_web_app(sandbox, make_celery(clean_redis))
    mailer: Mailer = mailer_of(app)
    register_secret("status.sent@example.gov.uk", "status.failed@example.gov.uk", *GOOD.values())
    sent = mailer.send_later("status.sent@example.gov.uk", "welcome", GOOD, reference="st-sent")
    failing = mailer.send_later(
        "status.failed@example.gov.uk", "welcome", {"name": "Only A Name"}, reference="st-fail"
    )
    try:
        # No worker yet: both are queued, and Notify has neither.
        for queued in (sent, failing):
            result = status(app, queued.reference)
            assert result.exit_code == 0, result.output
            [block] = fields(result.stdout)
            assert block["status"] == "queued (waiting for a worker)"
            assert block["task id"] == queued.task_id
            assert block["attempts"] == "0"
            [document] = json.loads(status(app, queued.reference, "--json").stdout)
            assert (document["status"], document["id"]) == ("queued", None)

        worker = workers(worker_environment(sandbox, clean_redis)).wait_ready()
        wait_for(lambda: mailer.queued("st-sent")[0].state == SENT, "the first email sent")
        wait_for(lambda: mailer.queued("st-fail")[0].state == FAILED, "the second one failed")
        worker.stop()

        result = status(app, "st-sent")
        [block] = fields(result.stdout)
        [stored] = sandbox.state.outbox()
        assert block["id"] == stored.id
        assert block["status"] in ("created", "sending", "delivered")
        assert block["task id"] == f"{sent.task_id} (queued with send_later)"

        result = status(app, "st-fail")
        assert result.exit_code == 0, result.output
        [block] = fields(result.stdout)
        assert block["status"] == (
            "failed for good (MissingPersonalisationError); the email is kept for inspection"
        )
        assert "framework" in block["error"]
        assert block["attempts"] == "1"
        [document] = json.loads(status(app, "st-fail", "--json").stdout)
        assert document["status"] == "failed-for-good"
        assert document["error_class"] == "MissingPersonalisationError"
        assert mailer.queue.ledger.email(failing.task_id) is not None  # kept

        unknown = status(app, "st-never")
        assert unknown.exit_code == 1
        assert "No notification with that reference" in unknown.stderr
    finally:
        mailer.close()
