"""Transient errors are retried; a retry never sends an email twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from flask import Flask

from flask_dmmail import Mailer
from flask_dmmail.errors import DailyLimitError, NotifyUnavailableError, RateLimitError
from flask_dmmail.sandbox import Sandbox

from .conftest import RefillAfter429

PERSONAL = {"name": "N", "framework": "F"}


def references(sandbox: Sandbox) -> Counter[str | None]:
    return Counter(n.reference for n in sandbox.state.outbox())


def test_500s_are_retried_until_they_succeed(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    # No backoff: with half the requests failing (the look-ups too), an email can take a
    # dozen attempts, and even a 1 ms base would double to seconds of waiting.
    mailer: Mailer = make_app(DM_NOTIFY_RETRIES=20, DM_NOTIFY_RETRY_BACKOFF=0).extensions["dmmail"]
    sandbox.state.set_faults(error_rate=0.5, seed=1)
    for n in range(20):
        mailer.send(f"p{n}@example.gov.uk", "welcome", PERSONAL)
    sandbox.state.clear_faults()
    counts = references(sandbox)
    assert len(counts) == 20
    assert set(counts.values()) == {1}


def test_dropped_connections_after_storing_never_send_twice(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    mailer: Mailer = make_app(DM_NOTIFY_RETRIES=20, DM_NOTIFY_RETRY_BACKOFF=0).extensions["dmmail"]
    sandbox.state.set_faults(drop_rate=0.5, seed=2)
    sent = [mailer.send(f"p{n}@example.gov.uk", "welcome", PERSONAL) for n in range(20)]
    sandbox.state.clear_faults()
    counts = references(sandbox)
    assert len(counts) == 20
    assert set(counts.values()) == {1}
    assert {s.id for s in sent if s} == {n.id for n in sandbox.state.outbox()}


def test_a_stall_past_the_timeout_never_sends_twice(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    mailer: Mailer = make_app(DM_NOTIFY_RETRIES=5, DM_NOTIFY_TIMEOUT=0.5).extensions["dmmail"]
    # The stall outlasts any client (clear_faults ends it), however late the timeout fires.
    sandbox.state.set_faults(stall_rate=1.0, stall_seconds=60, paths=["/v2/notifications/email"])
    try:
        sent = mailer.send("p@example.gov.uk", "welcome", PERSONAL)
    finally:
        sandbox.state.clear_faults()
    assert sent is not None
    assert [n.id for n in sandbox.state.outbox()] == [sent.id]


def test_when_retries_run_out_the_error_is_transient_and_typed(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    mailer: Mailer = make_app(DM_NOTIFY_RETRIES=2).extensions["dmmail"]
    sandbox.state.set_faults(error_rate=1.0)
    try:
        with pytest.raises(NotifyUnavailableError) as raised:
            mailer.send("p@example.gov.uk", "welcome", PERSONAL)
    finally:
        sandbox.state.clear_faults()
    assert raised.value.transient
    assert raised.value.status_code == 500
    assert sandbox.state.outbox() == []


def test_rate_limits_are_retried(
    make_app: Callable[..., Flask], sandbox: Sandbox, refill_after_429: RefillAfter429
) -> None:
    mailer: Mailer = make_app(DM_NOTIFY_RETRIES=10, DM_NOTIFY_RETRY_BACKOFF=0.2).extensions[
        "dmmail"
    ]
    # 1 a minute: a bucket of 2, which lets one request through (Notify takes the token
    # first and refuses when none is left), and no token back on its own, so the second
    # and the third send each meet a 429; the bucket is refilled when the mailer says it
    # will retry.
    sandbox.state.set_limits(rate_limit=1)
    sent = [mailer.send(f"p{n}@example.gov.uk", "welcome", PERSONAL) for n in range(3)]
    assert all(sent)
    assert len(sandbox.state.outbox()) == 3
    assert refill_after_429.refills == 2


def test_without_retries_a_rate_limit_is_a_typed_transient_error(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    mailer: Mailer = make_app(DM_NOTIFY_RETRIES=0).extensions["dmmail"]
    sandbox.state.set_limits(rate_limit=1)  # 1 request through, no token back for a minute
    with pytest.raises(RateLimitError) as raised:
        for n in range(10):
            mailer.send(f"p{n}@example.gov.uk", "welcome", PERSONAL)
    assert raised.value.transient
    assert "1 requests per 60 seconds" in str(raised.value)


def test_the_daily_limit_is_not_retried(make_app: Callable[..., Flask], sandbox: Sandbox) -> None:
    mailer: Mailer = make_app(key=sandbox.keys.live, DM_NOTIFY_RETRIES=5).extensions["dmmail"]
    sandbox.state.set_limits(daily_limit=1)
    mailer.send("p@example.gov.uk", "welcome", PERSONAL)
    with pytest.raises(DailyLimitError) as raised:
        mailer.send("q@example.gov.uk", "welcome", PERSONAL)
    assert not raised.value.transient and raised.value.attempts == 1
    assert len(sandbox.state.outbox()) == 1


def test_with_no_retries_a_timed_out_send_that_notify_stored_is_found(
    make_app: Callable[..., Flask], sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    mailer: Mailer = make_app(DM_NOTIFY_RETRIES=0, DM_NOTIFY_TIMEOUT=0.3).extensions["dmmail"]
    # The stall outlasts any client (clear_faults ends it), however late the timeout fires.
    sandbox.state.set_faults(stall_rate=1.0, stall_seconds=60, paths=["/v2/notifications/email"])
    try:
        with caplog.at_level("INFO", logger="flask_dmmail"):
            sent = mailer.send("p@example.gov.uk", "welcome", PERSONAL)
    finally:
        sandbox.state.clear_faults()
    assert sent is not None
    assert [n.id for n in sandbox.state.outbox()] == [sent.id]
    ours = [r for r in caplog.records if r.name == "flask_dmmail"]
    assert [getattr(r, "recovered", None) for r in ours] == [True]


def test_a_reference_shared_with_another_email_is_not_taken_for_this_one(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    # Notify references may name a batch: after a 5xx, the look-up must not take another
    # recipient's notification with the same reference for this email.
    mailer: Mailer = make_app(DM_NOTIFY_RETRIES=1).extensions["dmmail"]
    first = mailer.send("first@example.gov.uk", "welcome", PERSONAL, reference="batch-7")
    assert first is not None
    sandbox.state.set_faults(error_rate=1.0, paths=["/v2/notifications/email"])
    try:
        with pytest.raises(NotifyUnavailableError):
            mailer.send("second@example.gov.uk", "welcome", PERSONAL, reference="batch-7")
    finally:
        sandbox.state.clear_faults()
    assert [n.id for n in sandbox.state.outbox()] == [first.id]
