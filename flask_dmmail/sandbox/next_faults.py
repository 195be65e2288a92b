"""Next-N faults: the next N matching requests fail one way, whatever the dice of the fault
rates say (see :mod:`flask_dmmail.sandbox.faults`).

A request answered 500 (``"error"``) or 429 (``"rate_limit"``) is not processed: nothing is
stored. A ``"timeout"`` is held unprocessed until the client gives up, then answered 504. By
default the faults match the sends (``POST /v2/notifications/...``), so an app's failure
paths can be tested exactly: "the next send fails with a 500, the one after goes through".

The queue is ``FaultMiddleware.next`` (the app's ``extensions["dmmail_sandbox_faults"]``),
and over HTTP ``/_sandbox/faults/next`` (see ``flask_dmmail.sandbox.control``).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse

__all__ = ["NEXT_FAULT_KINDS", "SEND_PATHS", "NextFault", "NextFaults", "rate_limit_body"]

#: The ways :class:`NextFaults` can make a request fail: ``"error"`` (500), ``"rate_limit"``
#: (429) and ``"timeout"`` (held unanswered until the client gives up).
NEXT_FAULT_KINDS = ("error", "rate_limit", "timeout")
#: What :class:`NextFaults` matches by default: every send of Notify's API.
SEND_PATHS = ("/v2/notifications/",)


@dataclass
class NextFault:
    """One queued fault: ``kind`` for the next ``remaining`` requests matching ``paths``
    (prefixes) and ``methods``; a timeout holds each for ``hold_seconds``."""

    kind: str
    remaining: int
    paths: tuple[str, ...]
    methods: tuple[str, ...]
    hold_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``count``: the requests still to fail)."""
        return {
            "kind": self.kind,
            "count": self.remaining,
            "paths": list(self.paths),
            "methods": list(self.methods),
            "hold_seconds": self.hold_seconds,
        }


class NextFaults:
    """The next-N faults of one sandbox: queued with :meth:`add`; each request takes the first
    entry it matches (entries are used in the order they were added)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[NextFault] = []
        self._release = threading.Event()

    def add(
        self,
        kind: str,
        count: int = 1,
        *,
        paths: Sequence[str] = SEND_PATHS,
        methods: Sequence[str] = ("POST",),
        hold_seconds: float = 60.0,
    ) -> None:
        """Make the next ``count`` requests to ``paths`` by ``methods`` fail.

        :param kind: one of :data:`NEXT_FAULT_KINDS`.
        :param count: how many requests (at least 1).
        :param paths: path prefixes (default the sends of Notify's API).
        :param methods: HTTP methods (default POST).
        :param hold_seconds: how long a ``"timeout"`` holds a request before answering 504:
            longer than the client's timeout (the app's ``DM_NOTIFY_TIMEOUT``).
        """
        if kind not in NEXT_FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(NEXT_FAULT_KINDS)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a whole number of at least 1")
        if (
            isinstance(paths, str)
            or not paths
            or not all(isinstance(p, str) and p.startswith("/") for p in paths)
        ):
            raise ValueError("paths must be a list of path prefixes starting with /")
        if (
            isinstance(methods, str)
            or not methods
            or not all(isinstance(m, str) and m for m in methods)
        ):
            raise ValueError("methods must be a list of HTTP methods")
        if isinstance(hold_seconds, bool) or not isinstance(hold_seconds, int | float):
            raise ValueError("hold_seconds must be a number of seconds")
        if not 0 <= hold_seconds <= 3600:
            raise ValueError("hold_seconds must be between 0 and 3600")
        entry = NextFault(
            kind, count, tuple(paths), tuple(m.upper() for m in methods), float(hold_seconds)
        )
        with self._lock:
            self._queue.append(entry)

    def take(self, method: str, path: str) -> NextFault | None:
        """The fault for a request (counted against its entry), or None."""
        with self._lock:
            for entry in self._queue:
                if method.upper() in entry.methods and path.startswith(entry.paths):
                    entry.remaining -= 1
                    if entry.remaining <= 0:
                        self._queue.remove(entry)
                    return entry
        return None

    def pending(self) -> list[dict[str, Any]]:
        """The faults still queued, as dicts (``count``: the requests still to fail)."""
        with self._lock:
            return [entry.to_dict() for entry in self._queue]

    def clear(self) -> None:
        """Forget every queued fault, and answer the requests held now at once."""
        with self._lock:
            self._queue.clear()
            self._release.set()
            self._release = threading.Event()

    def answer(
        self,
        fault: NextFault,
        path: str,
        error_body: Callable[[str], tuple[str, bytes]],
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """Answer a request that took ``fault``, without processing it.

        :param fault: what :meth:`take` returned.
        :param path: the request's path (which API's body to answer with).
        :param error_body: ``error_body(path) -> (content_type, body)`` for a 500.
        :param start_response: the WSGI ``start_response``.
        """
        if fault.kind == "timeout":
            with self._lock:
                release = self._release
            release.wait(fault.hold_seconds)  # the client has given up by then
            status, (content_type, body) = "504 GATEWAY TIMEOUT", error_body(path)
        elif fault.kind == "rate_limit":
            status, (content_type, body) = "429 TOO MANY REQUESTS", rate_limit_body(path)
        else:
            status, (content_type, body) = "500 INTERNAL SERVER ERROR", error_body(path)
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]


def rate_limit_body(path: str) -> tuple[str, bytes]:
    """Notify's 429 answer (Mailchimp's under ``/3.0/``) as ``(content_type, body)``."""
    if path.startswith("/3.0/"):
        problem = {
            "type": "https://mailchimp.com/developer/marketing/docs/errors/",
            "title": "Too Many Requests",
            "status": 429,
            "detail": "You have exceeded the limit of 10 simultaneous connections.",
            "instance": str(uuid.uuid4()),
        }
        return "application/problem+json; charset=utf-8", json.dumps(problem).encode()
    body = {
        "status_code": 429,
        "errors": [
            {
                "error": "RateLimitError",
                "message": "Exceeded rate limit for key type TEST of 3000 requests per 60 seconds",
            }
        ],
    }
    return "application/json", json.dumps(body).encode()
