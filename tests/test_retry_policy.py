"""flask_dmmail.retry: how long each retry loop waits between attempts.

``backoff_delay`` is exponential backoff with full jitter: the wait after attempt ``n`` is
drawn from 0 to ``base * 2**(n-1)``, capped at ``BACKOFF_CAP``. It is driven directly, with
Python's ``random`` seeded so that every run draws the same waits, and through the public
API: a send and a Mailchimp call against the sandbox's faults retry as often as configured,
each wait within the configured base's bound (the waits are read from the library's own
"retrying in N ms" log lines), and after a timeout a send waits at least the client's
timeout before it looks the email up. Which errors are retried at all is tested in
tests/test_retries.py (and per error class in the error-model tests).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from flask_dmmail import Mailer
from flask_dmmail.errors import MailchimpUnavailableError, NotifyUnavailableError
from flask_dmmail.mailchimp import Audiences
from flask_dmmail.retry import BACKOFF_CAP, backoff_delay
from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.mailchimp import MailchimpState

PERSONAL = {"name": "N", "framework": "F"}
RETRYING = re.compile(r"retrying in (\d+) ms$")


@pytest.fixture
def seeded_random() -> Iterator[None]:
    """Python's random numbers, seeded for the test and restored after it."""
    state = random.getstate()
    random.seed(20260301)
    try:
        yield
    finally:
        random.setstate(state)


def waits(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int]]:
    """(attempt, wait in ms) of every "retrying in N ms" line of flask_dmmail."""
    found = []
    for record in caplog.records:
        match = RETRYING.search(record.getMessage())
        if record.name == "flask_dmmail" and match is not None:
            found.append((int(record.attempt), int(match.group(1))))  # type: ignore[attr-defined]
    return found


def bound_ms(attempt: int, base: float) -> float:
    """The longest wait after ``attempt`` for a base of ``base`` seconds, in ms, allowing
    for the log line's rounding to whole ms."""
    return min(BACKOFF_CAP, base * 2.0 ** (attempt - 1)) * 1000 + 0.5


# -- backoff_delay ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "base", "longest"),
    [
        (1, 0.5, 0.5),
        (2, 0.5, 1.0),
        (3, 0.25, 1.0),
        (6, 0.5, 16.0),
        (7, 0.5, 30.0),  # 32 s, capped
        (60, 0.5, 30.0),
        (3, 100.0, 30.0),
    ],
)
def test_each_wait_is_drawn_from_zero_to_the_doubled_base_capped(
    seeded_random: None, attempt: int, base: float, longest: float
) -> None:
    draws = [backoff_delay(attempt, base) for _ in range(2000)]
    assert all(0 <= wait <= longest for wait in draws)
    # full jitter: the whole range is used, so clients that failed together spread out
    assert min(draws) < 0.05 * longest and max(draws) > 0.95 * longest


def test_a_base_of_zero_never_waits(seeded_random: None) -> None:
    assert {backoff_delay(attempt, 0) for attempt in range(1, 50)} == {0}


def test_the_cap_is_thirty_seconds() -> None:
    assert BACKOFF_CAP == 30.0


def test_a_very_late_attempt_still_waits_at_most_the_cap(seeded_random: None) -> None:
    assert 0 <= backoff_delay(1100, 0.5) <= BACKOFF_CAP


# -- the send paths ---------------------------------------------------------------------------


def test_a_send_retries_as_configured_within_the_configured_backoff(
    make_app: Callable[..., Flask],
    sandbox: Sandbox,
    caplog: pytest.LogCaptureFixture,
    seeded_random: None,
) -> None:
    mailer: Mailer = make_app(DM_NOTIFY_RETRIES=4, DM_NOTIFY_RETRY_BACKOFF=0.004).extensions[
        "dmmail"
    ]
    sandbox.state.set_faults(error_rate=1.0, paths=["/v2/notifications/email"])
    caplog.set_level(logging.INFO, logger="flask_dmmail")
    try:
        with pytest.raises(NotifyUnavailableError) as raised:
            mailer.send("p@example.gov.uk", "welcome", PERSONAL)
    finally:
        sandbox.state.clear_faults()
    assert raised.value.attempts == 5
    found = waits(caplog)
    assert [attempt for attempt, _ in found] == [1, 2, 3, 4]
    assert all(wait <= bound_ms(attempt, 0.004) for attempt, wait in found), found


def test_after_a_timeout_a_send_waits_at_least_the_timeout_before_looking_up(
    make_app: Callable[..., Flask], sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Notify may still be storing the email that timed out: the wait lets it finish, so
    the look-up finds it instead of the email being sent twice."""
    mailer: Mailer = make_app(
        DM_NOTIFY_RETRIES=1, DM_NOTIFY_TIMEOUT=0.3, DM_NOTIFY_RETRY_BACKOFF=0.001
    ).extensions["dmmail"]
    # the stall outlasts any client, however late its timeout fires (clear_faults ends it)
    sandbox.state.set_faults(stall_rate=1.0, stall_seconds=60, paths=["/v2/notifications/email"])
    caplog.set_level(logging.INFO, logger="flask_dmmail")
    try:
        sent = mailer.send("p@example.gov.uk", "welcome", PERSONAL)
    finally:
        sandbox.state.clear_faults()
    assert sent is not None
    assert [n.id for n in sandbox.state.outbox()] == [sent.id]
    ((attempt, wait),) = waits(caplog)
    assert attempt == 1 and wait >= 300  # not the 1 ms backoff


def test_a_mailchimp_call_retries_as_configured_within_the_configured_backoff(
    make_mc_app: Callable[..., Flask],
    mc_state: MailchimpState,
    notify_sandbox: Sandbox,
    caplog: pytest.LogCaptureFixture,
    seeded_random: None,
) -> None:
    app = make_mc_app(DM_MAILCHIMP_RETRIES=3, DM_MAILCHIMP_RETRY_BACKOFF=0.004)
    audiences = app.extensions["dmmail"].mailchimp
    assert isinstance(audiences, Audiences)
    notify_sandbox.state.set_faults(error_rate=1.0, paths=["/3.0/"])
    caplog.set_level(logging.INFO, logger="flask_dmmail")
    with pytest.raises(MailchimpUnavailableError):
        audiences.subscribe("suppliers", "retried@digital.gov.uk")
    found = waits(caplog)
    assert [attempt for attempt, _ in found] == [1, 2, 3]
    assert all(wait <= bound_ms(attempt, 0.004) for attempt, wait in found), found
