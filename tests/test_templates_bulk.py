"""Bulk sends and the template: a dry run checks the input's columns against the template's
placeholders through Notify's preview, and a run whose first 50 rows all fail with the same
input error stops (systemic) instead of failing every row."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_dmmail import Mailer
from flask_dmmail.errors import BulkAbortedError, RecipientsError, TemplateNotFoundError
from flask_dmmail.sandbox import Sandbox

UNKNOWN_ID = "9b9b9b9b-1111-4222-8333-444455556666"


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def named_people(count: int) -> list[list[str]]:
    return [[f"person{i}@example.gov.uk", f"Person {i}"] for i in range(count)]


def requests_to(sandbox: Sandbox) -> int:
    return len(sandbox.state.outbox())


# -- the dry run's placeholder check ---------------------------------------------------------


def test_a_dry_run_refuses_a_csv_without_a_column_the_template_needs(
    mailer: Mailer, sandbox: Sandbox, tmp_path: Path
) -> None:
    from flask_dmmail.bulk import CsvSource

    source = write_csv(tmp_path / "people.csv", ["email", "name"], named_people(5))
    journal = tmp_path / "journal.db"
    with pytest.raises(RecipientsError, match="framework") as caught:
        mailer.send_bulk("welcome", CsvSource(source), journal=journal, dry_run=True)
    assert "the recipients do not have: framework." in caught.value.message
    assert "Person" not in caught.value.message
    assert not journal.exists()
    assert sandbox.state.outbox() == []


def test_a_dry_run_with_every_column_passes(
    mailer: Mailer, sandbox: Sandbox, tmp_path: Path
) -> None:
    from flask_dmmail.bulk import CsvSource

    rows = [[*row, "DOS"] for row in named_people(5)]
    source = write_csv(tmp_path / "people.csv", ["email", "name", "framework"], rows)
    report = mailer.send_bulk(
        "welcome", CsvSource(source), journal=tmp_path / "journal.db", dry_run=True
    )
    assert report.unsent == 5 and report.failed == 0
    assert sandbox.state.outbox() == []


def test_a_dry_run_of_an_unknown_template_is_template_not_found(
    mailer: Mailer, tmp_path: Path
) -> None:
    with pytest.raises(TemplateNotFoundError):
        mailer.send_bulk(
            UNKNOWN_ID,
            [("a@example.gov.uk", {"name": "A"})],
            journal=tmp_path / "journal.db",
            dry_run=True,
        )


def test_the_dry_run_command_refuses_before_sending(
    app: Flask, sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "people.csv", ["email", "name"], named_people(3))
    args = ["dmmail", "bulk-send", "welcome", "--csv", str(source), "--journal"]
    result = app.test_cli_runner().invoke(args=[*args, str(tmp_path / "j"), "--dry-run"])
    assert result.exit_code == 1
    assert "framework" in result.stderr and "nothing was sent" in result.stderr
    assert "Traceback" not in result.output
    assert sandbox.state.outbox() == []
    fixed = write_csv(
        tmp_path / "fixed.csv",
        ["email", "name", "framework"],
        [[*row, "DOS"] for row in named_people(3)],
    )
    args[4] = str(fixed)
    ok = app.test_cli_runner().invoke(args=[*args, str(tmp_path / "j2"), "--dry-run"])
    assert ok.exit_code == 0, ok.output
    assert "would send:               3" in ok.stdout


# -- the systemic stop -------------------------------------------------------------------------


def test_a_run_whose_first_50_rows_fail_at_notify_the_same_way_stops(
    mailer: Mailer, sandbox: Sandbox, tmp_path: Path
) -> None:
    recipients: list[tuple[str, dict[str, Any]]] = [
        (f"person{i}@example.gov.uk", {"name": f"Person {i}"}) for i in range(120)
    ]
    with pytest.raises(BulkAbortedError, match="first 50 rows") as caught:
        mailer.send_bulk("welcome", recipients, journal=tmp_path / "journal.db", concurrency=4)
    report = caught.value.report
    assert report is not None
    assert report.sent == 0
    assert 50 <= report.failed < 120
    assert report.unsent + report.in_doubt > 0
    assert set(report.failed_by_class) == {"MissingPersonalisationError"}
    assert "framework" in caught.value.message
    assert sandbox.state.outbox() == []


def test_a_run_whose_first_50_rows_fail_before_sending_stops_before_sending(
    mailer: Mailer, sandbox: Sandbox, tmp_path: Path
) -> None:
    recipients = [(f"person{i} at example.gov.uk", {"url": "u"}) for i in range(60)]
    recipients.append(("fine@example.gov.uk", {"url": "u"}))
    with pytest.raises(BulkAbortedError, match="InvalidEmailAddressError") as caught:
        mailer.send_bulk("reset_password", recipients, journal=tmp_path / "journal.db")
    report = caught.value.report
    assert report is not None and report.sent == 0 and report.unsent == 1
    assert sandbox.state.outbox() == []


def test_one_good_row_among_the_first_50_keeps_the_run_going(
    mailer: Mailer, sandbox: Sandbox, tmp_path: Path
) -> None:
    recipients = [(f"person{i} at example.gov.uk", {"url": "u"}) for i in range(49)]
    recipients += [(f"person{i}@example.gov.uk", {"url": "u"}) for i in range(5)]
    recipients += [(f"bad{i} at example.gov.uk", {"url": "u"}) for i in range(10)]
    report = mailer.send_bulk("reset_password", recipients, journal=tmp_path / "journal.db")
    assert report.sent == 5 and report.failed == 59
    assert requests_to(sandbox) == 5


def test_different_errors_in_the_first_rows_do_not_stop_the_run(
    mailer: Mailer, sandbox: Sandbox, tmp_path: Path
) -> None:
    recipients: list[tuple[str, dict[str, Any]]] = [
        (f"person{i}@example.gov.uk", {"name": "N"} if i % 2 else {"framework": "F"})
        for i in range(60)
    ]
    report = mailer.send_bulk("welcome", recipients, journal=tmp_path / "journal.db", concurrency=4)
    assert report.failed == 60 and report.sent == 0
    assert report.unsent == 0


def test_a_dry_run_never_stops_as_systemic(mailer: Mailer, tmp_path: Path) -> None:
    recipients = [(f"person{i} at example.gov.uk", {"url": "u"}) for i in range(60)]
    report = mailer.send_bulk(
        "reset_password", recipients, journal=tmp_path / "journal.db", dry_run=True
    )
    assert report.failed == 60


def test_the_command_reports_a_systemic_stop(
    make_app: Callable[..., Flask], sandbox: Sandbox, tmp_path: Path
) -> None:
    app = make_app()
    source = write_csv(tmp_path / "people.csv", ["email", "name"], named_people(80))
    result = app.test_cli_runner().invoke(
        args=[
            "dmmail",
            "bulk-send",
            "welcome",
            "--csv",
            str(source),
            "--journal",
            str(tmp_path / "j"),
            "--concurrency",
            "2",
        ]
    )
    assert result.exit_code == 1
    assert "first 50 rows" in result.stderr
    assert "MissingPersonalisationError" in result.stdout
    assert sandbox.state.outbox() == []
