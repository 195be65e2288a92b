"""Delivery receipts: the blueprint, the sandbox's callbacks, and the two end to end.

The blueprint is driven with Flask's test client (it is this project's own code); the
sandbox's callbacks and the end-to-end test go over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import copy
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask, request
from notifications_python_client.notifications import NotificationsAPIClient
from werkzeug.serving import make_server

from flask_dmmail import DMMail, Mailer, signals
from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.__main__ import main as sandbox_main
from flask_dmmail.sandbox.callbacks import CallbackSender
from flask_dmmail.webhooks import NOTIFY_CALLBACKS_PATH, notify_callbacks_blueprint

from .conftest import SEED, TEMPLATES, WELCOME_ID
from .secrets_scan import register_secret

TOKEN = "receipt-token-0123456789abcdef"
ADDRESS = "Receipt.Person@Example.gov.uk"
NOTIFICATION_ID = "740e5834-3a29-46b4-9a6f-16142fde533a"
register_secret(TOKEN, kind="callback token")
register_secret(ADDRESS, kind="recipient")

RECEIPT: dict[str, Any] = {
    "id": NOTIFICATION_ID,
    "reference": "my-reference",
    "to": ADDRESS,
    "status": "delivered",
    "created_at": "2017-05-14T12:15:30.000000Z",
    "completed_at": "2017-05-14T12:15:31.000000Z",
    "sent_at": "2017-05-14T12:15:30.500000Z",
    "notification_type": "email",
    "template_id": WELCOME_ID,
    "template_version": 1,
}


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def status_changes() -> Iterator[list[tuple[object, dict[str, Any]]]]:
    got: list[tuple[object, dict[str, Any]]] = []

    def receiver(sender: object, **kwargs: Any) -> None:
        got.append((sender, kwargs))

    with signals.email_status_changed.connected_to(receiver):
        yield got


@pytest.fixture
def receipts_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(DM_NOTIFY_CALLBACK_TOKEN=TOKEN)


# -- the blueprint -------------------------------------------------------------------------


def test_a_receipt_fires_email_status_changed_with_a_hash(receipts_app: Flask) -> None:
    mailer = receipts_app.extensions["dmmail"]
    with status_changes() as got:
        response = receipts_app.test_client().post(
            NOTIFY_CALLBACKS_PATH, json=RECEIPT, headers=auth()
        )
    assert response.status_code == 204
    assert response.data == b""
    assert len(got) == 1
    sender, kwargs = got[0]
    assert sender is receipts_app and type(sender) is Flask
    assert kwargs == {
        "notification_id": NOTIFICATION_ID,
        "reference": "my-reference",
        "status": "delivered",
        "to_hash": mailer.hasher.hash_address(ADDRESS),
    }
    # the same hash as the send path's, whatever the case of the address
    assert kwargs["to_hash"] == mailer.hasher.hash_address(ADDRESS.lower())


def test_null_fields_and_unknown_extra_fields_are_accepted(receipts_app: Flask) -> None:
    receipt = {
        **RECEIPT,
        "reference": None,
        "sent_at": None,
        "completed_at": None,
        "status": "temporary-failure",
        "a_field_notify_adds_later": {"x": 1},
    }
    with status_changes() as got:
        response = receipts_app.test_client().post(
            NOTIFY_CALLBACKS_PATH, json=receipt, headers=auth()
        )
    assert response.status_code == 204
    assert got[0][1]["reference"] is None
    assert got[0][1]["status"] == "temporary-failure"


def test_the_scheme_is_case_insensitive_and_any_content_type_works(receipts_app: Flask) -> None:
    with status_changes() as got:
        response = receipts_app.test_client().post(
            NOTIFY_CALLBACKS_PATH,
            data=json.dumps(RECEIPT),
            content_type="text/plain",
            headers={"Authorization": f"bearer {TOKEN}"},
        )
    assert response.status_code == 204
    assert len(got) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer wrong-token-0123456789abcdef"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN.upper()}"},
        {"Authorization": "Bearer ünïcödé-tökén"},
    ],
    ids=[
        "no-header",
        "empty",
        "no-scheme",
        "basic",
        "empty-token",
        "wrong",
        "prefix",
        "longer",
        "upper-case",
        "non-ascii",
    ],
)
def test_a_missing_or_wrong_token_is_401_and_not_echoed(
    receipts_app: Flask, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with status_changes() as got, caplog.at_level(logging.DEBUG):
        response = receipts_app.test_client().post(
            NOTIFY_CALLBACKS_PATH, json=RECEIPT, headers=headers
        )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert got == []
    given = headers.get("Authorization", "").partition(" ")[2] or "wrong-token"
    text = response.get_data(as_text=True) + caplog.text
    assert given not in text and TOKEN not in text
    assert ADDRESS.lower() not in text.lower()


@pytest.mark.parametrize(
    "given",
    [TOKEN[:-1], TOKEN + "0", TOKEN[:-1] + "X", TOKEN[:-1] + "\u00e9", "\u00e9" * len(TOKEN)],
    ids=["shorter", "longer", "same-length", "non-ascii-end", "non-ascii"],
)
def test_both_endpoints_refuse_a_near_miss_token_through_the_one_comparison(
    make_app: Callable[..., Flask], given: str
) -> None:
    # Notify's bearer token and the token in Mailchimp's webhook URL go through the same
    # comparison: a token one character short, long or wrong, or not ASCII, is refused
    # by both (and the right token accepted), never a 500.
    app = make_app(DM_NOTIFY_CALLBACK_TOKEN=TOKEN, DM_MAILCHIMP_WEBHOOK_TOKEN=TOKEN)
    client = app.test_client()
    mailchimp = "/_dmmail/callbacks/mailchimp/"
    assert client.post(NOTIFY_CALLBACKS_PATH, json=RECEIPT, headers=auth()).status_code == 204
    assert client.get(mailchimp + TOKEN).status_code == 200
    with status_changes() as got:
        refused = client.post(NOTIFY_CALLBACKS_PATH, json=RECEIPT, headers=auth(given))
        assert refused.status_code == 401
        assert client.get(mailchimp + given).status_code == 404
    assert got == []


def test_without_a_configured_token_nothing_is_mounted(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    response = app.test_client().post(NOTIFY_CALLBACKS_PATH, json=RECEIPT, headers=auth())
    assert response.status_code == 404


def test_a_blueprint_mounted_by_hand_without_a_token_refuses_everything(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    app.register_blueprint(notify_callbacks_blueprint("receipts"), url_prefix="/receipts")
    with status_changes() as got:
        response = app.test_client().post("/receipts", json=RECEIPT, headers=auth())
    assert response.status_code == 401
    assert got == []


def test_the_blueprint_can_be_mounted_at_another_url(receipts_app: Flask) -> None:
    receipts_app.register_blueprint(
        notify_callbacks_blueprint("receipts"), url_prefix="/callbacks/delivery"
    )
    with status_changes() as got:
        response = receipts_app.test_client().post(
            "/callbacks/delivery", json=RECEIPT, headers=auth()
        )
    assert response.status_code == 204
    assert got[0][1]["notification_id"] == NOTIFICATION_ID


def _without(key: str) -> dict[str, Any]:
    receipt = dict(RECEIPT)
    del receipt[key]
    return receipt


BAD_BODIES: dict[str, Any] = {
    "not-json": b"{not json",
    "a-list": b"[1, 2]",
    "null": b"null",
    **{f"no-{key}": _without(key) for key in ("id", "to", "status", "created_at")},
    **{
        f"no-{key}": _without(key)
        for key in ("notification_type", "template_id", "template_version")
    },
    "id-not-uuid": {**RECEIPT, "id": "12345"},
    "id-a-number": {**RECEIPT, "id": 12345},
    "reference-a-number": {**RECEIPT, "reference": 7},
    "reference-too-long": {**RECEIPT, "reference": "r" * 1001},
    "to-empty": {**RECEIPT, "to": "  "},
    "to-a-list": {**RECEIPT, "to": [ADDRESS]},
    "status-unknown-shape": {**RECEIPT, "status": "Delivered!"},
    "status-null": {**RECEIPT, "status": None},
    "status-trailing-newline": {**RECEIPT, "status": "delivered\n"},
    "type-fax": {**RECEIPT, "notification_type": "fax"},
    "template-id-bad": {**RECEIPT, "template_id": "welcome"},
    "version-a-string": {**RECEIPT, "template_version": "1"},
    "version-a-bool": {**RECEIPT, "template_version": True},
    "version-zero": {**RECEIPT, "template_version": 0},
    "created-not-a-time": {**RECEIPT, "created_at": "yesterday"},
    "created-null": {**RECEIPT, "created_at": None},
    "sent-not-a-time": {**RECEIPT, "sent_at": "soon"},
    "completed-a-number": {**RECEIPT, "completed_at": 1494764130},
}


@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_a_bad_body_is_400_without_the_address(
    receipts_app: Flask, body: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = receipts_app.test_client()
    with status_changes() as got, caplog.at_level(logging.DEBUG):
        if isinstance(body, bytes):
            response = client.post(
                NOTIFY_CALLBACKS_PATH, data=body, content_type="application/json", headers=auth()
            )
        else:
            response = client.post(NOTIFY_CALLBACKS_PATH, json=body, headers=auth())
    assert response.status_code == 400
    assert got == []
    message = response.get_json()["message"]
    assert message and isinstance(message, str)
    text = response.get_data(as_text=True) + caplog.text
    assert ADDRESS.lower() not in text.lower()
    assert TOKEN not in text


def test_an_oversized_body_is_refused(receipts_app: Flask) -> None:
    body = {**RECEIPT, "padding": "x" * (70 * 1024)}
    with status_changes() as got:
        response = receipts_app.test_client().post(NOTIFY_CALLBACKS_PATH, json=body, headers=auth())
    assert response.status_code == 413
    assert got == []


def _receipt_with(extra_json: str) -> str:
    """RECEIPT as JSON text, with one more field whose value is ``extra_json`` as given."""
    return json.dumps(RECEIPT)[:-1] + ', "extra": ' + extra_json + "}"


DEEP_BODIES: dict[str, str] = {
    "arrays": "[" * 30000 + "]" * 30000,
    "objects": '{"a":' * 10000 + "1" + "}" * 10000,
    "mixed": '[{"a":' * 6000 + "1" + "}]" * 6000,
    "inside-a-receipt": _receipt_with('{"a":' * 10000 + "1" + "}" * 10000),
    "unclosed": "[" * 60000,
    "after-a-string-with-escapes": '["a\\\\", ' + "[" * 30000 + "]" * 30000 + "]",
}


@pytest.mark.parametrize("body", list(DEEP_BODIES.values()), ids=list(DEEP_BODIES))
def test_deeply_nested_json_is_a_400_not_a_crash(
    receipts_app: Flask, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert len(body.encode()) <= 64 * 1024
    with status_changes() as got, caplog.at_level(logging.DEBUG):
        response = receipts_app.test_client().post(
            NOTIFY_CALLBACKS_PATH, data=body, content_type="application/json", headers=auth()
        )
    assert response.status_code == 400
    assert response.is_json and response.get_json()["result"] == "error"
    assert got == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    refusals = [r for r in caplog.records if r.name == "flask_dmmail"]
    assert [r.levelname for r in refusals] == ["WARNING"]
    assert refusals[0].__dict__["http_status"] == 400


def test_brackets_and_escapes_inside_strings_are_not_nesting(receipts_app: Flask) -> None:
    reference = '[{"' * 50 + "\\" + '\\"]' * 20 + "\\"
    receipt = json.loads(_receipt_with('{"a": [1, {"b": [2, {"c": "[[[[[["}]}]}'))
    receipt["reference"] = reference
    with status_changes() as got:
        response = receipts_app.test_client().post(
            NOTIFY_CALLBACKS_PATH, json=receipt, headers=auth()
        )
    assert response.status_code == 204
    assert got[0][1]["reference"] == reference


def test_one_log_line_per_receipt_with_fields_and_no_address(
    receipts_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    mailer = receipts_app.extensions["dmmail"]
    client = receipts_app.test_client()
    with caplog.at_level(logging.DEBUG, logger="flask_dmmail"):
        client.post(NOTIFY_CALLBACKS_PATH, json=RECEIPT, headers=auth())
        client.post(
            NOTIFY_CALLBACKS_PATH,
            json={**RECEIPT, "status": "permanent-failure"},
            headers=auth(),
        )
    records = [r for r in caplog.records if r.name == "flask_dmmail"]
    assert [r.levelname for r in records] == ["INFO", "WARNING"]
    for record, status in zip(records, ["delivered", "permanent-failure"], strict=True):
        assert record.__dict__["notification_id"] == NOTIFICATION_ID
        assert record.__dict__["status"] == status
        assert record.__dict__["reference"] == "my-reference"
        assert record.__dict__["to_hash"] == mailer.hasher.hash_address(ADDRESS)
        assert record.__dict__["template_id"] == WELCOME_ID
        assert NOTIFICATION_ID in record.getMessage() and status in record.getMessage()
        everything = record.getMessage() + repr(vars(record))
        assert ADDRESS.lower() not in everything.lower()


# -- real servers on 127.0.0.1 --------------------------------------------------------------


class Served:
    """A WSGI app served by werkzeug on 127.0.0.1 in a daemon thread."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> Served:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class Receiver:
    """An HTTP endpoint that records receipts and answers with scripted status codes."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.answers = list(answers or [])
        self.requests: list[tuple[dict[str, str], Any]] = []
        self.arrived = threading.Condition()
        self.hold = threading.Event()
        self.hold.set()
        app = Flask("receiver")

        @app.post("/receipts")
        def receive() -> tuple[str, int]:
            self.hold.wait(10)
            with self.arrived:
                self.requests.append((dict(request.headers), request.get_json(force=True)))
                self.arrived.notify_all()
                code = self.answers.pop(0) if self.answers else 204
            return "", code

        self.served = Served(app)
        self.url = f"{self.served.url}/receipts"

    def wait_for(self, count: int, timeout: float = 10) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    rx.served.start()
    yield rx
    rx.hold.set()
    rx.served.stop()


@pytest.fixture
def callback_sandbox(receiver: Receiver) -> Iterator[Sandbox]:
    sandbox = Sandbox.start(
        seed=copy.deepcopy(SEED), callback_url=receiver.url, callback_token=TOKEN
    )
    register_secret(sandbox.keys.test[-36:], kind="api key")
    yield sandbox
    sandbox.stop()


def notify_client(sandbox: Sandbox) -> NotificationsAPIClient:
    return NotificationsAPIClient(sandbox.keys.test, base_url=sandbox.url)


PERSONAL = {"name": "Hephzibah Receipt", "framework": "G-Cloud 99"}
register_secret(PERSONAL, kind="personalisation")


def test_the_sandbox_posts_notify_shaped_receipts(
    callback_sandbox: Sandbox, receiver: Receiver
) -> None:
    sent = notify_client(callback_sandbox).send_email_notification(
        ADDRESS, WELCOME_ID, PERSONAL, reference="ref-1"
    )
    assert receiver.wait_for(1)
    headers, body = receiver.requests[0]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Content-Type"] == "application/json"
    stored = callback_sandbox.state.get(sent["id"])
    assert stored is not None
    assert body == {
        "id": sent["id"],
        "reference": "ref-1",
        "to": ADDRESS,
        "status": "delivered",
        "created_at": stored.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "completed_at": stored.completed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if stored.completed_at
        else None,
        "sent_at": stored.sent_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if stored.sent_at else None,
        "notification_type": "email",
        "template_id": WELCOME_ID,
        "template_version": 1,
    }
    assert body["completed_at"] is not None and body["sent_at"] is not None
    assert callback_sandbox.state.callbacks is not None
    assert callback_sandbox.state.callbacks.flush(10)
    assert len(receiver.requests) == 1  # "sending" is not a receipt, "delivered" is


def test_only_final_statuses_are_posted(callback_sandbox: Sandbox, receiver: Receiver) -> None:
    state = callback_sandbox.state
    state.set_service(delivery_delay=3600)
    sent = notify_client(callback_sandbox).send_email_notification(ADDRESS, WELCOME_ID, PERSONAL)
    state.force_status(sent["id"], "sending")
    state.force_status(sent["id"], "technical-failure")
    assert receiver.wait_for(1)
    assert state.callbacks is not None and state.callbacks.flush(10)
    assert [body["status"] for _, body in receiver.requests] == ["technical-failure"]


def test_a_5xx_or_429_is_retried_until_accepted(
    callback_sandbox: Sandbox, receiver: Receiver
) -> None:
    receiver.answers = [500, 429, 503]
    sender = callback_sandbox.state.callbacks
    assert sender is not None
    sender.backoff = 0.01
    notify_client(callback_sandbox).send_email_notification(ADDRESS, WELCOME_ID, PERSONAL)
    assert receiver.wait_for(4)
    assert sender.flush(10)
    assert (sender.sent, sender.failed) == (1, 0)
    assert len({body["id"] for _, body in receiver.requests}) == 1


def test_retries_are_bounded(callback_sandbox: Sandbox, receiver: Receiver) -> None:
    receiver.answers = [500] * 10
    sender = callback_sandbox.state.callbacks
    assert sender is not None
    sender.backoff, sender.retries = 0.01, 2
    notify_client(callback_sandbox).send_email_notification(ADDRESS, WELCOME_ID, PERSONAL)
    assert receiver.wait_for(3)
    assert sender.flush(10)
    assert (sender.sent, sender.failed) == (0, 1)
    assert len(receiver.requests) == 3


def test_a_4xx_is_not_retried(callback_sandbox: Sandbox, receiver: Receiver) -> None:
    receiver.answers = [401]
    sender = callback_sandbox.state.callbacks
    assert sender is not None
    sender.backoff = 0.01
    notify_client(callback_sandbox).send_email_notification(ADDRESS, WELCOME_ID, PERSONAL)
    assert receiver.wait_for(1)
    assert sender.flush(10)
    assert (sender.sent, sender.failed) == (0, 1)
    assert len(receiver.requests) == 1


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_no_answer_is_retried_then_given_up() -> None:
    sender = CallbackSender(
        f"http://127.0.0.1:{_closed_port()}/receipts", TOKEN, timeout=1, retries=2, backoff=0.01
    )
    try:
        with Sandbox.start(seed=copy.deepcopy(SEED)) as sandbox:
            sandbox.state.add_status_listener(sender)
            notify_client(sandbox).send_email_notification(ADDRESS, WELCOME_ID, PERSONAL)
            assert wait_until(lambda: sender.failed == 1, 20)
            assert sender.sent == 0
    finally:
        sender.close()


def test_a_slow_receiver_never_blocks_the_sandbox(
    callback_sandbox: Sandbox, receiver: Receiver
) -> None:
    receiver.hold.clear()  # the receiver hangs on every receipt until released
    client = notify_client(callback_sandbox)
    ids = [client.send_email_notification(ADDRESS, WELCOME_ID, PERSONAL)["id"] for _ in range(5)]
    # the sandbox keeps answering, and every status change was applied, while the
    # first receipt is still stuck in the receiver
    for notification_id in ids:
        assert client.get_notification_by_id(notification_id)["status"] == "delivered"
    assert len(receiver.requests) == 0
    receiver.hold.set()
    assert receiver.wait_for(5)
    assert sorted(body["id"] for _, body in receiver.requests) == sorted(ids)


def test_a_callback_url_needs_a_token() -> None:
    with pytest.raises(ValueError, match="callback_token"):
        Sandbox.start(callback_url="http://127.0.0.1:9/receipts")
    with pytest.raises(ValueError, match="http"):
        CallbackSender("ftp://example.com/", TOKEN)


def test_the_command_line_takes_the_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DM_NOTIFY_CALLBACK_TOKEN", raising=False)
    assert sandbox_main(["--port", "0", "--callback-url", "http://127.0.0.1:9/r"]) == 2
    assert "DM_NOTIFY_CALLBACK_TOKEN" in capsys.readouterr().err


# -- end to end ------------------------------------------------------------------------------


def test_end_to_end_a_permanent_failure_reaches_the_app_as_a_signal() -> None:
    """An app serving the receipts blueprint on 127.0.0.1, a sandbox calling it back."""
    app = Flask("receipts_e2e")
    served = Served(app)  # bound now, so the sandbox can be told the URL
    sandbox = Sandbox.start(
        seed=copy.deepcopy(SEED),
        callback_url=f"{served.url}{NOTIFY_CALLBACKS_PATH}",
        callback_token=TOKEN,
    )
    register_secret(sandbox.keys.test[-36:], kind="api key")
    app.config.update(
        SECRET_KEY="e2e",
        DM_NOTIFY_KEY=sandbox.keys.test,
        DM_NOTIFY_BASE_URL=sandbox.url,
        DM_NOTIFY_TEMPLATES=TEMPLATES,
        DM_NOTIFY_CALLBACK_TOKEN=TOKEN,
        DM_MAIL_SANDBOX=False,
        DM_ENVIRONMENT="production",
    )
    DMMail(app)
    mailer: Mailer = app.extensions["dmmail"]
    arrived = threading.Event()
    got: list[tuple[object, dict[str, Any]]] = []

    def on_status(sender: object, **kwargs: Any) -> None:
        got.append((sender, kwargs))
        arrived.set()

    served.start()
    try:
        with signals.email_status_changed.connected_to(on_status, sender=app):
            sent = mailer.send("perm-fail@simulator.notify", "welcome", PERSONAL)
            assert sent is not None
            assert arrived.wait(15), "no delivery receipt arrived"
    finally:
        served.stop()
        sandbox.stop()
        mailer.close()
    assert len(got) == 1
    sender, kwargs = got[0]
    assert sender is app
    assert kwargs == {
        "notification_id": sent.id,
        "reference": sent.reference,
        "status": "permanent-failure",
        "to_hash": mailer.hasher.hash_address("perm-fail@simulator.notify"),
    }
