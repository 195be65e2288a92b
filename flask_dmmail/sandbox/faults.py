"""Fault injection, generic by path prefix: what to inject (:class:`FaultConfig`) and how.

``FaultMiddleware`` asks the state, per request, whether the path is faulty (see
:meth:`SandboxState.roll_fault <flask_dmmail.sandbox.SandboxState.roll_fault>`): it
adds latency, answers 500 without processing, or processes the request (so it is stored)
and then drops the connection or stalls past the client's timeout. The 500 body depends on
the path: register one per API with :meth:`FaultMiddleware.add_error_body` (Notify's
envelope is the default).
"""

from __future__ import annotations

import dataclasses
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .next_faults import NextFaults
from .notify_api import notify_json

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .state import SandboxState

__all__ = ["FaultConfig", "FaultMiddleware", "notify_error_body"]


@dataclass(frozen=True)
class FaultConfig:
    """What the fault layer does to requests whose path starts with one of ``paths``.

    Each request gets at most one fault: ``error_rate`` of them are answered 500 without
    being processed, ``drop_rate`` are processed (and stored) and then the connection is
    dropped, ``stall_rate`` are processed and then held for ``stall_seconds`` before the
    answer. ``latency`` seconds are added to every matching request.
    """

    latency: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    stall_rate: float = 0.0
    stall_seconds: float = 35.0
    paths: tuple[str, ...] = ("/v2/",)

    @property
    def active(self) -> bool:
        """True when any fault is configured."""
        return bool(self.latency or self.error_rate or self.drop_rate or self.stall_rate)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["paths"] = list(self.paths)
        return out


ErrorBody = Callable[[], tuple[str, bytes]]


def notify_error_body() -> tuple[str, bytes]:
    """Notify's 500 envelope, written as its ``jsonify`` writes it (keys sorted, compact,
    a trailing newline)."""
    body = {
        "status_code": 500,
        "errors": [{"error": "InternalServerError", "message": "Internal server error"}],
    }
    return "application/json", notify_json(body).encode()


class FaultMiddleware:
    """Wrap a WSGI app; inject the faults configured on ``state`` for matching paths."""

    def __init__(self, app: WSGIApplication, state: SandboxState) -> None:
        self.app = app
        self.state = state
        #: The next-N faults (:mod:`flask_dmmail.sandbox.next_faults`), checked first.
        self.next = NextFaults()
        self._error_bodies: list[tuple[str, ErrorBody]] = [("/", notify_error_body)]

    def add_error_body(self, prefix: str, factory: ErrorBody) -> None:
        """Use ``factory() -> (content_type, body)`` for injected 500s under ``prefix``."""
        self._error_bodies.append((prefix, factory))
        self._error_bodies.sort(key=lambda item: len(item[0]), reverse=True)

    def _error_body(self, path: str) -> tuple[str, bytes]:
        for prefix, factory in self._error_bodies:
            if path.startswith(prefix):
                return factory()
        return notify_error_body()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sandbox"):
            return self.app(environ, start_response)
        queued = self.next.take(str(environ.get("REQUEST_METHOD", "GET")), path)
        if queued is not None:
            return self.next.answer(queued, path, self._error_body, start_response)
        config, fault, release = self.state.roll_fault(path)
        if not config.active or not path.startswith(config.paths):
            return self.app(environ, start_response)
        if config.latency:
            time.sleep(config.latency)
        if fault is None:
            return self.app(environ, start_response)
        if fault == "error":
            content_type, body = self._error_body(path)
            start_response(
                "500 INTERNAL SERVER ERROR",
                [("Content-Type", content_type), ("Content-Length", str(len(body)))],
            )
            return [body]
        # Process the request fully (the notification is stored), then misbehave.
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = status
            captured["headers"] = headers
            return lambda data: captured.setdefault("early", []).append(data)

        app_iter = self.app(environ, capture)
        try:
            chunks = [*captured.get("early", []), *app_iter]
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        if fault == "drop":
            self._drop(environ)
        else:
            release.wait(config.stall_seconds)
        start_response(captured["status"], captured["headers"])
        return chunks

    @staticmethod
    def _drop(environ: WSGIEnvironment) -> None:
        """Reset the client's connection and end the request without an answer."""
        sock = environ.get("werkzeug.socket")
        if isinstance(sock, socket.socket):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise ConnectionResetError("sandbox fault: connection dropped")
