"""allow_resend=False: skip emails Notify already has, in this process and across processes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import Flask

from flask_dmmail import Mailer, signals
from flask_dmmail.sandbox import Sandbox

PERSONAL = {"name": "N", "framework": "F"}


def test_a_second_send_is_skipped_with_a_signal(
    app: Flask, mailer: Mailer, sandbox: Sandbox
) -> None:
    skipped: list[dict[str, Any]] = []

    def receiver(sender: Flask, **kwargs: Any) -> None:
        assert sender is app
        skipped.append(kwargs)

    first = mailer.send("a@example.gov.uk", "welcome", PERSONAL, allow_resend=False)
    with signals.email_skipped.connected_to(receiver, sender=app):
        again = mailer.send("a@example.gov.uk", "welcome", PERSONAL, allow_resend=False)
    assert first is not None and again is None
    assert len(sandbox.state.outbox()) == 1
    assert skipped == [
        {
            "reference": first.reference,
            "template_id": first.template_id,
            "to_hash": mailer.hasher.hash_address("a@example.gov.uk"),
        }
    ]


def test_a_new_process_finds_the_email_in_notify(
    mailer: Mailer, make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    assert mailer.send("a@example.gov.uk", "welcome", PERSONAL) is not None
    fresh = make_app().extensions["dmmail"]  # nothing remembered locally
    assert fresh.send("a@example.gov.uk", "welcome", PERSONAL, allow_resend=False) is None
    assert len(sandbox.state.outbox()) == 1


def test_allow_resend_true_sends_again(mailer: Mailer, sandbox: Sandbox) -> None:
    mailer.send("a@example.gov.uk", "welcome", PERSONAL)
    mailer.send("a@example.gov.uk", "welcome", PERSONAL)
    assert len(sandbox.state.outbox()) == 2


def test_a_failed_email_is_sent_again(
    mailer: Mailer, make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    failed = mailer.send("perm-fail@simulator.notify", "welcome", PERSONAL)
    assert failed is not None
    sandbox.state.force_status(failed.id, "permanent-failure")
    fresh = make_app().extensions["dmmail"]
    again = fresh.send("perm-fail@simulator.notify", "welcome", PERSONAL, allow_resend=False)
    assert again is not None and again.id != failed.id
    assert again.reference == failed.reference


def test_sixteen_threads_sending_the_same_email_send_it_once(
    mailer: Mailer, sandbox: Sandbox
) -> None:
    results: list[object] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        results.append(mailer.send("a@example.gov.uk", "welcome", PERSONAL, allow_resend=False))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sandbox.state.outbox()) == 1
    assert sum(r is not None for r in results) == 1
