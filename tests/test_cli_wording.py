"""What the commands print: counts with the right noun, the template as the user named it,
no claim of a failures file when nothing failed, and one line for one failed send.

The one-line tests run ``flask dmmail ...`` in a subprocess, as a developer does: there no
logging is configured, so the library's log records would reach the terminal through Python's
last-resort handler (under pytest they go to pytest's capture instead).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask

from flask_dmmail.cli.wording import plural
from flask_dmmail.sandbox import Sandbox
from tests.conftest import RESET_ID, TEMPLATES
from tests.secrets_scan import record_output, register_secret

ADDRESS = "cli-wording@example.gov.uk"
OTHER = "cli-wording-2@example.gov.uk"


@pytest.fixture(autouse=True)
def _secrets() -> None:
    register_secret(ADDRESS, OTHER, "https://reset.example.gov.uk/wording", kind="test input")


def _csv(path: Path, *addresses: str) -> Path:
    rows = "".join(f"{a},https://reset.example.gov.uk/wording\n" for a in addresses)
    path.write_text("email,url\n" + rows, encoding="utf-8")
    return path


@pytest.fixture
def bulk(make_app: Callable[..., Flask]) -> Callable[..., Result]:
    runner = make_app().test_cli_runner()

    def run(*args: str) -> Result:
        return runner.invoke(args=["dmmail", "bulk-send", *args])

    return run


def test_plural() -> None:
    assert plural(1, "recipient") == "1 recipient"
    assert plural(0, "recipient") == "0 recipients"
    assert plural(2, "address", "addresses") == "2 addresses"


def test_a_bulk_send_to_one_recipient_says_one_recipient_one_thread_and_the_name_given(
    bulk: Callable[..., Result], sandbox: Sandbox, tmp_path: Path
) -> None:
    failures = tmp_path / "failures.csv"
    result = bulk(
        "reset_password",
        "--csv",
        str(_csv(tmp_path / "one.csv", ADDRESS)),
        "--journal",
        str(tmp_path / "j"),
        "--concurrency",
        "1",
        "--failures",
        str(failures),
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"Bulk send: template reset_password ({RESET_ID}), 1 recipient"
    assert "1 thread)" in result.output and "threads" not in result.output
    assert f"No failures: {failures} not written." in lines
    assert "written to" not in result.output
    assert not failures.exists()
    assert len(sandbox.state.outbox()) == 1


def test_a_bulk_send_by_id_shows_the_id_and_counts_in_the_plural(
    bulk: Callable[..., Result], tmp_path: Path
) -> None:
    result = bulk(
        RESET_ID.upper(),
        "--csv",
        str(_csv(tmp_path / "two.csv", ADDRESS, OTHER)),
        "--journal",
        str(tmp_path / "j"),
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        f"Dry run (nothing sent): template {RESET_ID}, 2 recipients"
    )


def test_failures_are_written_when_there_are_some(
    bulk: Callable[..., Result], tmp_path: Path
) -> None:
    failures = tmp_path / "failures.csv"
    result = bulk(
        "reset_password",
        "--csv",
        str(_csv(tmp_path / "bad.csv", ADDRESS, "not-an-address")),
        "--journal",
        str(tmp_path / "j"),
        "--failures",
        str(failures),
    )
    assert result.exit_code == 1
    assert f"Failures by row written to {failures}" in result.output
    assert "No failures" not in result.output
    assert failures.read_text(encoding="utf-8").count("InvalidEmailAddressError") == 1


# -- one failed send, one line ----------------------------------------------------------------

APP = """\
from flask import Flask
from flask_dmmail import DMMail

app = Flask(__name__)
app.config.update(
    SECRET_KEY="wording",
    DM_ENVIRONMENT="production",
    DM_NOTIFY_RETRIES=3,
    DM_NOTIFY_RETRY_BACKOFF=0.001,
    DM_MAILCHIMP_RETRIES=3,
    DM_MAILCHIMP_RETRY_BACKOFF=0.001,
)
DMMail(app)
"""


@pytest.fixture
def flask_command(
    tmp_path: Path, sandbox: Sandbox
) -> Callable[..., subprocess.CompletedProcess[str]]:
    (tmp_path / "wording_app.py").write_text(APP, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DM_", "FLASK_"))}
    env.update(
        FLASK_APP="wording_app",
        DM_NOTIFY_KEY=sandbox.keys.test,
        DM_NOTIFY_BASE_URL=sandbox.url,
        DM_NOTIFY_TEMPLATES=json.dumps(TEMPLATES),
        DM_MAILCHIMP_API_KEY=sandbox.state.mailchimp.api_key,
        DM_MAILCHIMP_BASE_URL=f"{sandbox.url}/3.0",
        DM_MAILCHIMP_AUDIENCES=json.dumps({"suppliers": "a1b2c3d4e5"}),
    )
    register_secret(sandbox.state.mailchimp.api_key, kind="api key")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        process = subprocess.run(
            [sys.executable, "-m", "flask", "dmmail", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        record_output(f"flask dmmail {args[0]}", process.stdout + process.stderr)
        return process

    return run


def test_a_send_that_fails_after_its_retries_prints_one_line(
    flask_command: Callable[..., subprocess.CompletedProcess[str]], sandbox: Sandbox
) -> None:
    sandbox.state.set_faults(error_rate=1.0, paths=("/v2/notifications/email",))
    process = flask_command("send", ADDRESS, "reset_password", "url=https://x.example.gov.uk/")
    assert process.returncode == 75, process.stderr
    assert process.stdout == ""
    assert len(process.stderr.splitlines()) == 1, process.stderr
    assert process.stderr.startswith("Error: ")
    assert "retrying" not in process.stderr and "Email not sent" not in process.stderr


def test_a_refused_send_prints_one_line(
    flask_command: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    process = flask_command("send", "not-an-address", "reset_password")
    assert process.returncode == 1
    assert len(process.stderr.splitlines()) == 1, process.stderr
    assert process.stderr.startswith("Error: The recipient is not a valid email address")


def test_a_bulk_run_prints_its_summary_not_a_log_line_per_failed_row(
    flask_command: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    source = _csv(tmp_path / "rows.csv", ADDRESS, "not-an-address")
    process = flask_command(
        "bulk-send", "reset_password", "--csv", str(source), "--journal", str(tmp_path / "j")
    )
    assert process.returncode == 1
    assert "row 3: InvalidEmailAddressError" in process.stdout
    assert "Email not sent" not in process.stderr, process.stderr


def test_a_failed_mailchimp_command_prints_one_line(
    flask_command: Callable[..., subprocess.CompletedProcess[str]], sandbox: Sandbox
) -> None:
    sandbox.state.mailchimp.ensure_list("a1b2c3d4e5", "Suppliers")
    sandbox.state.set_faults(error_rate=1.0, paths=("/3.0/",))
    process = flask_command("mailchimp", "export", "suppliers")
    assert process.returncode == 1
    assert len(process.stderr.splitlines()) == 1, process.stderr
    assert process.stderr.startswith("Error: ")


def test_with_logging_configured_the_records_still_arrive(
    make_app: Callable[..., Flask], sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.state.set_faults(error_rate=1.0, paths=("/v2/notifications/email",))
    runner = make_app(DM_NOTIFY_RETRIES=1).test_cli_runner()
    with caplog.at_level(logging.INFO, logger="flask_dmmail"):
        result = runner.invoke(
            args=["dmmail", "send", ADDRESS, "reset_password", "url=https://x.example.gov.uk/"]
        )
    assert result.exit_code == 75
    messages = [r.getMessage() for r in caplog.records if r.name == "flask_dmmail"]
    assert any(m.startswith("Notify send failed with") for m in messages)
    assert any(m.startswith("Email not sent") for m in messages)
    client = [r for r in caplog.records if r.name == "notifications_python_client.base"]
    assert any(r.getMessage().startswith("API POST request") for r in client)
