"""File attachments: a personalisation value that Notify turns into a download link."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from dataclasses import dataclass, field
from typing import IO, Any

from .errors import InvalidAttachmentError

__all__ = ["MAX_FILE_SIZE", "Attachment", "attachment"]

#: Notify's limit for one file: 2 MiB.
MAX_FILE_SIZE = 2 * 1024 * 1024
_MAX_FILENAME = 100
_RETENTION = re.compile(r"^(\d{1,3}) weeks?$")


@dataclass(frozen=True)
class Attachment:
    """A validated file for one personalisation placeholder. Build it with :func:`attachment`."""

    data: bytes = field(repr=False)
    filename: str | None = None
    is_csv: bool | None = None
    confirm_email_before_download: bool | None = None
    retention_period: str | None = None

    @property
    def sha256(self) -> str:
        """The file's SHA-256, used in place of its bytes when a reference is derived."""
        return hashlib.sha256(self.data).hexdigest()

    def to_notify(self) -> dict[str, Any]:
        """The JSON object Notify expects for this file (the shape of ``prepare_upload``)."""
        value: dict[str, Any] = {
            "file": base64.b64encode(self.data).decode("ascii"),
            "filename": self.filename,
            "confirm_email_before_download": self.confirm_email_before_download,
            "retention_period": self.retention_period,
        }
        if self.is_csv is not None:
            value["is_csv"] = self.is_csv
        return value

    def __repr__(self) -> str:
        return f"Attachment(size={len(self.data)}, filename={'set' if self.filename else None})"


def _retention(value: int | str | None) -> str | None:
    if value is None:
        return None
    weeks: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        weeks = value
    elif isinstance(value, str) and (match := _RETENTION.match(value.strip())):
        weeks = int(match.group(1))
    if weeks is None or not 1 <= weeks <= 78:
        raise InvalidAttachmentError(
            "retention_period must be a number of weeks from 1 to 78, as an int (26) "
            "or a string ('26 weeks')."
        )
    return f"{weeks} weeks"


def attachment(
    data: bytes | bytearray | IO[bytes],
    *,
    filename: str | None = None,
    is_csv: bool | None = None,
    confirm_email_before_download: bool | None = None,
    retention_period: int | str | None = None,
) -> Attachment:
    """Wrap a file so that it can be sent as a personalisation value.

    ``data`` is bytes or a binary file object (read once). The file must be at most
    2 MiB; give either ``filename`` (with an extension, e.g. ``report.pdf``) or
    ``is_csv``, not both; ``retention_period`` is 1 to 78 weeks.
    """
    if isinstance(data, bytes | bytearray):
        content = bytes(data)
    elif isinstance(data, io.IOBase) or hasattr(data, "read"):
        read = data.read()
        if not isinstance(read, bytes):
            raise InvalidAttachmentError("The file must be opened in binary mode ('rb').")
        content = read
    else:
        raise InvalidAttachmentError(
            f"attachment() takes bytes or a binary file object, not {type(data).__name__}."
        )
    if len(content) > MAX_FILE_SIZE:
        raise InvalidAttachmentError(
            f"The file is {len(content)} bytes; Notify takes at most {MAX_FILE_SIZE} (2 MiB). "
            "Send a smaller file or a link to it."
        )
    if not content:
        raise InvalidAttachmentError("The file is empty; Notify cannot send an empty file.")
    if filename is not None and is_csv is not None:
        raise InvalidAttachmentError(
            "Give either filename or is_csv, not both (Notify refuses is_csv when filename is set)."
        )
    if filename is not None:
        if not isinstance(filename, str) or "." not in filename.strip(".") or not filename.strip():
            raise InvalidAttachmentError(
                "filename must end with a file extension, for example 'report.csv'."
            )
        from .validation import is_unicode  # here: validation imports this module

        if not is_unicode(filename):
            raise InvalidAttachmentError(
                "filename is not valid Unicode text (it holds a lone surrogate); decode the name "
                "properly before attaching the file."
            )
        if len(filename) > _MAX_FILENAME:
            raise InvalidAttachmentError(
                f"filename is {len(filename)} characters; Notify takes at most {_MAX_FILENAME}."
            )
    for name, flag in (
        ("is_csv", is_csv),
        ("confirm_email_before_download", confirm_email_before_download),
    ):
        if flag is not None and not isinstance(flag, bool):
            raise InvalidAttachmentError(f"{name} must be True, False or None.")
    return Attachment(
        data=content,
        filename=filename,
        is_csv=is_csv,
        confirm_email_before_download=confirm_email_before_download,
        retention_period=_retention(retention_period),
    )
