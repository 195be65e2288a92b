"""The extension object (``dmmail = DMMail()``) offers the Mailer's methods on ``current_app``.

The app fixture is pytest-flask's convention: with pytest-flask installed, a test that uses
``app`` runs inside that app's request context, so ``dmmail.send(...)`` needs no
``with app.app_context()``.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask

from flask_dmmail import DMMail, Mailer
from flask_dmmail.bulk import BulkReport
from flask_dmmail.errors import ExtensionError, NotificationNotFoundError
from flask_dmmail.notify import NotificationStatus, TemplatePreview
from tests.conftest import WELCOME_ID
from tests.secrets_scan import register_secret

ADDRESS = "extension-object@example.gov.uk"
PERSONAL = {"name": "Ada Extension", "framework": "G-Cloud Extension 15"}

#: Every Mailer method the extension object offers for current_app's Mailer.
METHODS = ("send", "prepare", "preview", "get_notification", "notifications", "send_bulk")


@pytest.mark.parametrize("name", METHODS)
def test_the_extension_object_has_each_method_with_the_mailers_signature(
    app: Flask, name: str
) -> None:
    dmmail = DMMail()
    mailer = DMMail.mailer(app)
    signature = inspect.signature(getattr(dmmail, name))
    assert signature == inspect.signature(getattr(mailer, name))
    kinds = {parameter.kind for parameter in signature.parameters.values()}
    assert inspect.Parameter.VAR_POSITIONAL not in kinds
    assert inspect.Parameter.VAR_KEYWORD not in kinds
    assert getattr(DMMail, name).__qualname__ == f"DMMail.{name}"
    assert f"Mailer.{name}" in (getattr(DMMail, name).__doc__ or "")


def test_preview_get_notification_and_notifications_act_on_the_current_app(
    app: Flask, mailer: Mailer
) -> None:
    register_secret(ADDRESS, *PERSONAL.values(), kind="test input")
    dmmail = DMMail()
    # pytest-flask pushed this app's request context: no app_context() needed.
    preview = dmmail.preview("welcome", PERSONAL)
    assert isinstance(preview, TemplatePreview)
    assert preview.id == WELCOME_ID
    assert preview.subject == "Welcome, Ada Extension"

    sent = dmmail.send(ADDRESS, "welcome", PERSONAL, reference="extension-object-1")
    assert sent is not None
    found = dmmail.get_notification(sent.id)
    assert isinstance(found, NotificationStatus)
    assert found.id == sent.id
    assert [n.id for n in dmmail.notifications(reference="extension-object-1")] == [sent.id]
    with pytest.raises(NotificationNotFoundError):
        dmmail.get_notification("00000000-0000-4000-8000-000000000000")


def test_send_bulk_acts_on_the_current_app(app: Flask, tmp_path: Path) -> None:
    register_secret(ADDRESS, *PERSONAL.values(), kind="test input")
    report = DMMail().send_bulk(
        "welcome", [(ADDRESS, PERSONAL)], journal=tmp_path / "run.journal", rate=600
    )
    assert isinstance(report, BulkReport)
    assert (report.total, report.sent, report.failed) == (1, 1, 0)


def test_without_an_app_context_each_method_says_what_to_do() -> None:
    dmmail = DMMail()
    with pytest.raises(ExtensionError, match="No Flask app context"):
        dmmail.preview("welcome")
    with pytest.raises(ExtensionError, match="No Flask app context"):
        dmmail.get_notification("00000000-0000-4000-8000-000000000000")


def test_extension_error_imports_from_the_errors_module_in_a_fresh_interpreter() -> None:
    """The errors table lists ExtensionError under flask_dmmail.errors: importing it from
    there works without importing anything else first."""
    code = (
        "from flask_dmmail.errors import DMMailError, ExtensionError\n"
        "assert issubclass(ExtensionError, DMMailError)\n"
        "print(ExtensionError.__module__)\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "flask_dmmail.errors"
