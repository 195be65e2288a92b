"""A total deadline for each HTTP request to Notify and Mailchimp.

``requests`` applies its ``timeout`` to each socket operation, so a server (or a bad proxy)
that trickles a byte now and then can hold a request, and the web worker that made it, for
as long as it likes. Through a :class:`DeadlineSession` the whole exchange (connect, TLS
handshake, sending the request, the status line, the headers and the body, every redirect
included) ends within the request's timeout, or raises a ``requests`` timeout:

* ``requests.ConnectTimeout`` when the deadline passed while connecting;
* ``requests.ReadTimeout`` otherwise: the request may have been sent and acted on, so the
  Notify path treats it as an ambiguous timeout (it waits, then looks the reference up).
  That includes a deadline passing in a proxy's CONNECT, erring on the safe side.

How: the session's adapter builds its urllib3 connections from the classes below. Before
every blocking socket operation (connect, each send of the request, each read of the
response, a proxy tunnel's included) they set the socket's timeout to the time left, capped
by the usual per-operation timeout, and give up when no time is left. There is no watchdog
thread, nothing is shared between threads (the deadline lives in a thread-local, and each
thread has its own client and session), and keep-alive connections work as before. Name
resolution (``getaddrinfo``) cannot be interrupted and is not covered, nor are SOCKS proxies.
A ``(connect, read)`` tuple gives a deadline of their sum.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError

__all__ = [
    "DeadlineAdapter",
    "DeadlineSession",
    "deadline",
    "mailchimp_request",
    "time_left",
    "total_seconds",
]

#: The least timeout put on a socket (0 would make it non-blocking).
_MIN_WAIT = 0.001
_EXPIRED = "the request's deadline passed"

_state = threading.local()


def time_left() -> float | None:
    """Seconds left before this thread's deadline (negative once it passed), or None."""
    until: float | None = getattr(_state, "until", None)
    return None if until is None else until - time.monotonic()


@contextmanager
def deadline(seconds: float | None) -> Iterator[float | None]:
    """Within the block, HTTP requests made through a :class:`DeadlineSession` in this
    thread end ``seconds`` from now at the latest (an enclosing deadline that ends earlier
    wins; None adds none). Yields the deadline in ``time.monotonic()`` terms, or None."""
    outer: float | None = getattr(_state, "until", None)
    until = outer
    if seconds is not None:
        mine = time.monotonic() + seconds
        until = mine if outer is None else min(outer, mine)
    _state.until = until
    try:
        yield until
    finally:
        _state.until = outer


def total_seconds(timeout: object) -> float | None:
    """The deadline a ``requests`` timeout gives: a number itself, a ``(connect, read)``
    tuple their sum, a urllib3 ``Timeout`` its ``total``; None when a part is None."""

    def number(value: object) -> float | None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return None

    if isinstance(timeout, tuple) and len(timeout) == 2:
        connect, read = (number(part) for part in timeout)
        return None if connect is None or read is None else connect + read
    if isinstance(timeout, Timeout):
        return number(timeout.total)
    return number(timeout)


def _capped(timeout: object, left: float) -> float:
    """A socket timeout: ``timeout`` (a number, or None for none) but at most ``left``."""
    wait = left if not isinstance(timeout, int | float) else min(float(timeout), left)
    return max(wait, _MIN_WAIT)


def _lower_timeout(sock: socket.socket, wait: float) -> None:
    """Make ``sock`` wait at most ``wait`` seconds (settimeout is a system call: skip it
    when the socket already waits no longer, as it does while the deadline is far)."""
    current = sock.gettimeout()
    if current is None or wait < current:
        sock.settimeout(wait)


class _DeadlineReader(io.RawIOBase):
    """The raw stream of one response's socket, read only until the deadline ``until``."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, until: float) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._until = until
        self._per_read = sock.gettimeout()  # urllib3 has set the read timeout

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: Any) -> int | None:
        left = self._until - time.monotonic()
        if left <= 0:
            raise TimeoutError(_EXPIRED)
        _lower_timeout(self._sock, _capped(self._per_read, left))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            finally:
                super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, reading its socket through a :class:`_DeadlineReader` when
    it is made under a deadline (the status line, headers and body, however they are read)."""

    def __init__(
        self,
        sock: socket.socket,
        debuglevel: int = 0,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(sock, debuglevel, method, url)
        until: float | None = getattr(_state, "until", None)
        if until is not None:
            # detach() hands over the socket's SocketIO without closing it, so the
            # socket's reference counting of its files works as before.
            self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, until))


class _DeadlineHTTPConnection(HTTPConnection):
    """A urllib3 connection whose connect and sends stay within this thread's deadline."""

    response_class = _DeadlineResponse

    def _new_conn(self) -> socket.socket:
        left = time_left()
        if left is None:
            return super()._new_conn()
        if left <= 0:
            raise ConnectTimeoutError(self, f"Connection to {self.host} not tried: {_EXPIRED}.")
        self.timeout = _capped(self.timeout, left)
        sock = super()._new_conn()
        # the TLS handshake and the request get only what is left
        sock.settimeout(_capped(self.timeout, time_left() or 0.0))
        return sock

    def send(self, data: Any) -> None:
        if self.sock is None and self.auto_open:
            self.connect()  # as http.client would, but first: the socket is needed below
        left = time_left()
        if left is not None and self.sock is not None:
            if left <= 0:
                raise TimeoutError(_EXPIRED)
            # sendall() gives up once the socket's timeout is over (plain and TLS alike)
            _lower_timeout(self.sock, _capped(self.timeout, left))
        super().send(data)


class _DeadlineHTTPSConnection(_DeadlineHTTPConnection, HTTPSConnection):
    """The https:// counterpart (the handshake happens on the socket ``_new_conn`` made)."""


class _DeadlineHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOL_CLASSES: Mapping[str, type[HTTPConnectionPool]] = {
    "http": _DeadlineHTTPConnectionPool,
    "https": _DeadlineHTTPSConnectionPool,
}


class DeadlineAdapter(HTTPAdapter):
    """A ``requests`` transport adapter that ends each request within its timeout (see the
    module). Mount it for ``http://`` and ``https://``; SOCKS proxies are not covered."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOL_CLASSES)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
        return manager

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        with deadline(total_seconds(timeout)) as until:
            try:
                response = super().send(request, stream, timeout, verify, cert, proxies)
                if until is not None and not stream:
                    response.content  # noqa: B018 (the body is read under the deadline)
            except requests.Timeout:
                raise
            except requests.RequestException as exc:
                if until is None or time.monotonic() < until:
                    raise
                # It failed because the deadline passed (the socket gave up, or the server
                # hung up on a request we cut short): a timeout, after the request may have
                # been sent.
                raise requests.ReadTimeout(
                    f"Read timed out: {_EXPIRED} ({type(exc).__name__}).", request=request
                ) from exc
        return response


class DeadlineSession(requests.Session):
    """A ``requests.Session`` whose every request ends within its ``timeout``: connect,
    send, status line, headers and body, and every redirect it follows, all together."""

    def __init__(self) -> None:
        super().__init__()
        self.mount("https://", DeadlineAdapter())
        self.mount("http://", DeadlineAdapter())

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        with deadline(total_seconds(kwargs.get("timeout"))):
            return super().send(request, **kwargs)


_MAILCHIMP_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
_MAILCHIMP_BODIES = frozenset({"POST", "PUT", "PATCH"})


def mailchimp_request(api_client: Any) -> Callable[..., requests.Response]:
    """A replacement for ``api_client.request`` (mailchimp-marketing's ``ApiClient``) that
    does what that method does, through a :class:`DeadlineSession`.

    The client calls module-level ``requests.get``/``post``/... (a new Session per call), so
    there is no session to mount an adapter on. This makes the same request the same way
    (auth, headers, the body as JSON, ``null`` when there is none, HEAD without redirects),
    with a new session per call as before (no cookies or connections kept between calls),
    reading the client's ``timeout`` at call time. The client wraps whatever it raises in
    ``ApiClientError`` and handles the response it returns, exactly as before.
    """

    def request(
        method: str,
        url: str,
        query_params: Iterable[tuple[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> requests.Response:
        headers = {} if headers is None else headers
        auth = ("user", api_client.api_key) if api_client.is_basic_auth else None
        if api_client.is_oauth:
            headers.update({"Authorization": "Bearer " + api_client.access_token})
        if method not in _MAILCHIMP_METHODS:
            raise ValueError(
                "http method must be `GET`, `HEAD`, `OPTIONS`, `POST`, `PATCH`, `PUT` or `DELETE`."
            )
        data = json.dumps(body) if method in _MAILCHIMP_BODIES else None
        with DeadlineSession() as session:
            return session.request(
                method,
                url,
                params=query_params,
                data=data,
                headers=headers,
                auth=auth,
                timeout=api_client.timeout,
                allow_redirects=method != "HEAD",
            )

    return request
