"""``send_later``: checked now, sent by a real Celery worker process through the same path
as ``send``, exactly once; eager in testing without a broker.

Workers are real ``celery worker`` processes (``tests/celery_support.py``) on a real
redis-server, sending to the sandbox over HTTP with the real Notify client.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from flask_dmmail import DMMail, Mailer, signals
from flask_dmmail.errors import (
    ConfigurationError,
    InvalidEmailAddressError,
    MissingPersonalisationError,
    QueueError,
    UnknownTemplateError,
)
from flask_dmmail.queued import FAILED, QUEUED, RETRYING, SENDING, SENT, QueuedEmail, QueuedStatus
from flask_dmmail.sandbox import Sandbox
from tests.celery_app import mailer_of, make_celery, make_web_app
from tests.celery_support import Worker, free_port, wait_for, worker_environment
from tests.conftest import RESET_ID, WELCOME_ID
from tests.secrets_scan import register_secret

PERSONAL = {"name": "Queued Quentin", "framework": "Queued Framework Nine"}


@pytest.fixture
def web(sandbox: Sandbox, clean_redis: str) -> Iterator[Flask]:
    """The web app, queueing on the tests' Celery app over the test's redis-server."""
    app = make_web_app(sandbox, make_celery(clean_redis))
    yield app
    app.extensions["dmmail"].close()


def state_of(mailer: Mailer, queued: QueuedEmail) -> QueuedStatus:
    [status] = mailer.queued(queued.reference)
    assert status.task_id == queued.task_id
    return status


def wait_for_state(mailer: Mailer, queued: QueuedEmail, *states: str) -> QueuedStatus:
    wait_for(lambda: state_of(mailer, queued).state in states, f"state {states}")
    return state_of(mailer, queued)


# -- eager: testing without a broker --------------------------------------------------------------


def test_in_testing_without_a_broker_send_later_sends_at_once(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    app = make_app()
    app.testing = True
    mailer = mailer_of(app)
    sent: list[Any] = []

    def on_sent(sender: Flask, email: Any, **_: Any) -> None:
        sent.append((sender, email))

    signals.email_sent.connect(on_sent)
    try:
        with app.app_context():
            queued = DMMail().send_later("eager.one@example.gov.uk", "welcome", PERSONAL)
    finally:
        signals.email_sent.disconnect(on_sent)
    assert isinstance(queued, QueuedEmail) and queued.eager
    assert queued.template_id == WELCOME_ID
    assert queued.to == queued.sent_to == "eager.one@example.gov.uk"
    assert (
        queued.reference
        == mailer.prepare("eager.one@example.gov.uk", "welcome", PERSONAL).reference
    )
    assert "eager.one" not in repr(queued)
    [stored] = sandbox.state.outbox()
    assert stored.reference == queued.reference
    status = state_of(mailer, queued)
    assert (status.state, status.notification_id, status.attempts) == (SENT, stored.id, 1)
    assert [(s, e.id) for s, e in sent] == [(app, stored.id)]


def test_bad_input_raises_in_the_request_and_nothing_is_queued(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    app = make_app()
    app.testing = True
    mailer = mailer_of(app)
    with pytest.raises(InvalidEmailAddressError):
        mailer.send_later("not an address", "welcome", PERSONAL)
    with pytest.raises(UnknownTemplateError):
        mailer.send_later("a@example.gov.uk", "no_such_template", PERSONAL)
    assert sandbox.state.outbox() == []
    assert mailer.queue.ledger.for_reference("anything") == []


def test_outside_testing_and_sandbox_mode_send_later_needs_a_celery_app(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    mailer = mailer_of(make_app())
    with pytest.raises(ConfigurationError) as raised:
        mailer.send_later("a@example.gov.uk", "welcome", PERSONAL)
    assert raised.value.key == "DM_MAIL_CELERY_BROKER_URL"
    assert "DMMail(app, celery=celery_app)" in raised.value.message
    assert sandbox.state.outbox() == []
    assert mailer.queued("dmmail-anything") == []


def test_a_broker_that_does_not_answer_is_a_queue_error_and_nothing_is_queued(
    sandbox: Sandbox, clean_redis: str
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    celery_app = make_celery(dead)
    celery_app.conf.broker_connection_timeout = 1
    celery_app.conf.broker_connection_max_retries = 0
    app = make_web_app(sandbox, celery_app, DM_MAIL_REDIS_URL=None)
    try:
        with pytest.raises(QueueError) as raised:
            mailer_of(app).send_later("a@example.gov.uk", "welcome", PERSONAL)
        assert "did not answer" in raised.value.message
        assert str(free_port) not in raised.value.message
    finally:
        mailer_of(app).close()


# -- real workers ---------------------------------------------------------------------------------


def test_send_later_returns_at_once_and_a_worker_sends_it_exactly_as_send_would(
    web: Flask,
    sandbox: Sandbox,
    clean_redis: str,
    workers: Callable[..., Worker],
) -> None:
    register_secret("queued.one@example.gov.uk", *PERSONAL.values(), kind="personal")
    mailer = mailer_of(web)
    queued = mailer.send_later("queued.one@example.gov.uk", "welcome", PERSONAL)
    assert not queued.eager
    assert state_of(mailer, queued).state == QUEUED
    assert sandbox.state.outbox() == []  # nothing sent: no worker yet

    # The message in the broker carries the task id; what Celery logs and shows is hashed.
    client = redis.Redis.from_url(clean_redis, decode_responses=True)
    [raw] = client.lrange("celery", 0, -1)
    assert isinstance(raw, str)
    message = json.loads(raw)
    body = base64.b64decode(message["body"]).decode()
    everything = raw + body
    for secret in ("queued.one", *PERSONAL.values()):
        assert secret.lower() not in everything.lower()
    headers = message["headers"]
    assert headers["id"] == queued.task_id
    assert headers["argsrepr"] == "()"
    assert queued.reference in headers["kwargsrepr"]
    assert state_of(mailer, queued).to_hash in headers["kwargsrepr"]

    worker = workers(worker_environment(sandbox, clean_redis)).wait_ready()
    status = wait_for_state(mailer, queued, SENT)
    [stored] = sandbox.state.outbox()
    assert stored.reference == queued.reference
    assert stored.email_address == "queued.one@example.gov.uk"
    assert stored.template_id == WELCOME_ID
    assert stored.personalisation == PERSONAL
    assert status.notification_id == stored.id
    assert mailer.queue.ledger.email(queued.task_id) is None  # the copy goes once sent
    worker.stop()
    assert f"Email sent to Notify: notification {stored.id}" in worker.output
    assert f"{queued.task_id}] succeeded" in worker.output


def test_the_celery_app_the_extension_makes_from_the_broker_url(
    sandbox: Sandbox, clean_redis: str, workers: Callable[..., Worker]
) -> None:
    app = make_web_app(sandbox, None, DM_MAIL_CELERY_BROKER_URL=clean_redis)
    try:
        mailer = mailer_of(app)
        assert mailer.celery is not None
        assert mailer.celery.conf.task_acks_late is True
        assert mailer.celery.conf.task_reject_on_worker_lost is True
        queued = mailer.send_later("made.app@example.gov.uk", "reset_password", {"url": "x"})
        register_secret("made.app@example.gov.uk", kind="personal")
        workers(
            worker_environment(sandbox, clean_redis, DM_MAIL_CELERY_BROKER_URL=clean_redis)
        ).wait_ready()
        status = wait_for_state(mailer, queued, SENT)
        [stored] = sandbox.state.outbox()
        assert (stored.id, stored.template_id) == (status.notification_id, RESET_ID)
    finally:
        mailer_of(app).close()


def test_an_email_notify_refuses_fails_for_good_and_is_kept_for_inspection(
    web: Flask, sandbox: Sandbox, clean_redis: str, workers: Callable[..., Worker]
) -> None:
    mailer = mailer_of(web)
    register_secret("refused.one@example.gov.uk", kind="personal")
    # Notify checks placeholders; the local checks do not: the worker's send is refused.
    queued = mailer.send_later("refused.one@example.gov.uk", "welcome", {"name": "Ri"})
    worker = workers(worker_environment(sandbox, clean_redis)).wait_ready()
    status = wait_for_state(mailer, queued, FAILED)
    assert status.failed_for_good
    assert status.error_class == MissingPersonalisationError.__name__
    assert status.error is not None and "framework" in status.error
    assert sandbox.state.outbox() == []
    kept = mailer.queue.ledger.email(queued.task_id)
    assert kept is not None and "refused.one@example.gov.uk" in kept
    worker.stop()
    assert "failed for good with MissingPersonalisationError" in worker.output


def test_a_transient_failure_queues_the_email_again_and_it_is_sent_once(
    web: Flask, sandbox: Sandbox, clean_redis: str, workers: Callable[..., Worker]
) -> None:
    mailer = mailer_of(web)
    register_secret("flaky.one@example.gov.uk", kind="personal")
    sandbox.state.set_faults(error_rate=1.0)  # every request: 500, not stored
    queued = mailer.send_later("flaky.one@example.gov.uk", "reset_password", {"url": "u"})
    workers(
        worker_environment(
            sandbox, clean_redis, DM_NOTIFY_RETRIES="0", DM_NOTIFY_RETRY_BACKOFF="0.05"
        )
    ).wait_ready()
    status = wait_for_state(mailer, queued, RETRYING)
    assert status.error_class == "NotifyUnavailableError"
    sandbox.state.clear_faults()
    status = wait_for_state(mailer, queued, SENT)
    assert status.failures >= 1
    [stored] = sandbox.state.outbox()
    assert stored.reference == queued.reference


def test_the_example_apps_worker_sends_what_its_views_queue(
    sandbox: Sandbox, clean_redis: str, workers: Callable[..., Worker]
) -> None:
    """``celery -A example_app.worker worker``, the command the docs give, on the staging
    config: the redirect is decided in the request and the worker sends to it."""
    from example_app import create_app

    settings = {
        "SECRET_KEY": "example-worker-secret",
        "DM_NOTIFY_KEY": sandbox.keys.test,
        "DM_NOTIFY_BASE_URL": sandbox.url,
        "DM_MAIL_CELERY_BROKER_URL": clean_redis,
    }
    team = "dm-team.inbox@digital.gov.uk"  # not the simulator address: the outbox keeps it
    app = create_app(
        "staging", DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS={"example.gov.uk": team}, **settings
    )
    try:
        mailer = mailer_of(app)
        register_secret("buyer.example@example.gov.uk", kind="personal")
        queued = mailer.send_later("buyer.example@example.gov.uk", "reset_password", {"url": "u"})
        assert queued.redirected and queued.sent_to == team
        env = {**worker_environment(sandbox, clean_redis, **settings), "DM_ENVIRONMENT": "staging"}
        worker = Worker(env, app="example_app.worker")
        try:
            worker.wait_ready()
            status = wait_for_state(mailer, queued, SENT)
        finally:
            worker.stop()
        [stored] = sandbox.state.outbox()
        assert (stored.id, stored.email_address) == (status.notification_id, team)
        assert "email sent" in worker.output  # the app's audit receiver ran in the worker
    finally:
        mailer.close()


@pytest.mark.slow
def test_workers_killed_mid_send_three_times_send_each_email_exactly_once(
    sandbox: Sandbox, clean_redis: str, workers: Callable[..., Worker]
) -> None:
    """Proof (b): a worker and its children SIGKILLed while they send, three times; the
    emails they held go to other workers (the broker's visibility timeout), which wait out
    the dead run's lease, look each in-doubt email up in Notify, and send the rest."""
    app = make_web_app(sandbox, make_celery(clean_redis, visibility_timeout=3))
    mailer = mailer_of(app)
    rows = [(f"killed.{n}@example.gov.uk", {"url": f"https://x.example/{n}"}) for n in range(24)]
    register_secret(*(address for address, _ in rows), kind="personal")
    queued = [mailer.send_later(address, "reset_password", values) for address, values in rows]
    sandbox.state.set_faults(latency=0.3)  # every post takes a while: a kill lands mid-send
    env = worker_environment(
        sandbox, clean_redis, DM_NOTIFY_TIMEOUT="1", TEST_VISIBILITY_TIMEOUT="3"
    )
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)

    def states() -> dict[str, int]:
        return dict(Counter(state_of(mailer, q).state for q in queued))

    in_doubt_after_kills = 0
    try:
        for _ in range(3):
            sent_before = states().get(SENT, 0)
            worker = workers(env, concurrency=2).wait_ready()

            def under_way(before: int = sent_before) -> bool:
                now = states()
                return now.get(SENDING, 0) > 0 and now.get(SENT, 0) > before

            wait_for(under_way, "a send under way")
            time.sleep(rng.uniform(0, 0.25))
            worker.kill()
            in_doubt_after_kills += states().get(SENDING, 0)
        assert states().get(SENT, 0) < len(rows), f"seed {seed}"
        assert in_doubt_after_kills > 0, f"seed {seed}: no kill left an email in doubt"
        sandbox.state.clear_faults()
        for _ in range(2):
            workers(env, concurrency=2).wait_ready()
        wait_for(lambda: states() == {SENT: len(rows)}, "every email sent", timeout=300)
    finally:
        mailer.close()
    references = Counter(n.reference for n in sandbox.state.outbox())
    assert references == Counter(q.reference for q in queued), f"seed {seed}"
