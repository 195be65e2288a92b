"""What both webhook endpoints share: the one constant-time comparison of a request's secret
(Notify's bearer token, the token in Mailchimp's webhook URL) with the configured one, and the
reader that refuses a body over a size limit before reading it all."""

from __future__ import annotations

import hashlib
import hmac

from flask import request

__all__ = ["read_body", "same_secret"]


def same_secret(given: str, expected: str) -> bool:
    """True when ``given`` is ``expected``: the one secret comparison of both webhooks, in
    constant time, of SHA-256 digests, so neither where the two first differ nor their
    lengths show in the time it takes.

    :param given: the secret the request came with.
    :param expected: the configured secret.
    """

    def digest(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    return hmac.compare_digest(digest(given), digest(expected))


def read_body(limit: int) -> bytes | None:
    """The current request's body, or ``None`` (having read no more than ``limit + 1`` bytes)
    when it is longer than ``limit`` bytes, whether or not it came with a Content-Length.

    :param limit: the largest body accepted, in bytes.
    """
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = request.stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return None if size > limit else b"".join(chunks)
