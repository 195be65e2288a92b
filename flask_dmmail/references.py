"""References, address hashes and the in-process record of what was sent.

The derived reference is::

    "dmmail-" + base64url(HMAC-SHA256(hash_key, canonical))[:43]

    canonical = JSON of {"personalisation": P, "template_id": T, "to": A, "v": 1}
                with sorted keys, no spaces, UTF-8 (ensure_ascii off)

where ``A`` is the address trimmed and lower-cased, ``T`` the template id lower-cased and
``P`` the personalisation with each file replaced by ``{"file_sha256": ..., ...options}``.
JSON keeps types and structure apart, so two different emails never share a canonical
form, and the same email always gets the same reference under the same key.

Address hashes in logs and signals are ``HMAC-SHA256(hash_key, "to:" + A)`` in hex, cut to
24 characters: stable for one deployment, useless to anyone without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .attachments import Attachment
from .validation import canonical_address

__all__ = ["AddressHasher", "SentReferences", "canonical_json", "normalise_address"]


def normalise_address(address: str) -> str:
    """The form of an address that references and hashes are built from: the address as
    Notify delivers it (:func:`~flask_dmmail.validation.canonical_address`), so two spellings
    of one mailbox (case, zero-width characters, an IDNA form of the domain) are one address."""
    return canonical_address(address)


def _canonical_value(value: Any) -> Any:
    if isinstance(value, Attachment):
        return {
            "file_sha256": value.sha256,
            "filename": value.filename,
            "is_csv": value.is_csv,
            "confirm_email_before_download": value.confirm_email_before_download,
            "retention_period": value.retention_period,
        }
    if isinstance(value, list | tuple):
        return [_canonical_value(item) for item in value]
    return value


def canonical_json(address: str, template_id: str, personalisation: Mapping[str, Any]) -> bytes:
    """The canonical form of one email that its reference is derived from."""
    document = {
        "v": 1,
        "to": normalise_address(address),
        "template_id": template_id.lower(),
        "personalisation": {k: _canonical_value(v) for k, v in personalisation.items()},
    }
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


class AddressHasher:
    """Keyed hashes of addresses, and references derived from whole emails."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "AddressHasher(key=<hidden>)"

    def hash_address(self, address: str) -> str:
        """A 24-character keyed hash of ``address``, safe for logs."""
        # surrogatepass: text that is not valid Unicode (it is refused before sending) still
        # gets a hash, so a bad row or receipt can be logged and reported by its hash.
        message = b"to:" + normalise_address(address).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:24]

    def reference(self, address: str, template_id: str, personalisation: Mapping[str, Any]) -> str:
        """The reference of one email: the same email always gets the same one."""
        digest = hmac.new(
            self._key, canonical_json(address, template_id, personalisation), hashlib.sha256
        ).digest()
        return "dmmail-" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class SentReferences:
    """References this process has sent, and a lock per reference being sent.

    ``claim(reference)`` serialises sends of the same reference across threads, so two
    threads never both decide that an email is unsent. The remembered set is bounded
    (oldest forgotten first); Notify itself stays the source of truth.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._claims: dict[str, tuple[threading.Lock, int]] = {}

    def __contains__(self, reference: object) -> bool:
        with self._lock:
            return reference in self._sent

    def add(self, reference: str) -> None:
        """Remember that ``reference`` was sent."""
        with self._lock:
            self._sent[reference] = None
            self._sent.move_to_end(reference)
            while len(self._sent) > self._limit:
                self._sent.popitem(last=False)

    @contextmanager
    def claim(self, reference: str) -> Iterator[None]:
        """Hold the reference's lock for the duration of one send decision."""
        with self._lock:
            lock, users = self._claims.get(reference, (threading.Lock(), 0))
            self._claims[reference] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._claims[reference]
                if users <= 1:
                    del self._claims[reference]
                else:
                    self._claims[reference] = (lock, users - 1)
