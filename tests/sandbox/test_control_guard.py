"""The standalone sandbox refuses cross-site control requests and DNS-rebinding host names.

A web page the developer visits can send a "simple" cross-site POST (``text/plain`` or a
form) to ``http://127.0.0.1:6011/_sandbox/...`` and can, by rebinding its own name to
127.0.0.1, read the outbox and ``/_sandbox/state`` (which holds the keys). Control requests
that change state must carry ``Content-Type: application/json`` (which a page cannot send
cross-site without a preflight the sandbox never answers), and the control endpoints and the
outbox pages answer only to loopback host names. Notify's ``/v2`` and Mailchimp's ``/3.0``
APIs answer to any name (CI reaches sandboxes by service name).
"""

from __future__ import annotations

import socket

import pytest
import requests
from notifications_python_client.notifications import NotificationsAPIClient

from flask_dmmail.sandbox import Sandbox, create_app
from flask_dmmail.sandbox.guard import sandbox_host_names
from tests.sandbox.notify_helpers import PLAIN_ID, auth_header

REBINDING_HOSTS = [
    "evil.example",
    "localhost.evil.example",
    "127.0.0.1.nip.io",
    "localhostx",
    "10.0.0.1",
]


def _send(client: NotificationsAPIClient) -> str:
    sent: dict[str, str] = client.send_email_notification("a@example.com", PLAIN_ID)
    return sent["id"]


# ------------------------------------------------------------------ cross-site POSTs


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", None],
)
def test_a_cross_site_post_to_reset_is_refused_and_changes_nothing(
    sbx: Sandbox, notify_client: NotificationsAPIClient, content_type: str | None
) -> None:
    sent_id = _send(notify_client)
    headers = {"Origin": "https://evil.example"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = requests.post(
        f"{sbx.url}/_sandbox/reset", data="{}" if content_type else None, headers=headers
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]
    assert [n.id for n in sbx.state.outbox()] == [sent_id]


def test_every_state_changing_control_request_needs_json(
    sbx: Sandbox, notify_client: NotificationsAPIClient
) -> None:
    sent_id = _send(notify_client)
    sbx.state.set_faults(latency=0.0, error_rate=0.0, paths=["/v2/template/"])
    before = sbx.state.to_dict()
    plain = {"Content-Type": "text/plain"}
    attempts = [
        ("POST", "seed", '{"templates": []}'),
        ("POST", f"notifications/{sent_id}/status", '{"status": "permanent-failure"}'),
        ("POST", "faults", '{"error_rate": 1.0}'),
        ("DELETE", "faults", None),
        ("POST", "limits", '{"rate_limit": 1}'),
        ("POST", "service", '{"restricted": true}'),
        ("POST", "keys/test/revoke", None),
        ("POST", "keys/live/restore", None),
        ("POST", f"templates/{PLAIN_ID}/archive", '{"archived": true}'),
    ]
    for method, path, body in attempts:
        response = requests.request(
            method, f"{sbx.url}/_sandbox/{path}", data=body, headers=plain, timeout=30
        )
        assert response.status_code == 415, (method, path)
        assert response.headers["Content-Type"] == "application/json"
    assert sbx.state.to_dict() == before
    assert sbx.state.get(sent_id) is not None
    assert sbx.state.get(sent_id).status == "delivered"  # type: ignore[union-attr]
    assert notify_client.get_template(PLAIN_ID)["id"] == PLAIN_ID


def test_json_control_requests_work_with_or_without_a_body(
    sbx: Sandbox, notify_client: NotificationsAPIClient
) -> None:
    _send(notify_client)
    json_only = {"Content-Type": "application/json"}
    revoked = requests.post(f"{sbx.url}/_sandbox/keys/test/revoke", headers=json_only)
    assert revoked.json() == {"key_type": "test", "revoked": True}
    restored = requests.post(f"{sbx.url}/_sandbox/keys/test/restore", json={})
    assert restored.json() == {"key_type": "test", "revoked": False}
    reset = requests.post(
        f"{sbx.url}/_sandbox/reset", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert reset.json() == {"result": "reset"}
    assert sbx.state.outbox() == []
    bad = requests.post(f"{sbx.url}/_sandbox/limits", data="{not json", headers=json_only)
    assert bad.status_code == 400
    assert "JSON" in bad.json()["error"]


# ------------------------------------------------------------------ DNS rebinding


@pytest.mark.parametrize("host", REBINDING_HOSTS)
def test_a_rebinding_host_cannot_read_the_state_or_the_outbox(
    sbx: Sandbox, notify_client: NotificationsAPIClient, host: str
) -> None:
    sent_id = _send(notify_client)
    named = {"Host": f"{host}:{sbx.port}"}
    state = requests.get(f"{sbx.url}/_sandbox/state", headers=named)
    assert state.status_code == 403
    assert sbx.keys.test not in state.text
    assert "localhost" in state.json()["error"]
    for path in ("/_sandbox/outbox", f"/_sandbox/outbox/{sent_id}", "/", f"/email/{sent_id}"):
        page = requests.get(sbx.url + path, headers=named)
        assert page.status_code == 403, path
        assert sbx.keys.test not in page.text
        assert "a@example.com" not in page.text
    for path in ("/mailchimp/", "/mailchimp/audience/abc"):
        assert requests.get(sbx.url + path, headers=named).status_code == 403
    reset = requests.post(f"{sbx.url}/_sandbox/reset", json={}, headers=named)
    assert reset.status_code == 403
    assert [n.id for n in sbx.state.outbox()] == [sent_id]


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "127.0.0.1", "127.0.0.2", "[::1]", "outbox.localhost"]
)
def test_loopback_names_open_the_state_and_the_outbox(sbx: Sandbox, host: str) -> None:
    named = {"Host": f"{host}:{sbx.port}"}
    assert requests.get(f"{sbx.url}/_sandbox/state", headers=named).status_code == 200
    page = requests.get(f"{sbx.url}/", headers=named)
    assert page.status_code == 200
    assert "No emails sent yet" in page.text
    assert requests.get(f"{sbx.url}/mailchimp/", headers={"Host": host}).status_code == 200


def test_the_apis_answer_to_any_host_name(sbx: Sandbox) -> None:
    named = {"Host": f"notify-sandbox:{sbx.port}"}
    notifications = requests.get(
        f"{sbx.url}/v2/notifications", headers={**named, **auth_header(sbx.keys.test)}
    )
    assert notifications.status_code == 200
    ping = requests.get(
        f"{sbx.url}/3.0/ping",
        headers=named,
        auth=("anystring", sbx.state.mailchimp.api_key),
    )
    assert ping.status_code == 200


def test_allowed_hosts_add_names() -> None:
    with Sandbox.start(allowed_hosts=["notify-sandbox", "Outbox.Example."]) as sandbox:
        for host in ("notify-sandbox", "outbox.example", f"notify-sandbox:{sandbox.port}"):
            assert requests.get(f"{sandbox.url}/", headers={"Host": host}).status_code == 200
        state = requests.get(f"{sandbox.url}/_sandbox/state", headers={"Host": "evil.example"})
        assert state.status_code == 403
    with Sandbox.start(allowed_hosts="notify-sandbox") as sandbox:
        assert requests.get(f"{sandbox.url}/", headers={"Host": "notify-sandbox"}).ok
        assert requests.get(f"{sandbox.url}/", headers={"Host": "n"}).status_code == 403


def test_a_sandbox_on_every_interface_answers_to_its_machines_name_and_address() -> None:
    assert sandbox_host_names("127.0.0.1") == frozenset()
    assert sandbox_host_names("::1") == frozenset()
    everywhere = sandbox_host_names("0.0.0.0")
    assert socket.gethostname().lower() in everywhere
    assert "0.0.0.0" in everywhere
    assert sandbox_host_names("sandbox.lan", ["Other.lan"]) >= {"sandbox.lan", "other.lan"}
    # The address a request arrived on (a non-loopback interface when bound to 0.0.0.0)
    # is accepted as a host; any other address is not.
    app = create_app()
    client = app.test_client()
    arrived = {"dmmail.local_addr": "192.0.2.10"}
    try:
        for host, status in (("192.0.2.10:6011", 200), ("192.0.2.11:6011", 403)):
            page = client.get("/", headers={"Host": host}, environ_base=arrived)
            assert page.status_code == status, host
    finally:
        app.extensions["dmmail_sandbox"].close()
