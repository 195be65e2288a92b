"""``flask dmmail mailchimp ...`` through Flask's test CLI runner, against the sandbox."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask

from flask_dmmail.mailchimp import subscriber_hash
from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.mailchimp_support import (
    BUYERS,
    SUPPLIERS,
)
from tests.secrets_scan import register_secret

HTML = "<p>New briefs this week.</p><p>*|UNSUB|*</p>"
# Addresses the CLI must never print (the export's CSV uses others: printing is its purpose).
PRIVATE = ["ada@digital.gov.uk", "alan@digital.gov.uk", "grace@digital.gov.uk"]


@pytest.fixture(autouse=True)
def _secrets() -> None:
    register_secret(*PRIVATE, kind="address")


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=["dmmail", "mailchimp", *args], input=input)


@pytest.mark.parametrize(
    "command", ["subscribe", "export", "create-audience", "send-campaign", "forget"]
)
def test_every_command_has_help(mc_app: Flask, command: str) -> None:
    result = run(mc_app, command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output
    if command != "export":
        assert "--dry-run" in result.output
    else:
        assert "email addresses: that is its purpose" in " ".join(result.output.split())


def test_subscribe_prints_counts_and_never_an_address(
    mc_app: Flask, mc_state: MailchimpState
) -> None:
    mc_state.add_members(SUPPLIERS, [PRIVATE[2]], status="unsubscribed")
    result = run(mc_app, "subscribe", "suppliers", *PRIVATE)
    assert result.exit_code == 0, result.output
    assert "subscribed: 2" in result.stdout
    assert "unsubscribed: 1" in result.stdout
    assert f"audience: suppliers ({SUPPLIERS})" in result.stdout
    assert mc_state.member_count(SUPPLIERS, "subscribed") == 2
    assert not any(address in result.output for address in PRIVATE)


def test_subscribe_from_a_csv_file_exits_1_when_an_address_is_refused(
    mc_app: Flask, mc_state: MailchimpState, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(f"name,email\nAda,{PRIVATE[0]}\nNobody,not-an-address\n\nAlan,{PRIVATE[1]}\n")
    result = run(mc_app, "subscribe", "buyers", "--file", str(path))
    assert result.exit_code == 1
    assert "invalid address: 1" in result.stdout
    assert "1 address was refused" in result.stderr
    assert mc_state.member_count(BUYERS) == 2


def test_subscribe_reads_stdin(mc_app: Flask, mc_state: MailchimpState) -> None:
    result = run(mc_app, "subscribe", "buyers", "--file", "-", input=f"{PRIVATE[0]}\n")
    assert result.exit_code == 0, result.output
    assert mc_state.member_count(BUYERS) == 1


def test_subscribe_dry_run_changes_nothing(mc_app: Flask, mc_state: MailchimpState) -> None:
    result = run(mc_app, "subscribe", "suppliers", "--dry-run", PRIVATE[0], PRIVATE[0].upper())
    assert result.exit_code == 0, result.output
    assert "would subscribe 1 address to Suppliers" in result.stdout
    assert mc_state.member_count(SUPPLIERS, None) == 0
    bad = run(mc_app, "subscribe", "suppliers", "--dry-run", "nope")
    assert bad.exit_code == 1


def test_subscribe_needs_addresses_and_a_known_audience(mc_app: Flask) -> None:
    assert run(mc_app, "subscribe", "suppliers").exit_code == 2
    unknown = run(mc_app, "subscribe", "supplier", PRIVATE[0])
    assert unknown.exit_code == 1
    assert "DM_MAILCHIMP_AUDIENCES" in unknown.stderr
    assert "Traceback" not in unknown.output


def test_export_writes_csv_to_stdout_with_progress_on_stderr(
    mc_app: Flask, mc_state: MailchimpState
) -> None:
    people = [f"exported{i}@digital.gov.uk" for i in range(1500)]
    mc_state.add_members(SUPPLIERS, people, merge_fields={"FNAME": "Pat"})
    mc_state.add_members(SUPPLIERS, ["gone@digital.gov.uk"], status="unsubscribed")
    result = run(mc_app, "export", "suppliers", "--field", "merge_fields.FNAME")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == [
        "email_address",
        "status",
        "timestamp_opt",
        "last_changed",
        "merge_fields.FNAME",
    ]
    assert sorted(row[0] for row in rows[1:]) == sorted(people)
    assert {row[1] for row in rows[1:]} == {"subscribed"}
    assert {row[4] for row in rows[1:]} == {"Pat"}
    assert "Exporting" in result.stderr
    assert "exported 1500 members of suppliers" in result.stderr


def test_export_to_a_file_with_every_status(
    mc_app: Flask, mc_state: MailchimpState, tmp_path: Path
) -> None:
    mc_state.add_members(BUYERS, ["one@digital.gov.uk"])
    mc_state.add_members(BUYERS, ["two@digital.gov.uk"], status="unsubscribed")
    target = tmp_path / "buyers.csv"
    result = run(mc_app, "export", "buyers", "--status", "all", "--output", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    with target.open() as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["email_address"], r["status"]) for r in rows} == {
        ("one@digital.gov.uk", "subscribed"),
        ("two@digital.gov.uk", "unsubscribed"),
    }


def test_a_failed_export_exits_1_and_leaves_no_file(
    mc_app: Flask, mc_state: MailchimpState, notify_sandbox: Sandbox, tmp_path: Path
) -> None:
    mc_state.add_members(BUYERS, ["one@digital.gov.uk"])
    notify_sandbox.state.set_faults(error_rate=1.0, paths=("/3.0/",))
    target = tmp_path / "buyers.csv"
    result = run(mc_app, "export", "buyers", "--output", str(target))
    assert result.exit_code == 1
    assert "Mailchimp" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_export_into_a_missing_folder_is_a_usage_error(mc_app: Flask, tmp_path: Path) -> None:
    result = run(mc_app, "export", "buyers", "--output", str(tmp_path / "nope" / "b.csv"))
    assert result.exit_code == 2
    assert "folder does not exist" in result.stderr
    assert "Traceback" not in result.output


def test_create_audience(production_app: Flask, mc_state: MailchimpState) -> None:
    mc_app = production_app  # the one stage that creates audiences
    dry = run(mc_app, "create-audience", "suppliers", "DOS 7", "--dry-run")
    assert dry.exit_code == 0 and "would create 'DOS 7' like Suppliers" in dry.stdout
    assert len(mc_state.lists()) == 2
    made = run(mc_app, "create-audience", "suppliers", "DOS 7")
    assert made.exit_code == 0, made.output
    new_id = made.stdout.strip()
    assert [x["name"] for x in mc_state.lists() if x["id"] == new_id] == ["DOS 7"]
    again = run(mc_app, "create-audience", "suppliers", "DOS 7")
    assert again.stdout.strip() == new_id and "exists already" in again.stderr
    assert len(mc_state.lists()) == 3
    missing = run(mc_app, "create-audience", "abcdef0123", "DOS 8")
    assert missing.exit_code == 1 and "404" in missing.stderr


def test_send_campaign_then_again(mc_app: Flask, mc_state: MailchimpState, tmp_path: Path) -> None:
    mc_state.add_members(SUPPLIERS, PRIVATE)
    html = tmp_path / "alert.html"
    html.write_text(HTML)
    args = ["send-campaign", "suppliers", "--title", "DOS7 2024-05-01", "--subject", "New"]
    dry = run(mc_app, *args, "--html-file", str(html), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would send 'DOS7 2024-05-01' to 3 subscribers" in dry.stdout
    assert mc_state.campaigns() == []
    sent = run(mc_app, *args, "--html-file", str(html))
    assert sent.exit_code == 0, sent.output
    assert "sent: campaign" in sent.stdout and "to 3 recipients" in sent.stdout
    again = run(mc_app, *args, "--html-file", "-", input=HTML)
    assert again.exit_code == 0 and "already sent" in again.stdout
    dry_again = run(mc_app, *args, "--html-file", str(html), "--dry-run")
    assert "already sent" in dry_again.stdout
    assert len(mc_state.sent_campaigns()) == 1


def test_send_campaign_failures_exit_1(
    mc_app: Flask, mc_state: MailchimpState, tmp_path: Path
) -> None:
    mc_state.add_members(SUPPLIERS, PRIVATE)
    html = tmp_path / "alert.html"
    html.write_text("<p>no unsubscribe link</p>")
    args = [
        "send-campaign",
        "suppliers",
        "--title",
        "t",
        "--subject",
        "s",
        "--html-file",
        str(html),
    ]
    dry = run(mc_app, *args, "--dry-run")
    assert dry.exit_code == 1 and "*|UNSUB|*" in dry.stderr
    real = run(mc_app, *args)
    assert real.exit_code == 1
    assert "would not send the campaign" in real.stderr
    assert mc_state.campaigns() == []


def test_send_campaign_refuses_an_unlisted_audience_outside_production(
    make_mc_app: Callable[..., Flask], mc_state: MailchimpState, tmp_path: Path
) -> None:
    real_list = mc_state.create_list("Production suppliers")
    mc_state.add_members(real_list, PRIVATE)
    html = tmp_path / "alert.html"
    html.write_text(HTML)
    args = ["send-campaign", real_list, "--title", "t", "--subject", "s", "--html-file", str(html)]
    staging = make_mc_app()
    for extra in ([], ["--dry-run"]):
        refused = run(staging, *args, *extra)
        assert refused.exit_code == 1
        assert "DM_MAILCHIMP_AUDIENCES" in refused.stderr
    assert mc_state.campaigns() == []
    production = make_mc_app(DM_ENVIRONMENT="production")
    assert run(production, *args).exit_code == 0
    assert [c.list_id for c in mc_state.sent_campaigns()] == [real_list]


def test_forget_reports_by_position_only(mc_app: Flask, mc_state: MailchimpState) -> None:
    mc_state.add_members(SUPPLIERS, PRIVATE[:2])
    mc_state.add_members(BUYERS, PRIVATE[:1])
    dry = run(mc_app, "forget", "--dry-run", *PRIVATE)
    assert dry.exit_code == 0, dry.output
    assert f"#1: dry run: would delete from 2 audiences: {SUPPLIERS}, {BUYERS}" in dry.stdout
    assert "#3: dry run: nothing to delete: not a member of any audience\n" in dry.stdout
    assert mc_state.member_count(SUPPLIERS, None) == 2
    done = run(mc_app, "forget", *PRIVATE)
    assert done.exit_code == 0, done.output
    assert "#1: deleted from 2 audiences: " in done.stdout
    assert f"#2: deleted from 1 audience: {SUPPLIERS}\n" in done.stdout
    assert mc_state.member_count(SUPPLIERS, None) == 0
    assert mc_state.member_count(BUYERS, None) == 0
    one = run(mc_app, "forget", "--audience", "buyers", PRIVATE[2])
    assert "#1: nothing to delete: not a member of 1 audience\n" in one.stdout
    assert not any(address in dry.output + done.output + one.output for address in PRIVATE)


def test_forget_failures_exit_1(
    mc_app: Flask, mc_state: MailchimpState, notify_sandbox: Sandbox
) -> None:
    mc_state.add_members(SUPPLIERS, PRIVATE[:1])
    notify_sandbox.state.set_faults(error_rate=1.0, paths=("/3.0/lists/",))
    result = run(mc_app, "forget", "--audience", "suppliers", PRIVATE[0])
    assert result.exit_code == 1
    assert "#1: failed" in result.stderr and "1 of 1 could not be forgotten" in result.stderr
    notify_sandbox.state.clear_faults()
    assert mc_state.get_member(SUPPLIERS, subscriber_hash(PRIVATE[0]), "")["status"] == "subscribed"


def test_without_a_mailchimp_key_commands_say_how_to_set_one(
    make_mc_app: Callable[..., Flask],
) -> None:
    app = make_mc_app(DM_MAILCHIMP_API_KEY=None, DM_MAILCHIMP_BASE_URL=None)
    result = run(app, "subscribe", "suppliers", PRIVATE[0])
    assert result.exit_code == 1
    assert "DM_MAILCHIMP_API_KEY" in result.stderr
