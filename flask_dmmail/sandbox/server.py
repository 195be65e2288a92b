"""Run the sandbox on a threaded werkzeug server with HTTP/1.1 keep-alive.

Werkzeug's own handler closes every connection after one response; the handler here
keeps connections open (the Notify client reuses one ``requests.Session``), drains any
unread request body and falls back to chunked encoding when a response has no length.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import IO, Any, cast

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wsgi import LimitedStream

from .app import create_app
from .guard import HOSTS_EXTENSION, LOCAL_ADDR_KEY, sandbox_host_names
from .models import SandboxKeys
from .state import SandboxState

__all__ = ["Sandbox", "SandboxKeys", "SandboxRequestHandler"]


class SandboxRequestHandler(WSGIRequestHandler):
    """A WSGI request handler that keeps HTTP/1.1 connections alive and logs nothing.

    Request lines can hold references and ids, so they are not logged.
    """

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        connections = getattr(self.server, "dmmail_connections", None)
        if connections is not None:
            with self.server.dmmail_lock:  # type: ignore[attr-defined]
                connections.add(self.connection)

    def finish(self) -> None:
        connections = getattr(self.server, "dmmail_connections", None)
        if connections is not None:
            with self.server.dmmail_lock:  # type: ignore[attr-defined]
                connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def run_wsgi(self) -> None:
        """Run the app for one request and write its response, keeping the connection."""
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        with contextlib.suppress(OSError, IndexError, TypeError):
            environ[LOCAL_ADDR_KEY] = str(self.connection.getsockname()[0])
        body_stream: LimitedStream | None = None
        chunked_request = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if not chunked_request:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
                self.close_connection = True
            body_stream = LimitedStream(cast(IO[bytes], self.rfile), max(length, 0))
            environ["wsgi.input"] = body_stream
        else:
            self.close_connection = True

        response: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            response["status"] = status
            response["headers"] = headers
            return lambda data: response.setdefault("early", []).append(data)

        try:
            app_iter: Iterable[bytes] = self.server.app(environ, start_response)
            try:
                chunks = list(response.get("early", []))
                chunks.extend(app_iter)
            finally:
                close = getattr(app_iter, "close", None)
                if close is not None:
                    close()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        except Exception:
            self.close_connection = True
            response = {
                "status": "500 INTERNAL SERVER ERROR",
                "headers": [("Content-Type", "text/plain")],
            }
            chunks = [b"Internal server error"]
        if body_stream is not None:
            try:
                body_stream.exhaust()
            except Exception:
                self.close_connection = True
        self._write(response["status"], response["headers"], chunks, environ)

    def _write(
        self,
        status: str,
        headers: list[tuple[str, str]],
        chunks: list[bytes],
        environ: dict[str, Any],
    ) -> None:
        code_text, _, reason = status.partition(" ")
        code = int(code_text)
        body = b"".join(chunks)
        lines = [f"{self.protocol_version} {code} {reason}\r\n"]
        has_length = False
        for key, value in headers:
            lowered = key.lower()
            if lowered in ("connection", "transfer-encoding", "keep-alive"):
                continue
            if lowered == "content-length":
                has_length = True
                value = str(len(body)) if environ["REQUEST_METHOD"] != "HEAD" else value
            lines.append(f"{key}: {value}\r\n")
        if "date" not in {k.lower() for k, _ in headers}:
            lines.append(f"Date: {self.date_time_string()}\r\n")
        if not has_length and not (100 <= code < 200 or code in (204, 304)):
            lines.append(f"Content-Length: {len(body)}\r\n")
        if self.close_connection:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        out = "".join(lines).encode("latin-1")
        if environ["REQUEST_METHOD"] != "HEAD":
            out += body
        self.wfile.write(out)
        self.wfile.flush()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Request lines are not logged (they may carry references)."""

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing from http.server is logged either."""


class Sandbox:
    """A running sandbox: a threaded werkzeug server in a background daemon thread.

    ``Sandbox.start(port=0)`` picks a free port. Several can run in one process. Use it
    as a context manager, or call :meth:`stop`.

    Its control endpoints and outbox pages answer only to loopback host names; bound to
    another interface on purpose (``host="0.0.0.0"``), also to what it was bound to, the
    machine's name and the address a request arrived on; ``allowed_hosts`` adds names.
    """

    def __init__(self, app: Flask, server: BaseWSGIServer) -> None:
        self.app = app
        self.state: SandboxState = app.extensions["dmmail_sandbox"]
        self.keys: SandboxKeys = self.state.keys
        self._server = server
        address = server.server_address[0]
        host = address if isinstance(address, str) else bytes(address).decode()
        if ":" in host:
            host = f"[{host}]"
        self.host: str = host
        self.port: int = server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"dmmail-sandbox-{self.port}",
            daemon=True,
        )

    @property
    def mailchimp_key(self) -> str:
        """The key of the sandbox's Mailchimp account (its API is under ``url + "/3.0"``)."""
        return self.state.mailchimp.api_key

    @classmethod
    def start(
        cls,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: Any = None,
        state: SandboxState | None = None,
        allowed_hosts: Sequence[str] = (),
        **state_options: Any,
    ) -> Sandbox:
        """Build the app, bind, serve in a daemon thread; return once it accepts connections.

        ``allowed_hosts``: more host names the control endpoints and outbox pages answer to
        (say the name CI or a container network gives the sandbox).
        """
        if state is None:
            state = SandboxState(seed, **state_options)
        else:
            if state_options:
                raise TypeError("pass either a state or state options, not both")
            if seed is not None:
                state.seed(seed)
        return cls.serve(create_app(state), host=host, port=port, allowed_hosts=allowed_hosts)

    @classmethod
    def serve(
        cls,
        app: Flask,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        allowed_hosts: Sequence[str] = (),
    ) -> Sandbox:
        """Serve an app made by :func:`create_app` (perhaps with more blueprints on it)."""
        if "dmmail_sandbox" not in app.extensions:
            raise ValueError("the app must come from flask_dmmail.sandbox.create_app")
        if isinstance(allowed_hosts, str):
            allowed_hosts = [allowed_hosts]  # one name, not its letters
        app.extensions[HOSTS_EXTENSION] = sandbox_host_names(host, allowed_hosts)
        server = make_server(host, port, app, threaded=True, request_handler=SandboxRequestHandler)
        server.dmmail_connections = set()  # type: ignore[attr-defined]
        server.dmmail_lock = threading.Lock()  # type: ignore[attr-defined]
        sandbox = cls(app, server)
        sandbox._thread.start()
        return sandbox

    @property
    def serving(self) -> bool:
        """True while this process serves the sandbox: False after :meth:`stop`, and in a
        process forked from the one that started it (pytest-flask's ``live_server``, a
        pre-forking server), which reaches it at its ``url``."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop serving, close open connections and stop the state's ticker."""
        self._server.shutdown()
        self._server.server_close()
        lock: threading.Lock = self._server.dmmail_lock  # type: ignore[attr-defined]
        with lock:
            connections = list(self._server.dmmail_connections)  # type: ignore[attr-defined]
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.state.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Sandbox {self.url}>"
