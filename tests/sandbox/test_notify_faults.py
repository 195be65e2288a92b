"""Fault injection (500s, dropped connections, stalls, latency) and the keep-alive server."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest
import requests
from flask import Blueprint, Flask
from notifications_python_client.errors import HTTP503Error
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail.sandbox import Sandbox, create_app
from flask_dmmail.sandbox.faults import FaultMiddleware
from tests.sandbox.notify_helpers import PLAIN_ID, raises_http, v2_errors


def _send(client: NotificationsAPIClient) -> str:
    return str(client.send_email_notification("a@example.com", PLAIN_ID)["id"])


def test_error_rate_answers_notifys_500_without_processing(
    sbx: Sandbox, notify_client: NotificationsAPIClient
) -> None:
    sbx.state.set_faults(error_rate=1.0)
    error = raises_http(lambda: _send(notify_client))
    assert (error.status_code, error.message) == (
        500,
        v2_errors("InternalServerError", "Internal server error"),
    )
    assert sbx.state.outbox() == []


def test_drop_stores_then_resets_the_connection(
    sbx: Sandbox, notify_client: NotificationsAPIClient
) -> None:
    sbx.state.set_faults(drop_rate=1.0)
    error = raises_http(lambda: _send(notify_client))
    assert isinstance(error, HTTP503Error)
    assert (error.status_code, error.message) == (503, "Request failed")
    assert len(sbx.state.outbox()) == 1
    sbx.state.clear_faults()
    _send(notify_client)  # the same client (session) recovers
    assert len(sbx.state.outbox()) == 2


def test_stall_stores_then_outlasts_the_client_timeout(
    sbx: Sandbox, make_notify_client: Callable[..., NotificationsAPIClient]
) -> None:
    sbx.state.set_faults(stall_rate=1.0, stall_seconds=60)
    client = make_notify_client(timeout=0.3)
    error = raises_http(lambda: _send(client))
    assert isinstance(error, HTTP503Error)
    assert error.message == "Request failed"
    assert len(sbx.state.outbox()) == 1
    sbx.state.clear_faults()  # releases the stalled request at once
    _send(client)
    assert len(sbx.state.outbox()) == 2


def test_fractions_split_requests(sbx: Sandbox, notify_client: NotificationsAPIClient) -> None:
    sbx.state.set_limits(rate_limit=100_000)
    sbx.state.set_faults(error_rate=0.5, seed=7)
    outcomes = []
    for _ in range(40):
        try:
            _send(notify_client)
            outcomes.append(201)
        except Exception as error:
            outcomes.append(getattr(error, "status_code", 0))
    assert set(outcomes) == {201, 500}
    assert len(sbx.state.outbox()) == outcomes.count(201)


def test_latency_and_paths(
    sbx: Sandbox, notify_client: NotificationsAPIClient, http: requests.Session
) -> None:
    config = http.post(
        f"{sbx.url}/_sandbox/faults",
        json={"latency": 0.01, "error_rate": 1.0, "paths": ["/v2/template/"]},
    ).json()
    assert config == {
        "latency": 0.01,
        "error_rate": 1.0,
        "drop_rate": 0.0,
        "stall_rate": 0.0,
        "stall_seconds": 35.0,
        "paths": ["/v2/template/"],
    }
    _send(notify_client)  # other paths untouched
    assert raises_http(lambda: notify_client.get_template(PLAIN_ID)).status_code == 500
    assert http.get(f"{sbx.url}/_sandbox/faults").json() == config
    http.delete(f"{sbx.url}/_sandbox/faults", json={})
    assert notify_client.get_template(PLAIN_ID)["id"] == PLAIN_ID


def test_control_endpoints_are_never_faulted(sbx: Sandbox, http: requests.Session) -> None:
    sbx.state.set_faults(error_rate=1.0, paths=["/"])
    assert http.get(f"{sbx.url}/_sandbox/state").status_code == 200
    assert http.get(f"{sbx.url}/v2/notifications").status_code == 500


@pytest.mark.parametrize(
    "options",
    [{"error_rate": 2}, {"error_rate": 0.6, "drop_rate": 0.6}, {"latency": -1}, {"bogus": 1},
     {"paths": "/v2/"}, {"paths": ["v2"]}],
    ids=["rate-above-1", "sum-above-1", "negative-latency", "unknown-option", "paths-string",
         "path-without-slash"],
)  # fmt: skip
def test_bad_fault_options_are_refused(
    sbx: Sandbox, http: requests.Session, options: dict[str, object]
) -> None:
    response = http.post(f"{sbx.url}/_sandbox/faults", json=options)
    assert response.status_code == 400
    assert "error" in response.json()
    assert sbx.state.faults.active is False


def test_the_fault_layer_is_generic_by_prefix() -> None:
    app: Flask = create_app()
    other = Blueprint("other_api", __name__, url_prefix="/other")

    @other.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    app.register_blueprint(other)
    faults = app.extensions["dmmail_sandbox_faults"]
    assert isinstance(faults, FaultMiddleware)
    faults.add_error_body(
        "/other", lambda: ("application/problem+json", json.dumps({"status": 500}).encode())
    )
    with Sandbox.serve(app) as sandbox, requests.Session() as http:
        assert http.get(f"{sandbox.url}/other/ping").status_code == 200
        sandbox.state.set_faults(error_rate=1.0, paths=["/other/"])
        response = http.get(f"{sandbox.url}/other/ping")
        assert (response.status_code, response.json()) == (500, {"status": 500})
        assert response.headers["Content-Type"] == "application/problem+json"
        assert http.get(f"{sandbox.url}/v2/notifications").status_code == 401


def test_http11_keep_alive_serves_several_requests_on_one_connection(sbx: Sandbox) -> None:
    request = (
        f"GET /v2/nothing HTTP/1.1\r\nHost: {sbx.host}:{sbx.port}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with socket.create_connection((sbx.host, sbx.port), timeout=5) as conn:
        answers = []
        for _ in range(3):
            conn.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            while len(body) < length:
                body += conn.recv(4096)
            answers.append((head.split(b"\r\n")[0], b"connection: close" in head.lower()))
    assert answers == [(b"HTTP/1.1 404 NOT FOUND", False)] * 3


def test_several_sandboxes_run_at_once() -> None:
    with Sandbox.start() as one, Sandbox.start() as two:
        assert one.url != two.url
        assert one.keys != two.keys
        own = NotificationsAPIClient(one.keys.test, base_url=one.url)
        foreign = NotificationsAPIClient(two.keys.test, base_url=one.url)
        try:
            assert own.get_all_templates() == {"templates": []}
            error = raises_http(foreign.get_all_templates)
            assert error.message == v2_errors("AuthError", "Invalid token: service not found")
        finally:
            own.request_session.close()
            foreign.request_session.close()
