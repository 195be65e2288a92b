"""A session-wide check that no secret reaches a log record, an exception message or CLI output.

Loaded by ``tests/conftest.py`` (``pytest_plugins``). For the whole session it collects:

- **log records** of every logger (a handler on the root logger, which is set to DEBUG):
  the message, every ``extra`` field and the message of any attached exception;
- **exception messages** of every :class:`~flask_dmmail.errors.DMMailError` created;
- **CLI output** of every ``click.testing.CliRunner.invoke`` (Flask's test CLI runner too),
  and any text a test hands to :func:`record_output` (the output of a subprocess, say).

and it keeps a registry of **secrets**:

- the API keys of the plugin's session sandbox (``notify_sandbox``), by their secret part;
- the recipient of every email any app sent (``signals.email_sent``);
- anything a test registers with :func:`register_secret` (addresses, personalisation
  values, tokens).

At the end of the session every collected text is searched (ignoring case) for every
secret of at least :data:`MIN_SECRET_LENGTH` characters. A hit fails the run (exit status 1)
and the terminal summary says where it was (source, test, an excerpt with the secret
blanked out), never what it was.

Output whose purpose is to disclose (``flask dmmail mailchimp export`` writes addresses,
``preview --show-body`` the filled text) is left out of the scan with
``with disclosure_allowed("why"):`` around it, or the marker
``@pytest.mark.discloses_personal_data("why")`` on the test: nothing is collected while
either is active.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

__all__ = [
    "MIN_SECRET_LENGTH",
    "Finding",
    "SecretScanner",
    "disclosure_allowed",
    "record_output",
    "register_secret",
    "scanner",
]

#: Shorter values are not registered: they would match unrelated text.
MIN_SECRET_LENGTH = 6

_STANDARD_RECORD_FIELDS = frozenset(
    vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None))
) | {"message", "asctime", "taskName"}


@dataclass(frozen=True)
class Finding:
    """One secret found in one collected text."""

    kind: str
    source: str
    test: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.kind} in {self.source} (during {self.test}): {self.excerpt}"


class SecretScanner:
    """Collects texts and secrets; :meth:`findings` matches them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}
        self._texts: dict[str, tuple[str, str]] = {}
        self.current_test = "(outside any test)"
        self.allowed = 0  # > 0 while a disclosure is allowed: nothing is collected

    def register(self, value: object, kind: str = "value") -> None:
        """Add ``value`` (a string, or a list/tuple/dict of strings) to the secrets."""
        if isinstance(value, dict):
            for item in value.values():
                self.register(item, kind)
            return
        if isinstance(value, list | tuple | set | frozenset):
            for item in value:
                self.register(item, kind)
            return
        if not isinstance(value, str):
            return
        text = value.strip().lower()
        if len(text) >= MIN_SECRET_LENGTH:
            with self._lock:
                self._secrets.setdefault(text, kind)

    def record(self, source: str, text: object) -> None:
        """Keep ``text`` to be searched at the end of the session."""
        if not isinstance(text, str) or not text or self.allowed:
            return
        with self._lock:
            self._texts.setdefault(text, (source, self.current_test))

    @property
    def secret_count(self) -> int:
        return len(self._secrets)

    @property
    def text_count(self) -> int:
        return len(self._texts)

    def findings(self) -> list[Finding]:
        """Every (secret, text) match, with the secret blanked out of the excerpt."""
        with self._lock:
            secrets = dict(self._secrets)
            texts = list(self._texts.items())
        if not secrets or not texts:
            return []
        lowered = [text.lower() for text, _ in texts]
        # One pass over everything per secret; only texts that hold one are looked at again.
        joined = "\x00".join(lowered)
        ordered = sorted(secrets.items(), key=lambda item: -len(item[0]))
        found: list[Finding] = []
        for secret, kind in secrets.items():
            if secret not in joined:
                continue
            for (_, (source, test)), low in zip(texts, lowered, strict=True):
                if secret in low:
                    found.append(Finding(kind, source, test, self._excerpt(low, kind, ordered)))
        return found

    @staticmethod
    def _excerpt(text: str, kind: str, ordered: list[tuple[str, str]]) -> str:
        """Around the first ``<kind>``, after every secret in the whole text is blanked
        (blanking only a window could leave part of a secret at its edge)."""
        for secret, secret_kind in ordered:
            text = text.replace(secret, f"<{secret_kind}>")
        at = max(0, text.find(f"<{kind}>"))
        return text[max(0, at - 60) : at + 180].replace("\n", " ")


def _record_text(record: logging.LogRecord) -> str:
    try:
        parts = [record.getMessage()]
    except Exception:
        parts = [str(record.msg)]
    parts.extend(
        f"{key}={value!r}"
        for key, value in vars(record).items()
        if key not in _STANDARD_RECORD_FIELDS
    )
    if record.exc_info and record.exc_info[1] is not None:
        parts.extend(traceback.format_exception_only(record.exc_info[1]))
    return "\n".join(parts)


class _ScanHandler(logging.Handler):
    def __init__(self, target: SecretScanner) -> None:
        super().__init__(logging.DEBUG)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.record(f"log {record.name} {record.levelname}", _record_text(record))


#: The session's scanner (one per pytest process).
scanner = SecretScanner()


def register_secret(*values: object, kind: str = "value") -> None:
    """Values that must never appear in a log record, an exception message or CLI output."""
    for value in values:
        scanner.register(value, kind)


@contextlib.contextmanager
def disclosure_allowed(reason: str) -> Iterator[None]:
    """Collect nothing inside the block: output that is meant to show personal data."""
    if not reason:
        raise ValueError("say why the disclosure is allowed")
    scanner.allowed += 1
    try:
        yield
    finally:
        scanner.allowed -= 1


def record_output(source: str, text: str) -> None:
    """Have ``text`` (output the runner does not see, e.g. of a subprocess) scanned too."""
    scanner.record(source, text)


# -- installation -------------------------------------------------------------------------

_undo: list[Callable[[], None]] = []


def _install(target: SecretScanner) -> None:
    root = logging.getLogger()
    handler = _ScanHandler(target)
    old_level = root.level
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.DEBUG:
        root.setLevel(logging.DEBUG)

    def remove_handler() -> None:
        root.removeHandler(handler)
        root.setLevel(old_level)

    _undo.append(remove_handler)

    from flask_dmmail.errors import DMMailError

    original_init = DMMailError.__init__

    def recording_init(self: DMMailError, message: str) -> None:
        original_init(self, message)
        target.record(f"exception {type(self).__name__}", message)

    DMMailError.__init__ = recording_init  # type: ignore[method-assign]
    _undo.append(lambda: setattr(DMMailError, "__init__", original_init))

    from click.testing import CliRunner

    original_invoke = CliRunner.invoke

    def recording_invoke(self: CliRunner, *args: Any, **kwargs: Any) -> Any:
        result = original_invoke(self, *args, **kwargs)
        target.record("cli output", result.output)
        with contextlib.suppress(ValueError):  # stderr not captured separately
            target.record("cli stderr", result.stderr)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            target.record("cli exception", str(result.exception))
        return result

    CliRunner.invoke = recording_invoke  # type: ignore[method-assign]
    _undo.append(lambda: setattr(CliRunner, "invoke", original_invoke))

    from flask_dmmail import signals

    def on_sent(sender: object, email: Any, **_: Any) -> None:
        target.register(email.to, "recipient")

    signals.email_sent.connect(on_sent, weak=False)
    _undo.append(lambda: signals.email_sent.disconnect(on_sent))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "discloses_personal_data(reason): the test's output is meant to show personal data; "
        "the secrets scan collects nothing while it runs",
    )
    _install(scanner)


def pytest_unconfigure(config: pytest.Config) -> None:
    while _undo:
        _undo.pop()()


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    scanner.current_test = nodeid


_FINDINGS_KEY = pytest.StashKey[list[Finding]]()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    scanner.current_test = "(session end)"
    findings = scanner.findings()
    session.config.stash[_FINDINGS_KEY] = findings
    if findings and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    findings = config.stash.get(_FINDINGS_KEY, [])
    if not findings:
        terminalreporter.write_line(
            f"secrets scan: {scanner.secret_count} secrets, {scanner.text_count} texts "
            "(log records, exception messages, CLI output): nothing leaked"
        )
        return
    terminalreporter.section("secrets scan: FAILED", sep="=", red=True, bold=True)
    for finding in findings[:50]:
        terminalreporter.write_line(str(finding))
    if len(findings) > 50:
        terminalreporter.write_line(f"... and {len(findings) - 50} more")


@pytest.fixture(autouse=True)
def _register_sandbox_keys(request: pytest.FixtureRequest) -> Iterator[None]:
    """Register the session sandbox's API keys for every test that uses it; honour the
    ``discloses_personal_data`` marker."""
    if "notify_sandbox" in request.fixturenames:
        sandbox = request.getfixturevalue("notify_sandbox")
        for key in (sandbox.keys.test, sandbox.keys.team, sandbox.keys.live):
            scanner.register(key[-36:], "api key")
    marker = request.node.get_closest_marker("discloses_personal_data")
    if marker is None:
        yield
        return
    with disclosure_allowed(str(marker.args[0] if marker.args else marker.name)):
        yield
