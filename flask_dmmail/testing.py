"""Test helpers: :func:`record` and the pytest plugin, registered through the ``pytest11`` entry
point (installing flask-dmmail is enough; ``pip install "flask-dmmail[testing]"`` adds pytest
and pytest-flask).

The plugin builds on pytest-flask's convention: an ``app`` fixture in your ``conftest.py``.
When a test uses it, the fixtures are about *that app*:

- ``dmmail_outbox`` (a :class:`DMMailOutbox`): what the app sent during the test. In sandbox
  mode it is read from the app's sandbox, so it also holds what a ``live_server`` process of
  the app sent; in-process sends come with what only the sender knows (the address given,
  whether it was redirected).
- ``notify_sandbox``: the app's sandbox (a :class:`~flask_dmmail.sandbox.Sandbox`), emptied
  before the test and seeded as the app seeds it.
- ``mailchimp_sandbox`` (a :class:`MailchimpSandbox`): the Mailchimp side of that sandbox,
  with the app's audiences.
- ``dmmail_faults`` (a :class:`SendFaults`): make the next N sends (or Mailchimp calls) fail
  with a 500, a 429 or a timeout.

Without an ``app`` fixture (or with one that is not in sandbox mode and talks to
``notify_sandbox`` as to Notify), ``notify_sandbox`` is one sandbox for the whole session,
emptied before each test, and ``dmmail_outbox`` holds every app's in-process sends.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import pytest
from flask import Flask

from . import signals
from .notify import SentEmail

if TYPE_CHECKING:
    from .sandbox import Sandbox
    from .sandbox.mailchimp import MailchimpState
    from .sandbox.models import Notification

__all__ = [
    "DMMailOutbox",
    "MailchimpSandbox",
    "SendFaults",
    "dmmail_faults",
    "dmmail_outbox",
    "mailchimp_sandbox",
    "notify_sandbox",
    "record",
]


@contextmanager
def record(app: Flask | None = None) -> Iterator[list[SentEmail]]:
    """Collect every :class:`~flask_dmmail.SentEmail` sent inside the block (by ``app``, or
    any app)::

        with record(app) as sent:
            app.extensions["dmmail"].send("a@example.com", "welcome")
        assert sent[0].template_id == ...

    :param app: only this app's sends; None for every app's.
    """
    sent: list[SentEmail] = []

    def receiver(sender: Flask, email: SentEmail, **_: Any) -> None:
        sent.append(email)

    if app is None:
        signals.email_sent.connect(receiver, weak=False)
    else:
        signals.email_sent.connect(receiver, sender=app, weak=False)
    try:
        yield sent
    finally:
        signals.email_sent.disconnect(receiver)


# -- which app, which sandbox ------------------------------------------------------------------

#: The session-wide sandbox, once a test has asked for it.
_SESSION_SANDBOX: Sandbox | None = None


def _test_app(request: pytest.FixtureRequest) -> Flask | None:
    """The app of the test's ``app`` fixture (pytest-flask's convention), or None.

    None too when that fixture depends on the fixture asking (an app configured against
    ``notify_sandbox``, as the project's own suite does): pytest reports the cycle as a
    FixtureLookupError, and that app is then not in sandbox mode anyway.
    """
    if "app" not in request.fixturenames:
        return None
    try:
        app = request.getfixturevalue("app")
    except pytest.FixtureLookupError:
        return None
    return app if isinstance(app, Flask) else None


def _embedded_sandbox(app: Flask) -> Sandbox | None:
    """The app's own sandbox (sandbox mode), started if it is not yet; else None."""
    mailer = app.extensions.get("dmmail")
    sandbox = getattr(mailer, "sandbox", None)
    from .sandbox import Sandbox

    return sandbox if isinstance(sandbox, Sandbox) else None


def _sandbox_sent_to(app: Flask) -> Sandbox | None:
    """The sandbox the app's emails reach: its own, or the session sandbox when the app is
    configured with its URL (it talks to it as to Notify)."""
    sandbox = _embedded_sandbox(app)
    if sandbox is not None:
        return sandbox
    notify = getattr(app.extensions.get("dmmail"), "notify", None)
    session = _SESSION_SANDBOX
    if session is not None and getattr(notify, "base_url", None) == session.url:
        return session
    return None


def _empty(sandbox: Sandbox, app: Flask | None) -> None:
    """Reset ``sandbox`` (its seed is applied again) and put back the app's audiences, which
    sandbox mode creates when the app starts."""
    sandbox.state.reset()
    _next_faults(sandbox).clear()
    mailer = app.extensions.get("dmmail") if app is not None else None
    settings = getattr(mailer, "settings", None)
    for name, list_id in getattr(settings, "audiences", {}).items():
        sandbox.state.mailchimp.ensure_list(list_id, name)


def _next_faults(sandbox: Sandbox) -> Any:
    """The sandbox's next-N faults (:class:`~flask_dmmail.sandbox.next_faults.NextFaults`)."""
    return sandbox.app.extensions["dmmail_sandbox_faults"].next


@pytest.fixture(scope="session")
def _dmmail_session_sandbox() -> Iterator[Sandbox]:
    global _SESSION_SANDBOX
    from .sandbox import Sandbox

    sandbox = Sandbox.start()
    _SESSION_SANDBOX = sandbox
    try:
        yield sandbox
    finally:
        _SESSION_SANDBOX = None
        sandbox.stop()


@pytest.fixture
def _dmmail_sandbox(request: pytest.FixtureRequest) -> Sandbox:
    """The test's sandbox, emptied: the app's own in sandbox mode, else the session's."""
    app = _test_app(request)
    sandbox = _embedded_sandbox(app) if app is not None else None
    if sandbox is None:
        sandbox = request.getfixturevalue("_dmmail_session_sandbox")
        _empty(sandbox, None)
    else:
        _empty(sandbox, app)
    return sandbox


@pytest.fixture
def notify_sandbox(_dmmail_sandbox: Sandbox) -> Sandbox:
    """A running Notify (and Mailchimp) sandbox on 127.0.0.1, emptied before each test, with
    ``.url``, ``.keys.test``/``.team``/``.live`` and ``.state``.

    With an ``app`` fixture in sandbox mode: that app's own sandbox (seeded as the app seeds
    it). Otherwise one sandbox for the whole session."""
    return _dmmail_sandbox


@dataclass(frozen=True)
class MailchimpSandbox:
    """The Mailchimp side of a sandbox: ``mailchimp-marketing`` works against :attr:`url` with
    :attr:`api_key` (an app in sandbox mode uses them by itself)."""

    #: Mailchimp's API in the sandbox (``http://127.0.0.1:<port>/3.0``).
    url: str
    #: A key the sandbox accepts (it opens only this sandbox).
    api_key: str = field(repr=False)
    #: The account: audiences, members, campaigns, webhooks
    #: (:class:`~flask_dmmail.sandbox.mailchimp.state.MailchimpState`).
    state: MailchimpState = field(repr=False)


@pytest.fixture
def mailchimp_sandbox(_dmmail_sandbox: Sandbox) -> MailchimpSandbox:
    """The Mailchimp side of ``notify_sandbox``'s sandbox (with an ``app`` in sandbox mode,
    its own, holding its ``DM_MAILCHIMP_AUDIENCES``), emptied before each test."""
    state = _dmmail_sandbox.state.mailchimp
    return MailchimpSandbox(f"{_dmmail_sandbox.url}/3.0", state.api_key, state)


# -- failures on demand --------------------------------------------------------------------------


class SendFaults:
    """Make the next sends fail, to test an app's failure paths (the ``dmmail_faults``
    fixture). Each failing request is answered without being processed: nothing is stored.

    ``kind`` is ``"error"`` (Notify answers 500), ``"rate_limit"`` (429) or ``"timeout"``
    (the request is held, unanswered, until the client gives up: give the app a short
    ``DM_NOTIFY_TIMEOUT`` in its test config). The library retries each of them
    (``DM_NOTIFY_RETRIES``, 3 by default), so one failed request is a retry that works, and
    ``DM_NOTIFY_RETRIES + 1`` of them are a send that fails.

    :param sandbox: the sandbox whose requests fail.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def __repr__(self) -> str:
        return f"<SendFaults {self.sandbox.url} pending={self.pending()!r}>"

    def fail_next_sends(
        self, count: int = 1, kind: str = "error", *, hold_seconds: float = 60.0
    ) -> None:
        """The next ``count`` sends to Notify (``POST /v2/notifications/...``) fail.

        :param count: how many requests fail (retries count too).
        :param kind: ``"error"``, ``"rate_limit"`` or ``"timeout"``.
        :param hold_seconds: how long a timeout holds each request (answered 504 after).
        """
        _next_faults(self.sandbox).add(kind, count, hold_seconds=hold_seconds)

    def fail_next_mailchimp_calls(
        self, count: int = 1, kind: str = "error", *, hold_seconds: float = 60.0
    ) -> None:
        """The next ``count`` requests to Mailchimp's API (any method) fail.

        :param count: how many requests fail (retries count too).
        :param kind: ``"error"``, ``"rate_limit"`` or ``"timeout"``.
        :param hold_seconds: how long a timeout holds each request (answered 504 after).
        """
        _next_faults(self.sandbox).add(
            kind,
            count,
            paths=("/3.0/",),
            methods=("GET", "POST", "PUT", "PATCH", "DELETE"),
            hold_seconds=hold_seconds,
        )

    def pending(self) -> list[dict[str, Any]]:
        """The failures still to come (``kind``, ``count`` left, ``paths``, ``methods``)."""
        result: list[dict[str, Any]] = _next_faults(self.sandbox).pending()
        return result

    def clear(self) -> None:
        """No more failures; requests held now are answered at once."""
        _next_faults(self.sandbox).clear()


@pytest.fixture
def dmmail_faults(_dmmail_sandbox: Sandbox) -> Iterator[SendFaults]:
    """A :class:`SendFaults` for ``notify_sandbox``'s sandbox; nothing is left queued (or
    held) after the test."""
    faults = SendFaults(_dmmail_sandbox)
    try:
        yield faults
    finally:
        faults.clear()


# -- the outbox --------------------------------------------------------------------------------


def _from_sandbox(notification: Notification, sandbox: Sandbox) -> SentEmail:
    """A :class:`~flask_dmmail.SentEmail` for an email only the sandbox saw: the sender (a
    ``live_server`` process) is not here to say whether it redirected the address."""
    address = notification.email_address
    return SentEmail(
        id=notification.id,
        reference=notification.reference,
        to=address,
        sent_to=address,
        redirected=False,
        template_id=notification.template_id,
        template_version=notification.template_version,
        subject=notification.subject,
        body=notification.body,
        from_email=notification.from_email or None,
        uri=f"{sandbox.url}/v2/notifications/{notification.id}",
        scheduled_for=None,
    )


class DMMailOutbox(Sequence[SentEmail]):
    """The emails sent during a test, oldest first, as :class:`~flask_dmmail.SentEmail`
    (the ``dmmail_outbox`` fixture; one object for the session, emptied before each test).

    With an ``app`` fixture whose emails reach a sandbox (sandbox mode), it is read from that
    sandbox whenever you look at it, so it also holds what a ``live_server`` process of the
    app sent; an email sent in this process comes as the send returned it (with ``to``, the
    address given, and ``redirected``). An email only the sandbox saw has ``to`` and
    ``sent_to`` both the address the sandbox got, and ``redirected`` False. Without such an
    app it holds what any app sent in this process.

    It compares equal to a list of the same emails.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._app: Flask | None = None
        self._sandbox: Sandbox | None = None
        self._before: set[str] = set()
        #: (when, email) for each email_sent signal received.
        self._signalled: list[tuple[float, SentEmail]] = []

    def _start(self, app: Flask | None, sandbox: Sandbox | None) -> None:
        with self._lock:
            self._app, self._sandbox = app, sandbox
            self._signalled = []
            self._before = {n.id for n in sandbox.state.outbox()} if sandbox else set()
        if app is None:
            signals.email_sent.connect(self._receive, weak=False)
        else:
            signals.email_sent.connect(self._receive, sender=app, weak=False)

    def _stop(self) -> None:
        signals.email_sent.disconnect(self._receive)

    def _receive(self, sender: Flask, email: SentEmail, **_: Any) -> None:
        with self._lock:
            self._signalled.append((time.time(), copy.copy(email)))

    def _emails(self) -> list[SentEmail]:
        with self._lock:
            sandbox, before = self._sandbox, set(self._before)
            signalled = list(self._signalled)
        if sandbox is None:
            return [email for _, email in signalled]
        stored = {n.id: n for n in sandbox.state.outbox() if n.id not in before}
        when: dict[str, float] = {i: n.created_at.timestamp() for i, n in stored.items()}
        emails: dict[str, SentEmail] = {i: _from_sandbox(n, sandbox) for i, n in stored.items()}
        for at, email in signalled:  # the sender's own account, where there is one
            when.setdefault(email.id, at)
            emails[email.id] = email
        return [emails[i] for i in sorted(emails, key=lambda i: when[i])]

    def __len__(self) -> int:
        return len(self._emails())

    @overload
    def __getitem__(self, index: int) -> SentEmail: ...

    @overload
    def __getitem__(self, index: slice) -> list[SentEmail]: ...

    def __getitem__(self, index: int | slice) -> SentEmail | list[SentEmail]:
        return self._emails()[index]

    def __iter__(self) -> Iterator[SentEmail]:
        return iter(self._emails())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DMMailOutbox | list | tuple):
            return self._emails() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<DMMailOutbox {self._emails()!r}>"

    def clear(self) -> None:
        """Forget what was sent so far in this test (the sandbox keeps it)."""
        with self._lock:
            self._signalled = []
            if self._sandbox is not None:
                self._before = {n.id for n in self._sandbox.state.outbox()}

    def wait_for(self, count: int = 1, timeout: float = 30.0) -> list[SentEmail]:
        """The emails, once there are at least ``count`` (or ``timeout`` seconds have
        passed): for sends that finish after the test's request returns (a browser's form
        post, a background thread). Assert on what it returns."""
        deadline = time.monotonic() + timeout
        while True:
            emails = self._emails()
            if len(emails) >= count or time.monotonic() >= deadline:
                return emails
            time.sleep(0.05)


_OUTBOX = DMMailOutbox()


@pytest.fixture
def dmmail_outbox(request: pytest.FixtureRequest) -> Iterator[DMMailOutbox]:
    """What the test's ``app`` sent during the test (see :class:`DMMailOutbox`); without an
    ``app`` fixture, what any app sent in this process. The same object every test, emptied
    first, so keeping a reference to it is safe."""
    app = _test_app(request)
    _OUTBOX._start(app, _sandbox_sent_to(app) if app is not None else None)
    try:
        yield _OUTBOX
    finally:
        _OUTBOX._stop()


# -- pytest-flask's live_server ------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> None:
    """Before pytest-flask's ``live_server`` forks the app into its own process, start the
    app's sandbox here (sandbox mode starts it on first use): the live server then sends to
    this process's sandbox, where ``dmmail_outbox`` and ``notify_sandbox`` read, and its
    ``/_dmmail/`` pages send the browser there."""
    if fixturedef.argname != "live_server" or "app" not in fixturedef.argnames:
        return
    app = request.getfixturevalue("app")
    if isinstance(app, Flask):
        _embedded_sandbox(app)
