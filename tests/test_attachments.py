"""flask_dmmail.attachment(): files sent as personalisation values.

``attachment()`` checks a file locally against Notify's own limits (size, filename,
``is_csv``, the download options): what Notify would refuse never reaches the network, and
each local refusal here is paired with the same value sent raw (with the official client)
to the sandbox, which refuses it as Notify does. Values at the limits go through
``Mailer.send`` and are stored as sent; Notify's defaults fill in the options not given.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from notifications_python_client.errors import HTTPError
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail import Mailer, attachment
from flask_dmmail.attachments import MAX_FILE_SIZE, Attachment
from flask_dmmail.errors import InvalidAttachmentError, NotifyBadRequestError
from flask_dmmail.sandbox import Sandbox

FILE_TEMPLATE = "a5a4c1a2-3b4c-4d5e-8f90-1a2b3c4d5e6f"
TO = "a@example.gov.uk"


@pytest.fixture
def file_sandbox(sandbox: Sandbox) -> Sandbox:
    """The suite's sandbox with a template whose only placeholder is a file."""
    sandbox.state.add_template(
        id=FILE_TEMPLATE, name="File", subject="Your file", body="Download it: ((doc))"
    )
    return sandbox


@pytest.fixture
def notify_client(file_sandbox: Sandbox) -> Iterator[NotificationsAPIClient]:
    """The official client, for values attachment() never lets through."""
    client = NotificationsAPIClient(file_sandbox.keys.test, base_url=file_sandbox.url)
    yield client
    client.request_session.close()


def stored_file(mailer: Mailer, sandbox: Sandbox, file: Attachment) -> dict[str, Any]:
    """Send ``file`` and return what the sandbox stored for it."""
    sent = mailer.send(TO, FILE_TEMPLATE, {"doc": file})
    assert sent is not None and "https://documents.service.gov.uk/d/" in sent.body
    stored = sandbox.state.get(sent.id)
    assert stored is not None
    (only,) = stored.files
    return dict(only)


# -- what Notify refuses is refused here first ------------------------------------------------

B64 = base64.b64encode(b"a,b\n").decode()

#: id -> (attachment() arguments, our message, the raw value, Notify's message)
REFUSED: dict[str, tuple[dict[str, Any], str, dict[str, Any], str]] = {
    "over-2-MiB": (
        {"data": b"x" * (MAX_FILE_SIZE + 1)},
        "Notify takes at most 2097152 (2 MiB). Send a smaller file or a link to it.",
        # document-download-api takes up to 2 MiB + 1024 decoded bytes (the official
        # client's prepare_upload, like attachment(), stops at 2 MiB)
        {"file": base64.b64encode(b"x" * (MAX_FILE_SIZE + 1024 + 1)).decode()},
        "Uploaded file exceeds file size limit",
    ),
    "no-extension": (
        {"data": b"a,b\n", "filename": "report"},
        "filename must end with a file extension, for example 'report.csv'.",
        {"file": B64, "filename": "report"},
        "`filename` must end with a file extension",
    ),
    "filename-of-101": (
        {"data": b"a,b\n", "filename": "r" * 97 + ".csv"},
        "filename is 101 characters; Notify takes at most 100.",
        {"file": B64, "filename": "r" * 97 + ".csv"},
        "`filename` cannot be longer than 100 characters",
    ),
    "filename-and-is-csv": (
        {"data": b"a,b\n", "filename": "report.csv", "is_csv": True},
        "Give either filename or is_csv, not both",
        {"file": B64, "filename": "report.csv", "is_csv": True},
        "Do not set a value for `is_csv` if `filename` is set.",
    ),
    "79-weeks": (
        {"data": b"a,b\n", "retention_period": 79},
        "retention_period must be a number of weeks from 1 to 78",
        {"file": B64, "retention_period": "79 weeks"},
        "Supported periods are from 1 to 78 weeks.",
    ),
    "confirm-not-a-bool": (
        {"data": b"a,b\n", "confirm_email_before_download": "yes"},
        "confirm_email_before_download must be True, False or None.",
        {"file": B64, "confirm_email_before_download": "yes"},
        "Use a boolean true or false value.",
    ),
    "is-csv-not-a-bool": (
        {"data": b"a,b\n", "is_csv": 1},
        "is_csv must be True, False or None.",
        {"file": B64, "is_csv": 1},
        "Use a boolean true or false value.",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_notify_refuses_is_refused_before_sending(
    notify_client: NotificationsAPIClient, file_sandbox: Sandbox, case: str
) -> None:
    arguments, ours, raw, notifys = REFUSED[case]
    data = arguments.pop("data")
    with pytest.raises(InvalidAttachmentError) as raised:
        attachment(data, **arguments)
    assert ours in str(raised.value)
    # The same value, sent anyway: Notify (here the sandbox) refuses it.
    with pytest.raises(HTTPError) as refused:
        notify_client.send_email_notification(TO, FILE_TEMPLATE, {"doc": raw})
    errors: Any = refused.value.message  # Notify's list of errors
    assert refused.value.status_code == 400
    assert notifys in errors[0]["message"]
    assert file_sandbox.state.outbox() == []


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"data": b"x", "retention_period": 0}, "1 to 78"),
        ({"data": b"x", "retention_period": "0 weeks"}, "1 to 78"),
        ({"data": b"x", "retention_period": "26"}, "as an int (26) or a string ('26 weeks')"),
        ({"data": b"x", "retention_period": "a year"}, "1 to 78"),
        ({"data": b"x", "retention_period": True}, "1 to 78"),
        ({"data": b"x", "filename": ".csv"}, "extension"),
        ({"data": b"x", "filename": "report."}, "extension"),
        ({"data": b"x", "filename": 42}, "extension"),
        ({"data": b"a,b\n", "filename": "report\udcff.csv"}, "not valid Unicode text"),
        ({"data": b""}, "The file is empty; Notify cannot send an empty file."),
        ({"data": "text"}, "takes bytes or a binary file object, not str"),
        ({"data": io.StringIO("a,b\n")}, "opened in binary mode ('rb')"),
    ],
    ids=[
        "0-weeks",
        "0-weeks-text",
        "a-bare-number-as-text",
        "words",
        "bool",
        "only-an-extension",
        "ends-with-a-dot",
        "filename-not-text",
        "surrogate-in-filename",
        "empty",
        "text",
        "text-file",
    ],
)
def test_other_refusals_say_what_to_give(arguments: dict[str, Any], error: str) -> None:
    data = arguments.pop("data")
    with pytest.raises(InvalidAttachmentError, match=re.escape(error)):
        attachment(data, **arguments)


def test_a_file_opened_in_text_mode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_text("a,b\n", encoding="utf-8")
    with path.open(encoding="utf-8") as text, pytest.raises(InvalidAttachmentError, match="'rb'"):
        attachment(text)  # type: ignore[arg-type]
    with path.open("rb") as binary:
        assert attachment(binary, filename="report.csv").data == b"a,b\n"


# -- what goes through ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            {"data": b"x" * MAX_FILE_SIZE, "filename": "big.txt"},
            {"size_bytes": MAX_FILE_SIZE, "filename": "big.txt"},
        ),
        (
            {"data": b"a,b\n", "filename": "r" * 96 + ".csv"},
            {"filename": "r" * 96 + ".csv"},
        ),
        (
            {"data": b"a,b\n", "is_csv": True, "retention_period": 1},
            {"is_csv": True, "filename": None, "retention_period": "1 weeks"},
        ),
        (
            {"data": bytearray(b"%PDF-1.4"), "retention_period": "78 weeks"},
            {"retention_period": "78 weeks"},
        ),
        (
            {"data": b"a,b\n", "filename": "a.csv", "confirm_email_before_download": False},
            {"confirm_email_before_download": False},
        ),
    ],
    ids=["2-MiB", "filename-of-100", "is-csv-1-week", "78-weeks", "no-confirmation"],
)
def test_values_at_notifys_limits_are_sent_and_stored(
    mailer: Mailer, file_sandbox: Sandbox, arguments: dict[str, Any], expected: dict[str, Any]
) -> None:
    data = arguments.pop("data")
    stored = stored_file(mailer, file_sandbox, attachment(data, **arguments))
    assert {name: stored[name] for name in expected} == expected


def test_options_not_given_get_notifys_defaults(mailer: Mailer, file_sandbox: Sandbox) -> None:
    file = attachment(io.BytesIO(b"a,b\n"), filename="report.csv")
    # prepare_upload's shape: all four keys, unset ones null; is_csv only when set
    assert file.to_notify() == {
        "file": base64.b64encode(b"a,b\n").decode(),
        "filename": "report.csv",
        "confirm_email_before_download": None,
        "retention_period": None,
    }
    stored = stored_file(mailer, file_sandbox, file)
    assert stored["confirm_email_before_download"] is True
    assert stored["retention_period"] == "26 weeks"


def test_retention_is_sent_as_notify_writes_it() -> None:
    for given in (26, "26 weeks", " 26 weeks ", "26 week"):
        assert attachment(b"x", retention_period=given).retention_period == "26 weeks"


def test_a_file_notify_will_not_take_is_a_typed_refusal_and_nothing_is_stored(
    mailer: Mailer, file_sandbox: Sandbox
) -> None:
    """The file types Notify takes are its own to change, so they are not checked here:
    Notify's refusal comes back as a typed error that says what it takes."""
    file = attachment(b"MZ\x90\x00", filename="setup.exe")
    with pytest.raises(NotifyBadRequestError, match=r"Supported types are: '\.csv'"):
        mailer.send(TO, FILE_TEMPLATE, {"doc": file})
    assert file_sandbox.state.outbox() == []


def test_an_attachment_repr_shows_no_content_nor_name() -> None:
    text = repr(attachment(b"secret payload", filename="private-report.txt"))
    assert text == "Attachment(size=14, filename=set)"
    assert repr(attachment(b"x", is_csv=True)) == "Attachment(size=1, filename=None)"
