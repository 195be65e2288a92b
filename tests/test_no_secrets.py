"""The session-wide secrets scan (tests/secrets_scan.py) catches a planted secret.

Each case runs a small pytest session in a subprocess with the scan plugin loaded: a
test that leaks a secret through a log record, an exception message or CLI output makes
the run fail (even though the test itself passes), and the report never shows the secret.
A clean session passes.
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
PLANTED = "Planted.Person@Example.gov.uk"

LEAKS = {
    "log record": f"""
        import logging
        from tests.secrets_scan import register_secret

        def test_leak():
            register_secret("{PLANTED}", kind="recipient")
            logging.getLogger("some.library").debug("sending to %s", "{PLANTED.lower()}")
    """,
    "log extra field": f"""
        import logging
        from tests.secrets_scan import register_secret

        def test_leak():
            register_secret("{PLANTED}", kind="recipient")
            logging.getLogger("flask_dmmail").info("sent", extra={{"to": "{PLANTED}"}})
    """,
    "exception message": f"""
        import pytest
        from flask_dmmail.errors import InvalidEmailAddressError
        from tests.secrets_scan import register_secret

        def test_leak():
            register_secret("{PLANTED}", kind="recipient")
            with pytest.raises(InvalidEmailAddressError):
                raise InvalidEmailAddressError("bad address {PLANTED}")
    """,
    "cli output": """
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
    "sent recipient": f"""
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
            DMMail(app).mailer(app).send("{PLANTED}", "6f1a3c1e-8a0b-4c3e-9d0f-5b6a7c8d9e01")
            # never registered by hand: email_sent registered the recipient
            logging.getLogger("app.audit").warning("emailed %s", "{PLANTED}")
    """,
    "sandbox api key": """
        def test_leak(notify_sandbox):
            from flask_dmmail.errors import ConfigurationError
            ConfigurationError("DM_NOTIFY_KEY", f"bad key {notify_sandbox.keys.live}")
    """,
}

ALLOWED = {
    "context manager": f"""
        import logging
        from tests.secrets_scan import disclosure_allowed, register_secret

        def test_export():
            register_secret("{PLANTED}", kind="recipient")
            with disclosure_allowed("an export writes addresses"):
                logging.getLogger("export").info("row: %s", "{PLANTED}")
    """,
    "marker": f"""
        import logging
        import pytest
        from tests.secrets_scan import register_secret

        @pytest.mark.discloses_personal_data("an export writes addresses")
        def test_export():
            register_secret("{PLANTED}", kind="recipient")
            logging.getLogger("export").info("row: %s", "{PLANTED}")
    """,
}

CLEAN = f"""
    import logging
    from tests.secrets_scan import register_secret

    def test_clean():
        register_secret("{PLANTED}", kind="recipient")
        logging.getLogger("flask_dmmail").info("sent", extra={{"to_hash": "0123456789abcdef"}})
"""


def run_session(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_planted.py").write_text(textwrap.dedent(source), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.secrets_scan",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_planted.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("where", sorted(LEAKS))
def test_a_planted_secret_fails_the_session(tmp_path: Path, where: str) -> None:
    result = run_session(tmp_path, LEAKS[where])
    report = result.stdout + result.stderr
    assert "1 passed" in report, report
    assert result.returncode == 1, report
    assert "secrets scan: FAILED" in report
    assert "test_planted.py::test_leak" in report
    assert PLANTED.lower() not in report.lower()
    assert "Zebedee-Quux-42".lower() not in report.lower()


def test_a_clean_session_passes(tmp_path: Path) -> None:
    result = run_session(tmp_path, CLEAN)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
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


@pytest.mark.parametrize("how", sorted(ALLOWED))
def test_an_allowed_disclosure_is_not_scanned(tmp_path: Path, how: str) -> None:
    result = run_session(tmp_path, ALLOWED[how])
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "nothing leaked" in report


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
