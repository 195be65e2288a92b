"""Send-a-file personalisation: Notify's checks and a fake document-download upload.

Notify passes the file's base64 to its document-download-api untouched; that service
decodes it as ``base64.b64decode`` does by default (characters outside the alphabet, such
as line breaks, are dropped; bad padding is "Document is not base64 encoded") and refuses
more than ``MAX_DECODED_FILE_SIZE = 2 MiB + 1024`` decoded bytes (413, which Notify turns
into 400 "Uploaded file exceeds file size limit"). The official client's
``prepare_upload`` refuses more than 2 MiB on its own side.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from typing import Any

from .validation import ApiError, bad_request, validate

__all__ = ["MAX_FILE_BYTES", "is_file_value", "upload"]

#: document-download-api's ``MAX_DECODED_FILE_SIZE``: 2 MiB and 1024 bytes.
MAX_FILE_BYTES = 2 * 1024 * 1024 + 1024
ADMIN_BASE_URL = "https://www.notifications.service.gov.uk"
DOCUMENTS_BASE_URL = "https://documents.service.gov.uk"
SUPPORTED_EXTENSIONS = (
    "csv",
    "doc",
    "docx",
    "jpeg",
    "jpg",
    "json",
    "odt",
    "pdf",
    "png",
    "rtf",
    "txt",
    "xlsx",
)
_EICAR = b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE"


def is_file_value(value: Any) -> bool:
    """True when a personalisation value asks Notify to send a file."""
    return isinstance(value, dict) and "file" in value


def _b64_id(value: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def _mimetype(content: bytes, filename: str | None, is_csv: bool | None) -> str:
    if filename and "." in filename:
        ext = filename.rsplit(".", 1)[1].lower()
        if ext in SUPPORTED_EXTENSIONS:
            return ext
        return f"application/{ext}" if ext else "application/octet-stream"
    if content.startswith(b"%PDF"):
        return "pdf"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if content.startswith(b"{\\rtf"):
        return "rtf"
    if content.startswith(b"PK\x03\x04"):
        return "docx"
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "csv" if is_csv else "txt"


def check_contact_link(contact_link: str | None, service_id: str) -> None:
    """Files need a contact link on the service."""
    if not contact_link:
        raise bad_request(
            "Send files by email has not been set up - add contact details for your service "
            f"at {ADMIN_BASE_URL}/services/{service_id}/service-settings/send-files-by-email"
        )


def upload(key: str, value: dict[str, Any], service_id: str) -> dict[str, Any]:
    """Check one file value and return its metadata with the fake download ``url``."""
    validate("file", value)
    filename = value.get("filename")
    is_csv = value.get("is_csv")
    if filename is not None and is_csv is not None:
        raise ApiError(
            400, "ValidationError", "Do not set a value for `is_csv` if `filename` is set."
        )
    try:
        content = base64.b64decode(value["file"])  # not strict, as document-download-api
    except (binascii.Error, ValueError):
        raise bad_request("Document is not base64 encoded") from None
    if len(content) > MAX_FILE_BYTES:
        raise bad_request("Uploaded file exceeds file size limit")
    if filename is not None and len(filename) > 100:
        raise bad_request("`filename` cannot be longer than 100 characters")
    kind = _mimetype(content, filename, is_csv)
    if kind not in SUPPORTED_EXTENSIONS:
        allowed = ", ".join(f"'.{ext}'" for ext in SUPPORTED_EXTENSIONS)
        raise bad_request(f"Unsupported file type '{kind}'. Supported types are: {allowed}")
    if _EICAR in content:
        raise bad_request("File did not pass the virus scan")
    confirm = value.get("confirm_email_before_download")
    retention = value.get("retention_period")
    doc_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    url = (
        f"{DOCUMENTS_BASE_URL}/d/{_b64_id(uuid.UUID(service_id))}/{_b64_id(uuid.uuid4())}"
        f"?key={doc_key}"
    )
    return {
        "key": key,
        "filename": filename,
        "url": url,
        "size_bytes": len(content),
        "confirm_email_before_download": True if confirm is None else confirm,
        "retention_period": retention.strip() if isinstance(retention, str) else "26 weeks",
        "is_csv": is_csv,
    }


def simulated_url(service_id: str) -> str:
    """The URL Notify puts in for smoke-test recipients (nothing is uploaded)."""
    return f"{DOCUMENTS_BASE_URL}/services/{service_id}/documents/test-document"
