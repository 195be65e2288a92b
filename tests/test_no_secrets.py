"""The session-wide secrets scan (tests/secrets_scan.py) catches a planted secret.

Two small pytest sessions run in subprocesses with the scan plugin loaded. In the first,
each test leaks its own secret (nothing else in the session holds it) through a log
record, an exception message or CLI output: the run fails (even though every test
passes), the report names each leaking test and where its secret was, and never shows a
secret. In the second, a clean test and the two ways of allowing a disclosure: the run
passes. (One session per outcome rather than one per case: each subprocess costs more than
a second.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .secrets_scan import SecretScanner

ROOT = Path(__file__).resolve().parent.parent


def planted(case: str) -> str:
    """The case's own secret: an address no other case registers or writes."""
    return f"Planted.{case.replace(' ', '-').title()}@Example.gov.uk"


#: case -> (the source of the case's test module, where the report must say it leaked)
LEAKS = {
    "log record": (
        f"""
        import logging
        from tests.secrets_scan import register_secret

        def test_leak():
            register_secret("{planted("log record")}", kind="recipient")
            address = "{planted("log record").lower()}"
            logging.getLogger("some.library").debug("sending to %s", address)
        """,
        "recipient in log some.library DEBUG",
    ),
    "log extra field": (
        f"""
        import logging
        from tests.secrets_scan import register_secret

        def test_leak():
            register_secret("{planted("log extra field")}", kind="recipient")
            extra = {{"to": "{planted("log extra field")}"}}
            logging.getLogger("flask_dmmail").info("sent", extra=extra)
        """,
        "recipient in log flask_dmmail INFO",
    ),
    "exception message": (
        f"""
        import pytest
        from flask_dmmail.errors import InvalidEmailAddressError
        from tests.secrets_scan import register_secret

        def test_leak():
            register_secret("{planted("exception message")}", kind="recipient")
            with pytest.raises(InvalidEmailAddressError):
                raise InvalidEmailAddressError("bad address {planted("exception message")}")
        """,
        "recipient in exception InvalidEmailAddressError",
    ),
    "cli output": (
        """
        import click
        from click.testing import CliRunner
        from tests.secrets_scan import register_secret

        @click.command()
        def show():
            click.echo("personalisation: Zebedee-Quux-42", err=True)

        def test_leak():
            register_secret({"name": "Zebedee-Quux-42"})
            assert CliRunner().invoke(show).exit_code == 0
        """,
        "value in cli",
    ),
    "sent recipient": (
        f"""
        import logging
        from flask import Flask
        from flask_dmmail import DMMail

        def test_leak(notify_sandbox):
            app = Flask("planted")
            app.config.update(
                DM_NOTIFY_KEY=notify_sandbox.keys.test,
                DM_NOTIFY_BASE_URL=notify_sandbox.url,
                DM_MAIL_SANDBOX=False,
                DM_ENVIRONMENT="production",
                SECRET_KEY="x",
            )
            notify_sandbox.state.add_template(
                id="6f1a3c1e-8a0b-4c3e-9d0f-5b6a7c8d9e01", name="t", subject="s", body="b"
            )
            DMMail(app).mailer(app).send(
                "{planted("sent recipient")}", "6f1a3c1e-8a0b-4c3e-9d0f-5b6a7c8d9e01"
            )
            # never registered by hand: email_sent registered the recipient
            logging.getLogger("app.audit").warning("emailed %s", "{planted("sent recipient")}")
        """,
        "recipient in log app.audit WARNING",
    ),
    "sandbox api key": (
        """
        def test_leak(notify_sandbox):
            from flask_dmmail.errors import ConfigurationError
            ConfigurationError("DM_NOTIFY_KEY", f"bad key {notify_sandbox.keys.live}")
        """,
        "api key in exception ConfigurationError",
    ),
}

#: Sessions with these tests pass: no secret, or a disclosure that is allowed.
PASSING = {
    "clean": f"""
        import logging
        from tests.secrets_scan import register_secret

        def test_clean():
            register_secret("{planted("clean")}", kind="recipient")
            logging.getLogger("flask_dmmail").info("sent", extra={{"to_hash": "0123456789abcdef"}})
    """,
    "context manager": f"""
        import logging
        from tests.secrets_scan import disclosure_allowed, register_secret

        def test_export():
            register_secret("{planted("context manager")}", kind="recipient")
            with disclosure_allowed("an export writes addresses"):
                logging.getLogger("export").info("row: %s", "{planted("context manager")}")
    """,
    "marker": f"""
        import logging
        import pytest
        from tests.secrets_scan import register_secret

        @pytest.mark.discloses_personal_data("an export writes addresses")
        def test_export():
            register_secret("{planted("marker")}", kind="recipient")
            logging.getLogger("export").info("row: %s", "{planted("marker")}")
    """,
}


def module_name(case: str) -> str:
    return "test_" + case.replace(" ", "_") + ".py"


def run_session(folder: Path, sources: dict[str, str]) -> tuple[int, str]:
    """Run one pytest session over a module per case; (exit status, stdout + stderr)."""
    folder.mkdir()
    for case, source in sources.items():
        (folder / module_name(case)).write_text(textwrap.dedent(source), encoding="utf-8")
    # Only the plugins the cases use: importing hypothesis's alone takes seconds.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "flask_dmmail.testing"),
            *("-p", "tests.secrets_scan", "-p", "no:cacheprovider"),
            *("--rootdir", str(folder), str(folder)),
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def leaking(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str]:
    """The session in which every test leaks its own secret."""
    folder = tmp_path_factory.mktemp("planted") / "leaks"
    return run_session(folder, {case: source for case, (source, _) in LEAKS.items()})


def test_a_session_with_planted_secrets_fails_and_never_shows_them(
    leaking: tuple[int, str],
) -> None:
    status, report = leaking
    assert f"{len(LEAKS)} passed" in report, report
    assert status == 1, report
    assert "secrets scan: FAILED" in report
    for case in [*LEAKS, *PASSING]:
        assert planted(case).lower() not in report.lower()
    assert "zebedee-quux-42" not in report.lower()


@pytest.mark.parametrize("case", sorted(LEAKS))
def test_a_planted_secret_fails_the_session(leaking: tuple[int, str], case: str) -> None:
    _, report = leaking
    where = LEAKS[case][1]
    named = [line for line in report.splitlines() if f"{module_name(case)}::test_leak" in line]
    assert any(line.startswith(where) for line in named), report


def test_a_clean_session_and_allowed_disclosures_pass(tmp_path: Path) -> None:
    status, report = run_session(tmp_path / "passing", PASSING)
    assert f"{len(PASSING)} passed" in report, report
    assert status == 0, report
    assert "nothing leaked" in report


def test_scanner_matches_ignoring_case_and_blanks_the_secret() -> None:
    scanner = SecretScanner()
    scanner.register(["Ada.Lovelace@Example.gov.uk", "ab"], "recipient")
    scanner.register({"name": "Zebedee Quux"}, "personalisation")
    scanner.record("log", "nothing to see")
    scanner.record("cli", "Hello ZEBEDEE QUUX, we wrote to ada.lovelace@example.gov.uk")
    scanner.record("log", "ab is too short to be a secret")
    findings = scanner.findings()
    assert sorted(f.kind for f in findings) == ["personalisation", "recipient"]
    for finding in findings:
        assert finding.source == "cli"
        assert "zebedee" not in finding.excerpt and "lovelace" not in finding.excerpt
        assert "<personalisation>" in finding.excerpt and "<recipient>" in finding.excerpt


def test_an_excerpt_never_shows_part_of_a_secret_at_its_edge() -> None:
    scanner = SecretScanner()
    scanner.register("Philomena Cunegonde", "personalisation")
    scanner.register("edge.case@example.gov.uk", "recipient")
    # the address sits 70 characters in, so a window starting 60 before it would begin
    # inside the name
    text = "Philomena Cunegonde" + "." * 51 + "edge.case@example.gov.uk"
    scanner.record("cli", text)
    excerpts = [f.excerpt for f in scanner.findings()]
    assert len(excerpts) == 2
    for excerpt in excerpts:
        assert "cunegonde" not in excerpt and "philomena" not in excerpt
        assert "edge.case" not in excerpt
