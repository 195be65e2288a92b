"""What the queue keeps about each queued email: its state (:class:`QueuedStatus`), what
``send_later`` returns (:class:`QueuedEmail`), and the codec of the email itself.

The state holds no address and no personalisation value (the address as its keyed hash);
the email, kept apart from its state until it is sent, holds both.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..attachments import Attachment
from ..notify import PreparedEmail

__all__ = [
    "FAILED",
    "FINAL_STATES",
    "QUEUED",
    "RETRYING",
    "SENDING",
    "SENT",
    "SKIPPED",
    "QueuedEmail",
    "QueuedStatus",
    "decode_email",
    "encode_email",
]

#: Waiting for a worker.
QUEUED = "queued"
#: A worker is sending it (or was, and died: the next one looks it up in Notify first).
SENDING = "sending"
#: Its send failed transiently; it is queued again.
RETRYING = "retrying"
#: Notify has it (``notification_id``).
SENT = "sent"
#: Not sent because it had been already (``allow_resend=False``).
SKIPPED = "skipped"
#: Failed for good (``error_class``, ``error``); the email is kept for inspection.
FAILED = "failed"
#: The states a queued email ends in.
FINAL_STATES = frozenset({SENT, SKIPPED, FAILED})


@dataclass(frozen=True)
class QueuedEmail:
    """An email ``send_later`` checked and queued. ``to`` is the caller's recipient,
    ``sent_to`` the address it will be sent to (they differ when ``redirected``, as for
    :class:`~flask_dmmail.SentEmail`); both stay out of ``repr``.

    ``eager`` is true when it was sent at once, in this process (testing and sandbox mode
    without a broker); ``task_id`` is then made up, and the outcome is already known.
    """

    reference: str
    task_id: str
    template_id: str
    to: str = field(repr=False)
    sent_to: str = field(repr=False)
    redirected: bool
    redirected_by: str | None = None
    eager: bool = False


@dataclass(frozen=True)
class QueuedStatus:
    """Where one queued email is. No address (``to_hash`` is its keyed hash) and no
    personalisation value.

    ``state`` is one of ``queued``, ``sending``, ``retrying`` (waiting to be tried again),
    ``sent`` (``notification_id``), ``skipped`` (already sent, ``allow_resend=False``) or
    ``failed`` (failed for good: ``error_class`` and ``error`` say why, and the email is
    kept for inspection). ``attempts`` counts the workers' runs of it; times are ISO 8601 UTC.
    """

    task_id: str
    reference: str
    state: str
    template_id: str
    to_hash: str
    redirected: bool
    redirected_by: str | None
    queued_at: str
    updated_at: str
    attempts: int = 0
    failures: int = 0
    notification_id: str | None = None
    error_class: str | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        """True once it was sent, skipped or failed for good."""
        return self.state in FINAL_STATES

    @property
    def failed_for_good(self) -> bool:
        """True when it will not be tried again (``state`` is ``failed``)."""
        return self.state == FAILED

    def to_fields(self) -> dict[str, str]:
        """The status as flat strings (a Redis hash); None values are left out."""
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            out[key] = json.dumps(value) if isinstance(value, bool) else str(value)
        return out

    @classmethod
    def from_fields(cls, data: Mapping[str, str]) -> QueuedStatus:
        """The status from :meth:`to_fields`' strings."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        values["redirected"] = values.get("redirected") == "true"
        values.setdefault("redirected_by", None)
        for name in ("attempts", "failures"):
            values[name] = int(values.get(name) or 0)
        return cls(**values)


def _encode_value(value: Any) -> Any:
    if isinstance(value, Attachment):
        return {
            "__dmmail_file__": {
                "data": base64.b64encode(value.data).decode("ascii"),
                "filename": value.filename,
                "is_csv": value.is_csv,
                "confirm_email_before_download": value.confirm_email_before_download,
                "retention_period": value.retention_period,
            }
        }
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"__dmmail_file__"}:
        spec = dict(value["__dmmail_file__"])
        return Attachment(data=base64.b64decode(spec.pop("data")), **spec)
    return value


def encode_email(email: PreparedEmail, *, allow_resend: bool) -> str:
    """``email`` (checked, with its reference and redirect) as JSON, for a worker."""
    document = {f.name: getattr(email, f.name) for f in fields(email)}
    document["personalisation"] = {
        key: _encode_value(value) for key, value in email.personalisation.items()
    }
    document["sanitise_content_for"] = list(email.sanitise_content_for)
    return json.dumps({"v": 1, "email": document, "allow_resend": allow_resend})


def decode_email(text: str) -> tuple[PreparedEmail, bool]:
    """The email :func:`encode_email` wrote, and its ``allow_resend``."""
    document = json.loads(text)
    values = dict(document["email"])
    values["personalisation"] = {
        key: _decode_value(value) for key, value in values["personalisation"].items()
    }
    values["sanitise_content_for"] = tuple(values.get("sanitise_content_for") or ())
    return PreparedEmail(**values), bool(document.get("allow_resend", True))
