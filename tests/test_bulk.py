"""Bulk sending through the public API (Mailer.send_bulk) against the sandbox, with the
real Notify client: exactly once under faults, resume, rate limits, journal checks."""

from __future__ import annotations

import csv
import signal
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_dmmail import Mailer, signals
from flask_dmmail.bulk import AudienceSource, BulkProgress, BulkReport, send_bulk
from flask_dmmail.errors import (
    BulkAbortedError,
    BulkInterruptedError,
    InvalidOptionError,
    InvalidPersonalisationError,
    JournalError,
    UnknownTemplateError,
)
from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.mailchimp import MailchimpState
from flask_dmmail.testing import record
from tests.mailchimp_support import SUPPLIERS

from .conftest import TEMPLATES, RecordAll, RefillAfter429

Recipients = list[tuple[str, dict[str, Any]]]


def people(count: int, start: int = 0, domain: str = "example.gov.uk") -> Recipients:
    """``count`` recipients of the reset_password template (placeholder ``url``)."""
    return [
        (f"person{i}@{domain}", {"url": f"https://reset.example.gov.uk/{i}-{uuid.uuid4().hex}"})
        for i in range(start, start + count)
    ]


def mailer_of(app: Flask) -> Mailer:
    mailer = app.extensions["dmmail"]
    assert isinstance(mailer, Mailer)
    return mailer


def assert_exactly_once(sandbox: Sandbox, recipients: Recipients) -> None:
    """The sandbox holds one notification per recipient, and one per reference."""
    outbox = sandbox.state.outbox()
    references = Counter(n.reference for n in outbox)
    assert len(outbox) == len(recipients)
    assert set(references.values()) == {1}
    assert Counter((n.email_address, tuple(sorted(n.personalisation.items()))) for n in outbox) == (
        Counter((a, tuple(sorted(p.items()))) for a, p in recipients)
    )


def journal_dump(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return "\n".join(db.iterdump())
    finally:
        db.close()


def journal_states(path: Path) -> Counter[str]:
    db = sqlite3.connect(path)
    try:
        return Counter(state for (state,) in db.execute("SELECT state FROM recipients"))
    finally:
        db.close()


def test_every_recipient_is_sent_once_and_the_journal_holds_no_personal_data(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    app = make_app()
    good = people(120)
    recipients: list[Any] = [*good, ("not an address", {"url": "x"}), good[7], 42]
    journal = tmp_path / "run.journal"
    finished: list[BulkReport] = []

    def on_finished(sender: Flask, report: BulkReport, **_: Any) -> None:
        finished.append(report)

    signals.bulk_finished.connect(on_finished, sender=app)
    try:
        with record(app) as sent:
            report = mailer_of(app).send_bulk("reset_password", recipients, journal=journal)
    finally:
        signals.bulk_finished.disconnect(on_finished)

    assert_exactly_once(sandbox, good)
    assert (report.total, report.sent, report.duplicates, report.already_sent) == (123, 120, 1, 0)
    assert [(f.row, f.error_class) for f in report.failures] == [
        (121, "InvalidEmailAddressError"),
        (123, "InvalidPersonalisationError"),
    ]
    assert report.complete and not report.ok
    assert len(sent) == 120
    assert finished == [report]
    assert journal_states(journal) == {"sent": 120, "failed": 2, "skipped": 1}
    dump = journal_dump(journal)
    ids = {n.id for n in sandbox.state.outbox()}
    assert all(notification_id in dump for notification_id in ids)
    for address, values in good:
        assert address not in dump
        assert address.split("@")[0] not in dump
        assert values["url"] not in dump
    assert "not an address" not in dump


def test_a_second_run_with_the_journal_sends_nothing_again(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    mailer = mailer_of(make_app())
    recipients = people(60)
    journal = tmp_path / "run.journal"
    first = mailer.send_bulk("reset_password", recipients, journal=journal)
    skipped: list[str] = []

    def on_skipped(sender: Flask, reference: str, **_: Any) -> None:
        skipped.append(reference)

    signals.email_skipped.connect(on_skipped)
    try:
        second = mailer.send_bulk("reset_password", recipients, journal=journal)
    finally:
        signals.email_skipped.disconnect(on_skipped)
    assert (first.sent, second.sent, second.already_sent) == (60, 0, 60)
    assert len(set(skipped)) == 60
    assert second.ok
    assert_exactly_once(sandbox, recipients)


def test_the_journal_refuses_another_template_other_recipients_and_a_second_run(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    mailer = mailer_of(make_app())
    recipients = people(5)
    journal = tmp_path / "run.journal"
    mailer.send_bulk("reset_password", recipients, journal=journal)

    with pytest.raises(JournalError, match="made for template 0c2b8e7a"):
        mailer.send_bulk(
            "welcome",
            [(a, {"name": "N", "framework": "F"}) for a, _ in recipients],
            journal=journal,
        )
    changed = [*recipients[:4], (recipients[4][0], {"url": "https://other.example.gov.uk/"})]
    with pytest.raises(JournalError, match="made for other recipients") as refused:
        mailer.send_bulk("reset_password", changed, journal=journal)
    assert "other.example" not in str(refused.value)
    with pytest.raises(JournalError, match="made for other recipients"):
        mailer.send_bulk("reset_password", list(reversed(recipients)), journal=journal)

    holder = sqlite3.connect(journal)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(JournalError, match="in use by another bulk send"):
            mailer.send_bulk("reset_password", recipients, journal=journal)
    finally:
        holder.close()

    not_a_journal = tmp_path / "people.csv"
    not_a_journal.write_text("email\nsomeone@example.gov.uk\n")
    with pytest.raises(JournalError, match="not a flask-dmmail journal"):
        mailer.send_bulk("reset_password", recipients, journal=not_a_journal)
    assert len(sandbox.state.outbox()) == 5


def test_a_journal_killed_before_its_first_commit_starts_afresh(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    """What the main file of a journal holds when the run is killed between switching it to
    WAL mode and its first commit (nothing sent yet): an empty database in WAL mode."""
    journal = tmp_path / "run.journal"
    db = sqlite3.connect(journal)
    db.execute("PRAGMA journal_mode = WAL")
    db.close()
    assert journal.stat().st_size > 0
    mailer = mailer_of(make_app())
    recipients = people(5)
    dry = mailer.send_bulk("reset_password", recipients, journal=journal, dry_run=True)
    assert dry.unsent == 5
    report = mailer.send_bulk("reset_password", recipients, journal=journal)
    assert report.ok and report.sent == 5
    assert_exactly_once(sandbox, recipients)


def test_options_and_template_are_checked_before_anything_happens(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    mailer = mailer_of(make_app())
    journal = tmp_path / "run.journal"
    with pytest.raises(UnknownTemplateError):
        mailer.send_bulk("no_such_template", people(2), journal=journal)
    for options in ({"rate": 0}, {"burst": 0}, {"concurrency": 0}, {"rate": True}):
        with pytest.raises(InvalidOptionError):
            mailer.send_bulk("reset_password", people(2), journal=journal, **options)
    for stop_options in ({"stop": True}, {"abandon": "yes"}):
        with pytest.raises(InvalidOptionError, match=r"threading\.Event"):
            send_bulk(mailer, "reset_password", people(2), journal=journal, **stop_options)
    assert not journal.exists()
    assert sandbox.state.outbox() == []


def test_a_dry_run_sends_nothing_and_writes_no_journal(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    mailer = mailer_of(make_app())
    recipients: list[Any] = [*people(30), ("bad@", {"url": "x"})]
    journal = tmp_path / "run.journal"
    with record() as sent:
        report = mailer.send_bulk("reset_password", recipients, journal=journal, dry_run=True)
    assert (report.sent, report.unsent, report.failed, report.dry_run) == (0, 30, 1, True)
    assert not report.complete
    assert not journal.exists()
    assert sent == [] and sandbox.state.outbox() == []

    mailer.send_bulk("reset_password", recipients[:10], journal=journal)
    with pytest.raises(JournalError):
        mailer.send_bulk("reset_password", recipients, journal=journal, dry_run=True)
    again = mailer.send_bulk("reset_password", recipients[:10], journal=journal, dry_run=True)
    assert (again.already_sent, again.unsent) == (10, 0)
    assert len(sandbox.state.outbox()) == 10


def test_redirected_emails_are_counted_and_keep_their_own_references(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    app = make_app(DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS={"example.com": "catch@example.gov.uk"})
    recipients = people(6, domain="example.com") + people(4, start=6)
    report = mailer_of(app).send_bulk("reset_password", recipients, journal=tmp_path / "j")
    outbox = sandbox.state.outbox()
    assert (report.sent, report.redirected) == (10, 6)
    assert Counter(n.email_address for n in outbox)["catch@example.gov.uk"] == 6
    assert len({n.reference for n in outbox}) == 10


def test_hostile_values_fail_only_their_own_rows(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    """An int Python will not write as text (over 4,300 digits), in a value or a list, a
    lone surrogate, NaN, a key that is not a string: each fails its own row, recorded by
    row number and error class in the report and the failures CSV; the rest are sent."""
    mailer = mailer_of(make_app())
    good = people(20)
    hostile: list[tuple[str, dict[Any, Any]]] = [
        ("huge@example.gov.uk", {"url": 10**5000}),
        ("huge-list@example.gov.uk", {"url": ["a", 10**5000]}),
        ("surrogate@example.gov.uk", {"url": "\ud800"}),
        ("nan@example.gov.uk", {"url": float("nan")}),
        ("key@example.gov.uk", {1: "x", "url": "y"}),
    ]
    recipients: list[Any] = [*good[:5], hostile[0], *good[5:10], *hostile[1:], *good[10:]]
    report = mailer.send_bulk("reset_password", recipients, journal=tmp_path / "j")
    assert report.sent == 20 and report.complete
    rows = [6, 12, 13, 14, 15]
    assert [(f.row, f.error_class) for f in report.failures] == [
        (row, "InvalidPersonalisationError") for row in rows
    ]
    assert "4,000 digits" in report.failures[0].message
    failures = tmp_path / "failures.csv"
    report.write_failures(failures)
    with failures.open(encoding="utf-8", newline="") as handle:
        listed = list(csv.DictReader(handle))
    assert [(int(r["row"]), r["error_class"]) for r in listed] == [
        (row, "InvalidPersonalisationError") for row in rows
    ]
    assert_exactly_once(sandbox, good)


def test_an_audience_with_a_huge_int_for_everyone_is_refused_before_anything_is_read(
    audience_app: Flask, sandbox: Sandbox
) -> None:
    with pytest.raises(InvalidPersonalisationError, match="4,000 digits"):
        AudienceSource("suppliers", personalisation={"framework": 10**5000})
    assert sandbox.state.outbox() == []


def test_sanitise_content_for_reaches_every_email_and_is_checked_first(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    mailer = mailer_of(make_app())
    typed = "[click](https://evil.example/login)"
    recipients = [
        (f"buyer{i}@example.gov.uk", {"name": typed, "framework": "DOS 7"}) for i in range(5)
    ]
    bad_values: list[Any] = ["name", [""], [3]]
    for bad in bad_values:
        with pytest.raises(InvalidOptionError, match="sanitise_content_for"):
            mailer.send_bulk(
                "welcome", recipients, journal=tmp_path / "bad", sanitise_content_for=bad
            )
    assert not (tmp_path / "bad").exists()
    report = mailer.send_bulk(
        "welcome", recipients, journal=tmp_path / "j", sanitise_content_for=["name"]
    )
    assert report.ok and report.sent == 5
    for notification in sandbox.state.outbox():
        assert "evil.example" not in notification.body + notification.subject
        assert notification.sanitised_content["name"]["unsanitised"] == typed


def test_check_notify_finishes_a_send_whose_journal_was_lost_without_duplicates(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    mailer = mailer_of(make_app())
    recipients = people(50)
    first = mailer.send_bulk("reset_password", recipients[:30], journal=tmp_path / "lost")
    assert first.sent == 30
    (tmp_path / "lost").unlink()  # the journal is gone

    report = mailer.send_bulk(
        "reset_password", recipients, journal=tmp_path / "new", check_notify=True
    )
    assert (report.sent, report.already_sent, report.found_in_notify) == (20, 30, 30)
    assert report.ok
    assert_exactly_once(sandbox, recipients)
    assert journal_states(tmp_path / "new") == {"sent": 50}


def test_a_damaged_journal_says_how_to_recover_and_never_just_to_start_again(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    mailer = mailer_of(make_app())
    recipients = people(300)
    journal = tmp_path / "run.journal"
    mailer.send_bulk("reset_password", recipients, journal=journal)
    data = journal.read_bytes()
    assert len(data) > 8192
    damaged = tmp_path / "damaged.journal"
    damaged.write_bytes(data[:4096] + bytes(len(data) - 4096))  # all but page 1 zeroed
    with pytest.raises(JournalError) as refused:
        mailer.send_bulk("reset_password", recipients, journal=damaged)
    message = str(refused.value)
    assert "damaged or incomplete" in message
    assert "damaged.journal-wal" in message and "--check-notify" in message
    assert "sends every email again" in message
    assert len(sandbox.state.outbox()) == 300


@pytest.mark.slow
def test_five_hundred_sends_through_faults_arrive_exactly_once(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path, all_logs: RecordAll
) -> None:
    """10% 500s, 5% stored-then-dropped connections, 5% stored-then-stalled past the
    client's timeout: every email ends up stored once, under its own reference.

    Every send makes at least one request, so the sandbox rolls for at least 500 requests;
    with seed 20 the first 500 rolls hold 63 500s, 29 drops and 25 stalls (at these rates
    the chance that 500 rolls miss a kind altogether is below 1 in 10^11)."""
    app = make_app(DM_NOTIFY_TIMEOUT=0.5, DM_NOTIFY_RETRY_BACKOFF=0.01)
    sandbox.state.set_limits(rate_limit=1_000_000)
    # A stall outlasts any client (clear_faults ends it), however late the timeout fires.
    sandbox.state.set_faults(
        error_rate=0.1, drop_rate=0.05, stall_rate=0.05, stall_seconds=60, seed=20
    )
    recipients = people(500)
    try:
        with record(app) as sent:
            report = mailer_of(app).send_bulk(
                "reset_password",
                recipients,
                journal=tmp_path / "faults.journal",
                rate=1_000_000,
                concurrency=16,
            )
    finally:
        sandbox.state.clear_faults()
    assert_exactly_once(sandbox, recipients)
    assert report.ok and report.sent == 500
    assert len({email.reference for email in sent}) == len(sent) == 500
    ours = [r for r in all_logs.records if r.name == "flask_dmmail"]
    retried = Counter(
        getattr(r, "error", None) for r in ours if r.getMessage().startswith("Notify")
    )
    assert retried["NotifyUnavailableError"] >= 50  # the faults really happened
    # stored, then dropped or stalled: found by reference, not sent again
    assert sum(getattr(r, "recovered", False) is True for r in ours) >= 10
    assert journal_states(tmp_path / "faults.journal") == {"sent": 500}


def count_429s(logs: RecordAll) -> int:
    return sum(getattr(r, "error", None) == "RateLimitError" for r in logs.records)


@pytest.mark.slow
def test_a_limiter_that_matches_the_servers_limit_never_gets_a_429(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path, all_logs: RecordAll
) -> None:
    """600 a minute: Notify's bucket holds 201 and refills 10 a second. 230 emails need the
    bucket emptied and then 3 s of refill; a limiter 35% too fast would meet a 429 in them.
    (A slow machine can only make a 429 less likely.)"""
    sandbox.state.set_limits(rate_limit=600)
    recipients = people(230)
    report = mailer_of(make_app()).send_bulk(
        "reset_password", recipients, journal=tmp_path / "rate.journal", rate=600
    )
    assert report.rate_limited == 0
    assert count_429s(all_logs) == 0
    assert report.ok
    assert_exactly_once(sandbox, recipients)


def test_429s_from_a_faster_limiter_slow_the_run_and_fail_no_one(
    make_app: Callable[..., Flask],
    sandbox: Sandbox,
    tmp_path: Path,
    all_logs: RecordAll,
    refill_after_429: RefillAfter429,
) -> None:
    """A server whose bucket holds 30 and gets no token back on its own, and a limiter
    for 6000 a minute (as when another process uses the key): Notify answers 429s, and the
    run slows down instead of failing addresses. When the run says it will retry the
    first 429, the other process is done with the key (the sandbox's limit goes up)."""
    sandbox.state.set_limits(rate_limit=1, burst=30)
    refill_after_429.rate_limit = 1_000_000
    recipients = people(60)
    report = mailer_of(make_app()).send_bulk(
        "reset_password", recipients, journal=tmp_path / "rate.journal", rate=6000
    )
    assert report.rate_limited > 0
    assert count_429s(all_logs) == report.rate_limited
    assert report.ok
    assert_exactly_once(sandbox, recipients)


class Crash(Exception):
    """Stands for the process dying in the middle of a run."""


def test_emails_in_flight_when_a_run_dies_are_looked_up_before_any_resend(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    mailer = mailer_of(make_app())
    recipients = people(200)
    journal = tmp_path / "crash.journal"
    sandbox.state.set_faults(latency=0.02)

    def crash(progress: BulkProgress) -> None:
        if progress.sent >= 40:
            raise Crash

    with pytest.raises(Crash):
        mailer.send_bulk(
            "reset_password", recipients, journal=journal, concurrency=8, progress=crash
        )
    sandbox.state.clear_faults()
    db = sqlite3.connect(journal)
    in_flight = {
        ref
        for (ref,) in db.execute("SELECT reference FROM recipients WHERE state = ?", ("in-flight",))
    }
    db.close()
    stored = {n.reference for n in sandbox.state.outbox()}
    assert in_flight and len(stored) < 200
    report = mailer.send_bulk("reset_password", recipients, journal=journal)
    assert report.found_in_notify == len(in_flight & stored)
    assert report.sent + report.already_sent == 200
    assert report.ok
    assert_exactly_once(sandbox, recipients)


def test_an_error_every_email_would_hit_stops_the_run_and_the_resume_finishes(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    template_id = str(uuid.uuid4())  # not in the sandbox yet: Notify says template not found
    mailer = mailer_of(make_app())
    recipients = people(40)
    journal = tmp_path / "abort.journal"
    with pytest.raises(BulkAbortedError, match="TemplateNotFoundError") as stopped:
        mailer.send_bulk(template_id, recipients, journal=journal)
    report = stopped.value.report
    assert report is not None and report.sent == 0 and report.failures == ()
    assert report.unsent + report.in_doubt == 40 and not report.complete
    assert sandbox.state.outbox() == []

    sandbox.state.add_template(id=template_id, name="New", subject="Hi", body="((url))")
    resumed = mailer.send_bulk(template_id, recipients, journal=journal)
    assert resumed.ok and resumed.sent == 40
    assert_exactly_once(sandbox, recipients)


# -- stopping a run (the library installs no signal handlers) --------------------------------


def test_a_run_on_the_main_thread_leaves_the_signal_handlers_alone(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    """A request in a gunicorn sync worker runs on the main thread: the worker's SIGTERM and
    SIGINT handlers must stay its own while a bulk send runs."""
    assert threading.current_thread() is threading.main_thread()
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    during: list[tuple[object, object]] = []

    def check(progress: BulkProgress) -> None:
        during.append((signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)))

    recipients = people(40)
    sandbox.state.set_faults(latency=0.01)
    try:
        report = send_bulk(
            mailer_of(make_app()),
            "reset_password",
            recipients,
            journal=tmp_path / "j",
            concurrency=2,
            progress=check,
        )
    finally:
        sandbox.state.clear_faults()
    assert report.ok
    assert during and set(during) == {before}
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_setting_stop_from_another_thread_stops_the_run_cleanly_and_the_resume_finishes(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    """``stop`` set from a sender thread (an ``email_sent`` receiver) after 30 emails: the
    run starts nothing more, lets the sends under way finish, records every one, and raises
    BulkInterruptedError with the report; the same call again sends the rest, once each."""
    app = make_app()
    mailer = mailer_of(app)
    recipients = people(300)
    journal = tmp_path / "stop.journal"
    stop = threading.Event()
    sent_by: set[str] = set()

    def on_sent(sender: Flask, **_: Any) -> None:
        sent_by.add(threading.current_thread().name)
        if len(sandbox.state.outbox()) >= 30:
            stop.set()

    sandbox.state.set_faults(latency=0.01)
    signals.email_sent.connect(on_sent, sender=app)
    try:
        with pytest.raises(BulkInterruptedError, match="Stopped on request") as stopped:
            send_bulk(
                mailer, "reset_password", recipients, journal=journal, concurrency=4, stop=stop
            )
    finally:
        signals.email_sent.disconnect(on_sent)
        sandbox.state.clear_faults()
    assert threading.main_thread().name not in sent_by  # set from other threads
    report = stopped.value.report
    assert report is not None and report.interrupted and not report.complete
    stored = len(sandbox.state.outbox())
    assert 30 <= report.sent == stored < 300
    assert (report.in_doubt, report.failed) == (0, 0)
    assert report.sent + report.unsent == 300
    assert journal_states(journal) == {"sent": stored, "pending": 300 - stored}

    resumed = send_bulk(
        mailer, "reset_password", recipients, journal=journal, stop=threading.Event()
    )
    assert (resumed.sent, resumed.already_sent, resumed.found_in_notify) == (
        300 - stored,
        stored,
        0,
    )
    assert resumed.ok and not resumed.interrupted
    assert_exactly_once(sandbox, recipients)


def test_stop_set_before_the_call_sends_nothing_and_creates_no_journal(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    stop = threading.Event()
    stop.set()
    journal = tmp_path / "j"
    with pytest.raises(BulkInterruptedError, match="Stopped on request") as stopped:
        send_bulk(mailer_of(make_app()), "reset_password", people(5), journal=journal, stop=stop)
    assert stopped.value.report is None  # stopped while reading the recipients
    assert not journal.exists()
    assert sandbox.state.outbox() == []


def test_abandon_leaves_the_sends_under_way_in_doubt_and_the_resume_finds_them(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    """As a second Ctrl-C does: two posts Notify has stored hang (a stall); ``stop`` and
    then ``abandon`` end the run at once, the two left in-flight and looked up on resume."""
    mailer = mailer_of(make_app(DM_NOTIFY_TIMEOUT=120))
    recipients = people(20)
    journal = tmp_path / "abandon.journal"
    stop, abandon = threading.Event(), threading.Event()
    waited_for: list[int] = []

    def on_progress(progress: BulkProgress) -> None:
        if len(sandbox.state.outbox()) >= 2:  # both threads' posts are stored, and hang
            stop.set()
        if progress.stopping and progress.in_flight:
            waited_for.append(progress.in_flight)
            abandon.set()

    before = set(threading.enumerate())
    sandbox.state.set_faults(stall_rate=1.0, stall_seconds=300)
    try:
        with pytest.raises(BulkInterruptedError) as stopped:
            send_bulk(
                mailer,
                "reset_password",
                recipients,
                journal=journal,
                concurrency=2,
                progress=on_progress,
                stop=stop,
                abandon=abandon,
            )
    finally:
        sandbox.state.clear_faults()  # the hanging answers go out now
    report = stopped.value.report
    assert report is not None and waited_for == [2]
    assert (report.sent, report.in_doubt, report.unsent) == (0, 2, 18)
    assert journal_states(journal) == {"in-flight": 2, "pending": 18}
    senders = [t for t in set(threading.enumerate()) - before if t.name.startswith("dmmail-bulk")]
    for thread in senders:  # the abandoned sends finish (if they have not yet)
        thread.join(timeout=120)
        assert not thread.is_alive()

    resumed = send_bulk(mailer, "reset_password", recipients, journal=journal)
    assert (resumed.sent, resumed.already_sent, resumed.found_in_notify) == (18, 2, 2)
    assert resumed.ok
    assert_exactly_once(sandbox, recipients)


# -- a Mailchimp audience ("the new framework is coming") -----------------------------------


@pytest.fixture
def audience_app(sandbox: Sandbox, make_mc_app: Callable[..., Flask]) -> Flask:
    return make_mc_app(DM_NOTIFY_TEMPLATES=TEMPLATES)


def test_an_audience_is_sent_once_and_a_resume_reaches_newcomers_only(
    audience_app: Flask, mc_state: MailchimpState, sandbox: Sandbox, tmp_path: Path
) -> None:
    first = [f"supplier{i}@example.gov.uk" for i in range(30)]
    mc_state.add_members(SUPPLIERS, first)
    mc_state.add_members(SUPPLIERS, ["gone@example.gov.uk"], status="unsubscribed")
    values = {"name": "Supplier", "framework": "G-Cloud 15"}
    journal = tmp_path / "audience.journal"
    mailer = mailer_of(audience_app)

    report = mailer.send_bulk(
        "welcome", AudienceSource("suppliers", personalisation=values), journal=journal
    )
    assert (report.total, report.sent) == (30, 30) and report.ok
    newcomers = [f"new{i}@example.gov.uk" for i in range(5)]
    mc_state.add_members(SUPPLIERS, newcomers)
    again = mailer.send_bulk(
        "welcome", AudienceSource("suppliers", personalisation=values), journal=journal
    )
    assert (again.total, again.sent, again.already_sent) == (35, 5, 30)
    assert_exactly_once(sandbox, [(address, values) for address in first + newcomers])

    with pytest.raises(JournalError, match="made for other recipients"):
        mailer.send_bulk(
            "welcome",
            AudienceSource("suppliers", personalisation={**values, "framework": "DOS 7"}),
            journal=journal,
        )
