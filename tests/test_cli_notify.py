"""``flask dmmail send | preview | status | outbox | sandbox`` against the sandbox.

Every command runs through Flask's CLI runner on an app configured with a real sandbox
key and URL; ``sandbox`` runs as a real ``flask`` subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import Result
from flask import Flask
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail.cli import dmmail_cli
from flask_dmmail.sandbox import Sandbox

from .conftest import REPLY_TO_ID, WELCOME_ID
from .secrets_scan import record_output, register_secret

ROOT = Path(__file__).resolve().parent.parent
ADDRESS = "Cli.Person@Example.gov.uk"
NAME = "Philomena Cunegonde"
FRAMEWORK = "Framework-Qwerty-7"
register_secret(ADDRESS, kind="recipient")
register_secret(NAME, FRAMEWORK, kind="personalisation")
PAIRS = [f"name={NAME}", f"framework={FRAMEWORK}"]


@pytest.fixture
def run(app: Flask) -> Callable[..., Result]:
    runner = app.test_cli_runner()

    def invoke(*args: str) -> Result:
        return runner.invoke(args=["dmmail", *args])

    return invoke


def assert_private(result: Result) -> None:
    text = (result.output + result.stderr).lower()
    for secret in (ADDRESS, NAME, FRAMEWORK):
        assert secret.lower() not in text
    assert "traceback" not in text


# -- send -------------------------------------------------------------------------------------


def test_send_prints_id_reference_redirect_and_template(
    run: Callable[..., Result], sandbox: Sandbox
) -> None:
    result = run("send", ADDRESS, "welcome", *PAIRS)
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert set(lines) == {"id", "reference", "redirected", "template"}
    stored = sandbox.state.get(lines["id"])
    assert stored is not None
    assert stored.email_address == ADDRESS
    assert stored.personalisation == {"name": NAME, "framework": FRAMEWORK}
    assert lines["reference"] == stored.reference
    assert lines["redirected"] == "no"
    assert lines["template"] == f"welcome ({WELCOME_ID}) version 1"
    assert_private(result)


def test_send_json_with_every_option(run: Callable[..., Result], sandbox: Sandbox) -> None:
    result = run(
        "send",
        ADDRESS,
        WELCOME_ID,
        *PAIRS,
        "--reference",
        "cli-run-1",
        "--reply-to-id",
        REPLY_TO_ID,
        "--json",
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {
        "skipped",
        "id",
        "reference",
        "redirected",
        "redirected_by",
        "template_id",
        "template_version",
    }
    assert document["skipped"] is False
    assert document["reference"] == "cli-run-1"
    stored = sandbox.state.get(document["id"])
    assert stored is not None
    assert stored.reference == "cli-run-1"
    assert stored.email_reply_to_id == REPLY_TO_ID
    assert_private(result)


def test_send_says_when_the_address_was_redirected(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    app = make_app(
        DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS={
            "example.gov.uk": "simulate-delivered@notifications.service.gov.uk"
        }
    )
    result = app.test_cli_runner().invoke(
        args=["dmmail", "send", ADDRESS, "welcome", *PAIRS, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["redirected"] is True
    assert_private(result)


def test_send_no_resend_skips_a_second_run(run: Callable[..., Result], sandbox: Sandbox) -> None:
    first = run("send", ADDRESS, "welcome", *PAIRS, "--no-resend", "--json")
    second = run("send", ADDRESS, "welcome", *PAIRS, "--no-resend", "--json")
    text = run("send", ADDRESS, "welcome", *PAIRS, "--no-resend")
    assert first.exit_code == second.exit_code == text.exit_code == 0
    assert json.loads(first.stdout)["skipped"] is False
    skipped = json.loads(second.stdout)
    assert skipped == {
        "skipped": True,
        "reference": json.loads(first.stdout)["reference"],
        "template_id": WELCOME_ID,
    }
    assert text.stdout.startswith("skipped: reference dmmail-")
    assert len(sandbox.state.outbox()) == 1
    for result in (first, second, text):
        assert_private(result)


@pytest.mark.parametrize(
    ("items", "complaint"),
    [
        ([f"name={NAME}", FRAMEWORK], "item 2 is not KEY=VALUE"),
        ([f"={NAME}"], "item 1 is not KEY=VALUE"),
        ([f"name={NAME}", f"name={FRAMEWORK}"], "'name' is given twice"),
    ],
)
def test_a_bad_key_value_item_is_a_usage_error(
    run: Callable[..., Result], sandbox: Sandbox, items: list[str], complaint: str
) -> None:
    result = run("send", ADDRESS, "welcome", *items)
    assert result.exit_code == 2
    assert complaint in result.stderr
    assert sandbox.state.outbox() == []
    assert_private(result)


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["not-an-address", "welcome"], "not a valid email address"),
        ([ADDRESS, "no_such_template"], "Unknown template 'no_such_template'"),
        (
            [ADDRESS, "welcome", "--reply-to-id", "nope"],
            "not a name in DM_NOTIFY_REPLY_TO_IDS nor a UUID",
        ),
    ],
    ids=["address", "template", "reply-to"],
)
def test_refused_input_exits_1_with_the_message_and_sends_nothing(
    run: Callable[..., Result], sandbox: Sandbox, args: list[str], complaint: str
) -> None:
    result = run("send", *args, *PAIRS)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert complaint in result.stderr
    assert result.stdout == ""
    assert sandbox.state.outbox() == []
    assert_private(result)


def test_a_notify_refusal_exits_1_naming_the_placeholder(
    run: Callable[..., Result], sandbox: Sandbox
) -> None:
    result = run("send", ADDRESS, "welcome", f"name={NAME}")
    assert result.exit_code == 1
    assert "Missing personalisation: framework" in result.stderr
    assert_private(result)


def test_a_transient_failure_exits_75(make_app: Callable[..., Flask], sandbox: Sandbox) -> None:
    app = make_app(DM_NOTIFY_RETRIES=0)
    sandbox.state.set_faults(error_rate=1.0)
    result = app.test_cli_runner().invoke(args=["dmmail", "send", ADDRESS, "welcome", *PAIRS])
    assert result.exit_code == 75
    assert result.stderr.startswith("Error: Notify") and "later" in result.stderr
    assert_private(result)


# -- preview ----------------------------------------------------------------------------------


def test_preview_hides_the_filled_text_by_default(run: Callable[..., Result]) -> None:
    result = run("preview", "welcome", *PAIRS)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"template: welcome ({WELCOME_ID}) version 1",
        "personalisation: framework, name",
        f"subject: {len('Welcome, ' + NAME)} characters, body: "
        f"{len(f'# Hello {NAME}' + chr(10) * 2 + f'You registered for {FRAMEWORK}.')} characters",
        "(add --show-body to print them)",
    ]
    as_json = run("preview", "welcome", *PAIRS, "--json")
    assert json.loads(as_json.stdout) == {
        "template_id": WELCOME_ID,
        "version": 1,
        "personalisation_keys": ["framework", "name"],
        "subject_length": len("Welcome, " + NAME),
        "body_length": len(f"# Hello {NAME}\n\nYou registered for {FRAMEWORK}."),
    }
    assert_private(result)
    assert_private(as_json)


@pytest.mark.discloses_personal_data("preview --show-body prints the filled template")
def test_preview_show_body_prints_the_filled_template(run: Callable[..., Result]) -> None:
    result = run("preview", "welcome", *PAIRS, "--show-body")
    assert result.exit_code == 0, result.output
    assert f"subject: Welcome, {NAME}" in result.stdout
    assert f"# Hello {NAME}\n\nYou registered for {FRAMEWORK}." in result.stdout
    as_json = run("preview", "welcome", *PAIRS, "--show-body", "--json")
    document = json.loads(as_json.stdout)
    assert document["subject"] == f"Welcome, {NAME}"
    assert document["body"] == f"# Hello {NAME}\n\nYou registered for {FRAMEWORK}."


def test_preview_names_a_missing_placeholder(run: Callable[..., Result]) -> None:
    result = run("preview", "welcome", f"name={NAME}")
    assert result.exit_code == 1
    assert "Missing personalisation: framework" in result.stderr
    assert_private(result)


# -- status -----------------------------------------------------------------------------------


def _send(run: Callable[..., Result], *extra: str) -> dict[str, Any]:
    result = run("send", ADDRESS, "welcome", *PAIRS, "--json", *extra)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_status_by_id_shows_the_status_not_the_address(
    run: Callable[..., Result], sandbox: Sandbox
) -> None:
    sent = _send(run)
    result = run("status", sent["id"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["id"] == sent["id"]
    assert lines["status"] == "delivered"
    assert lines["reference"] == sent["reference"]
    assert lines["template"] == f"{WELCOME_ID} version 1"
    as_json = json.loads(run("status", sent["id"], "--json").stdout)
    assert as_json["status"] == "delivered" and as_json["id"] == sent["id"]
    assert "email_address" not in as_json and "body" not in as_json
    assert_private(result)


def test_status_by_reference_lists_every_match(
    run: Callable[..., Result], sandbox: Sandbox
) -> None:
    first = _send(run, "--reference", "cli-status")
    second = _send(run, "--reference", "cli-status")
    _send(run, "--reference", "another")
    result = run("status", "--reference", "cli-status", "--json")
    assert result.exit_code == 0, result.output
    assert [n["id"] for n in json.loads(result.stdout)] == [second["id"], first["id"]]
    assert_private(result)


@pytest.mark.parametrize(
    ("args", "code", "complaint"),
    [
        (["740e5834-3a29-46b4-9a6f-16142fde533a"], 1, "No result found"),
        (["not-a-uuid"], 1, "notification_id must be a UUID"),
        (["--reference", "never-used"], 1, "No notification with that reference"),
        ([], 2, "Give a NOTIFICATION_ID or --reference"),
        (["740e5834-3a29-46b4-9a6f-16142fde533a", "--reference", "x"], 2, "one of them"),
    ],
    ids=["unknown-id", "bad-id", "unknown-reference", "neither", "both"],
)
def test_status_failures(
    run: Callable[..., Result], sandbox: Sandbox, args: list[str], code: int, complaint: str
) -> None:
    result = run("status", *args)
    assert result.exit_code == code
    assert complaint in result.stderr
    assert "Traceback" not in result.output


# -- outbox -----------------------------------------------------------------------------------


def test_outbox_lists_newest_first_with_filters_and_limit(
    run: Callable[..., Result], sandbox: Sandbox
) -> None:
    sent = [_send(run, "--reference", f"cli-outbox-{i}") for i in range(3)]
    failed = run("send", "perm-fail@simulator.notify", "welcome", *PAIRS, "--json")
    failed_id = json.loads(failed.stdout)["id"]
    everything = run("outbox", "--json")
    assert everything.exit_code == 0, everything.output
    ids = [n["id"] for n in json.loads(everything.stdout)]
    assert ids == [failed_id, *[s["id"] for s in reversed(sent)]]

    limited = run("outbox", "--limit", "2")
    assert limited.exit_code == 0
    rows = limited.stdout.splitlines()
    assert len(rows) == 2
    assert failed_id in rows[0] and "permanent-failure" in rows[0]
    assert sent[2]["id"] in rows[1] and "delivered" in rows[1] and "cli-outbox-2" in rows[1]

    only_failed = json.loads(run("outbox", "--status", "failed", "--json").stdout)
    assert [n["id"] for n in only_failed] == [failed_id]
    by_reference = json.loads(run("outbox", "--reference", "cli-outbox-1", "--json").stdout)
    assert [n["id"] for n in by_reference] == [sent[1]["id"]]
    for result in (everything, limited):
        assert_private(result)
        assert "perm-fail@simulator.notify" not in result.output


def test_outbox_empty_and_bad_options(run: Callable[..., Result], sandbox: Sandbox) -> None:
    empty = run("outbox")
    assert (empty.exit_code, empty.stdout) == (0, "(no notifications)\n")
    assert run("outbox", "--status", "elephant").exit_code == 2
    assert run("outbox", "--limit", "0").exit_code == 2


# -- help and keys ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["send", "preview", "status", "outbox", "sandbox"])
def test_every_command_has_help_with_examples(run: Callable[..., Result], name: str) -> None:
    result = run(name, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert f"flask dmmail {name}" in result.stdout


def test_no_command_takes_an_api_key_argument() -> None:
    for name in ("send", "preview", "status", "outbox", "sandbox"):
        command = dmmail_cli.get_command(click.Context(dmmail_cli), name)
        assert command is not None
        for param in command.params:
            assert "key" not in (param.name or "").lower(), (name, param.name)
            assert isinstance(param, click.Option | click.Argument)


# -- sandbox ----------------------------------------------------------------------------------


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    (tmp_path / "cli_sandbox_app.py").write_text(
        textwrap.dedent(
            """
            from flask import Flask
            from flask_dmmail import DMMail

            app = Flask(__name__)
            app.config.update(
                SECRET_KEY="cli-sandbox",
                DM_NOTIFY_KEY="unused-" + "-".join(["00000000-0000-4000-8000-000000000000"] * 2),
                DM_NOTIFY_BASE_URL="http://127.0.0.1:9",
                DM_MAIL_SANDBOX=False,
                DM_ENVIRONMENT="production",
            )
            DMMail(app)
            """
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "FLASK_APP": ""}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "cli_sandbox_app",
            "dmmail",
            "sandbox",
            "--port",
            "0",
            "--seed",
            str(ROOT / "example_app" / "sandbox_seed.json"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout:
            process.stdout.close()
        if process.stderr:
            process.stderr.close()


def test_sandbox_runs_the_standalone_sandbox(sandbox_process: subprocess.Popen[str]) -> None:
    assert sandbox_process.stdout is not None
    lines: dict[str, str] = {}
    for _ in range(4):
        line = sandbox_process.stdout.readline()
        record_output("flask dmmail sandbox", line)
        label, _, value = line.strip().partition(": ")
        lines[label] = value
    assert list(lines) == ["base url", "test key", "team key", "live key"]
    seed = json.loads((ROOT / "example_app" / "sandbox_seed.json").read_text())
    template_id = seed["templates"][0]["id"]
    client = NotificationsAPIClient(lines["test key"], base_url=lines["base url"])
    template = client.get_template(template_id)  # the seed was loaded
    assert template["id"] == template_id
    sandbox_process.send_signal(signal.SIGTERM)
    assert sandbox_process.wait(15) == 0
