"""A server that trickles its answer cannot hold a request past its timeout.

``DM_NOTIFY_TIMEOUT`` and ``DM_MAILCHIMP_TIMEOUT`` are total deadlines per request (connect,
send, status line, headers and body, redirects included), not per socket read. The servers
here are real HTTP (and HTTPS) servers on 127.0.0.1, driven through ``Mailer.send`` and
``Audiences.ping`` with the official clients. They count what they managed to send before
the client hung up, so the tests assert on bytes and requests, never on the clock.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_dmmail import Mailer
from flask_dmmail.errors import MailchimpUnavailableError, NotifyUnavailableError
from flask_dmmail.mailchimp import Audiences
from tests.conftest import WELCOME_ID
from tests.secrets_scan import register_secret

ADDRESS = "trickle.recipient@example.gov.uk"
PERSONAL = {"name": "Trickle Person", "framework": "G-Cloud 99"}
#: How many bytes a trickling server would send, one every INTERVAL seconds (40 s in all).
TRICKLE = 800
INTERVAL = 0.05
#: The clients' deadline: long enough to connect and send the request, which the tests
#: check arrived, and short, since each test waits for it (a send twice, and once more
#: before its look-up).
DEADLINE = 0.5
#: What a client with a 0.5 s deadline may let through: about 10 bytes, plus the ones the
#: server writes before it notices the hang-up; far below TRICKLE. (A hang-up even 4 s
#: late stays below it.)
FEW = 100
#: The pace of a redirect's header: a hop takes 0.8 s, within the 1 s deadline of that test.
HOP_INTERVAL = 0.2
#: Generous: how long to wait for a server to notice that its client hung up.
SETTLE = 60.0


@dataclass
class Exchange:
    """One connection the server accepted: its request lines and what it trickled."""

    requests: list[str] = field(default_factory=list)
    trickled: int = 0
    done: threading.Event = field(default_factory=threading.Event)


class Handler(socketserver.StreamRequestHandler):
    server: TestServer

    def handle(self) -> None:
        exchange = Exchange()
        with self.server.lock:
            self.server.exchanges.append(exchange)
        try:
            while not self.server.stopping.is_set():
                request = read_request(self.rfile)
                if request is None:
                    return
                exchange.requests.append(request[0])
                if not self.server.answer(self, exchange, request[0], request[1]):
                    return
        except OSError:  # the client hung up
            return
        finally:
            exchange.done.set()

    def write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def trickle(self, exchange: Exchange, data: bytes, interval: float = INTERVAL) -> None:
        """Send ``data`` one byte every ``interval`` seconds, counting what went out."""
        for i in range(len(data)):
            if self.server.stopping.wait(interval):
                raise OSError("the server is stopping")
            self.write(data[i : i + 1])
            exchange.trickled += 1


#: (handler, exchange, request line, body) -> keep the connection open for another request
Answer = Callable[[Handler, Exchange, str, bytes], bool]


class TestServer(socketserver.ThreadingTCPServer):
    __test__ = False  # not a pytest class
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answer: Answer, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.answer = answer
        self.tls = tls
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.exchanges: list[Exchange] = []
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:  # the handshake happens on the first read, in the handler
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up mid-handshake is expected here

    def finished(self) -> list[Exchange]:
        """Every exchange, once its handler has finished (the client hung up)."""
        with self.lock:
            exchanges = list(self.exchanges)
        for exchange in exchanges:
            assert exchange.done.wait(SETTLE), "the server never saw the client hang up"
        return exchanges

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self._thread.join()


def read_request(rfile: io.BufferedIOBase) -> tuple[str, bytes] | None:
    """(request line, body) of the next request, or None when the client closed."""
    line = rfile.readline(65537)
    if not line:
        return None
    length = 0
    while True:
        header = rfile.readline(65537)
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return line.decode("latin-1").strip(), rfile.read(length) if length else b""


def trickled_body(handler: Handler, exchange: Exchange, line: str, body: bytes) -> bool:
    """Status line and headers at once, then a TRICKLE-byte body one byte at a time."""
    handler.write(
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {TRICKLE}\r\n\r\n".encode()
    )
    handler.trickle(exchange, b" " * (TRICKLE - 2) + b"{}")
    return False


def trickled_headers(handler: Handler, exchange: Exchange, line: str, body: bytes) -> bool:
    """The status line, then a TRICKLE-byte header one byte at a time (as a proxy would
    answer CONNECT, when asked to)."""
    status = "200 Connection established" if line.startswith("CONNECT ") else "201 Created"
    handler.write(f"HTTP/1.1 {status}\r\n".encode())
    handler.trickle(exchange, b"X-Slow: " + b"a" * (TRICKLE - 10) + b"\r\n")
    handler.write(b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    return False


def slow_redirect(handler: Handler, exchange: Exchange, line: str, body: bytes) -> bool:
    """A redirect back to the same path, its headers taking 4 x HOP_INTERVAL (within a
    1 s deadline, so only a deadline across redirects stops the loop)."""
    path = line.split()[1]
    handler.write(f"HTTP/1.1 302 Found\r\nLocation: {path}\r\n".encode())
    handler.trickle(exchange, b"X: 1", HOP_INTERVAL)
    handler.write(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    return False


def json_answer(status: str, data: object, interval: float | None = None) -> Answer:
    """Answer every request with ``data`` as JSON, on a keep-alive connection; with
    ``interval``, trickle the body at that pace."""

    def answer(handler: Handler, exchange: Exchange, line: str, body: bytes) -> bool:
        payload = json.dumps(data).encode()
        handler.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
        )
        if interval is None:
            handler.write(payload)
        else:
            handler.trickle(exchange, payload, interval)
        return True

    return answer


def notify_created(handler: Handler, exchange: Exchange, line: str, body: bytes) -> bool:
    """Notify's 201 for POST /v2/notifications/email, on a keep-alive connection."""
    sent = json.loads(body)
    notification_id = str(uuid.uuid4())
    data = {
        "id": notification_id,
        "reference": sent.get("reference"),
        "content": {"subject": "Welcome", "body": "Hello", "from_email": "dm@example.gov.uk"},
        "template": {"id": sent["template_id"], "version": 1, "uri": "/template"},
        "uri": f"/v2/notifications/{notification_id}",
        "scheduled_for": None,
    }
    return json_answer("201 Created", data)(handler, exchange, line, body)


@pytest.fixture
def serve() -> Iterator[Callable[..., TestServer]]:
    servers: list[TestServer] = []

    def start(answer: Answer, tls: ssl.SSLContext | None = None) -> TestServer:
        server = TestServer(answer, tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return cert, key


@pytest.fixture(params=["http", "https"])
def tls(
    request: pytest.FixtureRequest,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> ssl.SSLContext | None:
    """None for plain HTTP; for HTTPS, the server's TLS context, with the clients trusting
    its certificate (through requests' REQUESTS_CA_BUNDLE)."""
    if request.param == "http":
        return None
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    return context


def notify_mailer(make_app: Callable[..., Flask], url: str, **config: object) -> Mailer:
    settings: dict[str, object] = {
        "DM_NOTIFY_BASE_URL": url,
        "DM_NOTIFY_TIMEOUT": DEADLINE,
        "DM_NOTIFY_RETRIES": 0,
    }
    settings.update(config)
    mailer = make_app(**settings).extensions["dmmail"]
    assert isinstance(mailer, Mailer)
    return mailer


def mailchimp(make_mc_app: Callable[..., Flask], url: str, **config: object) -> Audiences:
    settings: dict[str, object] = {
        "DM_MAILCHIMP_BASE_URL": f"{url}/3.0",
        "DM_MAILCHIMP_TIMEOUT": DEADLINE,
        "DM_MAILCHIMP_RETRIES": 0,
    }
    settings.update(config)
    audiences = make_mc_app(**settings).extensions["dmmail"].mailchimp
    assert isinstance(audiences, Audiences)
    return audiences


@pytest.mark.parametrize("answer", [trickled_body, trickled_headers])
def test_a_trickling_server_cannot_hold_a_send_past_its_timeout(
    make_app: Callable[..., Flask],
    serve: Callable[..., TestServer],
    tls: ssl.SSLContext | None,
    answer: Answer,
) -> None:
    register_secret(ADDRESS, *PERSONAL.values(), kind="test value")
    server = serve(answer, tls)
    mailer = notify_mailer(make_app, server.url)

    with pytest.raises(NotifyUnavailableError) as caught:
        mailer.send(ADDRESS, "welcome", PERSONAL)

    # The request was sent, so Notify may have stored it: an ambiguous timeout, after which
    # the reference was looked up (and that look-up met the same trickle).
    assert caught.value.timed_out
    exchanges = server.finished()
    assert [e.requests[0].split()[0] for e in exchanges] == ["POST", "GET"]
    assert all(e.trickled < FEW for e in exchanges), [e.trickled for e in exchanges]


@pytest.mark.parametrize("answer", [trickled_body, trickled_headers])
def test_a_trickling_server_cannot_hold_a_mailchimp_call_past_its_timeout(
    make_mc_app: Callable[..., Flask],
    serve: Callable[..., TestServer],
    tls: ssl.SSLContext | None,
    answer: Answer,
) -> None:
    server = serve(answer, tls)
    audiences = mailchimp(make_mc_app, server.url)

    with pytest.raises(MailchimpUnavailableError, match="did not answer in time"):
        audiences.ping()

    (exchange,) = server.finished()
    assert exchange.requests == ["GET /3.0/ping HTTP/1.1"]
    assert exchange.trickled < FEW


def test_the_deadline_covers_every_redirect_of_a_request(
    make_mc_app: Callable[..., Flask], serve: Callable[..., TestServer]
) -> None:
    # Each hop answers within the 1 s deadline; requests would follow 30 of them.
    server = serve(slow_redirect)
    audiences = mailchimp(make_mc_app, server.url, DM_MAILCHIMP_TIMEOUT=1)

    with pytest.raises(MailchimpUnavailableError, match="did not answer in time"):
        audiences.ping()

    hops = sum(len(e.requests) for e in server.finished())
    assert 1 <= hops < 5


def test_sends_within_the_deadline_reuse_one_keep_alive_connection(
    make_app: Callable[..., Flask], serve: Callable[..., TestServer], tls: ssl.SSLContext | None
) -> None:
    server = serve(notify_created, tls)
    mailer = notify_mailer(make_app, server.url, DM_NOTIFY_TIMEOUT=30)

    sent = [
        mailer.send(f"person{n}@example.gov.uk", "welcome", PERSONAL, reference=f"keep-alive-{n}")
        for n in range(3)
    ]

    assert [s.reference for s in sent if s is not None] == [f"keep-alive-{n}" for n in range(3)]
    assert all(s is not None and s.template_id == WELCOME_ID for s in sent)
    with server.lock:
        (exchange,) = server.exchanges
    assert [line.split()[:2] for line in exchange.requests] == [
        ["POST", "/v2/notifications/email"]
    ] * 3


def test_a_slow_answer_that_ends_in_time_is_read_whole(
    make_mc_app: Callable[..., Flask], serve: Callable[..., TestServer], tls: ssl.SSLContext | None
) -> None:
    # the body arrives a byte at a time, well within the deadline
    server = serve(json_answer("200 OK", {"health_status": "Everything's Chimpy!"}, 0.005), tls)
    audiences = mailchimp(make_mc_app, server.url, DM_MAILCHIMP_TIMEOUT=60)

    assert audiences.ping() is True
    assert server.exchanges[0].trickled == len(b'{"health_status": "Everything\'s Chimpy!"}')


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_trickling_proxy_cannot_hold_a_call_past_its_timeout(
    make_mc_app: Callable[..., Flask],
    serve: Callable[..., TestServer],
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
) -> None:
    # A bad proxy (from the environment, as requests reads it): for http:// it forwards the
    # request, for https:// it is asked to CONNECT a tunnel; either way it answers a byte at
    # a time. The Mailchimp host is never resolved: only the proxy is connected to.
    proxy = serve(trickled_headers)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, proxy.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    audiences = mailchimp(make_mc_app, f"{scheme}://mailchimp.invalid")

    with pytest.raises(MailchimpUnavailableError, match="did not answer in time"):
        audiences.ping()

    (exchange,) = proxy.finished()
    expected = {
        "http": "GET http://mailchimp.invalid/3.0/ping HTTP/1.1",
        "https": "CONNECT mailchimp.invalid:443 HTTP/1.0",
    }
    assert exchange.requests == [expected[scheme]]
    assert exchange.trickled < FEW
