"""``flask dmmail bulk-send``: in-process through Flask's CLI runner, and as a real
``flask`` process that is killed (SIGKILL) or interrupted (SIGINT) halfway, against a
standalone sandbox that outlives it."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask

from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.mailchimp_support import SUPPLIERS

from .conftest import SEED, TEMPLATES

ROOT = Path(__file__).resolve().parent.parent


def write_csv(path: Path, rows: Sequence[Sequence[str]], header: Sequence[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def people(count: int, start: int = 0) -> list[list[str]]:
    return [
        [f"person{i}@example.gov.uk", f"https://reset.example.gov.uk/{i}"]
        for i in range(start, start + count)
    ]


def assert_exactly_once(sandbox: Sandbox, rows: Sequence[Sequence[str]]) -> None:
    outbox = sandbox.state.outbox()
    assert len(outbox) == len(rows)
    assert set(Counter(n.reference for n in outbox).values()) == {1}
    assert Counter(n.email_address for n in outbox) == Counter(row[0] for row in rows)


def states(journal: Path) -> Counter[str]:
    db = sqlite3.connect(journal)
    try:
        return Counter(state for (state,) in db.execute("SELECT state FROM recipients"))
    finally:
        db.close()


# -- in-process, through Flask's CLI runner -------------------------------------------------


@pytest.fixture
def invoke(make_app: Callable[..., Flask]) -> Callable[..., Result]:
    app = make_app()
    runner = app.test_cli_runner()

    def run(*args: str) -> Result:
        return runner.invoke(args=["dmmail", "bulk-send", *args])

    return run


def test_help_describes_the_command(invoke: Callable[..., Result]) -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    text = result.output
    for option in (
        "--csv",
        "--audience",
        "--journal",
        "--rate",
        "--concurrency",
        "--dry-run",
        "--failures",
    ):
        assert option in text
    assert "exactly once" in text and "same command again" in text


def test_a_csv_with_bad_rows_sends_the_rest_and_lists_the_bad_rows(
    invoke: Callable[..., Result], sandbox: Sandbox, tmp_path: Path
) -> None:
    good = people(20)
    rows = [
        *good[:2],
        ["not-an-address", "https://x"],
        *good[2:5],
        ["short-row@example.gov.uk"],
        *good[5:],
    ]
    source = write_csv(tmp_path / "people.csv", rows, header=["Email", "URL"])
    failures = tmp_path / "failures.csv"
    result = invoke(
        "reset_password",
        "--csv",
        str(source),
        "--journal",
        str(tmp_path / "j"),
        "--failures",
        str(failures),
    )
    assert result.exit_code == 1
    with failures.open(encoding="utf-8") as handle:
        listed = list(csv.DictReader(handle))
    assert [(r["row"], r["error_class"]) for r in listed] == [
        ("4", "InvalidEmailAddressError"),
        ("8", "InvalidPersonalisationError"),
    ]
    assert_exactly_once(sandbox, good)
    output = result.output
    assert "sent:                     20" in output and "failed:                   2" in output
    for text in (output, failures.read_text(encoding="utf-8")):
        assert "example.gov.uk" not in text
        assert "not-an-address" not in text and "short-row" not in text


def test_a_dry_run_sends_nothing(
    invoke: Callable[..., Result], sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "people.csv", people(15), header=["email address", "url"])
    journal = tmp_path / "j"
    result = invoke("reset_password", "--csv", str(source), "--journal", str(journal), "--dry-run")
    assert result.exit_code == 0
    assert "would send:               15" in result.output
    assert sandbox.state.outbox() == []
    assert not journal.exists()


def test_the_journal_refuses_a_different_input(
    invoke: Callable[..., Result], sandbox: Sandbox, tmp_path: Path
) -> None:
    journal = tmp_path / "j"
    first = write_csv(tmp_path / "first.csv", people(5), header=["email", "url"])
    assert invoke("reset_password", "--csv", str(first), "--journal", str(journal)).exit_code == 0
    second = write_csv(tmp_path / "second.csv", people(5, start=5), header=["email", "url"])
    result = invoke("reset_password", "--csv", str(second), "--journal", str(journal))
    assert result.exit_code == 1
    assert "made for other recipients" in result.output
    assert len(sandbox.state.outbox()) == 5


def test_bad_usage_is_refused(
    invoke: Callable[..., Result], sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "people.csv", people(2), header=["email", "url"])
    no_email = write_csv(tmp_path / "no_email.csv", people(2), header=["address", "url"])
    journal = str(tmp_path / "j")
    assert invoke("reset_password", "--journal", journal).exit_code == 2
    both = invoke("reset_password", "--csv", str(source), "--audience", "x", "--journal", journal)
    assert both.exit_code == 2
    since = invoke(
        "reset_password", "--csv", str(source), "--since", "2024-01-01", "--journal", journal
    )
    assert since.exit_code == 2
    missing = invoke("reset_password", "--csv", str(no_email), "--journal", journal)
    assert missing.exit_code == 1
    assert "column named 'email'" in missing.output
    assert sandbox.state.outbox() == []


def test_a_failures_file_that_cannot_be_written_is_refused_before_anything_is_sent(
    invoke: Callable[..., Result], sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "people.csv", [*people(3), ["bad@"]], header=["email", "url"])
    original = source.read_bytes()
    journal = tmp_path / "j"
    for failures, says in (
        (tmp_path / "no-such-directory" / "failures.csv", "no-such-directory"),
        (tmp_path, "is a directory"),
        (source, "is the --csv file"),
        (journal, "is the --journal file"),
    ):
        result = invoke(
            "reset_password",
            "--csv",
            str(source),
            "--journal",
            str(journal),
            "--failures",
            str(failures),
        )
        assert result.exit_code == 2, result.output
        assert says in result.output
        assert "Traceback" not in result.output
    assert sandbox.state.outbox() == []
    assert not journal.exists()
    assert source.read_bytes() == original


def test_a_personalisation_file_or_csv_that_cannot_be_read_is_refused_without_a_traceback(
    invoke: Callable[..., Result], sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "people.csv", people(3), header=["email", "url"])
    nested = tmp_path / "nested.json"
    nested.write_text('{"url": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"name": "Zo\u00eb"}'.encode("latin-1"))
    binary = tmp_path / "binary.json"
    binary.write_bytes(bytes(range(256)) * 4)
    huge = tmp_path / "huge.json"
    huge.write_text('{"framework": ' + "7" * 5000 + "}", encoding="utf-8")
    binary_csv = tmp_path / "binary.csv"
    binary_csv.write_bytes(b"email,url\n" + bytes(range(256)) * 4)
    latin1_csv = tmp_path / "latin1.csv"
    latin1_csv.write_bytes("email,url\nzo\u00eb@example.gov.uk,x\n".encode("latin-1"))
    nul_csv = tmp_path / "nul.csv"
    nul_csv.write_bytes(b"email,url\nsomeone@example.gov.uk,a\x00b\n")
    cases = [
        (("--csv", str(source), "--personalisation", str(nested)), "nested"),
        (("--csv", str(source), "--personalisation", str(latin1)), "UTF-8"),
        (("--csv", str(source), "--personalisation", str(binary)), "UTF-8"),
        (("--csv", str(source), "--personalisation", str(huge)), "4,300 digits"),
        (("--csv", str(binary_csv)), "binary.csv"),
        (("--csv", str(latin1_csv)), "UTF-8"),
        (("--csv", str(nul_csv)), "nul.csv"),
    ]
    for args, says in cases:
        result = invoke("reset_password", *args, "--journal", str(tmp_path / "j"))
        assert result.exit_code in (1, 2), (args, result.output)
        assert isinstance(result.exception, SystemExit), (args, result.exception)
        assert says in result.output, (args, result.output)
    assert sandbox.state.outbox() == []


def test_sanitise_has_notify_strip_urls_from_the_named_columns(
    invoke: Callable[..., Result], sandbox: Sandbox, tmp_path: Path
) -> None:
    rows = [
        ["buyer1@example.gov.uk", "[click](https://evil.example/login)", "G-Cloud 15"],
        ["buyer2@example.gov.uk", "Ada, see www.evil.example", "G-Cloud 15"],
    ]
    source = write_csv(tmp_path / "people.csv", rows, header=["email", "name", "framework"])
    journal = tmp_path / "j"
    result = invoke(
        "welcome", "--csv", str(source), "--journal", str(journal), "--sanitise", "name"
    )
    assert result.exit_code == 0, result.output
    outbox = sandbox.state.outbox()
    assert len(outbox) == 2
    for notification in outbox:
        assert "evil" in notification.sanitised_content["name"]["unsanitised"]
        assert "evil.example" not in notification.body
        assert "evil.example" not in notification.subject
        assert set(notification.sanitised_content) == {"name"}
        assert "G-Cloud 15" in notification.body  # the other column is left alone

    unsanitised = write_csv(tmp_path / "other.csv", rows[:1], header=["email", "name", "framework"])
    plain = invoke("welcome", "--csv", str(unsanitised), "--journal", str(tmp_path / "j2"))
    assert plain.exit_code == 0, plain.output
    [unsanitised_email] = [n for n in sandbox.state.outbox() if not n.sanitised_content]
    assert "https://evil.example/login" in unsanitised_email.body


def test_a_damaged_journal_is_refused_with_advice_and_check_notify_finishes_the_send(
    invoke: Callable[..., Result], sandbox: Sandbox, tmp_path: Path
) -> None:
    rows = people(200)
    source = write_csv(tmp_path / "people.csv", rows, header=["email", "url"])
    first = write_csv(tmp_path / "first.csv", rows[:120], header=["email", "url"])
    journal = tmp_path / "run.journal"
    assert invoke("reset_password", "--csv", str(first), "--journal", str(journal)).exit_code == 0
    data = journal.read_bytes()
    damaged = tmp_path / "damaged.journal"
    damaged.write_bytes(data[: len(data) // 2])  # half a file
    refused = invoke("reset_password", "--csv", str(source), "--journal", str(damaged))
    assert refused.exit_code == 1
    assert isinstance(refused.exception, SystemExit)
    assert "damaged or incomplete" in refused.output and "--check-notify" in refused.output
    assert len(sandbox.state.outbox()) == 120

    recovered = invoke(
        "reset_password", "--csv", str(source), "--journal", str(tmp_path / "new"), "--check-notify"
    )
    assert recovered.exit_code == 0, recovered.output
    assert "skipped as already sent:  120 (120 found in Notify)" in recovered.output
    assert_exactly_once(sandbox, rows)


# -- a real process, killed and interrupted ---------------------------------------------------


@pytest.fixture
def standalone() -> Iterator[Sandbox]:
    """A sandbox of this test's own: it outlives the processes the test kills."""
    sandbox = Sandbox.start(seed=SEED)
    try:
        yield sandbox
    finally:
        sandbox.stop()


def start_bulk(sandbox: Sandbox, *args: str, timeout: str = "2") -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DM_NOTIFY_KEY": sandbox.keys.test,
        "DM_NOTIFY_BASE_URL": sandbox.url,
        "DM_NOTIFY_TIMEOUT": timeout,
        "DM_NOTIFY_RETRY_BACKOFF": "0.01",
    }
    env.pop("FLASK_APP", None)
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "tests.bulk_app", "dmmail", "bulk-send", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_outbox(sandbox: Sandbox, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while len(sandbox.state.outbox()) < count:
        assert process.poll() is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.005)


@pytest.mark.slow
def test_a_run_killed_three_times_then_resumed_sends_each_email_exactly_once(
    standalone: Sandbox, tmp_path: Path
) -> None:
    rows = people(200)
    source = write_csv(tmp_path / "people.csv", rows, header=["email", "url"])
    journal = tmp_path / "crash.journal"
    args = ("reset_password", "--csv", str(source), "--journal", str(journal), "--concurrency", "4")
    standalone.state.set_faults(latency=0.02)
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    in_flight_after_kills = 0
    for _ in range(3):
        stored = len(standalone.state.outbox())
        process = start_bulk(standalone, *args)
        wait_for_outbox(standalone, stored + rng.randint(5, (len(rows) - stored) // 3), process)
        time.sleep(rng.uniform(0, 0.05))
        process.kill()  # SIGKILL: no clean-up of any kind
        process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL, f"seed {seed}"
        in_flight_after_kills += states(journal)["in-flight"]
    assert len(standalone.state.outbox()) < len(rows), f"seed {seed}"
    assert in_flight_after_kills > 0, f"seed {seed}: no kill left an email in doubt"

    standalone.state.clear_faults()  # the latency only kept the runs killable mid-way
    final = start_bulk(standalone, *args)
    out, err = final.communicate(timeout=60)
    assert final.returncode == 0, (seed, out, err)
    assert_exactly_once(standalone, rows)
    assert states(journal) == {"sent": 200}
    assert "example.gov.uk" not in out + err


@pytest.mark.slow
def test_a_copy_of_only_the_main_journal_file_after_a_kill_resumes_without_duplicates(
    standalone: Sandbox, tmp_path: Path
) -> None:
    """The journal file is complete on its own after every save: a run killed at any
    point, whose journal is copied without its -wal/-shm companions (a CI artifact, a
    ``cp`` of one file) and resumed from the copy, sends each email exactly once."""
    rows = people(200)
    source = write_csv(tmp_path / "people.csv", rows, header=["email", "url"])
    standalone.state.set_faults(latency=0.02)
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    journal = tmp_path / "run0" / "crash.journal"
    journal.parent.mkdir()
    in_flight_in_copies = 0
    for copy_number in range(1, 4):
        stored = len(standalone.state.outbox())
        process = start_bulk(
            standalone, "reset_password", "--csv", str(source), "--journal", str(journal)
        )
        wait_for_outbox(standalone, stored + rng.randint(5, (len(rows) - stored) // 3), process)
        time.sleep(rng.uniform(0, 0.05))
        process.kill()  # SIGKILL: no clean-up of any kind
        process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL, f"seed {seed}"
        copy = tmp_path / f"run{copy_number}" / "crash.journal"
        copy.parent.mkdir()
        shutil.copyfile(journal, copy)  # only the main file: no -wal, no -shm
        in_flight_in_copies += states(copy)["in-flight"]
        journal = copy
    assert len(standalone.state.outbox()) < len(rows), f"seed {seed}"
    assert in_flight_in_copies > 0, f"seed {seed}: no kill left an email in doubt"

    standalone.state.clear_faults()  # the latency only kept the runs killable mid-way
    final = start_bulk(
        standalone, "reset_password", "--csv", str(source), "--journal", str(journal)
    )
    out, err = final.communicate(timeout=60)
    assert final.returncode == 0, (seed, out, err)
    assert_exactly_once(standalone, rows)
    assert states(journal) == {"sent": 200}


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_says_how_to_resume_and_the_resume_finishes(
    standalone: Sandbox, tmp_path: Path
) -> None:
    rows = people(300)
    source = write_csv(tmp_path / "people.csv", rows, header=["email", "url"])
    journal = tmp_path / "sigint.journal"
    args = ("reset_password", "--csv", str(source), "--journal", str(journal), "--concurrency", "4")
    standalone.state.set_faults(latency=0.02)
    process = start_bulk(standalone, *args)
    wait_for_outbox(standalone, 40, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, (out, err)
    assert "To resume, run the same command again:" in err
    assert f"dmmail bulk-send reset_password --csv {source} --journal {journal}" in err
    assert "Stopped on request" in err
    sent_before = len(standalone.state.outbox())
    assert sent_before < len(rows)
    left = states(journal)
    assert left["in-flight"] == 0 and left["sent"] == sent_before  # the journal is consistent
    assert "example.gov.uk" not in out + err

    standalone.state.clear_faults()  # the latency only kept the run stoppable mid-way
    resumed = start_bulk(standalone, *args)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, (out, err)
    assert f"skipped as already sent:  {sent_before}" in out
    assert_exactly_once(standalone, rows)


@pytest.mark.slow
def test_a_second_ctrl_c_abandons_the_sends_under_way_and_the_resume_looks_them_up(
    standalone: Sandbox, tmp_path: Path
) -> None:
    """Two posts Notify has stored hang (a stall, and a timeout longer than the test): the
    first Ctrl-C waits for them, the second gives them up. They stay in-flight, and the
    resume finds them in Notify instead of sending them again."""
    rows = people(50)
    source = write_csv(tmp_path / "people.csv", rows, header=["email", "url"])
    journal = tmp_path / "abandon.journal"
    args = ("reset_password", "--csv", str(source), "--journal", str(journal))
    standalone.state.set_faults(stall_rate=1.0, stall_seconds=600)
    try:
        process = start_bulk(standalone, *args, "--concurrency", "2", "--progress", timeout="600")
        wait_for_outbox(standalone, 2, process)  # both threads' posts are stored, and hang
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        for line in process.stderr:  # the progress bar, then what the first Ctrl-C says
            if line.startswith("Stopping: waiting for 2 sends under way"):
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        standalone.state.clear_faults()
    assert process.returncode == 130, (out, err)
    assert "Stopped on request" in err and "To resume, run the same command again:" in err
    assert states(journal) == {"in-flight": 2, "pending": 48}
    assert "example.gov.uk" not in out + err

    resumed = start_bulk(standalone, *args)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, (out, err)
    assert "skipped as already sent:  2 (2 found in Notify)" in out
    assert_exactly_once(standalone, rows)


def test_an_audience_with_personalisation_from_a_file(
    sandbox: Sandbox, make_mc_app: Callable[..., Flask], mc_state: MailchimpState, tmp_path: Path
) -> None:
    members = [f"supplier{i}@example.gov.uk" for i in range(12)]
    mc_state.add_members(SUPPLIERS, members)
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"name": "Supplier", "framework": "G-Cloud 15"}))
    runner = make_mc_app(DM_NOTIFY_TEMPLATES=TEMPLATES).test_cli_runner()
    args = ["dmmail", "bulk-send", "welcome", "--audience", "suppliers"]
    args += ["--personalisation", str(values), "--journal", str(tmp_path / "j")]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "sent:                     12" in result.output
    outbox = sandbox.state.outbox()
    assert sorted(n.email_address for n in outbox) == sorted(members)
    assert {n.personalisation["framework"] for n in outbox} == {"G-Cloud 15"}
    assert "example.gov.uk" not in result.output and "G-Cloud" not in result.output
